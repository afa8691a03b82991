import AsyncHTTPClient
import Foundation
import NIOHTTP1
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
        #expect(try await service.client.job(pending)["status"] as? String == "pending")

        service.kill(signal: SIGKILL)
        #expect(TestFiles.processExists(matching: token), "the step outlives the service it was started by")

        service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--max-concurrent-jobs", "1"])
        defer { service.kill(signal: SIGTERM) }
        let settled = try await service.client.job(running)
        #expect(settled["status"] as? String == "failed")
        let logs = try await service.client.get("/jobs/\(running)/logs").object
        let output = logs["build"] as? String ?? ""
        #expect(output.hasPrefix("before crash\n"), "output printed before the crash is kept")
        #expect(output.contains("service stopped while this step was running"), "the reason is in the output: \(output)")
        #expect(!TestFiles.processExists(matching: token), "the orphaned step process was killed")

        #expect(try await service.client.waitForJob(pending)["status"] as? String == "success")
        #expect(try await service.client.get("/jobs/\(pending)/logs").object["build"] as? String == "after restart\n")
        #expect(try await service.client.get("/jobs?status=running").array.isEmpty)
    }

    @Test func gracefulShutdownSettlesRunningJobsAndEndsLiveStreams() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        var service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--kill-grace-seconds", "1"])
        let pipeline = try await service.client.createPipeline(config: "steps:\n  - echo working; sleep 300\n")
        let jobID = try await service.client.trigger(pipeline)
        try await service.client.waitForOutput(jobID, containing: "working")
        let client = service.client
        async let followed = client.get("/jobs/\(jobID)/logs/stream?follow=true")
        try await Task.sleep(for: .milliseconds(300))
        service.kill(signal: SIGTERM)
        let stream = try await followed
        #expect(stream.text.hasPrefix("=== Step 1 (bash) ===\nworking\n"))
        #expect(stream.text.hasSuffix("===\n"), "the stream ends with a closing line: \(stream.text)")
        #expect(stream.text.contains("shutting down") || stream.text.contains("=== Build failed ==="))
        #expect(await service.waitForExit(timeout: 15), "the service stops within the grace period")

        service = try await ServiceProcess.start(dataDirectory: dataDirectory)
        defer { service.kill(signal: SIGTERM) }
        let job = try await service.client.job(jobID)
        #expect(job["status"] as? String == "failed")
        let output = try await service.client.get("/jobs/\(jobID)/logs").object["build"] as? String ?? ""
        #expect(output.hasPrefix("working\n"))
        #expect(output.contains("shut down"))
    }
}

/// `rapidflow serve` as a child process of the test, on a free port.
struct ServiceProcess {
    let process: Process
    let client: TestServer

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["RAPIDFLOW_BINARY"] { return path }
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rapidflow").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.appendingPathComponent(".build/debug/rapidflow").path
    }

    /// The service's log goes to `logDirectory` (default: the data directory; a test that fills
    /// the data disk keeps it elsewhere, or the "listening" line could not be written).
    static func start(
        dataDirectory: String, arguments: [String] = [], environment: [String: String] = [:], allowLocalRepos: Bool = true,
        logDirectory: String? = nil
    ) async throws -> ServiceProcess {
        let logPath = "\(logDirectory ?? dataDirectory)/service-\(UUID().uuidString.prefix(6)).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        // Tests clone repositories they create on this machine.
        process.arguments = ["serve", "--port", "0", "--data-dir", dataDirectory, "--log-level", "warning"]
            + (allowLocalRepos ? ["--allow-local-repos"] : []) + arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if let range = text.range(of: "listening on http://127.0.0.1:") {
                let port = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
                return ServiceProcess(process: process, client: TestServer(port: port, dataDirectory: dataDirectory, service: nil))
            }
            if !process.isRunning { throw TestFailure("rapidflow exited early: \(text)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.terminate()
        throw TestFailure("rapidflow did not start listening")
    }

    func kill(signal: Int32) {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, signal)
        if signal == SIGKILL { process.waitUntilExit() }
    }

    func waitForExit(timeout: TimeInterval) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return !process.isRunning
    }
}
