import Foundation

/// Per-job time of a trivial job, submitted one after another and waited for: what a CI
/// system adds on top of the step itself. Each sample is submit → final status, in ms.
enum JobLatencyBenchmark {
    /// RapidFlow: `POST /pipelines/:id/jobs` of a one-step pipeline (`true`), then the job's
    /// plain-text log stream with `follow=true`, which ends when the job reaches its final status.
    static func rapidFlow(_ api: JSONAPI, jobs: Int, warmup: Int) async throws -> [Double] {
        let pipeline = try await api.rapidFlow(.POST, "/pipelines", ["name": "bench-true", "config": "steps:\n  - \"true\"\n"])
        guard let pipelineID = pipeline["id"] as? Int else { throw BenchError("no pipeline id") }
        var samples: [Double] = []
        let clock = ContinuousClock()
        for index in 0..<(warmup + jobs) {
            let start = clock.now
            let job = try await api.rapidFlow(.POST, "/pipelines/\(pipelineID)/jobs")
            guard let jobID = job["id"] as? Int else { throw BenchError("no job id") }
            try await api.send(.GET, "/jobs/\(jobID)/logs/stream?follow=true")
            let elapsed = clock.now - start
            let status = try await api.rapidFlow(.GET, "/jobs/\(jobID)")["status"] as? String
            guard status == "success" else { throw BenchError("job \(jobID) ended \(status ?? "without a status")") }
            if index >= warmup { samples.append(milliseconds(elapsed)) }
        }
        return samples
    }

    /// Buildbot: the force scheduler through the REST API's JSON-RPC (`POST
    /// /api/v2/forceschedulers/force`), then `GET /api/v2/buildrequests/:id` every
    /// `pollInterval` until the request is complete.
    static func buildbot(_ api: JSONAPI, builds: Int, warmup: Int, pollInterval: Duration) async throws -> [Double] {
        let builders = try await api.json(.GET, "/api/v2/builders?name=bench") as? [String: Any]
        guard let builder = (builders?["builders"] as? [[String: Any]])?.first, let builderID = builder["builderid"] as? Int else {
            throw BenchError("Buildbot has no builder named bench")
        }
        let force: [String: Any] = ["jsonrpc": "2.0", "method": "force", "id": 1, "params": ["builderid": String(builderID)]]
        var samples: [Double] = []
        let clock = ContinuousClock()
        for index in 0..<(warmup + builds) {
            let start = clock.now
            // The answer is [buildset id, {builder id: build request id}].
            let answer = try await api.json(.POST, "/api/v2/forceschedulers/force", force) as? [String: Any]
            guard let result = answer?["result"] as? [Any], result.count == 2, let requests = result[1] as? [String: Any],
                let requestID = requests.values.first as? Int
            else { throw BenchError("unexpected force answer: \(String(describing: answer))") }
            var request: [String: Any] = [:]
            while true {
                let page = try await api.json(.GET, "/api/v2/buildrequests/\(requestID)") as? [String: Any]
                request = (page?["buildrequests"] as? [[String: Any]])?.first ?? [:]
                if request["complete"] as? Bool == true { break }
                try await Task.sleep(for: pollInterval)
            }
            let elapsed = clock.now - start
            // Buildbot's results: 0 is SUCCESS.
            guard request["results"] as? Int == 0 else { throw BenchError("build request \(requestID) ended with results \(request["results"] ?? "none")") }
            if index >= warmup { samples.append(milliseconds(elapsed)) }
        }
        return samples
    }
}
