import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// What an operator reads in the service's own log: a line when it starts, for each job
/// started and finished (with its status and duration), for each cancel, and at shutdown;
/// and at no level a job's secret values.
@Suite("The service's log")
struct ServiceLogTests {
    @Test func aJobsLifeIsLoggedAndNoLevelPrintsItsSecrets() async throws {
        let directory = TestFiles.temporaryDirectory()
        // The most verbose level there is: the secrets must not appear even here.
        let service = try await ServiceProcess.start(
            dataDirectory: directory, arguments: ["--log-level", "trace", "--kill-grace-seconds", "2"])
        let server = service.client
        let secret = "tok-\(UUID().uuidString.prefix(8))-very-secret"
        let config = "env:\n  DEPLOY_TOKEN: \"\(secret)\"\nsteps:\n  - echo using the token\n"
        let passing = try await server.trigger(try await server.createPipeline(name: "passing", config: config))
        #expect(try await server.waitForJob(passing).status == .success)

        let long = try await server.createPipeline(name: "long", config: "steps:\n  - sleep 300\n")
        let cancelled = try await server.trigger(long)
        try await server.waitForStatus(cancelled, .running)
        #expect(try await server.post("/jobs/\(cancelled)/cancel").status == 200)

        let interrupted = try await server.trigger(long)
        try await server.waitForStatus(interrupted, .running)
        service.kill(signal: SIGTERM)
        #expect(await service.waitForExit(timeout: 60), "the service stopped on SIGTERM")

        let log = try String(contentsOfFile: service.logPath, encoding: .utf8)
        let lines = log.split(separator: "\n").map(String.init)
        func line(_ message: String, _ fields: String...) -> String? {
            lines.first { line in line.contains(message) && fields.allSatisfy { line.contains($0) } }
        }
        #expect(line("rapidflow listening on http://127.0.0.1:", "store sqlite", "executor") != nil, "\(log.prefix(2000))")
        #expect(line("job started", "job=\(passing)", "pipeline=passing", "kind=pipeline") != nil)
        #expect(line("job finished", "job=\(passing)", "status=success", "duration_ms=") != nil)
        #expect(line("job cancel requested", "job=\(cancelled)") != nil)
        #expect(line("job finished", "job=\(cancelled)", "status=cancelled") != nil)
        #expect(line("shutting down", "running=1") != nil)
        #expect(line("job finished", "job=\(interrupted)", "status=failed") != nil)
        #expect(!log.contains(secret), "the secret value is in the service's log")
        #expect(!log.contains(Data(secret.utf8).base64EncodedString()))
    }
}
