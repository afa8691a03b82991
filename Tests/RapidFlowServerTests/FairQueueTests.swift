import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// Many owners on one queue: owners take turns, owner limits hold, priorities go first, and a
/// pending job says where it stands.
@Suite("Fair queue") struct FairQueueTests {
    /// Steps that wait until the test creates `gate`: jobs that hold their slot until told.
    static func gated(_ gate: String) -> String {
        "steps:\n  - while [ ! -e \(gate) ]; do sleep 0.02; done\n"
    }

    static func pipeline(_ server: TestServer, name: String, owner: String?, config: String) async throws -> Int {
        let reply = try await server.request(.POST, "/pipelines", encoding: API.PipelineDefinition(name: name, config: config, owner: owner))
        try #require(reply.status == 200, "create pipeline: \(reply.text)")
        return try reply.decoded(API.Pipeline.self).id
    }

    static func startedAt(_ job: API.Job) throws -> Date {
        try #require(job.startedAt.flatMap(Timestamp.parse), "job \(job.id) has a start time")
    }

    @Test func aBurstOfOneOwnerDelaysAnothersJobByAtMostOneSlotTurnover() async throws {
        let gate = TestFiles.temporaryDirectory() + "/gate"
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 2 }) { server in
            let burst = try await Self.pipeline(server, name: "burst", owner: "team-a", config: Self.gated(gate))
            let other = try await Self.pipeline(server, name: "one", owner: "team-b", config: "steps:\n  - echo b\n")
            var burstJobs: [Int] = []
            for _ in 0..<200 { burstJobs.append(try await server.trigger(burst)) }
            // Both slots taken by team-a, 198 of its jobs waiting.
            try await server.waitForStatus(burstJobs[0], .running)
            try await server.waitForStatus(burstJobs[1], .running)
            let late = try await server.trigger(other)
            let waiting = try await server.job(late)
            #expect(waiting.owner == "team-b")
            #expect(waiting.queuePosition == 1, "team-b runs nothing, so its job is next: \(String(describing: waiting.queuePosition))")
            #expect(waiting.waitingFor == "slot")
            FileManager.default.createFile(atPath: gate, contents: nil)
            let done = try await server.waitForJob(late)
            #expect(done.status == .success)
            let lateStart = try Self.startedAt(done)
            var startedBefore = 0
            for id in burstJobs {
                let job = try await server.waitForJob(id)
                if try Self.startedAt(job) < lateStart { startedBefore += 1 }
            }
            // The two that held the slots, and at most one more per slot as they turned over
            // (FIFO would have started all 200 first).
            #expect(startedBefore <= 4, "\(startedBefore) of team-a's jobs started before team-b's one")
            let listed = try await server.get("/jobs?owner=team-b").decoded([API.Job].self)
            #expect(listed.map(\.id) == [late])
        }
    }

    @Test func ownerLimitsHoldAndAnOwnersOwnLimitWins() async throws {
        let gate = TestFiles.temporaryDirectory() + "/gate"
        try await TestServer.with(configure: {
            $0.maxConcurrentJobs = 4
            $0.maxJobsPerOwner = 1
        }) { server in
            let a = try await Self.pipeline(server, name: "a", owner: "team-a", config: Self.gated(gate))
            let b = try await Self.pipeline(server, name: "b", owner: "team-b", config: Self.gated(gate))
            let first = try await server.trigger(a)
            let second = try await server.trigger(a)
            let third = try await server.trigger(a)
            let bJob = try await server.trigger(b)
            try await server.waitForStatus(first, .running)
            try await server.waitForStatus(bJob, .running)
            // Free slots, but team-a runs its one job.
            let blocked = try await server.job(second)
            #expect(blocked.status == .pending)
            #expect(blocked.waitingFor == "owner_limit")
            #expect(try await server.job(third).waitingFor == "owner_limit")
            var owner = try await server.get("/owners/team-a").decoded(API.Owner.self)
            #expect(owner.running == 1 && owner.pending == 2 && owner.maxConcurrentJobs == nil && owner.effectiveLimit == 1)
            let metrics = try await server.get("/metrics").text
            #expect(MetricsTests.value(metrics, #"rapidflow_pending_jobs{owner="team-a"}"#) == 2, "pending jobs by owner in /metrics")

            // Its own limit wins over the service's: a second job starts, the third still waits.
            let reply = try await server.request(.PUT, "/owners/team-a", encoding: API.OwnerSettings(maxConcurrentJobs: 2))
            #expect(reply.status == 200, "\(reply.text)")
            try await server.waitForStatus(second, .running)
            #expect(try await server.job(third).status == .pending)
            owner = try await server.get("/owners/team-a").decoded(API.Owner.self)
            #expect(owner.running == 2 && owner.pending == 1 && owner.maxConcurrentJobs == 2 && owner.effectiveLimit == 2)
            let owners = try await server.get("/owners").decoded([API.Owner].self)
            #expect(owners.map(\.owner) == ["team-a", "team-b"])

            FileManager.default.createFile(atPath: gate, contents: nil)
            for id in [first, second, third, bJob] { #expect(try await server.waitForJob(id).status == .success) }
            // Removing the own limit brings the service's back.
            #expect(try await server.request(.PUT, "/owners/team-a", body: #"{"max_concurrent_jobs": null}"#).status == 200)
            owner = try await server.get("/owners/team-a").decoded(API.Owner.self)
            #expect(owner.maxConcurrentJobs == nil && owner.effectiveLimit == 1)
        }
    }

    @Test func higherPriorityStartsFirstAndPendingJobsShowTheirPlace() async throws {
        let gate = TestFiles.temporaryDirectory() + "/gate"
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 1 }) { server in
            let blocker = try await Self.pipeline(server, name: "blocker", owner: nil, config: Self.gated(gate))
            let low = try await Self.pipeline(server, name: "low", owner: nil, config: "priority: low\nsteps:\n  - echo low\n")
            let plain = try await Self.pipeline(server, name: "plain", owner: nil, config: "steps:\n  - echo plain\n")
            let held = try await server.trigger(blocker)
            try await server.waitForStatus(held, .running)
            let lowJob = try await server.trigger(low)
            let normalJob = try await server.trigger(plain)
            let highJob = try await server.trigger(plain, API.TriggerRequest(priority: .high))
            let places = try await server.get("/jobs?status=pending").decoded([API.Job].self)
            let byID = Dictionary(uniqueKeysWithValues: places.map { ($0.id, $0) })
            #expect(byID[highJob]?.queuePosition == 1 && byID[highJob]?.priority == .high)
            #expect(byID[normalJob]?.queuePosition == 2 && byID[normalJob]?.priority == .normal)
            #expect(byID[lowJob]?.queuePosition == 3 && byID[lowJob]?.priority == .low)
            #expect(byID[lowJob]?.owner == "default")
            #expect(try await server.job(held).queuePosition == nil, "a running job has no place in the queue")

            FileManager.default.createFile(atPath: gate, contents: nil)
            let starts = try await [highJob, normalJob, lowJob].asyncMap { try Self.startedAt(try await server.waitForJob($0)) }
            #expect(starts[0] <= starts[1] && starts[1] <= starts[2], "high, then normal, then low: \(starts)")
            // A retry keeps the job's priority.
            let retried = try await server.post("/jobs/\(lowJob)/retry").decoded(API.Job.self)
            #expect(retried.priority == .low)
        }
    }

    @Test func badOwnersLimitsAndPrioritiesAreRefusedAndChangeNothing() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - echo hi\n")
            func refused(_ method: HTTPMethod, _ path: String, _ body: String?, mentioning word: String) async throws {
                let before = try await server.counts()
                let limitsBefore = try await server.get("/owners").decoded([API.Owner].self)
                let reply = try await server.request(method, path, body: body)
                #expect(reply.status == 400, "\(method) \(path) \(body ?? ""): \(reply.text)")
                #expect(reply.errorCode == "invalid_request" || reply.errorCode == "invalid_config", "\(reply.text)")
                #expect(reply.errorMessage.contains(word), "'\(reply.errorMessage)' should mention '\(word)'")
                #expect(try await server.counts() == before, "nothing was stored")
                #expect(try await server.get("/owners").decoded([API.Owner].self) == limitsBefore, "no limit changed")
            }
            try await refused(.PUT, "/owners/Team-A", #"{"max_concurrent_jobs": 2}"#, mentioning: "owner")
            try await refused(.PUT, "/owners/-team", #"{"max_concurrent_jobs": 2}"#, mentioning: "owner")
            try await refused(.PUT, "/owners/" + String(repeating: "a", count: 64), #"{"max_concurrent_jobs": 2}"#, mentioning: "owner")
            try await refused(.PUT, "/owners/team", #"{"max_concurrent_jobs": 0}"#, mentioning: "max_concurrent_jobs")
            try await refused(.PUT, "/owners/team", #"{"max_concurrent_jobs": -3}"#, mentioning: "max_concurrent_jobs")
            try await refused(.PUT, "/owners/team", #"{"max_concurrent_jobs": 1.5}"#, mentioning: "max_concurrent_jobs")
            try await refused(.PUT, "/owners/team", #"{}"#, mentioning: "max_concurrent_jobs")
            try await refused(.PUT, "/owners/team", #"{"max_concurrent_jobs": 2, "burst": 3}"#, mentioning: "burst")
            try await refused(.POST, "/pipelines/\(pipeline)/jobs", #"{"priority": "urgent"}"#, mentioning: "priority")
            try await refused(.POST, "/pipelines/\(pipeline)/jobs", #"{"priority": 1}"#, mentioning: "priority")
            try await refused(.POST, "/pipelines", #"{"name": "p", "config": "priority: urgent\nsteps:\n  - echo\n"}"#, mentioning: "priority")
            try await refused(.POST, "/pipelines", #"{"name": "p", "config": "steps:\n  - echo\n", "owner": "Team A"}"#, mentioning: "owner")
            try await refused(
                .POST, "/jobs", #"{"owner": "team", "repo_url": "https://example.invalid/r.git", "priority": "asap"}"#, mentioning: "priority")
            try await refused(.GET, "/jobs?owner=bad%20owner", nil, mentioning: "owner")
            try await refused(.GET, "/pipelines?owner=bad%2Fowner", nil, mentioning: "owner")
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
