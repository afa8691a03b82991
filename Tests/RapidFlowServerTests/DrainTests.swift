import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// `--shutdown-timeout-seconds`: a SIGTERM lets the running jobs finish while no new one
/// starts and `/ready` answers 503; a second signal stops them at once.
@Suite("Draining on shutdown")
struct DrainTests {
    /// A step that runs until the test creates `gate`.
    static func waiting(for gate: String) -> String {
        "steps:\n  - while [ ! -e '\(gate)' ]; do sleep 0.05; done; echo drained\n"
    }

    @Test func aTermLetsRunningJobsFinishAndStartsNoNewOne() async throws {
        let directory = TestFiles.temporaryDirectory()
        let gate = "\(directory)/gate"
        let service = try await ServiceProcess.start(
            dataDirectory: directory, arguments: ["--shutdown-timeout-seconds", "300", "--log-level", "info"])
        let server = service.client
        let pipeline = try await server.createPipeline(config: Self.waiting(for: gate))
        let running = try await server.trigger(pipeline)
        try await server.waitForStatus(running, .running)
        #expect(try await server.get("/ready").status == 200)

        service.kill(signal: SIGTERM)
        try await eventually("/ready answers 503 while draining") { try await server.get("/ready").status == 503 }
        let ready = try await server.get("/ready")
        #expect(ready.errorCode == "not_ready" && ready.errorMessage.contains("draining"), "\(ready.text)")
        // Still serving: a job can be submitted, and it waits.
        let later = try await server.trigger(try await server.createPipeline(name: "later", config: "steps:\n  - echo later\n"))
        #expect(try await server.job(later).status == .pending)
        #expect(try await server.job(running).status == .running)

        // The job may finish now; the service stops as soon as it has.
        FileManager.default.createFile(atPath: gate, contents: nil)
        #expect(await service.waitForExit(timeout: 60), "the service stops once the running job has finished")
        #expect(service.process.terminationReason == .exit && service.process.terminationStatus == 0)
        let log = try String(contentsOfFile: service.logPath, encoding: .utf8)
        #expect(log.contains("draining"))
        let lines = log.split(separator: "\n")
        func logged(_ message: String, _ fields: String...) -> Bool {
            lines.contains { line in line.contains(message) && fields.allSatisfy { line.contains($0) } }
        }
        #expect(logged("job finished", "job=\(running) ", "status=success"), "\(log.suffix(3000))")
        #expect(!logged("job started", "job=\(later) "), "the job submitted while draining never started:\n\(log.suffix(3000))")

        // What the drained service stored: the job ran to its end, no recovery was needed.
        let restarted = try await ServiceProcess.start(dataDirectory: directory)
        defer { restarted.kill(signal: SIGKILL) }
        let logs = try await restarted.client.logs(running)
        #expect(logs.status == .success)
        #expect(logs.logs[0].output == "drained\n")
    }

    @Test func aSecondSignalStopsTheRunningJobsAtOnce() async throws {
        let directory = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(
            dataDirectory: directory, arguments: ["--shutdown-timeout-seconds", "300", "--kill-grace-seconds", "2"])
        let server = service.client
        let running = try await server.trigger(try await server.createPipeline(config: Self.waiting(for: "\(directory)/never")))
        try await server.waitForStatus(running, .running)

        service.kill(signal: SIGTERM)
        try await eventually("/ready answers 503 while draining") { try await server.get("/ready").status == 503 }
        service.kill(signal: SIGINT)
        #expect(await service.waitForExit(timeout: 60), "the second signal stops the service")

        // The job was settled by that shutdown, not left for a restart's recovery.
        let restarted = try await ServiceProcess.start(dataDirectory: directory)
        defer { restarted.kill(signal: SIGKILL) }
        let logs = try await restarted.client.logs(running)
        #expect(logs.status == .failed)
        #expect(logs.logs[0].output.contains("the service was shut down while this step ran"), "\(logs.logs[0].output)")
    }
}
