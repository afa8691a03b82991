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
            #expect(Self.value(text, #"rapidflow_jobs_finished_total{kind="pipeline",status="failed"}"#) == 1)
            // The failed job ran and ended; both jobs waited for a slot (claimed), the running
            // one has not ended.
            #expect(Self.value(text, #"rapidflow_job_duration_seconds_count{kind="pipeline",status="failed"}"#) == 1)
            #expect(Self.value(text, #"rapidflow_job_queue_wait_seconds_count{kind="pipeline"}"#) == 2)
            _ = try await server.post("/jobs/\(pending)/cancel")
            let after = try await server.get("/metrics").text
            #expect(Self.value(after, #"rapidflow_jobs_finished_total{kind="pipeline",status="cancelled"}"#) == 1)
            #expect(Self.value(after, #"rapidflow_job_duration_seconds_count{kind="pipeline",status="cancelled"}"#) == 1)
        }
    }

    @Test func requestLatencyFollowersBuildAndProcessFiguresAndHead() async throws {
        try await TestServer.with(configure: { $0.version = "9.8.7"; $0.commit = "abc123def456" }) { server in
            let job = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo started; sleep 30\n"))
            try await server.waitForOutput(job, containing: "started")
            // A live follower of each kind, counted while they follow.
            async let text = server.get("/jobs/\(job)/logs/stream?follow=true")
            async let socket = RawWebSocket.follow(port: server.port, path: "/jobs/\(job)/logs/stream")
            try await eventually("two followers are counted") {
                Self.value(try await server.get("/metrics").text, "rapidflow_log_followers") == 2
            }
            let reply = try await server.get("/metrics")
            let metrics = reply.text
            #expect(Self.value(metrics, #"rapidflow_build_info{version="9.8.7",commit="abc123def456"}"#) == 1)
            #expect(Self.value(metrics, #"rapidflow_http_request_duration_seconds_count{route="/pipelines",method="POST"}"#) == 1)
            #expect(metrics.contains(#"rapidflow_http_request_duration_seconds_bucket{route="/jobs/{id}/logs",method="GET",le="+Inf"}"#))
            #expect(Self.value(metrics, "process_resident_memory_bytes").map { $0 > 1_000_000 } == true, "resident memory in bytes")
            #expect(Self.value(metrics, "process_open_fds").map { $0 > 3 } == true)
            #expect(Self.value(metrics, "process_cpu_seconds_total").map { $0 > 0 } == true)

            let head = try await server.request(.HEAD, "/metrics")
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(head.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)

            #expect(try await server.post("/jobs/\(job)/cancel").status == 200)
            _ = try await (text, socket)
            try await eventually("the followers are gone") {
                Self.value(try await server.get("/metrics").text, "rapidflow_log_followers") == 0
            }
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
