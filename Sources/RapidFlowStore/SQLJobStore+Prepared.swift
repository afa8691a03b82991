import Foundation
import PostgresNIO
import RapidFlowCore

/// The statements every job runs, prepared on PostgreSQL: a connection parses and plans each
/// once and keeps it, so a job's steps cost one bind and execute each. Parameter types are
/// fixed here (integers as `int8`, cast by the server where a column is `integer`), since a
/// statement prepared with the types of its first binds would refuse later ones (a null
/// process group first, a number later).
///
/// SQLite runs the same changes as plain statements, kept prepared by its driver's cache.
enum Prepared {
    /// `AND` this for a write to a step under a lease (parameters `owner` and `epoch`; no lease:
    /// both null, and the write is made).
    static func fence(owner: Int, epoch: Int) -> String {
        " AND ($\(owner)::text IS NULL OR EXISTS (SELECT 1 FROM jobs j WHERE j.id = steps.job_id AND j.status = 'running'"
            + " AND j.owner = $\(owner) AND j.lease_epoch = $\(epoch))) RETURNING id"
    }

    /// A write under a lease that answers the ids it changed: its own parameters come first,
    /// the lease's owner and epoch last.
    protocol FencedWrite: PostgresPreparedStatement where Row == Int {
        var lease: JobLease? { get }
        /// The statement's parameters before the lease's, in order.
        func bind(into bindings: inout PostgresBindings) throws
    }

    struct StartStep: FencedWrite {
        static let name = "rapidflow_start_step"
        static let sql = "UPDATE steps SET status = 'running', started_at = $1, process_group = $2 WHERE id = $3"
            + fence(owner: 4, epoch: 5)
        static let bindingDataTypes: [PostgresDataType] = [.int8, .int8, .int8, .text, .int8]
        var id: Int
        var at: Int64
        var processGroup: Int?
        var lease: JobLease?

        func bind(into bindings: inout PostgresBindings) throws {
            bindings.append(at)
            bindings.append(processGroup)
            bindings.append(id)
        }
    }

    struct RecordProcessGroup: FencedWrite {
        static let name = "rapidflow_record_process_group"
        static let sql = "UPDATE steps SET process_group = $1 WHERE id = $2" + fence(owner: 3, epoch: 4)
        static let bindingDataTypes: [PostgresDataType] = [.int8, .int8, .text, .int8]
        var stepID: Int
        var processGroup: Int
        var lease: JobLease?

        func bind(into bindings: inout PostgresBindings) throws {
            bindings.append(processGroup)
            bindings.append(stepID)
        }
    }

    struct FinishStep: FencedWrite {
        static let name = "rapidflow_finish_step"
        static let sql = "UPDATE steps SET status = $1, exit_code = $2, finished_at = $3 WHERE id = $4" + fence(owner: 5, epoch: 6)
        static let bindingDataTypes: [PostgresDataType] = [.text, .int8, .int8, .int8, .text, .int8]
        var id: Int
        var status: String
        var exitCode: Int?
        var at: Int64
        var lease: JobLease?

        func bind(into bindings: inout PostgresBindings) throws {
            bindings.append(status)
            bindings.append(exitCode)
            bindings.append(at)
            bindings.append(id)
        }
    }

    /// The steps still pending are skipped and the job ends, in one statement; under a lease
    /// only while it holds.
    struct FinishRanJob: FencedWrite {
        static let name = "rapidflow_finish_ran_job"
        static let sql = """
            WITH ended AS (
                UPDATE jobs SET status = $2, cancelled = CASE WHEN $2 = 'cancelled' THEN 1 ELSE 0 END, finished_at = $3
                WHERE id = $1 AND status IN ('pending', 'running') AND ($4::text IS NULL OR (owner = $4 AND lease_epoch = $5))
                RETURNING id),
            skipped AS (UPDATE steps SET status = 'skipped' WHERE job_id IN (SELECT id FROM ended) AND status = 'pending')
            SELECT id FROM ended
            """
        static let bindingDataTypes: [PostgresDataType] = [.int8, .text, .int8, .text, .int8]
        var id: Int
        var status: String
        var at: Int64
        var lease: JobLease?

        func bind(into bindings: inout PostgresBindings) throws {
            bindings.append(id)
            bindings.append(status)
            bindings.append(at)
        }
    }

    struct AppendOutput: FencedWrite {
        static let name = "rapidflow_append_output"
        static let sql = """
            INSERT INTO step_output (step_id, byte_offset, data) SELECT $1, $2, $3
            WHERE $4::text IS NULL OR EXISTS (SELECT 1 FROM steps s JOIN jobs j ON j.id = s.job_id WHERE s.id = $1
                AND j.status = 'running' AND j.owner = $4 AND j.lease_epoch = $5)
            RETURNING step_id
            """
        static let bindingDataTypes: [PostgresDataType] = [.int8, .int8, .bytea, .text, .int8]
        var stepID: Int
        var offset: Int
        var data: Data
        var lease: JobLease?

        func bind(into bindings: inout PostgresBindings) throws {
            bindings.append(stepID)
            bindings.append(offset)
            try bindings.append(data)
        }
    }
}

extension Prepared.FencedWrite {
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: Self.bindingDataTypes.count)
        try bind(into: &bindings)
        bindings.append(lease?.owner)
        bindings.append(lease?.epoch)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Int { try row.decode(Int.self) }
}
