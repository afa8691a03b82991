import Foundation
import Logging
import RapidFlowCore
import RapidFlowStore

/// Fills a data directory's store with finished jobs before the service starts on it, through
/// the store library so the rows are what the service itself would have written.
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

    /// `jobs` jobs of one two-step pipeline, each claimed, both steps run with one line of
    /// output, and finished: nine in ten `success`, the rest `failed`.
    static func seed(dataDirectory: String, jobs: Int) async throws {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let store = try await SQLJobStore.openSQLite(path: "\(dataDirectory)/rapidflow.sqlite", logger: Logger(label: "seed"))
        do {
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
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }
}
