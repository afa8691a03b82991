import ArgumentParser
import Foundation
import Logging
import RapidFlowServer
import RapidFlowStore

/// Where `backup` and `migrate` find the store: as `serve` does, from `--database`, else the
/// SQLite file in `--data-dir`.
struct StoreLocationOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "The service's data directory (RAPIDFLOW_DATA_DIR, default .rapidflow).")
    var dataDir: String?
    @Option(help: "Store URL, as `serve` takes it: sqlite:///path or postgres://user:password@host:port/database (RAPIDFLOW_DATABASE).")
    var database: String?

    func location() throws -> StoreLocation {
        let environment = ProcessInfo.processInfo.environment
        func nonEmpty(_ value: String?) -> String? { value.flatMap { $0.isEmpty ? nil : $0 } }
        return try StoreLocation(
            database: nonEmpty(database) ?? nonEmpty(environment["RAPIDFLOW_DATABASE"]),
            dataDirectory: nonEmpty(dataDir) ?? nonEmpty(environment["RAPIDFLOW_DATA_DIR"]) ?? ServerConfiguration().dataDirectory)
    }

    static var logger: Logger {
        var logger = Logger(label: "rapidflow")
        logger.logLevel = .warning
        return logger
    }
}

/// `rapidflow backup --to FILE`: a consistent copy of the SQLite store while the service runs.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the store into a new SQLite file, consistent while the service runs.",
        discussion: """
            The copy is one snapshot of the store (SQLite's VACUUM INTO, beside the running service's writes), \
            checked with PRAGMA integrity_check and flushed to disk before it takes the name FILE: FILE is a whole backup \
            or absent. To restore, stop the service and put the file in place of <data-dir>/rapidflow.sqlite. \
            A PostgreSQL store is backed up with pg_dump; this command prints how.
            """)
    @OptionGroup var store: StoreLocationOptions
    @Option(help: "The backup file to write; it must not exist yet.") var to: String

    func run() async throws {
        switch try store.location() {
        case .sqlite(let path):
            let counts = try await SQLJobStore.backupSQLite(databasePath: path, to: to, logger: StoreLocationOptions.logger)
            let size = ((try? FileManager.default.attributesOfItem(atPath: to)[.size] as? Int) ?? 0) ?? 0
            print(
                "backed up \(path) to \(to): \(counts.jobs) jobs, \(counts.pipelines) pipelines, "
                    + String(format: "%.1f MB", Double(size) / 1_000_000) + "; integrity check ok")
        case .postgres(let url):
            let parsed = try PostgresURL(url)
            print(
                """
                The store is PostgreSQL (\(parsed)): back it up with its own tool, which takes a consistent snapshot while \
                the service runs:
                  PGPASSWORD=... pg_dump --format=custom --file \(to) \(parsed.connectionFlags)
                and restore it with pg_restore into an empty database. Nothing was written.
                """)
            throw ExitCode(2)
        }
    }
}

/// `rapidflow migrate [--dry-run]`: the schema changes `serve` would make at start.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Bring the store's schema up to this release's (serve does it at start); --dry-run lists what would run.",
        discussion: "A store a newer release migrated is refused, naming both versions: run that release, or restore a backup.")
    @OptionGroup var store: StoreLocationOptions
    @Flag(name: .customLong("dry-run"), help: "List the migrations that would run, and change nothing.") var dryRun = false

    func run() async throws {
        let location = try store.location()
        if dryRun, case .sqlite(let path) = location, !FileManager.default.fileExists(atPath: path) {
            // Opening would create it: say what a first start makes instead.
            print("no store at \(path) yet: a first start creates it at schema version \(SQLJobStore.knownSchemaVersion)")
            return
        }
        let opened = try await location.open(logger: StoreLocationOptions.logger)
        do {
            let pending = try await opened.pendingMigrations()
            let current = try await opened.appliedSchemaVersions().max() ?? 0
            print("store \(opened.location): schema version \(current); this release knows \(SQLJobStore.knownSchemaVersion)")
            if pending.isEmpty {
                print("up to date: nothing to run")
            } else {
                print(dryRun ? "\(pending.count) migration(s) would run:" : "running \(pending.count) migration(s):")
                for migration in pending {
                    print("  \(migration.version):")
                    for line in migration.summary { print("    \(line)") }
                }
                if !dryRun {
                    try await opened.migrate()
                    print("done: schema version \(SQLJobStore.knownSchemaVersion)")
                }
            }
        } catch {
            await opened.close()
            throw error
        }
        await opened.close()
    }
}
