import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// `rapidflow runner`: the same job run in-process and through a runner process ends the same.
@Suite("Runner")
struct RunnerTests {
    static let config = """
        env:
          GREETING: "hello"
          DEPLOY_TOKEN: "runner-secret-9731"
        steps:
          - echo "$GREETING ci=$CI"; echo to-stderr >&2; echo "token $DEPLOY_TOKEN"; mkdir -p out; echo kept > out/file
          - cat out/file; test "$RAPIDFLOW_WORKSPACE" = "$PWD" && echo in-the-workspace; printf 'no newline'
          - type: bash
            content: echo failing; exit 3
            phase: test
          - echo never runs
        """

    /// A service whose pipeline steps run in `rapidflow runner` child processes.
    static func withRunnerService<T>(_ body: (TestServer) async throws -> T) async throws -> T {
        try await TestServer.with(configure: {
            $0.executor = .runner
            $0.runnerBinary = ServiceProcess.binary
        }, body)
    }

    /// Each step's status, exit code and output, and the job's status.
    static func outcome(of server: TestServer) async throws -> (JobStatus, [String]) {
        let jobID = try await server.trigger(try await server.createPipeline(config: config))
        let job = try await server.waitForJob(jobID)
        let steps = try await server.logs(jobID).logs.map { step in
            "\(step.status.rawValue) \(step.exitCode.map(String.init) ?? "-") \(step.output)"
        }
        return (job.status, steps)
    }

    @Test func aJobEndsTheSameInProcessAndThroughRapidflowRunner() async throws {
        let inProcess = try await TestServer.with(configure: { $0.executor = .shell }) { try await Self.outcome(of: $0) }
        let throughRunner = try await Self.withRunnerService { try await Self.outcome(of: $0) }
        #expect(inProcess.0 == .failed)
        #expect(inProcess.1.count == 4)
        #expect(inProcess.1.first?.hasPrefix("success 0 hello ci=true\nto-stderr\ntoken ********\n") == true, "\(inProcess.1)")
        #expect(throughRunner.0 == inProcess.0)
        #expect(throughRunner.1 == inProcess.1, "runner: \(throughRunner.1)\nin-process: \(inProcess.1)")
    }

    @Test func aCancelReachesTheStepInTheRunnerProcess() async throws {
        try await Self.withRunnerService { server in
            let token = "rf-runner-cancel-\(UUID().uuidString.prefix(8))"
            let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo started; exec -a \(token) sleep 300\n"))
            try await server.waitForOutput(jobID, containing: "started")
            #expect(TestFiles.processExists(matching: "rapidflow runner --server \(server.baseURL) --job \(jobID)"))
            let reply = try await server.post("/jobs/\(jobID)/cancel")
            #expect(try reply.decoded(API.CancelResult.self).status == .cancelled, "\(reply.text)")
            #expect(!TestFiles.processExists(matching: token), "the step's process is gone")
            try await eventually(timeout: .seconds(10), "the runner of job \(jobID) ends") {
                !TestFiles.processExists(matching: "rapidflow runner --server \(server.baseURL) --job \(jobID) ")
            }
            #expect(!TestFiles.processExists(matching: "rapidflow runner --server \(server.baseURL) --job \(jobID) "), "the runner ended with its job")
        }
    }

    /// The service that owns a runner's job dies: the runner stops its step once no replica
    /// has answered for the lease (SIGTERM, SIGKILL after the grace period) and exits.
    @Test func aRunnerWhoseServiceIsGoneStopsItsStepAndExits() async throws {
        let token = "rf-orphan-\(UUID().uuidString.prefix(8))"
        defer { TestFiles.shellNow("pkill -KILL -f '[r]f-orphan-\(token.suffix(8))' || true") }
        let service = try await ServiceProcess.start(
            dataDirectory: TestFiles.temporaryDirectory(), arguments: ["--executor", "runner", "--lease-seconds", "3", "--kill-grace-seconds", "1"])
        let jobID = try await service.client.trigger(
            try await service.client.createPipeline(config: "steps:\n  - echo started; exec -a \(token) sleep 300\n"))
        try await service.client.waitForOutput(jobID, containing: "started")
        let runner = "rapidflow runner --server \(service.client.baseURL) --job \(jobID) "
        #expect(TestFiles.processExists(matching: runner))
        defer { TestFiles.shellNow("pkill -KILL -f '[r]apidflow runner --server \(service.client.baseURL) --job \(jobID) ' || true") }

        service.kill(signal: SIGKILL)
        let killed = ContinuousClock.now
        try await eventually(timeout: .seconds(60), "the orphaned step is stopped") { !TestFiles.processExists(matching: token) }
        let stopped = ContinuousClock.now - killed
        #expect(stopped >= .seconds(2), "not before the lease (3 s) had nearly passed: \(stopped)")
        #expect(stopped < .seconds(30), "about one lease (3 s) and the grace period (1 s), not the step's 300 s: \(stopped)")
        try await eventually(timeout: .seconds(30), "the runner exits") { !TestFiles.processExists(matching: runner) }
        // The runner's own account (its standard error is the service's log file).
        let log = (try? String(contentsOfFile: service.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("rapidflow runner: job \(jobID): no replica of the service answered"), "\(log.suffix(2000))")
    }

    /// A service restarted without the job (it settled it as interrupted) refuses the runner's
    /// calls: the runner stops its step at once instead of after a lease.
    @Test func aRunnerWhoseJobTheServiceNoLongerKnowsStopsItsStepAtOnce() async throws {
        let token = "rf-unknown-\(UUID().uuidString.prefix(8))"
        defer { TestFiles.shellNow("pkill -KILL -f '[r]f-unknown-\(token.suffix(8))' || true") }
        let data = TestFiles.temporaryDirectory()
        let arguments = ["--executor", "runner", "--lease-seconds", "600", "--kill-grace-seconds", "1"]
        let first = try await ServiceProcess.start(dataDirectory: data, arguments: arguments)
        let jobID = try await first.client.trigger(try await first.client.createPipeline(config: "steps:\n  - echo started; exec -a \(token) sleep 300\n"))
        try await first.client.waitForOutput(jobID, containing: "started")
        let runner = "rapidflow runner --server \(first.client.baseURL) --job \(jobID) "
        defer { TestFiles.shellNow("pkill -KILL -f '[r]apidflow runner --server \(first.client.baseURL) --job \(jobID) ' || true") }
        try await first.killNow()
        // The same address, a new process: it settles the job it finds interrupted.
        let second = try await ServiceProcess.start(dataDirectory: data, arguments: arguments + ["--port", "\(first.client.port)"])
        defer { second.kill(signal: SIGTERM) }
        let restarted = ContinuousClock.now
        #expect(try await second.client.job(jobID).status == .failed)
        try await eventually(timeout: .seconds(60), "the step of a job the service no longer knows is stopped") { !TestFiles.processExists(matching: token) }
        #expect(ContinuousClock.now - restarted < .seconds(45), "long before the 600 s lease")
        try await eventually(timeout: .seconds(30), "the runner exits") { !TestFiles.processExists(matching: runner) }
        let log = (try? String(contentsOfFile: first.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("rapidflow runner: job \(jobID): the service says the job is over (401)"), "\(log.suffix(2000))")
    }

    @Test func theRunnerRoutesTakeOnlyTheJobsOwnToken() async throws {
        try await Self.withRunnerService { server in
            let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - sleep 2\n"))
            try await server.waitForStatus(jobID, .running)
            for headers in [[], [("Authorization", "Bearer wrong-token")]] as [[(String, String)]] {
                let reply = try await server.request(.GET, "/runner/jobs/\(jobID)/next?wait=0", headers: headers)
                #expect(reply.status == 401 && reply.errorCode == "unauthorized", "\(reply.text)")
                let output = try await server.request(.POST, "/runner/jobs/\(jobID)/steps/1/output", body: "forged\n", headers: headers)
                #expect(output.status == 401)
            }
            let unknown = try await server.request(.GET, "/runner/jobs/999/next?wait=0", headers: [("Authorization", "Bearer x")])
            #expect(unknown.status == 401)
            let status = try await server.waitForJob(jobID).status
            let text = try await server.get("/jobs/\(jobID)/logs").text
            #expect(status == .success, "\(text)")
            #expect(!(try await server.get("/jobs/\(jobID)/logs").text.contains("forged")), "nothing forged was stored")
        }
    }

    @Test func aCancelEndsEvenWhenTheRunnerNeverTakesTheStep() async throws {
        // A "runner" that never calls the service: a cancel must still end the job.
        let directory = TestFiles.temporaryDirectory()
        let silent = "\(directory)/silent-runner"
        let token = "rf-silent-runner-\(UUID().uuidString.prefix(8))"
        try "#!/bin/bash\nexec -a \(token) sleep 300\n".write(toFile: silent, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: silent)
        try await TestServer.with(configure: {
            $0.executor = .runner
            $0.runnerBinary = silent
            $0.killGracePeriod = .seconds(1)
        }) { server in
            let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo never\n"))
            // The step itself has started (it is handed to the runner), not only the job.
            try await eventually("job \(jobID)'s step is handed to the runner") {
                try await server.get("/jobs/\(jobID)/status").decoded(API.JobStatusReport.self).steps.first?.status == .running
            }
            let started = ContinuousClock.now
            let reply = try await server.post("/jobs/\(jobID)/cancel")
            #expect(try reply.decoded(API.CancelResult.self).status == .cancelled, "\(reply.text)")
            // About grace (1 s) + the 5 s after SIGKILL; the bound is generous for a loaded machine.
            #expect(ContinuousClock.now - started < .seconds(60))
            let output = try await server.logs(jobID).build
            #expect(output.contains("did not report the step's end"), "\(output)")
            try await eventually(timeout: .seconds(5), "the silent runner ends") { !TestFiles.processExists(matching: token) }
            #expect(!TestFiles.processExists(matching: token), "the silent runner was stopped with its job")
        }
    }
}
