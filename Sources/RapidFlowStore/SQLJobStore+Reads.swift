import Foundation
import RapidFlowCore
import SQLKit

/// The reads the API serves most: a job, a list of jobs, a job's status with its steps, and
/// output. On SQLite they run on `SQLiteReader`'s read-only connections with statements
/// prepared once; on PostgreSQL through the pool. Either way rows are read column by column
/// in a fixed order, and a listed job's fields come from columns of their own, never from
/// its snapshot's JSON.
extension SQLJobStore {
    /// The columns of a job as a list shows it, in the order `listedJob` reads them.
    static let listedJobColumns = [
        "id", "kind", "pipeline_id", "pipeline_name", "status", "cancelled", "container_id", "retry_of", "ports", "created_at",
        "started_at", "finished_at", "branch", "account", "priority", "concurrency_group", "repo", "language", "version", "image",
        "folder", "expose_ports", "event", "commit_sha", "commit_ref", "commit_message", "commit_author",
    ]
    /// The columns of a step, in the order `step(from:at:)` reads them.
    static let stepColumns = [
        "id", "job_id", "order_num", "type", "name", "content", "phase", "status", "exit_code", "created_at", "started_at", "finished_at",
    ]

    private static let listedJobSelect = listedJobColumns.joined(separator: ", ")
    /// A whole job: the listed columns, then the snapshot.
    private static let jobSelect = listedJobSelect + ", snapshot"
    private static let stepSelect = stepColumns.joined(separator: ", ")
    /// A job and its steps in one statement; a job without steps has one row of nulls for them.
    private static let statusSelect =
        listedJobColumns.map { "j.\($0)" }.joined(separator: ", ") + ", " + stepColumns.map { "s.\($0) AS s_\($0)" }.joined(separator: ", ")
    private static let statusColumns = listedJobColumns + stepColumns.map { "s_\($0)" }

    public func job(id: Int) async throws -> Job? {
        try await read(
            "SELECT \(Self.jobSelect) FROM jobs WHERE id = ?", [.int(Int64(id))], columns: Self.listedJobColumns + ["snapshot"]
        ) { row in
            var job = try Self.listedJob(from: row)
            job.snapshot = try JSONDecoder().decode(JobSnapshot.self, from: Data(try row.text(Int32(Self.listedJobColumns.count)).utf8))
            return job
        }.first
    }

    public func jobs(_ filter: JobFilter) async throws -> [Job] {
        var sql = "SELECT \(Self.listedJobSelect) FROM jobs WHERE id < ?"
        var values: [SQLiteReader.Value] = [.int(Int64(filter.before ?? Int.max))]
        func add(_ clause: String, _ value: SQLiteReader.Value) {
            sql += " AND \(clause) = ?"
            values.append(value)
        }
        if let status = filter.status { add("status", .text(status.rawValue)) }
        if let pipelineID = filter.pipelineID { add("pipeline_id", .int(Int64(pipelineID))) }
        if let branch = filter.branch { add("branch", .text(branch)) }
        if let owner = filter.owner { add("account", .text(owner)) }
        var exactID: Int?
        if let search = filter.search, !search.isEmpty {
            // A job id, or a part of the pipeline's name or the branch (LIKE's wildcards taken literally).
            let pattern = "%" + search.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_") + "%"
            sql += " AND (LOWER(pipeline_name) LIKE LOWER(?) ESCAPE '\\' OR LOWER(branch) LIKE LOWER(?) ESCAPE '\\'"
            values += [.text(pattern), .text(pattern)]
            if let id = Int(search.hasPrefix("#") ? String(search.dropFirst()) : search) {
                sql += " OR id = ?"
                values.append(.int(Int64(id)))
                exactID = id
            }
            sql += ")"
        }
        if let exactID {
            // The job of that id heads the first page (newer jobs of pipelines whose names hold
            // its digits would otherwise push it off), and is not listed again on later ones.
            if filter.before != nil {
                sql += " AND id <> ?"
                values.append(.int(Int64(exactID)))
            }
            sql += " ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END, id DESC LIMIT ?"
            values.append(.int(Int64(exactID)))
        } else {
            sql += " ORDER BY id DESC LIMIT ?"
        }
        values.append(.int(Int64(filter.limit)))
        return try await read(sql, values, columns: Self.listedJobColumns, Self.listedJob(from:))
    }

    /// A job as a list shows it (its snapshot holds only what `listedJobColumns` has) and its
    /// steps, read together.
    public func jobStatus(id: Int) async throws -> (job: Job, steps: [Step])? {
        let rows = try await read(
            "SELECT \(Self.statusSelect) FROM jobs j LEFT JOIN steps s ON s.job_id = j.id WHERE j.id = ? ORDER BY s.order_num",
            [.int(Int64(id))], columns: Self.statusColumns
        ) { row in
            let offset = Int32(Self.listedJobColumns.count)
            return (job: try Self.listedJob(from: row), step: try row.isNull(offset) ? nil : try Self.step(from: row, at: offset))
        }
        guard let job = rows.first?.job else { return nil }
        return (job, rows.compactMap(\.step))
    }

    public func steps(jobID: Int) async throws -> [Step] {
        try await read(
            "SELECT \(Self.stepSelect) FROM steps WHERE job_id = ? ORDER BY order_num", [.int(Int64(jobID))], columns: Self.stepColumns
        ) { try Self.step(from: $0, at: 0) }
    }

    public func pipeline(id: Int) async throws -> Pipeline? {
        try await read(
            "SELECT id, name, config, owner, created_at, updated_at FROM pipelines WHERE id = ?", [.int(Int64(id))],
            columns: ["id", "name", "config", "owner", "created_at", "updated_at"]
        ) {
            Pipeline(
                id: try $0.int(0), name: try $0.text(1), config: try $0.text(2), owner: try $0.optionalText(3),
                createdAt: Millis(try $0.int(4)).date, updatedAt: Millis(try $0.int(5)).date)
        }.first
    }

    public func environment(jobID: Int) async throws -> [EnvironmentEntry] {
        try await read(
            "SELECT id, job_id, key, value, secret FROM job_environment WHERE job_id = ? ORDER BY position", [.int(Int64(jobID))],
            columns: ["id", "job_id", "key", "value", "secret"]
        ) {
            EnvironmentEntry(id: try $0.int(0), jobID: try $0.int(1), key: try $0.text(2), value: try $0.text(3), secret: try $0.optionalText(4))
        }
    }

    public func output(stepID: Int) async throws -> Data {
        var output = Data()
        for piece in try await read(
            "SELECT data FROM step_output WHERE step_id = ? ORDER BY byte_offset", [.int(Int64(stepID))], columns: ["data"], { try $0.data(0) })
        {
            output.append(piece)
        }
        return output
    }

    public func outputs(jobID: Int) async throws -> [Int: Data] {
        var outputs: [Int: Data] = [:]
        for (step, piece) in try await read(
            """
            SELECT o.step_id AS step_id, o.data AS data FROM step_output o JOIN steps s ON s.id = o.step_id
            WHERE s.job_id = ? ORDER BY o.step_id, o.byte_offset
            """, [.int(Int64(jobID))], columns: ["step_id", "data"], { (try $0.int(0), try $0.data(1)) })
        {
            outputs[step, default: Data()].append(piece)
        }
        return outputs
    }

    // MARK: - Running a read

    /// Runs `sql` (binds written `?`) on a reader where there is one, else on the database,
    /// each row read by `decode` through the column positions `columns` names.
    private func read<T: Sendable>(
        _ sql: String, _ values: [SQLiteReader.Value], columns: [String], _ decode: @escaping @Sendable (any ColumnReading) throws -> T
    ) async throws -> [T] {
        if let reader { return try reader.rows(sql, values, decode) }
        let query = Self.sqlKitQuery(sql, values)
        return try await withDatabase { database in
            try await database.raw(query).all().map { try decode(NamedColumns(row: $0, names: columns)) }
        }
    }

    /// `read` for a caller that holds the database already (from `withDatabase`): on SQLite the
    /// writer is held, so a reader sees what the writer would, between its transactions.
    func rows<T: Sendable>(
        _ sql: String, _ values: [SQLiteReader.Value], columns: [String], on database: any SQLDatabase,
        _ decode: @escaping @Sendable (any ColumnReading) throws -> T
    ) async throws -> [T] {
        if let reader { return try reader.rows(sql, values, decode) }
        return try await database.raw(Self.sqlKitQuery(sql, values)).all().map { try decode(NamedColumns(row: $0, names: columns)) }
    }

    /// The same statement for sql-kit: each `?` becomes a bind of the dialect.
    private static func sqlKitQuery(_ sql: String, _ values: [SQLiteReader.Value]) -> SQLQueryString {
        var query = SQLQueryString("")
        for (index, piece) in sql.split(separator: "?", omittingEmptySubsequences: false).enumerated() {
            if index > 0 {
                switch values[index - 1] {
                case .int(let number): query.appendInterpolation(bind: Int(number))
                case .text(let text): query.appendInterpolation(bind: text)
                case .null: query.appendInterpolation(unsafeRaw: "NULL")
                }
            }
            query.appendInterpolation(unsafeRaw: String(piece))
        }
        return query
    }

    // MARK: - Rows

    static func listedJob(from row: any ColumnReading) throws -> Job {
        var snapshot = JobSnapshot(
            language: try row.optionalText(17), version: try row.optionalText(18), image: try row.optionalText(19),
            repo: try row.optionalText(16), branch: try row.optionalText(12), folder: try row.optionalText(20),
            exposePorts: try row.int(21) != 0)
        snapshot.owner = try row.text(13)
        snapshot.priority = JobPriority(rank: try row.int(14))
        snapshot.concurrencyGroup = try row.optionalText(15)
        snapshot.event = try row.optionalText(22).flatMap(TriggerEvent.init(rawValue:))
        if let sha = try row.optionalText(23) {
            snapshot.commit = CommitInfo(
                ref: try row.optionalText(24) ?? "", sha: sha, message: try row.optionalText(25), author: try row.optionalText(26))
        }
        return Job(
            id: try row.int(0), kind: JobKind(rawValue: try row.text(1)) ?? .pipeline, pipelineID: try row.optionalInt(2),
            pipelineName: try row.optionalText(3), status: JobStatus(rawValue: try row.text(4)) ?? .failed, snapshot: snapshot,
            cancelled: try row.int(5) != 0, containerID: try row.optionalText(6), retryOf: try row.optionalInt(7),
            ports: try row.optionalText(8).flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) } ?? [],
            createdAt: Millis(try row.int(9)).date, startedAt: try row.optionalInt(10).map { Millis($0).date },
            finishedAt: try row.optionalInt(11).map { Millis($0).date })
    }

    static func step(from row: any ColumnReading, at first: Int32) throws -> Step {
        let type = try row.text(first + 3)
        guard let stepType = StepType(rawValue: type) else { throw RapidFlowError(.internalError, "a stored step has the unknown type '\(type)'") }
        return Step(
            id: try row.int(first), jobID: try row.int(first + 1), orderNum: try row.int(first + 2), type: stepType,
            name: try row.optionalText(first + 4), content: try row.text(first + 5),
            phase: Phase(rawValue: try row.text(first + 6)) ?? .build, status: StepStatus(rawValue: try row.text(first + 7)) ?? .failed,
            exitCode: try row.optionalInt(first + 8), createdAt: Millis(try row.int(first + 9)).date,
            startedAt: try row.optionalInt(first + 10).map { Millis($0).date }, finishedAt: try row.optionalInt(first + 11).map { Millis($0).date })
    }
}

/// A row read by column position: a reader's row, or sql-kit's through the names of its columns.
protocol ColumnReading {
    func isNull(_ column: Int32) throws -> Bool
    func int(_ column: Int32) throws -> Int
    func optionalInt(_ column: Int32) throws -> Int?
    func text(_ column: Int32) throws -> String
    func optionalText(_ column: Int32) throws -> String?
    func data(_ column: Int32) throws -> Data
}

extension SQLiteReader.Row: ColumnReading {}

/// sql-kit's row, its columns found by the names the statement gave them.
private struct NamedColumns: ColumnReading {
    let row: any SQLRow
    let names: [String]

    func isNull(_ column: Int32) throws -> Bool { try row.decodeNil(column: names[Int(column)]) }
    func int(_ column: Int32) throws -> Int { try row.decode(column: names[Int(column)], as: Int.self) }
    func optionalInt(_ column: Int32) throws -> Int? { try row.decode(column: names[Int(column)], as: Int?.self) }
    func text(_ column: Int32) throws -> String { try row.decode(column: names[Int(column)], as: String.self) }
    func optionalText(_ column: Int32) throws -> String? { try row.decode(column: names[Int(column)], as: String?.self) }
    func data(_ column: Int32) throws -> Data { try row.decode(column: names[Int(column)], as: Data.self) }
}
