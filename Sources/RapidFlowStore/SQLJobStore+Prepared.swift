import Foundation
import PostgresNIO

/// The statements every job runs, prepared on PostgreSQL: a connection parses and plans each
/// once and keeps it, so a job's steps cost one bind and execute each. Parameter types are
/// fixed here (integers as `int8`, cast by the server where a column is `integer`), since a
/// statement prepared with the types of its first binds would refuse later ones (a null
/// process group first, a number later).
///
/// SQLite runs the same changes as plain statements, kept prepared by its driver's cache.
enum Prepared {
    struct StartStep: PostgresPreparedStatement {
        static let name = "rapidflow_start_step"
        static let sql = "UPDATE steps SET status = 'running', started_at = $1, process_group = $2 WHERE id = $3"
        static let bindingDataTypes: [PostgresDataType] = [.int8, .int8, .int8]
        typealias Row = ()
        var id: Int
        var at: Int64
        var processGroup: Int?

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 3)
            bindings.append(at)
            bindings.append(processGroup)
            bindings.append(id)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws {}
    }

    struct RecordProcessGroup: PostgresPreparedStatement {
        static let name = "rapidflow_record_process_group"
        static let sql = "UPDATE steps SET process_group = $1 WHERE id = $2"
        static let bindingDataTypes: [PostgresDataType] = [.int8, .int8]
        typealias Row = ()
        var stepID: Int
        var processGroup: Int

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 2)
            bindings.append(processGroup)
            bindings.append(stepID)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws {}
    }

    struct FinishStep: PostgresPreparedStatement {
        static let name = "rapidflow_finish_step"
        static let sql = "UPDATE steps SET status = $1, exit_code = $2, finished_at = $3 WHERE id = $4"
        static let bindingDataTypes: [PostgresDataType] = [.text, .int8, .int8, .int8]
        typealias Row = ()
        var id: Int
        var status: String
        var exitCode: Int?
        var at: Int64

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 4)
            bindings.append(status)
            bindings.append(exitCode)
            bindings.append(at)
            bindings.append(id)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws {}
    }

    /// The steps still pending are skipped and the job ends, in one statement.
    struct FinishRanJob: PostgresPreparedStatement {
        static let name = "rapidflow_finish_ran_job"
        static let sql = """
            WITH skipped AS (UPDATE steps SET status = 'skipped' WHERE job_id = $1 AND status = 'pending')
            UPDATE jobs SET status = $2, cancelled = CASE WHEN $2 = 'cancelled' THEN 1 ELSE 0 END, finished_at = $3
            WHERE id = $1 AND status IN ('pending', 'running')
            RETURNING id
            """
        static let bindingDataTypes: [PostgresDataType] = [.int8, .text, .int8]
        typealias Row = Int
        var id: Int
        var status: String
        var at: Int64

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 3)
            bindings.append(id)
            bindings.append(status)
            bindings.append(at)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
    }

    struct AppendOutput: PostgresPreparedStatement {
        static let name = "rapidflow_append_output"
        static let sql = "INSERT INTO step_output (step_id, byte_offset, data) VALUES ($1, $2, $3)"
        static let bindingDataTypes: [PostgresDataType] = [.int8, .int8, .bytea]
        typealias Row = ()
        var stepID: Int
        var offset: Int
        var data: Data

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 3)
            bindings.append(stepID)
            bindings.append(offset)
            try bindings.append(data)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws {}
    }
}
