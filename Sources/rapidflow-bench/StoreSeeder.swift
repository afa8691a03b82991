import Foundation
import Logging
import RapidFlowCore
import RapidFlowStore
import SQLKit
import SQLiteKit

/// Fills a data directory's store with finished jobs before the service starts on it.
///
/// The first jobs go through the store library, so their rows are what the service itself
/// writes; the rest are copies of those rows made in SQL (all columns, ids shifted), because
/// a hundred thousand jobs one call at a time would take minutes of the benchmark's budget.
enum StoreSeeder {
    static let config = """
        env:
          GREETING: hello
        steps:
          - echo "$GREETING from the build"
          - type: bash
            content: echo testing
            phase: test

        """

    /// Jobs written through the store; the rest are copied from them.
    static let templateJobs = 1000

    static func seed(dataDirectory: String, jobs: Int) async throws {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let path = "\(dataDirectory)/rapidflow.sqlite"
        let logger = Logger(label: "seed")
        let store = try await SQLJobStore.openSQLite(path: path, logger: logger)
        do {
            try await writeTemplate(store, jobs: min(jobs, templateJobs))
        } catch {
            await store.close()
            throw error
        }
        await store.close()

        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        do {
            let database = connection.sql()
            var count = min(jobs, templateJobs)
            while count < jobs {
                let copied = min(count, jobs - count)
                try await copyJobs(copied, in: database)
                count += copied
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// Jobs of one two-step pipeline, each claimed, both steps run with one line of output,
    /// and finished: nine in ten `success`, the rest `failed`.
    private static func writeTemplate(_ store: SQLJobStore, jobs: Int) async throws {
        try await store.migrate()
        let pipeline = try await store.createPipeline(name: "seeded", config: config)
        let parsed = try PipelineConfig(yaml: config)
        let plan = parsed.plan(configText: config, branchOverride: nil)
        let output = Data("hello from the build\n".utf8)
        for index in 0..<jobs {
            let job = try await store.createJob(
                NewJob(
                    kind: .pipeline, pipelineID: pipeline.id, pipelineName: pipeline.name, snapshot: plan.snapshot,
                    steps: plan.steps, environment: parsed.env))
            let now = Date()
            guard try await store.claimJob(id: job.id, at: now) else { throw BenchError("job \(job.id) was not pending") }
            let failed = index % 10 == 9
            for step in try await store.steps(jobID: job.id) {
                try await store.startStep(id: step.id, at: now, processGroup: nil)
                try await store.appendOutput(stepID: step.id, offset: 0, data: output)
                let stepFailed = failed && step.orderNum == plan.steps.count
                try await store.finishStep(id: step.id, status: stepFailed ? .failed : .success, exitCode: stepFailed ? 1 : 0, at: now)
            }
            _ = try await store.finishJob(id: job.id, status: failed ? .failed : .success, cancelled: false, at: now)
        }
    }

    /// Copies jobs 1...`count` with their steps, output and environment as new jobs, ids
    /// shifted past the largest of each table (so the jobs stay numbered 1...n).
    private static func copyJobs(_ count: Int, in database: any SQLDatabase) async throws {
        func largestID(_ table: String) async throws -> Int {
            try await database.raw("SELECT COALESCE(MAX(id), 0) AS largest FROM \(unsafeRaw: table)").first()?
                .decode(column: "largest", as: Int.self) ?? 0
        }
        let jobShift = try await largestID("jobs")
        let stepShift = try await largestID("steps")
        let environmentShift = try await largestID("job_environment")
        try await database.raw("BEGIN").run()
        do {
            try await copy("jobs", in: database, shifting: ["id": jobShift], where: "id <= \(count)")
            try await copy("steps", in: database, shifting: ["id": stepShift, "job_id": jobShift], where: "job_id <= \(count)")
            try await copy(
                "step_output", in: database, shifting: ["step_id": stepShift],
                where: "step_id IN (SELECT id FROM steps WHERE job_id <= \(count))")
            try await copy(
                "job_environment", in: database, shifting: ["id": environmentShift, "job_id": jobShift], where: "job_id <= \(count)")
            try await database.raw("COMMIT").run()
        } catch {
            try? await database.raw("ROLLBACK").run()
            throw error
        }
    }

    /// `INSERT INTO table SELECT … FROM table WHERE condition` over every column the schema
    /// has, adding `shifting[column]` to the id columns.
    private static func copy(_ table: String, in database: any SQLDatabase, shifting: [String: Int], where condition: String) async throws {
        let columns = try await database.raw("SELECT name FROM pragma_table_info(\(bind: table))").all()
            .map { try $0.decode(column: "name", as: String.self) }
        guard !columns.isEmpty else { throw BenchError("the store has no table \(table)") }
        let values = columns.map { column in shifting[column].map { "\(column) + \($0)" } ?? column }
        try await database.raw(
            """
            INSERT INTO \(unsafeRaw: table) (\(unsafeRaw: columns.joined(separator: ", ")))
            SELECT \(unsafeRaw: values.joined(separator: ", ")) FROM \(unsafeRaw: table) WHERE \(unsafeRaw: condition)
            """
        ).run()
    }
}
