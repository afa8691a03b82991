import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// Every way a job ends, through the real service and its HTTP API, with steps played by a
/// `ScriptedExecutor`: each race is set up by events (a step has started, a stop has been
/// recorded), not by sleeping, and no process runs.
@Suite("Job lifecycle, scripted steps")
struct JobLifecycleTests {
    private func run(_ steps: [String], extra: String = "", on server: TestServer) async throws -> Int {
        let config = extra + "steps:\n" + steps.map { "  - \($0)\n" }.joined()
        return try await server.trigger(try await server.createPipeline(config: config))
    }

    /// The job once it has its final status.
    private func finished(_ job: Int, on server: TestServer) async throws -> API.Job {
        try await server.waitForJob(job)
        return try await server.get("/jobs/\(job)").decoded(API.Job.self)
    }

    private func logs(_ job: Int, on server: TestServer) async throws -> API.JobLogs {
        try await server.get("/jobs/\(job)/logs").decoded(API.JobLogs.self)
    }

    @Test func stepsThatExitZeroSucceedAndTheFirstFailureSkipsTheRest() async throws {
        let executor = ScriptedExecutor()
        try await TestServer.with(configure: { $0.customExecutor = executor }) { server in
            let passing = try await run(["exit 0", "exit 0"], on: server)
            let failing = try await run(["exit 0", "exit 3", "exit 0"], on: server)
            _ = try await finished(passing, on: server)
            _ = try await finished(failing, on: server)
            let passed = try await logs(passing, on: server)
            #expect(passed.status == .success)
            #expect(passed.logs.map(\.status) == [.success, .success])
            let failed = try await logs(failing, on: server)
            #expect(failed.status == .failed)
            #expect(failed.logs.map(\.status) == [.success, .failed, .skipped])
            #expect(failed.logs.map(\.exitCode) == [0, 3, nil])
            #expect(failed.logs[1].output.contains("step failed with exit code 3"))
        }
    }

    @Test func aCancelReachesTheRunningStepAsSIGTERMAndSkipsTheRest() async throws {
        let executor = ScriptedExecutor()
        try await TestServer.with(configure: { $0.customExecutor = executor }) { server in
            let job = try await run(["hold", "exit 0"], on: server)
            var started = executor.steps.makeAsyncIterator()
            let step = try #require(await started.next())
            try await step.print("working\n")

            // The call answers once the job has its final status.
            let reply = try await server.post("/jobs/\(job)/cancel")
            #expect(reply.status == 200, "\(reply.text)")
            let logs = try await logs(job, on: server)
            #expect(logs.status == .cancelled)
            #expect(logs.logs.map(\.status) == [.cancelled, .skipped])
            #expect(logs.logs[0].output.contains("working\n"))
            #expect(logs.logs[0].output.contains("step cancelled"))
            #expect(step.signals == [SIGTERM])
            #expect(executor.startedSteps == 1)
        }
    }

    @Test func aStepThatIgnoresSIGTERMIsKilledAfterTheGracePeriod() async throws {
        let executor = ScriptedExecutor()
        try await TestServer.with(configure: {
            $0.customExecutor = executor
            $0.killGracePeriod = .milliseconds(300)
        }) { server in
            let job = try await run(["hold ignoring SIGTERM"], on: server)
            var started = executor.steps.makeAsyncIterator()
            let step = try #require(await started.next())
            let reply = try await server.post("/jobs/\(job)/cancel")
            #expect(reply.status == 200, "\(reply.text)")
            #expect(step.signals == [SIGTERM, SIGKILL])
            let logs = try await logs(job, on: server)
            #expect(logs.status == .cancelled)
            #expect(logs.logs.map(\.status) == [.cancelled])
            #expect(logs.logs.map(\.exitCode) == [128 + Int(SIGKILL)])
        }
    }

    @Test func aStopRecordedBeforeAnyStepExistsRunsNoStep() async throws {
        let executor = ScriptedExecutor(holdsBegin: true)
        try await TestServer.with(configure: { $0.customExecutor = executor }) { server in
            let job = try await run(["exit 0", "exit 0"], on: server)
            var begins = executor.begins.makeAsyncIterator()
            let begin = try #require(await begins.next())
            // The cancel waits for the job's end, which waits for `begin`: it runs beside.
            let cancel = Task { try await server.post("/jobs/\(job)/cancel") }
            try await eventually("the stop is recorded on the job's control") { begin.control.stopReason == .cancelled }
            begin.release()
            let reply = try await cancel.value
            #expect(reply.status == 200, "\(reply.text)")
            let logs = try await logs(job, on: server)
            #expect(logs.status == .cancelled)
            #expect(logs.logs.map(\.status) == [.skipped, .skipped])
            #expect(executor.startedSteps == 0)
        }
    }

    @Test func aPendingJobIsCancelledWithoutEverStarting() async throws {
        let executor = ScriptedExecutor()
        try await TestServer.with(configure: {
            $0.customExecutor = executor
            $0.maxConcurrentJobs = 1
        }) { server in
            let first = try await run(["hold"], on: server)
            var started = executor.steps.makeAsyncIterator()
            let holding = try #require(await started.next())
            let second = try await run(["exit 0"], on: server)
            #expect(try await server.get("/jobs/\(second)").decoded(API.Job.self).status == .pending)

            let reply = try await server.post("/jobs/\(second)/cancel")
            #expect(reply.status == 200, "\(reply.text)")
            let cancelled = try await logs(second, on: server)
            #expect(cancelled.status == .cancelled)
            #expect(cancelled.logs.map(\.status) == [.skipped])

            // The slot frees: the first ends as the test says, and the cancelled one never runs.
            holding.finish(exitCode: 0)
            #expect(try await finished(first, on: server).status == .success)
            #expect(executor.startedSteps == 1)
            #expect(holding.jobID == first)
        }
    }

    @Test func aJobPastItsTimeoutIsStoppedAndFails() async throws {
        let executor = ScriptedExecutor()
        try await TestServer.with(configure: { $0.customExecutor = executor }) { server in
            // The timeout is the behaviour: one second, then SIGTERM.
            let job = try await run(["hold", "exit 0"], extra: "timeout_seconds: 1\n", on: server)
            var started = executor.steps.makeAsyncIterator()
            let step = try #require(await started.next())
            let ended = try await finished(job, on: server)
            #expect(ended.status == .failed)
            #expect(step.signals == [SIGTERM])
            let logs = try await logs(job, on: server)
            #expect(logs.logs.map(\.status) == [.failed, .skipped])
            #expect(logs.logs[0].output.contains("timed out after 1 s"))
        }
    }

    @Test func aShutdownSettlesTheRunningJobAsFailedBeforeTheStoreCloses() async throws {
        let executor = ScriptedExecutor()
        let directory = TestFiles.temporaryDirectory()
        let job = try await TestServer.with(dataDirectory: directory, configure: { $0.customExecutor = executor }) { server in
            let job = try await run(["hold", "exit 0"], on: server)
            var started = executor.steps.makeAsyncIterator()
            _ = try #require(await started.next())
            return job
            // Leaving the closure shuts the service down gracefully.
        }
        // A second start on the same data directory has nothing to recover: the job was
        // settled by the shutdown itself.
        try await TestServer.with(dataDirectory: directory, configure: { $0.customExecutor = ScriptedExecutor() }) { server in
            let logs = try await logs(job, on: server)
            #expect(logs.status == .failed)
            #expect(logs.logs.map(\.status) == [.failed, .skipped])
            #expect(logs.logs[0].output.contains("the service was shut down while this step ran"))
            #expect(!logs.logs[0].output.contains("crash or restart"))
        }
    }
}
