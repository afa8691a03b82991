import Foundation
import Glibc
import Logging
import RapidFlowCore
import SQLKit
import SQLiteKit

/// A migration the store has not applied yet, as `rapidflow migrate --dry-run` lists it.
public struct PendingMigration: Sendable, Equatable {
    public var version: Int
    /// What its statements do, one line each (`CREATE TABLE caches`, `CREATE INDEX …`).
    public var summary: [String]
}

/// What an operator does with the store besides serving: schema versions, durability of
/// acknowledged writes, pruning old jobs, backups.
extension SQLJobStore {
    /// The newest schema this build knows.
    public static var knownSchemaVersion: Int { Migrations.all.map(\.version).max() ?? 0 }

    /// The schema versions the store has applied (empty for a new store).
    public func appliedSchemaVersions() async throws -> Set<Int> {
        try await withDatabase { database in try await Self.appliedVersions(on: database) }
    }

    static func appliedVersions(on database: any SQLDatabase) async throws -> Set<Int> {
        // A new store has no table yet: nothing applied.
        guard let rows = try? await database.raw("SELECT version FROM schema_migrations").all() else { return [] }
        return Set(try rows.map { try $0.decode(column: "version", as: Int.self) })
    }

    /// Refuses a store that a newer RapidFlow migrated: this build would misread its rows.
    static func refuseNewerSchema(_ applied: Set<Int>, location: String) throws {
        guard let newest = applied.max(), newest > knownSchemaVersion else { return }
        throw RapidFlowError(
            .invalidConfig,
            "the store \(location) has schema version \(newest), newer than version \(knownSchemaVersion) that this RapidFlow knows: "
                + "run the RapidFlow release that wrote it (or a newer one), or restore a backup taken before the upgrade")
    }

    /// The migrations `migrate()` would apply, oldest first.
    public func pendingMigrations() async throws -> [PendingMigration] {
        let applied = try await appliedSchemaVersions()
        try Self.refuseNewerSchema(applied, location: location)
        return Migrations.all.filter { !applied.contains($0.version) }.map { migration in
            PendingMigration(
                version: migration.version,
                summary: migration.statements.compactMap { statement in
                    var text = statement
                    for marker in ["{SQLITE}", "{POSTGRES}"] where text.hasPrefix(marker) {
                        // A statement of the other dialect does not run here.
                        guard marker == (dialect == .sqlite ? "{SQLITE}" : "{POSTGRES}") else { return nil }
                        text = String(text.dropFirst(marker.count))
                    }
                    // The statement's head: its kind and the object it makes or changes.
                    let words = text.split(whereSeparator: \.isWhitespace).prefix(while: { !$0.contains("(") })
                    return words.prefix(6).joined(separator: " ")
                })
        }
    }

    // MARK: - Durability

    /// Makes every write committed so far survive a power loss before the caller answers.
    ///
    /// SQLite runs at `synchronous = NORMAL`: a commit writes the write-ahead log but does not
    /// flush it, so step output and the engine's own progress cost no disk flush. A write an
    /// API call acknowledges calls this afterwards: one `fdatasync` of the log covers every
    /// commit before it, which is what `synchronous = FULL` would have done at each of them.
    /// When the log is gone (checkpointed at close), the checkpoint has flushed the database.
    /// PostgreSQL flushes at each commit itself (`synchronous_commit = on`, its default).
    public func syncCommittedWrites() throws {
        guard dialect == .sqlite, let path = sqlitePath else { return }
        let descriptor = open("\(path)-wal", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return }
            throw RapidFlowError(.internalError, "could not open the store's write-ahead log to flush it: \(String(cString: strerror(errno)))")
        }
        defer { Glibc.close(descriptor) }
        guard fdatasync(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            throw errno == ENOSPC
                ? RapidFlowError.diskFull("SQLite could not flush its log")
                : RapidFlowError(.internalError, "could not flush the store's write-ahead log: \(reason)")
        }
    }

    // MARK: - Retention

    /// Expires now the artifacts of jobs that finished before `date`, so the artifact sweep
    /// removes their files and `pruneFinishedJobs` can then take the jobs; returns how many.
    public func expireArtifacts(ofJobsFinishedBefore date: Date) async throws -> Int {
        let now = Millis(Date())
        return try await withDatabase { database in
            try await database.raw(
                """
                UPDATE artifacts SET expires_at = \(bind: now)
                WHERE expires_at > \(bind: now) AND job_id IN (SELECT id FROM jobs WHERE finished_at < \(bind: Millis(date)))
                RETURNING id
                """
            ).all().count
        }
    }

    /// Removes up to `limit` jobs that finished before `date` and keep no artifact, oldest
    /// first, with their steps, output, environment and webhook deliveries, in one
    /// transaction; returns how many went.
    public func pruneFinishedJobs(before date: Date, limit: Int) async throws -> Int {
        let cutoff = Millis(date)
        return try await withDatabase { database in
            try await self.transaction(on: database) {
                let ids: [any Encodable & Sendable] = try await database.raw(
                    """
                    SELECT id FROM jobs j WHERE finished_at < \(bind: cutoff) AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.job_id = j.id)
                    ORDER BY finished_at LIMIT \(bind: limit)
                    """
                ).all().map { try $0.decode(column: "id", as: Int.self) }
                guard !ids.isEmpty else { return 0 }
                try await database.raw(
                    "DELETE FROM step_output WHERE step_id IN (SELECT id FROM steps WHERE job_id IN (\(binds: ids)))"
                ).run()
                try await database.raw("DELETE FROM steps WHERE job_id IN (\(binds: ids))").run()
                try await database.raw("DELETE FROM job_environment WHERE job_id IN (\(binds: ids))").run()
                try await database.raw("DELETE FROM webhook_deliveries WHERE job_id IN (\(binds: ids))").run()
                try await database.raw("DELETE FROM jobs WHERE id IN (\(binds: ids))").run()
                return ids.count
            }
        }
    }

    /// Pages of the SQLite file that hold nothing (0 on PostgreSQL).
    public func freePageCount() async throws -> Int {
        guard dialect == .sqlite else { return 0 }
        return try await withDatabase { database in
            try await database.raw("PRAGMA freelist_count").first()?.decode(column: "freelist_count", as: Int.self) ?? 0
        }
    }

    /// Gives the pages pruning freed back to the disk, a bounded step at a time.
    public func reclaimFreePages(pages: Int) async throws {
        guard dialect == .sqlite else { return }
        try await withDatabase { database in
            try await database.raw("PRAGMA incremental_vacuum(\(unsafeRaw: String(max(1, pages))))").run()
        }
    }

    // MARK: - Backups

    /// Copies the SQLite store at `databasePath` into `destination` while a service may be
    /// using it: `VACUUM INTO` reads one consistent snapshot (a read transaction beside the
    /// service's writer), and the copy is written under a temporary name, checked with
    /// `PRAGMA integrity_check`, flushed and only then renamed, so `destination` is either a
    /// whole, checked backup or absent. Returns the jobs and pipelines it holds.
    public static func backupSQLite(databasePath: String, to destination: String, logger: Logger) async throws -> (jobs: Int, pipelines: Int) {
        guard FileManager.default.fileExists(atPath: databasePath) else {
            throw RapidFlowError(.invalidConfig, "there is no store at \(databasePath): check --data-dir or --database")
        }
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw RapidFlowError(.invalidRequest, "\(destination) exists already: back up to a new file")
        }
        let partial = "\(destination).partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: partial)
        let source = try await SQLiteConnection.open(storage: .file(path: databasePath), logger: driverLogger(logger))
        do {
            let database = source.sql(queryLogLevel: nil)
            try await database.raw("PRAGMA busy_timeout = 5000").run()
            try refuseNewerSchema(try await appliedVersions(on: database), location: databasePath)
            try await database.raw("VACUUM INTO \(bind: partial)").run()
            try await source.close()
        } catch {
            try? await source.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        let copy = try await SQLiteConnection.open(storage: .file(path: partial), logger: driverLogger(logger))
        let counts: (jobs: Int, pipelines: Int)
        do {
            let database = copy.sql(queryLogLevel: nil)
            let check = try await database.raw("PRAGMA integrity_check").all().map { try $0.decode(column: "integrity_check", as: String.self) }
            guard check == ["ok"] else {
                throw RapidFlowError(.internalError, "the backup failed its integrity check: \(check.prefix(3).joined(separator: "; "))")
            }
            counts = (
                try await database.raw("SELECT COUNT(*) AS n FROM jobs").first()!.decode(column: "n", as: Int.self),
                try await database.raw("SELECT COUNT(*) AS n FROM pipelines").first()!.decode(column: "n", as: Int.self)
            )
            try await copy.close()
        } catch {
            try? await copy.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        try flushFile(partial)
        guard rename(partial, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: partial)
            throw RapidFlowError(.internalError, "could not move the backup to \(destination): \(reason)")
        }
        // The rename itself survives a power loss once its folder is flushed.
        try? flushFile(URL(fileURLWithPath: destination).deletingLastPathComponent().path)
        return counts
    }

    private static func flushFile(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw RapidFlowError(.internalError, "could not open \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(descriptor) }
        guard fsync(descriptor) == 0 else { throw RapidFlowError(.internalError, "could not flush \(path): \(String(cString: strerror(errno)))") }
    }
}
