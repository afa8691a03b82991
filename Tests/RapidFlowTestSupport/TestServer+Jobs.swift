import Foundation
import RapidFlowAPI
import RapidFlowCore
import Testing

extension TestServer {
    /// Stores a pipeline; its id.
    /// Stores a pipeline (named `test-<n>` unless named: names are unique per owner); its id.
    public func createPipeline(name: String? = nil, config: String) async throws -> Int {
        let name = name ?? "test-\(UUID().uuidString.prefix(8).lowercased())"
        let reply = try await request(.POST, "/pipelines", encoding: API.PipelineDefinition(name: name, config: config))
        try #require(reply.status == 200, "create pipeline: \(reply.text)")
        return try reply.decoded(API.Pipeline.self).id
    }

    /// Starts a job of the pipeline, with the trigger's branch and env if given; its id.
    public func trigger(_ pipelineID: Int, _ trigger: API.TriggerRequest? = nil) async throws -> Int {
        let path = "/pipelines/\(pipelineID)/jobs"
        let reply = if let trigger { try await request(.POST, path, encoding: trigger) } else { try await post(path) }
        try #require(reply.status == 200, "trigger: \(reply.text)")
        return try reply.decoded(API.Job.self).id
    }

    public func job(_ id: Int) async throws -> API.Job { try await get("/jobs/\(id)").decoded(API.Job.self) }

    public func logs(_ id: Int) async throws -> API.JobLogs { try await get("/jobs/\(id)/logs").decoded(API.JobLogs.self) }

    /// Polls the job until it has a final status (bounded by `timeout`).
    @discardableResult
    public func waitForJob(_ id: Int, timeout: Duration = .seconds(60)) async throws -> API.Job {
        var last: API.Job?
        try await eventually(timeout: timeout, "job \(id) finishes") {
            last = try await job(id)
            return last?.status.isFinal == true
        }
        guard let last else { throw TestFailure("job \(id) was never read") }
        return last
    }

    /// Polls until the job reaches `status`.
    public func waitForStatus(_ id: Int, _ status: JobStatus, timeout: Duration = .seconds(30)) async throws {
        try await eventually(timeout: timeout, "job \(id) reaches \(status)") { try await job(id).status == status }
    }

    /// Polls until the job's build or test output contains `text`.
    public func waitForOutput(_ id: Int, containing text: String, timeout: Duration = .seconds(60)) async throws {
        try await eventually(timeout: timeout, "job \(id) prints '\(text)'") {
            let output = try await logs(id)
            return output.build.contains(text) || output.test.contains(text)
        }
    }

    /// How many pipelines and jobs are stored (up to 500 of each).
    public func counts() async throws -> (pipelines: Int, jobs: Int) {
        (try await get("/pipelines?limit=500").decoded([API.Pipeline].self).count, try await get("/jobs?limit=500").decoded([API.Job].self).count)
    }
}
