import Foundation
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// `GET /metrics`: Prometheus text with job, step, phase, log and HTTP figures.
@Suite("Metrics")
struct MetricsTests {
    /// The value of the sample named exactly `series` (name and labels), if present.
    static func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test func jobsStepsPhasesLogBytesAndRequestsAreCounted() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(
                config: "steps:\n  - printf 'twelve bytes'\n  - phase: test\n    type: bash\n    content: exit 4\n")
            let job = try await server.trigger(pipeline)
            try await server.waitForJob(job)
            let pending = try await server.trigger(try await server.createPipeline(config: "steps:\n  - sleep 30\n"))
            try await server.waitForStatus(pending, .running)
            _ = try await server.get("/jobs/424242")

            let reply = try await server.get("/metrics")
            #expect(reply.status == 200)
            #expect(reply.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = reply.text
            #expect(Self.value(text, #"rapidflow_jobs{status="failed"}"#) == 1)
            #expect(Self.value(text, #"rapidflow_jobs{status="running"}"#) == 1)
            #expect(Self.value(text, "rapidflow_running_jobs") == 1)
            #expect(Self.value(text, "rapidflow_queue_depth") == 0)
            #expect(Self.value(text, "rapidflow_log_bytes_total").map { $0 >= 12 } == true)
            #expect(Self.value(text, #"rapidflow_step_duration_seconds_count{type="bash",status="success"}"#) == 1)
            #expect(Self.value(text, #"rapidflow_step_duration_seconds_count{type="bash",status="failed"}"#) == 1)
            #expect(Self.value(text, #"rapidflow_phase_duration_seconds_count{phase="build"}"#) == 1)
            #expect(Self.value(text, #"rapidflow_phase_duration_seconds_count{phase="test"}"#) == 1)
            #expect(Self.value(text, #"rapidflow_http_requests_total{route="/jobs/{id}",method="GET",code="404"}"#) == 1)
            #expect(Self.value(text, #"rapidflow_http_requests_total{route="/pipelines",method="POST",code="200"}"#) == 2)
            #expect(text.contains(#"rapidflow_step_duration_seconds_bucket{type="bash",status="success",le="+Inf"} 1"#))
            #expect(Self.value(text, #"rapidflow_jobs_finished_total{status="failed"}"#) == 1)
            // The failed job ran and ended; both jobs waited for a slot (claimed), the running
            // one has not ended.
            #expect(Self.value(text, #"rapidflow_job_duration_seconds_count{kind="pipeline",status="failed"}"#) == 1)
            #expect(Self.value(text, #"rapidflow_job_queue_wait_seconds_count{kind="pipeline"}"#) == 2)
            _ = try await server.post("/jobs/\(pending)/cancel")
            let after = try await server.get("/metrics").text
            #expect(Self.value(after, #"rapidflow_jobs_finished_total{status="cancelled"}"#) == 1)
            #expect(Self.value(after, #"rapidflow_job_duration_seconds_count{kind="pipeline",status="cancelled"}"#) == 1)
        }
    }

    @Test func metricsNeedTheTokenWhenOneIsSet() async throws {
        try await TestServer.with(configure: { $0.apiToken = "metrics-token-1" }) { server in
            #expect(try await server.get("/metrics").status == 401)
            let allowed = try await server.request(.GET, "/metrics", headers: [("Authorization", "Bearer metrics-token-1")])
            #expect(allowed.status == 200)
            #expect(allowed.text.contains("rapidflow_queue_depth"))
        }
    }
}
