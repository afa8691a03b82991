import Foundation
import RapidFlowAPI

/// Per-job time of a trivial job, submitted one after another and waited for: what a CI
/// system adds on top of the step itself. Each sample is submit → final status, in ms.
enum JobLatencyBenchmark {
    /// RapidFlow: `POST /pipelines/:id/jobs` of a one-step pipeline (`true`), then the job's
    /// plain-text log stream with `follow=true`, which ends when the job reaches its final status.
    static func rapidFlow(_ api: JSONAPI, jobs: Int, warmup: Int) async throws -> [Double] {
        let pipeline: API.Pipeline = try await api.rapidFlow(.POST, "/pipelines", API.PipelineDefinition(name: "bench-true", config: "steps:\n  - \"true\"\n"))
        var samples: [Double] = []
        let clock = ContinuousClock()
        for index in 0..<(warmup + jobs) {
            let start = clock.now
            let job: API.Job = try await api.rapidFlow(.POST, "/pipelines/\(pipeline.id)/jobs")
            try await api.send(.GET, "/jobs/\(job.id)/logs/stream?follow=true")
            let elapsed = clock.now - start
            let status = try await api.rapidFlow(.GET, "/jobs/\(job.id)", as: API.Job.self).status
            guard status == .success else { throw BenchError("job \(job.id) ended \(status.rawValue)") }
            if index >= warmup { samples.append(milliseconds(elapsed)) }
        }
        return samples
    }

    /// The store's statement counters from `/metrics`: writer and readers.
    static func storeStatements(_ api: JSONAPI) async throws -> (writer: Int, reader: Int) {
        let text = String(decoding: try await api.send(.GET, "/metrics"), as: UTF8.self)
        func value(_ connection: String) -> Int {
            let prefix = "rapidflow_store_statements_total{connection=\"\(connection)\"} "
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return 0 }
            return Int(Double(line.dropFirst(prefix.count)) ?? 0)
        }
        return (value("writer"), value("reader"))
    }

    /// Buildbot: the force scheduler through the REST API's JSON-RPC (`POST
    /// /api/v2/forceschedulers/force`), then `GET /api/v2/buildrequests/:id` every
    /// `pollInterval` until the request is complete.
    static func buildbot(_ api: JSONAPI, builds: Int, warmup: Int, pollInterval: Duration) async throws -> [Double] {
        let builders: Buildbot.Builders = try await api.json(.GET, "/api/v2/builders?name=bench")
        guard let builderID = builders.builders.first?.builderid else {
            throw BenchError("Buildbot has no builder named bench")
        }
        let force = Buildbot.Force(params: .init(builderid: String(builderID)))
        var samples: [Double] = []
        let clock = ContinuousClock()
        for index in 0..<(warmup + builds) {
            let start = clock.now
            let answer: Buildbot.ForceAnswer = try await api.json(.POST, "/api/v2/forceschedulers/force", force)
            guard let requestID = answer.requestIDs.first else { throw BenchError("unexpected force answer: \(answer)") }
            var request: Buildbot.BuildRequest?
            while true {
                let page: Buildbot.BuildRequests = try await api.json(.GET, "/api/v2/buildrequests/\(requestID)")
                request = page.buildrequests.first
                if request?.complete == true { break }
                try await Task.sleep(for: pollInterval)
            }
            let elapsed = clock.now - start
            // Buildbot's results: 0 is SUCCESS.
            guard request?.results == 0 else {
                throw BenchError("build request \(requestID) ended with results \(request?.results.map(String.init) ?? "none")")
            }
            if index >= warmup { samples.append(milliseconds(elapsed)) }
        }
        return samples
    }
}

/// The parts of Buildbot's REST API the benchmark reads.
enum Buildbot {
    struct Builders: Decodable {
        var builders: [Builder]
        struct Builder: Decodable { var builderid: Int }
    }

    /// The force scheduler's JSON-RPC call.
    struct Force: Encodable {
        var jsonrpc = "2.0"
        var method = "force"
        var id = 1
        var params: Params
        struct Params: Encodable { var builderid: String }
    }

    /// `{"result": [buildset id, {builder id: build request id}]}`.
    struct ForceAnswer: Decodable, CustomStringConvertible {
        var requestIDs: [Int]

        enum CodingKeys: String, CodingKey { case result }

        init(from decoder: any Decoder) throws {
            var result = try decoder.container(keyedBy: CodingKeys.self).nestedUnkeyedContainer(forKey: .result)
            _ = try result.decode(Int.self)
            requestIDs = Array(try result.decode([String: Int].self).values)
        }

        var description: String { "build requests \(requestIDs)" }
    }

    struct BuildRequests: Decodable {
        var buildrequests: [BuildRequest]
    }

    struct BuildRequest: Decodable {
        var complete: Bool
        var results: Int?
    }
}
