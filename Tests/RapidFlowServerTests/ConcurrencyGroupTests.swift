import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// Concurrency groups: at most one job of a group runs at a time, and `on_conflict` says what a
/// new job does to the group's older ones. Pipeline names, unique per owner.
@Suite("Concurrency groups and pipeline names") struct ConcurrencyGroupTests {
    static func interval(_ job: API.Job) throws -> (start: Date, end: Date) {
        let start = try #require(job.startedAt.flatMap(Timestamp.parse), "job \(job.id) started")
        let end = try #require(job.finishedAt.flatMap(Timestamp.parse), "job \(job.id) finished")
        return (start, end)
    }

    @Test func aGroupRunsOneJobAtATimeInOrderAndOtherGroupsRunBeside() async throws {
        let gate = TestFiles.temporaryDirectory() + "/gate"
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 4 }) { server in
            let deploy = try await FairQueueTests.pipeline(
                server, name: "deploy", owner: "web", config: "concurrency_group: deploy-${owner}-${branch}\n" + FairQueueTests.gated(gate))
            let main = API.TriggerRequest(branch: "main")
            let first = try await server.trigger(deploy, main)
            try await server.waitForStatus(first, .running)
            let second = try await server.trigger(deploy, main)
            let third = try await server.trigger(deploy, main)
            // Another branch is another group: it runs beside.
            let dev = try await server.trigger(deploy, API.TriggerRequest(branch: "dev"))
            try await server.waitForStatus(dev, .running)

            for id in [second, third] {
                let waiting = try await server.job(id)
                #expect(waiting.status == .pending, "free slots, but its group runs a job")
                #expect(waiting.waitingFor == "concurrency_group:deploy-web-main", "\(String(describing: waiting.waitingFor))")
                #expect(waiting.concurrencyGroup == "deploy-web-main")
            }
            #expect(try await server.job(dev).concurrencyGroup == "deploy-web-dev")
            let pending = try await server.get("/jobs?status=pending").decoded([API.Job].self)
            #expect(pending.sorted { $0.queuePosition! < $1.queuePosition! }.map(\.id) == [second, third], "older first")

            FileManager.default.createFile(atPath: gate, contents: nil)
            let ran = try await [first, second, third].asyncMap { try await server.waitForJob($0) }
            #expect(ran.map(\.status) == [.success, .success, .success])
            // One after the other: each started once the one before it had finished.
            let intervals = try ran.map(Self.interval)
            #expect(intervals[1].start >= intervals[0].end && intervals[2].start >= intervals[1].end, "\(intervals)")
            #expect(try await server.waitForJob(dev).status == .success)
        }
    }

    @Test func cancelPendingLeavesOnlyTheNewestWaiting() async throws {
        let gate = TestFiles.temporaryDirectory() + "/gate"
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 4 }) { server in
            let deploy = try await FairQueueTests.pipeline(
                server, name: "deploy", owner: nil,
                config: "concurrency_group: deploy\non_conflict: cancel_pending\n" + FairQueueTests.gated(gate))
            let running = try await server.trigger(deploy)
            try await server.waitForStatus(running, .running)
            let replaced = try await server.trigger(deploy)
            #expect(try await server.job(replaced).waitingFor == "concurrency_group:deploy")
            let newest = try await server.trigger(deploy)
            // The answer came after the older pending job was cancelled; the running one goes on.
            let cancelled = try await server.job(replaced)
            #expect(cancelled.status == .cancelled && cancelled.startedAt == nil, "\(cancelled.status)")
            #expect(try await server.job(running).status == .running)
            #expect(try await server.job(newest).waitingFor == "concurrency_group:deploy")

            FileManager.default.createFile(atPath: gate, contents: nil)
            #expect(try await server.waitForJob(running).status == .success)
            #expect(try await server.waitForJob(newest).status == .success)
            #expect(try await server.job(replaced).status == .cancelled)
            let steps = try await server.get("/jobs/\(replaced)/details").decoded(API.JobDetails.self).steps
            #expect(steps.allSatisfy { $0.status == .skipped }, "a replaced job ran nothing")
        }
    }

    @Test func cancelRunningStopsTheRunningJobAndStartsTheNewOne() async throws {
        let gate = TestFiles.temporaryDirectory() + "/gate"
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 4 }) { server in
            let deploy = try await FairQueueTests.pipeline(
                server, name: "deploy", owner: nil, config: "concurrency_group: deploy\n" + FairQueueTests.gated(gate))
            let old = try await server.trigger(deploy)
            try await server.waitForStatus(old, .running)
            let queued = try await server.trigger(deploy)
            // The trigger's mode wins over the config's `queue`.
            let newest = try await server.trigger(deploy, API.TriggerRequest(onConflict: .cancelRunning))
            let stopped = try await server.waitForJob(old)
            #expect(stopped.status == .cancelled && stopped.cancelled)
            #expect(try await server.job(queued).status == .cancelled)
            try await server.waitForStatus(newest, .running)
            FileManager.default.createFile(atPath: gate, contents: nil)
            let done = try await server.waitForJob(newest)
            #expect(done.status == .success)
            #expect(try Self.interval(done).start >= Self.interval(stopped).end, "the new job started once the old one had stopped")
        }
    }

    @Test func badGroupsAndModesAreRefusedAndChangeNothing() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - echo hi\n")
            let refusals: [(String, String, String)] = [
                ("/pipelines/\(pipeline)/jobs", #"{"on_conflict": "cancel_all", "concurrency_group": "g"}"#, "on_conflict"),
                ("/pipelines/\(pipeline)/jobs", #"{"on_conflict": "queue"}"#, "concurrency_group"),
                ("/pipelines/\(pipeline)/jobs", #"{"concurrency_group": "deploy web"}"#, "concurrency_group"),
                ("/pipelines/\(pipeline)/jobs", #"{"concurrency_group": "deploy-${env}"}"#, "concurrency_group"),
                ("/pipelines/\(pipeline)/jobs", #"{"concurrency_group": ""}"#, "concurrency_group"),
                ("/pipelines/\(pipeline)/jobs", #"{"concurrency_group": 7}"#, "concurrency_group"),
                ("/pipelines", #"{"name": "p", "config": "on_conflict: queue\nsteps:\n  - echo\n"}"#, "concurrency_group"),
                ("/pipelines", #"{"name": "p", "config": "concurrency_group: g\non_conflict: later\nsteps:\n  - echo\n"}"#, "on_conflict"),
                ("/pipelines", #"{"name": "p", "config": "concurrency_group: \"a b\"\nsteps:\n  - echo\n"}"#, "concurrency_group"),
            ]
            for (path, body, word) in refusals {
                let before = try await server.counts()
                let reply = try await server.request(.POST, path, body: body)
                #expect(reply.status == 400, "\(path) \(body): \(reply.text)")
                #expect(reply.errorCode == "invalid_request" || reply.errorCode == "invalid_config", "\(reply.text)")
                #expect(reply.errorMessage.contains(word), "'\(reply.errorMessage)' should mention '\(word)'")
                #expect(try await server.counts() == before, "nothing was stored")
            }
        }
    }

    /// Names are unique per owner: the same name under two owners is two pipelines; a second of
    /// one owner is a 409 that stores nothing; the CLI takes `owner/name` where it takes an id.
    @Test func pipelineNamesAreUniquePerOwnerAndTheCLITakesOwnerSlashName() async throws {
        try await TestServer.with { server in
            let web = try await FairQueueTests.pipeline(server, name: "deploy", owner: "web", config: "steps:\n  - echo web\n")
            let api = try await FairQueueTests.pipeline(server, name: "deploy", owner: "api", config: "steps:\n  - echo api\n")
            let plain = try await FairQueueTests.pipeline(server, name: "deploy", owner: nil, config: "steps:\n  - echo plain\n")
            let refusals: [(HTTPMethod, String, API.PipelineDefinition, Int)] = [
                (.POST, "/pipelines", API.PipelineDefinition(name: "deploy", config: "steps:\n  - echo again\n", owner: "web"), web),
                // No owner is the owner `default`.
                (.POST, "/pipelines", API.PipelineDefinition(name: "deploy", config: "steps:\n  - echo again\n", owner: "default"), plain),
                (.PUT, "/pipelines/\(api)", API.PipelineDefinition(name: "deploy", config: "steps:\n  - echo moved\n", owner: "web"), web),
            ]
            for (method, path, body, holder) in refusals {
                let before = try await server.counts()
                let reply = try await server.request(method, path, encoding: body)
                #expect(reply.status == 409, "\(method) \(path): \(reply.text)")
                #expect(reply.errorCode == "pipeline_name_taken")
                #expect(reply.errorMessage.contains("pipeline \(holder)"), "\(reply.errorMessage)")
                #expect(try await server.counts() == before, "nothing was stored")
            }
            let unchanged = try await server.get("/pipelines/\(api)").decoded(API.Pipeline.self)
            #expect(unchanged.owner == "api" && unchanged.config == "steps:\n  - echo api\n", "a refused update changes nothing")
            // Keeping its own name is no conflict.
            let kept = try await server.request(
                .PUT, "/pipelines/\(web)", encoding: API.PipelineDefinition(name: "deploy", config: "steps:\n  - echo web two\n", owner: "web"))
            #expect(kept.status == 200, "\(kept.text)")

            let run = try await CLITests.cli(["run", "api/deploy", "--json"], server: server)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(try CLITests.decoded(API.Job.self, run).pipelineID == api)
            let ambiguous = try await CLITests.cli(["run", "deploy"], server: server)
            #expect(ambiguous.status == 1)
            #expect(ambiguous.stderr.contains("web/deploy") && ambiguous.stderr.contains("owner/name"), "\(ambiguous.stderr)")
            let missing = try await CLITests.cli(["run", "web/nope"], server: server)
            #expect(missing.status == 1 && missing.stderr.contains("web/nope"), "\(missing.stderr)")
        }
    }
}
