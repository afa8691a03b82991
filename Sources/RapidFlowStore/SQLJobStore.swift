import Foundation
import Logging
import NIOCore
import NIOPosix
import RapidFlowCore
import SQLKit
import SQLiteKit

/// The store on SQL: SQLite in the data directory by default.
///
/// Statements are written once with sql-kit binds so the same code can serve PostgreSQL;
/// only the DDL type names differ per dialect. One connection is shared and every call
/// holds `lock`, so a transaction never interleaves with another caller's statements.
public final class SQLJobStore: JobStore {
    public enum Dialect: Sendable {
        case sqlite, postgres

        var idColumn: String {
            switch self {
            case .sqlite: "INTEGER PRIMARY KEY AUTOINCREMENT"
            case .postgres: "BIGSERIAL PRIMARY KEY"
            }
        }

        var blobType: String {
            switch self {
            case .sqlite: "BLOB"
            case .postgres: "BYTEA"
            }
        }
    }

    private let database: any SQLDatabase
    private let dialect: Dialect
    private let lock = AsyncSerialLock()
    private let onClose: @Sendable () async -> Void
    private let reserve: DiskReserve?

    public init(
        database: any SQLDatabase, dialect: Dialect, reserve: DiskReserve? = nil, onClose: @escaping @Sendable () async -> Void = {}
    ) {
        self.database = database
        self.dialect = dialect
        self.reserve = reserve
        self.onClose = onClose
    }

    /// Opens (creating if needed) the SQLite file at `path`, in WAL mode so a crash of the
    /// service loses nothing that was committed.
    public static func openSQLite(path: String, logger: Logger) async throws -> SQLJobStore {
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        let database = connection.sql()
        do {
            try await database.raw("PRAGMA journal_mode = WAL").run()
            try await database.raw("PRAGMA synchronous = NORMAL").run()
            try await database.raw("PRAGMA busy_timeout = 5000").run()
        } catch {
            try? await connection.close()
            throw error
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return SQLJobStore(database: database, dialect: .sqlite, reserve: DiskReserve(path: "\(directory)/.rapidflow-disk-reserve")) {
            try? await connection.close()
        }
    }

    public func close() async {
        await onClose()
    }

    private func locked<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await lock.withLock(body)
        } catch {
            // A full disk: free the reserve so the job's final state can still be written.
            if String(describing: error).contains("full") { reserve?.release() }
            throw error
        }
    }

    /// Runs `body` in a transaction; the caller holds the lock.
    private func transaction<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await database.raw("BEGIN").run()
        do {
            let result = try await body()
            try await database.raw("COMMIT").run()
            return result
        } catch {
            try? await database.raw("ROLLBACK").run()
            throw error
        }
    }

    // MARK: - Schema

    public func migrate() async throws {
        try await locked {
            try await database.raw(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            ).run()
            let applied = Set(
                try await database.raw("SELECT version FROM schema_migrations").all()
                    .map { try $0.decode(column: "version", as: Int.self) })
            for migration in Migrations.all where !applied.contains(migration.version) {
                try await transaction {
                    for statement in migration.statements {
                        let sql = statement.replacingOccurrences(of: "{ID}", with: dialect.idColumn)
                            .replacingOccurrences(of: "{BLOB}", with: dialect.blobType)
                        try await database.raw(SQLQueryString(sql)).run()
                    }
                    try await database.raw(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (\(bind: migration.version), \(bind: Millis(Date())))"
                    ).run()
                }
            }
        }
    }

    public func ping() async throws {
        _ = try await locked { try await database.raw("SELECT 1 AS one").all().count }
    }

    // MARK: - Pipelines

    public func createPipeline(name: String, config: String) async throws -> Pipeline {
        try await locked {
            let now = Millis(Date())
            let row = try await database.raw(
                """
                INSERT INTO pipelines (name, config, created_at, updated_at)
                VALUES (\(bind: name), \(bind: config), \(bind: now), \(bind: now)) RETURNING *
                """
            ).first()
            return try Self.pipeline(from: row!)
        }
    }

    public func pipeline(id: Int) async throws -> Pipeline? {
        try await locked {
            try await database.raw("SELECT * FROM pipelines WHERE id = \(bind: id)").first().map(Self.pipeline(from:))
        }
    }

    public func pipelines(before: Int?, limit: Int) async throws -> [Pipeline] {
        try await locked {
            try await database.raw(
                "SELECT * FROM pipelines WHERE id < \(bind: before ?? Int.max) ORDER BY id DESC LIMIT \(bind: limit)"
            ).all().map(Self.pipeline(from:))
        }
    }

    public func updatePipeline(id: Int, name: String, config: String) async throws -> Pipeline? {
        try await locked {
            try await database.raw(
                """
                UPDATE pipelines SET name = \(bind: name), config = \(bind: config), updated_at = \(bind: Millis(Date()))
                WHERE id = \(bind: id) RETURNING *
                """
            ).first().map(Self.pipeline(from:))
        }
    }

    public func deletePipeline(id: Int) async throws -> Bool {
        try await locked {
            try await database.raw("DELETE FROM pipelines WHERE id = \(bind: id) RETURNING id").first() != nil
        }
    }

    // MARK: - Jobs

    public func createJob(_ new: NewJob) async throws -> Job {
        let snapshot = String(decoding: try JSONEncoder().encode(new.snapshot), as: UTF8.self)
        return try await locked {
            try await transaction {
                let now = Millis(Date())
                guard
                    let row = try await database.raw(
                        """
                        INSERT INTO jobs (kind, pipeline_id, pipeline_name, status, snapshot, cancelled, retry_of, created_at)
                        VALUES (\(bind: new.kind.rawValue), \(bind: new.pipelineID), \(bind: new.pipelineName),
                                \(bind: JobStatus.pending.rawValue), \(bind: snapshot), 0, \(bind: new.retryOf), \(bind: now))
                        RETURNING *
                        """
                    ).first()
                else { throw RapidFlowError(.internalError, "the store did not return the new job") }
                let job = try Self.job(from: row)
                for (index, step) in new.steps.enumerated() {
                    try await database.raw(
                        """
                        INSERT INTO steps (job_id, order_num, type, name, content, phase, status, created_at)
                        VALUES (\(bind: job.id), \(bind: index + 1), \(bind: step.type), \(bind: step.name),
                                \(bind: step.content), \(bind: step.phase.rawValue), \(bind: StepStatus.pending.rawValue), \(bind: now))
                        """
                    ).run()
                }
                for (index, entry) in new.environment.enumerated() {
                    try await database.raw(
                        """
                        INSERT INTO job_environment (job_id, position, key, value)
                        VALUES (\(bind: job.id), \(bind: index), \(bind: entry.key), \(bind: entry.value))
                        """
                    ).run()
                }
                return job
            }
        }
    }

    public func job(id: Int) async throws -> Job? {
        try await locked {
            try await database.raw("SELECT * FROM jobs WHERE id = \(bind: id)").first().map(Self.job(from:))
        }
    }

    public func jobs(_ filter: JobFilter) async throws -> [Job] {
        var query = SQLQueryString("SELECT * FROM jobs WHERE id < \(bind: filter.before ?? Int.max)")
        if let status = filter.status { query.appendInterpolation(unsafeRaw: " AND status = "); query.appendInterpolation(bind: status.rawValue) }
        if let pipelineID = filter.pipelineID { query.appendInterpolation(unsafeRaw: " AND pipeline_id = "); query.appendInterpolation(bind: pipelineID) }
        query.appendInterpolation(unsafeRaw: " ORDER BY id DESC LIMIT ")
        query.appendInterpolation(bind: filter.limit)
        let finalQuery = query
        return try await locked {
            try await database.raw(finalQuery).all().map(Self.job(from:))
        }
    }

    public func steps(jobID: Int) async throws -> [Step] {
        try await locked {
            try await database.raw("SELECT * FROM steps WHERE job_id = \(bind: jobID) ORDER BY order_num").all()
                .map(Self.step(from:))
        }
    }

    public func step(id: Int) async throws -> Step? {
        try await locked {
            try await database.raw("SELECT * FROM steps WHERE id = \(bind: id)").first().map(Self.step(from:))
        }
    }

    public func environment(jobID: Int) async throws -> [EnvironmentEntry] {
        try await locked {
            try await database.raw("SELECT * FROM job_environment WHERE job_id = \(bind: jobID) ORDER BY position").all()
                .map {
                    EnvironmentEntry(
                        id: try $0.decode(column: "id", as: Int.self), jobID: try $0.decode(column: "job_id", as: Int.self),
                        key: try $0.decode(column: "key", as: String.self), value: try $0.decode(column: "value", as: String.self))
                }
        }
    }

    public func finishedJobIDs(before date: Date, limit: Int) async throws -> [Int] {
        try await locked {
            try await database.raw(
                "SELECT id FROM jobs WHERE finished_at < \(bind: Millis(date)) ORDER BY finished_at LIMIT \(bind: limit)"
            ).all().map { try $0.decode(column: "id", as: Int.self) }
        }
    }

    public func pendingJobs(limit: Int) async throws -> [Job] {
        try await locked {
            try await database.raw(
                "SELECT * FROM jobs WHERE status = \(bind: JobStatus.pending.rawValue) ORDER BY id LIMIT \(bind: limit)"
            ).all().map(Self.job(from:))
        }
    }

    public func claimJob(id: Int, at date: Date) async throws -> Bool {
        try await locked {
            try await database.raw(
                """
                UPDATE jobs SET status = \(bind: JobStatus.running.rawValue), started_at = \(bind: Millis(date))
                WHERE id = \(bind: id) AND status = \(bind: JobStatus.pending.rawValue) RETURNING id
                """
            ).first() != nil
        }
    }

    public func finishJob(id: Int, status: JobStatus, cancelled: Bool, at date: Date) async throws -> Bool {
        precondition(status.isFinal, "finishJob takes a final status")
        return try await locked {
            try await database.raw(
                """
                UPDATE jobs SET status = \(bind: status.rawValue), cancelled = \(bind: cancelled ? 1 : 0),
                    finished_at = \(bind: Millis(date))
                WHERE id = \(bind: id) AND status IN (\(bind: JobStatus.pending.rawValue), \(bind: JobStatus.running.rawValue))
                RETURNING id
                """
            ).first() != nil
        }
    }

    public func cancelPendingJob(id: Int, at date: Date) async throws -> Bool {
        try await locked {
            try await database.raw(
                """
                UPDATE jobs SET status = \(bind: JobStatus.cancelled.rawValue), cancelled = 1, finished_at = \(bind: Millis(date))
                WHERE id = \(bind: id) AND status = \(bind: JobStatus.pending.rawValue) RETURNING id
                """
            ).first() != nil
        }
    }

    public func setPorts(jobID: Int, ports: [String]) async throws {
        let text = String(decoding: try JSONEncoder().encode(ports), as: UTF8.self)
        try await locked {
            try await database.raw("UPDATE jobs SET ports = \(bind: text) WHERE id = \(bind: jobID)").run()
        }
    }

    public func setContainer(jobID: Int, containerID: String?) async throws {
        try await locked {
            try await database.raw("UPDATE jobs SET container_id = \(bind: containerID) WHERE id = \(bind: jobID)").run()
        }
    }

    // MARK: - Steps

    public func startStep(id: Int, at date: Date, processGroup: Int32?) async throws {
        try await locked {
            try await database.raw(
                """
                UPDATE steps SET status = \(bind: StepStatus.running.rawValue), started_at = \(bind: Millis(date)),
                    process_group = \(bind: processGroup.map(Int.init))
                WHERE id = \(bind: id)
                """
            ).run()
        }
    }

    public func recordProcessGroup(stepID: Int, processGroup: Int32) async throws {
        try await locked {
            try await database.raw(
                "UPDATE steps SET process_group = \(bind: Int(processGroup)) WHERE id = \(bind: stepID)"
            ).run()
        }
    }

    public func finishStep(id: Int, status: StepStatus, exitCode: Int?, at date: Date) async throws {
        try await locked {
            try await database.raw(
                """
                UPDATE steps SET status = \(bind: status.rawValue), exit_code = \(bind: exitCode),
                    finished_at = \(bind: Millis(date))
                WHERE id = \(bind: id)
                """
            ).run()
        }
    }

    public func skipPendingSteps(jobID: Int, at date: Date) async throws {
        try await locked {
            try await database.raw(
                """
                UPDATE steps SET status = \(bind: StepStatus.skipped.rawValue)
                WHERE job_id = \(bind: jobID) AND status = \(bind: StepStatus.pending.rawValue)
                """
            ).run()
        }
    }

    public func appendOutput(stepID: Int, offset: Int, data: Data) async throws {
        try await locked {
            try await database.raw(
                "INSERT INTO step_output (step_id, byte_offset, data) VALUES (\(bind: stepID), \(bind: offset), \(bind: data))"
            ).run()
        }
    }

    public func output(stepID: Int) async throws -> Data {
        try await locked {
            var output = Data()
            for row in try await database.raw(
                "SELECT data FROM step_output WHERE step_id = \(bind: stepID) ORDER BY byte_offset"
            ).all() {
                output.append(try row.decode(column: "data", as: Data.self))
            }
            return output
        }
    }

    public func outputs(jobID: Int) async throws -> [Int: Data] {
        try await locked {
            var outputs: [Int: Data] = [:]
            for row in try await database.raw(
                """
                SELECT o.step_id AS step_id, o.data AS data FROM step_output o JOIN steps s ON s.id = o.step_id
                WHERE s.job_id = \(bind: jobID) ORDER BY o.step_id, o.byte_offset
                """
            ).all() {
                outputs[try row.decode(column: "step_id", as: Int.self), default: Data()]
                    .append(try row.decode(column: "data", as: Data.self))
            }
            return outputs
        }
    }

    // MARK: - Recovery

    public func settleInterruptedJobs(reason: String, at date: Date) async throws -> [InterruptedStep] {
        try await locked {
            try await transaction {
                let now = Millis(date)
                let running = try await database.raw(
                    """
                    SELECT s.id AS id, s.job_id AS job_id, s.process_group AS process_group FROM steps s
                    JOIN jobs j ON j.id = s.job_id
                    WHERE j.status = \(bind: JobStatus.running.rawValue) AND s.status = \(bind: StepStatus.running.rawValue)
                    """
                ).all().map {
                    InterruptedStep(
                        stepID: try $0.decode(column: "id", as: Int.self), jobID: try $0.decode(column: "job_id", as: Int.self),
                        processGroup: try $0.decode(column: "process_group", as: Int?.self).map(Int32.init))
                }
                let note = Data(("[rapidflow] " + reason + "\n").utf8)
                for step in running {
                    let size = try await database.raw(
                        "SELECT COALESCE(SUM(LENGTH(data)), 0) AS size FROM step_output WHERE step_id = \(bind: step.stepID)"
                    ).first()?.decode(column: "size", as: Int.self) ?? 0
                    try await database.raw(
                        "INSERT INTO step_output (step_id, byte_offset, data) VALUES (\(bind: step.stepID), \(bind: size), \(bind: note))"
                    ).run()
                    try await database.raw(
                        """
                        UPDATE steps SET status = \(bind: StepStatus.failed.rawValue), finished_at = \(bind: now)
                        WHERE id = \(bind: step.stepID)
                        """
                    ).run()
                }
                let jobIDs = try await database.raw(
                    "SELECT id FROM jobs WHERE status = \(bind: JobStatus.running.rawValue)"
                ).all().map { try $0.decode(column: "id", as: Int.self) }
                for jobID in jobIDs {
                    try await database.raw(
                        """
                        UPDATE steps SET status = \(bind: StepStatus.skipped.rawValue)
                        WHERE job_id = \(bind: jobID) AND status IN (\(bind: StepStatus.pending.rawValue), \(bind: StepStatus.running.rawValue))
                        """
                    ).run()
                    try await database.raw(
                        """
                        UPDATE jobs SET status = \(bind: JobStatus.failed.rawValue), finished_at = \(bind: now)
                        WHERE id = \(bind: jobID)
                        """
                    ).run()
                }
                return running
            }
        }
    }

    // MARK: - Rows

    private static func pipeline(from row: any SQLRow) throws -> Pipeline {
        Pipeline(
            id: try row.decode(column: "id", as: Int.self), name: try row.decode(column: "name", as: String.self),
            config: try row.decode(column: "config", as: String.self),
            createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            updatedAt: try row.decode(column: "updated_at", as: Millis.self).date)
    }

    private static func job(from row: any SQLRow) throws -> Job {
        let snapshotText = try row.decode(column: "snapshot", as: String.self)
        return Job(
            id: try row.decode(column: "id", as: Int.self),
            kind: JobKind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .pipeline,
            pipelineID: try row.decode(column: "pipeline_id", as: Int?.self),
            pipelineName: try row.decode(column: "pipeline_name", as: String?.self),
            status: JobStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .failed,
            snapshot: try JSONDecoder().decode(JobSnapshot.self, from: Data(snapshotText.utf8)),
            cancelled: try row.decode(column: "cancelled", as: Int.self) != 0,
            containerID: try row.decode(column: "container_id", as: String?.self),
            retryOf: try row.decode(column: "retry_of", as: Int?.self),
            ports: try row.decode(column: "ports", as: String?.self).flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) } ?? [],
            createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            startedAt: try row.decode(column: "started_at", as: Millis?.self)?.date,
            finishedAt: try row.decode(column: "finished_at", as: Millis?.self)?.date)
    }

    private static func step(from row: any SQLRow) throws -> Step {
        Step(
            id: try row.decode(column: "id", as: Int.self), jobID: try row.decode(column: "job_id", as: Int.self),
            orderNum: try row.decode(column: "order_num", as: Int.self), type: try row.decode(column: "type", as: String.self),
            name: try row.decode(column: "name", as: String?.self), content: try row.decode(column: "content", as: String.self),
            phase: Phase(rawValue: try row.decode(column: "phase", as: String.self)) ?? .build,
            status: StepStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .failed,
            exitCode: try row.decode(column: "exit_code", as: Int?.self),
            createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            startedAt: try row.decode(column: "started_at", as: Millis?.self)?.date,
            finishedAt: try row.decode(column: "finished_at", as: Millis?.self)?.date)
    }
}

/// A timestamp as stored: integer milliseconds since 1970, the same in every dialect.
struct Millis: Codable, Sendable {
    var value: Int64

    init(_ date: Date) { value = Int64((date.timeIntervalSince1970 * 1000).rounded()) }

    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int64.self) }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    var date: Date { Date(timeIntervalSince1970: Double(value) / 1000) }
}
