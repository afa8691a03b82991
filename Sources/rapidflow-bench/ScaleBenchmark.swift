import Foundation
import RapidFlowAPI
import RapidFlowCore

/// Many jobs submitted at once: the time until every one has finished, against the ideal of
/// perfect packing, and the latency of each submit beside `GET /health` under the same load.
enum ScaleBenchmark {
    struct Result {
        /// ms per `GET /health`, the same number of calls from the same number of clients.
        var healthLatencies: [Double]
        /// ms per `POST /pipelines/:id/jobs`.
        var submitLatencies: [Double]
        /// First submit → the last job's `finished_at`, in seconds.
        var makespan: Double
    }

    static func run(_ api: JSONAPI, jobs: Int, clients: Int, sleepSeconds: Int) async throws -> Result {
        let healthLatencies = try await concurrently(clients: clients, calls: jobs) { try await api.send(.GET, "/health") }
        let pipeline: API.Pipeline = try await api.rapidFlow(
            .POST, "/pipelines", API.PipelineDefinition(name: "bench-sleep", config: "steps:\n  - sleep \(sleepSeconds)\n"))
        let pipelineID = pipeline.id

        let start = Date()
        let submitLatencies = try await concurrently(clients: clients, calls: jobs) {
            try await api.send(.POST, "/pipelines/\(pipelineID)/jobs")
        }
        // Bounded: the whole benchmark must end within its time budget.
        let deadline = start.addingTimeInterval(300)
        func unfinished(_ status: String) async throws -> Bool {
            try await !api.rapidFlow(.GET, "/jobs?pipeline_id=\(pipelineID)&status=\(status)&limit=1", as: [API.Job].self).isEmpty
        }
        // Pending first: a job that starts between the two looks is then seen running.
        while true {
            let pending = try await unfinished("pending")
            if !pending, try await !unfinished("running") { break }
            guard Date() < deadline else { throw BenchError("jobs still unfinished after \(Int(deadline.timeIntervalSince(start))) s") }
            try await Task.sleep(for: .milliseconds(250))
        }

        var finishedAt: [Date] = []
        var before = ""
        while true {
            let page: [API.Job] = try await api.rapidFlow(.GET, "/jobs?pipeline_id=\(pipelineID)&limit=500\(before)")
            for job in page {
                guard job.status == .success else { throw BenchError("job \(job.id) ended \(job.status.rawValue)") }
                guard let date = job.finishedAt.flatMap(Timestamp.parse) else { throw BenchError("job without finished_at") }
                finishedAt.append(date)
            }
            guard let last = page.last?.id, page.count == 500 else { break }
            before = "&before=\(last)"
        }
        guard finishedAt.count == jobs else { throw BenchError("\(finishedAt.count) of \(jobs) jobs found") }
        return Result(
            healthLatencies: healthLatencies, submitLatencies: submitLatencies,
            makespan: finishedAt.max()!.timeIntervalSince(start))
    }

    /// `calls` calls of `body` from `clients` tasks started together, each making its share one
    /// after another; the latency of every call in ms.
    static func concurrently(clients: Int, calls: Int, _ body: @escaping @Sendable () async throws -> Void) async throws -> [Double] {
        try await withThrowingTaskGroup(of: [Double].self) { group in
            for client in 0..<clients {
                let share = calls / clients + (client < calls % clients ? 1 : 0)
                group.addTask {
                    let clock = ContinuousClock()
                    var latencies: [Double] = []
                    for _ in 0..<share {
                        let start = clock.now
                        try await body()
                        latencies.append(milliseconds(clock.now - start))
                    }
                    return latencies
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }
}
