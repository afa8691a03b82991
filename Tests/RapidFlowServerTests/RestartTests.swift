import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// The real `rapidflow serve` binary, killed with SIGKILL and started again on the same data.
@Suite("Restart safety")
struct RestartTests {
    @Test func aJobRunningWhenTheServiceDiesIsSettledFailedAndPendingJobsRunAfterRestart() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        let token = "rf-restart-\(UUID().uuidString.prefix(8))"
        var service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--max-concurrent-jobs", "1"])
        let long = try await service.client.createPipeline(config: "steps:\n  - echo before crash; exec -a \(token) sleep 300\n")
        let quick = try await service.client.createPipeline(config: "steps:\n  - echo after restart\n")
        let running = try await service.client.trigger(long)
        let pending = try await service.client.trigger(quick)
        try await service.client.waitForOutput(running, containing: "before crash")
        #expect(try await service.client.job(pending).status == .pending)

        try await service.killNow()
        #expect(TestFiles.processExists(matching: token), "the step outlives the service it was started by")

        service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--max-concurrent-jobs", "1"])
        defer { service.kill(signal: SIGTERM) }
        let settled = try await service.client.job(running)
        #expect(settled.status == .failed)
        let output = try await service.client.logs(running).build
        #expect(output.hasPrefix("before crash\n"), "output printed before the crash is kept")
        #expect(output.contains("service stopped while this step was running"), "the reason is in the output: \(output)")
        #expect(!TestFiles.processExists(matching: token), "the orphaned step process was killed")

        #expect(try await service.client.waitForJob(pending).status == .success)
        #expect(try await service.client.logs(pending).build == "after restart\n")
        #expect(try await service.client.get("/jobs?status=running").decoded([API.Job].self).isEmpty)
    }

    @Test func gracefulShutdownSettlesRunningJobsAndEndsLiveStreams() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        var service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--kill-grace-seconds", "1"])
        let pipeline = try await service.client.createPipeline(config: "steps:\n  - echo working; sleep 300\n")
        let jobID = try await service.client.trigger(pipeline)
        try await service.client.waitForOutput(jobID, containing: "working")
        // The follower is connected once its answer's head has arrived (the stream has begun):
        // only then is the service stopped.
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: service.client.baseURL + "/jobs/\(jobID)/logs/stream?follow=true"), timeout: .seconds(60))
        #expect(response.status == .ok)
        service.kill(signal: SIGTERM)
        let body = try await response.body.collect(upTo: 1 << 20)
        let text = String(buffer: body)
        #expect(text.hasPrefix("=== Step 1 (bash) ===\nworking\n"))
        #expect(text.hasSuffix("===\n"), "the stream ends with a closing line: \(text)")
        #expect(text.contains("shutting down") || text.contains("=== Build failed ==="))
        #expect(await service.waitForExit(timeout: 15), "the service stops within the grace period")

        service = try await ServiceProcess.start(dataDirectory: dataDirectory)
        defer { service.kill(signal: SIGTERM) }
        let job = try await service.client.job(jobID)
        #expect(job.status == .failed)
        let output = try await service.client.logs(jobID).build
        #expect(output.hasPrefix("working\n"))
        #expect(output.contains("shut down"))
    }
}
