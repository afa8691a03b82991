import Foundation
import Logging
import RapidFlowCore
import SQLKit
import Testing

@testable import RapidFlowStore

@Suite("SQL store on SQLite and PostgreSQL")
struct SQLJobStoreTests {
    func newJob(steps: Int = 2) -> NewJob {
        NewJob(
            kind: .pipeline, pipelineID: 1, pipelineName: "p", snapshot: JobSnapshot(branch: "main"),
            steps: (1...steps).map { StepPlan(type: .bash, content: "echo \($0)", phase: .build) },
            environment: [("B", "2"), ("A", "1")])
    }

    @Test(arguments: StoreKind.allCases)
    func migrationsAreIdempotentAndDataSurvivesReopening(_ kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let jobID = try await fixture.withStore { store in
                try await store.migrate()
                return try await store.createJob(newJob()).id
            }
            try await fixture.withStore { store in
                let job = try #require(try await store.job(id: jobID))
                #expect(job.snapshot.branch == "main")
                #expect(try await store.environment(jobID: jobID).map(\.key) == ["B", "A"], "env keeps its order")
            }
        }
    }

    /// What a list and a status show of a job, read from columns, is what its snapshot says;
    /// and the migration that made those columns filled them for jobs stored before it.
    @Test(arguments: StoreKind.allCases)
    func listsAndStatusReadTheSnapshotsFieldsFromColumnsAlsoForJobsStoredBeforeThem(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            var snapshot = JobSnapshot(
                language: "python", version: "3.12", image: "python:3.12", repo: "https://git.example/app.git", branch: "feature/x",
                folder: "src", exposePorts: true, config: "steps:\n  - echo hi\n")
            snapshot.owner = "team-a"
            snapshot.priority = .high
            snapshot.concurrencyGroup = "deploy-web"
            snapshot.event = .push
            snapshot.commit = CommitInfo(ref: "refs/heads/feature/x", sha: String(repeating: "a", count: 40), message: "Fix it", author: "Ann")
            let plain = try await store.createJob(newJob())
            let rich = try await store.createJob(
                NewJob(
                    kind: .pipeline, pipelineID: 1, pipelineName: "p", snapshot: snapshot,
                    steps: [StepPlan(type: .bash, content: "echo 1", phase: .build), StepPlan(type: .bash, content: "echo 2", phase: .test)],
                    environment: []))
            try await store.startStep(id: try await store.steps(jobID: rich.id)[0].id, at: Date(), processGroup: nil)

            func check(_ listed: Job, against full: Job) {
                for (a, b) in [
                    (listed.snapshot.language, full.snapshot.language), (listed.snapshot.version, full.snapshot.version),
                    (listed.snapshot.image, full.snapshot.image), (listed.snapshot.repo, full.snapshot.repo),
                    (listed.snapshot.branch, full.snapshot.branch), (listed.snapshot.folder, full.snapshot.folder),
                    (listed.snapshot.concurrencyGroup, full.snapshot.concurrencyGroup),
                    (listed.snapshot.event?.rawValue, full.snapshot.event?.rawValue),
                ] {
                    #expect(a == b)
                }
                #expect(listed.snapshot.exposePorts == full.snapshot.exposePorts)
                #expect(listed.snapshot.commit == full.snapshot.commit)
                #expect(listed.account == full.account && listed.priority == full.priority)
                #expect(listed.id == full.id && listed.status == full.status && listed.createdAt == full.createdAt)
                #expect(listed.snapshot.config == nil, "a listed job carries no config")
            }
            func checkAll() async throws {
                let listed = try await store.jobs(JobFilter())
                #expect(listed.map(\.id) == [rich.id, plain.id])
                for job in listed { check(job, against: try #require(try await store.job(id: job.id))) }
                let status = try #require(try await store.jobStatus(id: rich.id))
                check(status.job, against: try #require(try await store.job(id: rich.id)))
                #expect(status.steps == (try await store.steps(jobID: rich.id)))
                #expect(status.steps.map(\.status) == [.running, .pending])
                #expect(try await store.jobStatus(id: 999_999) == nil)
            }
            try await checkAll()

            // The store as it was before those columns: gone, and the migration not applied.
            try await store.withDatabase { database in
                for column in [
                    "repo", "language", "version", "image", "folder", "expose_ports", "event", "commit_sha", "commit_ref", "commit_message",
                    "commit_author",
                ] {
                    try await database.raw("ALTER TABLE jobs DROP COLUMN \(unsafeRaw: column)").run()
                }
                try await database.raw("DELETE FROM schema_migrations WHERE version = 11").run()
            }
            try await store.migrate()
            try await checkAll()
        }
    }

    @Test(arguments: StoreKind.allCases)
    func outputChunksConcatenateInOffsetOrder(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let job = try await store.createJob(newJob())
            let steps = try await store.steps(jobID: job.id)
            try await store.appendOutput(stepID: steps[0].id, offset: 0, data: Data("hello ".utf8))
            try await store.appendOutput(stepID: steps[0].id, offset: 6, data: Data([0xff, 0x00, 0x0a]))
            try await store.appendOutput(stepID: steps[1].id, offset: 0, data: Data("two".utf8))
            #expect(try await store.output(stepID: steps[0].id) == Data("hello ".utf8) + Data([0xff, 0x00, 0x0a]))
            let outputs = try await store.outputs(jobID: job.id)
            #expect(outputs[steps[1].id] == Data("two".utf8))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aFinalStatusIsReachedOnce(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let job = try await store.createJob(newJob())
            #expect(try await store.claimJob(id: job.id, at: Date()))
            #expect(try await !store.claimJob(id: job.id, at: Date()), "a job is claimed once")
            #expect(try await !store.cancelPendingJob(id: job.id, at: Date()), "a running job is not cancelled as pending")
            #expect(try await store.finishJob(id: job.id, status: .success, cancelled: false, at: Date()))
            #expect(try await !store.finishJob(id: job.id, status: .failed, cancelled: false, at: Date()))
            #expect(try await store.job(id: job.id)?.status == .success)
        }
    }

    /// Each claim takes the next epoch; a write under a lease counts only while the job runs,
    /// owned by the lease's replica at its epoch, and says when it did not.
    @Test(arguments: StoreKind.allCases)
    func writesUnderALeaseCountOnlyWhileItHolds(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let job = try await store.createJob(newJob(steps: 2))
            let claimed = try await store.claimPendingJobs(owner: "a", limit: 1, at: Date(), leaseUntil: Date(timeIntervalSinceNow: 60), maxJobsPerOwner: nil)
            let epoch = try #require(claimed.first?.leaseEpoch)
            #expect(epoch == 1, "the first claim's epoch")
            let held = JobLease(owner: "a", epoch: epoch)
            let steps = try await store.steps(jobID: job.id)
            for stale in [JobLease(owner: "a", epoch: epoch - 1), JobLease(owner: "b", epoch: epoch)] {
                #expect(try await !store.startStep(id: steps[0].id, at: Date(), processGroup: nil, lease: stale), "\(stale)")
                #expect(try await !store.appendOutput(stepID: steps[0].id, offset: 0, data: Data("x".utf8), lease: stale))
                #expect(try await !store.finishRanJob(id: job.id, status: .success, at: Date(), lease: stale))
            }
            #expect(try await store.steps(jobID: job.id)[0].status == .pending, "a stale lease changed nothing")
            #expect(try await store.startStep(id: steps[0].id, at: Date(), processGroup: nil, lease: held))
            #expect(try await store.recordProcessGroup(stepID: steps[0].id, processGroup: 4242, lease: held))
            #expect(try await store.appendOutput(stepID: steps[0].id, offset: 0, data: Data("before\n".utf8), lease: held))

            // Another replica settles the job (this one stopped renewing): the lease is gone.
            let settled = try await store.settleInterruptedJobs(reason: "lease ran out", at: Date(), scope: .ownedBy("a", orLeaseEndedBefore: Date()))
            #expect(settled.jobIDs == [job.id])
            let output = try await store.output(stepID: steps[0].id)
            #expect(try await !store.appendOutput(stepID: steps[0].id, offset: output.count, data: Data("after\n".utf8), lease: held))
            #expect(try await !store.finishStep(id: steps[0].id, status: .success, exitCode: 0, at: Date(), lease: held))
            #expect(try await !store.startStep(id: steps[1].id, at: Date(), processGroup: nil, lease: held))
            #expect(try await !store.finishRanJob(id: job.id, status: .success, at: Date(), lease: held))
            #expect(try await store.output(stepID: steps[0].id) == output, "nothing appended after the settlement")
            #expect(try await store.steps(jobID: job.id).map(\.status) == [.failed, .skipped])
            #expect(try await store.job(id: job.id)?.status == .failed)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func interruptedJobsAreSettledFailedWithTheReasonInTheOutput(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let job = try await store.createJob(newJob(steps: 3))
            let other = try await store.createJob(newJob(steps: 1))
            let steps = try await store.steps(jobID: job.id)
            _ = try await store.claimJob(id: job.id, at: Date())
            try await store.startStep(id: steps[0].id, at: Date(), processGroup: nil)
            try await store.finishStep(id: steps[0].id, status: .success, exitCode: 0, at: Date())
            try await store.startStep(id: steps[1].id, at: Date(), processGroup: 4242)
            try await store.appendOutput(stepID: steps[1].id, offset: 0, data: Data("partial\n".utf8))

            let interrupted = try await store.settleInterruptedJobs(reason: "gone", at: Date())
            #expect(interrupted == [InterruptedStep(stepID: steps[1].id, jobID: job.id, processGroup: 4242)])
            #expect(try await store.job(id: job.id)?.status == .failed)
            #expect(try await store.steps(jobID: job.id).map(\.status) == [.success, .failed, .skipped])
            #expect(String(decoding: try await store.output(stepID: steps[1].id), as: UTF8.self) == "partial\n[rapidflow] gone\n")
            #expect(try await store.job(id: other.id)?.status == .pending, "pending jobs stay pending to run")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func listsPageNewestFirst(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            var ids: [Int] = []
            for _ in 0..<5 { ids.append(try await store.createJob(newJob(steps: 1)).id) }
            #expect(try await store.jobs(JobFilter(limit: 2)).map(\.id) == [ids[4], ids[3]])
            #expect(try await store.jobs(JobFilter(before: ids[3], limit: 2)).map(\.id) == [ids[2], ids[1]])
            #expect(try await store.pendingJobs(limit: 2).map(\.id) == [ids[0], ids[1]], "the queue is FIFO")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func pipelinesAreCreatedUpdatedPagedAndDeleted(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let first = try await store.createPipeline(name: "one", config: "steps: []")
            let second = try await store.createPipeline(name: "two", config: "steps: []")
            #expect(try await store.pipeline(id: first.id)?.name == "one")
            #expect(try await store.pipelines(before: nil, limit: 10).map(\.id) == [second.id, first.id])
            #expect(try await store.pipelines(before: second.id, limit: 10).map(\.id) == [first.id])

            let updated = try #require(try await store.updatePipeline(id: first.id, name: "uno", config: "x: 1"))
            #expect(updated.name == "uno" && updated.config == "x: 1" && updated.createdAt == first.createdAt)
            #expect(try await store.updatePipeline(id: 999_999, name: "n", config: "c") == nil)

            #expect(try await store.deletePipeline(id: first.id))
            #expect(try await !store.deletePipeline(id: first.id), "a pipeline is deleted once")
            #expect(try await store.pipeline(id: first.id) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func jobFieldsAndFiltersRoundTrip(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let job = try await store.createJob(newJob())
            var other = newJob(steps: 1)
            other.pipelineID = 2
            other.retryOf = job.id
            let retry = try await store.createJob(other)
            #expect(retry.retryOf == job.id && retry.status == .pending && !retry.cancelled)

            try await store.setContainer(jobID: job.id, containerID: "c0ffee")
            try await store.setPorts(jobID: job.id, ports: ["127.0.0.1:5000->80"])
            let stored = try #require(try await store.job(id: job.id))
            #expect(stored.containerID == "c0ffee" && stored.ports == ["127.0.0.1:5000->80"])
            try await store.setContainer(jobID: job.id, containerID: nil)
            #expect(try await store.job(id: job.id)?.containerID == nil)

            #expect(try await store.jobs(JobFilter(pipelineID: 2)).map(\.id) == [retry.id])
            #expect(try await store.cancelPendingJob(id: retry.id, at: Date()))
            let cancelled = try #require(try await store.job(id: retry.id))
            #expect(cancelled.status == .cancelled && cancelled.cancelled && cancelled.finishedAt != nil)
            #expect(try await store.jobs(JobFilter(status: .cancelled)).map(\.id) == [retry.id])
            #expect(try await store.jobs(JobFilter(status: .pending)).map(\.id) == [job.id])
            #expect(try await store.job(id: 999_999) == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func stepsRecordTheirProgress(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let job = try await store.createJob(newJob(steps: 3))
            let steps = try await store.steps(jobID: job.id)
            #expect(steps.map(\.orderNum) == [1, 2, 3] && steps.allSatisfy { $0.status == .pending })

            try await store.startStep(id: steps[0].id, at: Date(), processGroup: nil)
            try await store.recordProcessGroup(stepID: steps[0].id, processGroup: 31337)
            try await store.finishStep(id: steps[0].id, status: .failed, exitCode: 3, at: Date())
            try await store.skipPendingSteps(jobID: job.id, at: Date())

            let first = try #require(try await store.step(id: steps[0].id))
            #expect(first.status == .failed && first.exitCode == 3 && first.startedAt != nil && first.finishedAt != nil)
            #expect(try await store.steps(jobID: job.id).map(\.status) == [.failed, .skipped, .skipped])
            #expect(try await store.step(id: 999_999) == nil)
            #expect(try await store.output(stepID: steps[1].id).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func finishedJobsAreListedOldestFirstBeforeADate(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let old = try await store.createJob(newJob(steps: 1))
            let newer = try await store.createJob(newJob(steps: 1))
            let running = try await store.createJob(newJob(steps: 1))
            let now = Date()
            _ = try await store.finishJob(id: newer.id, status: .success, cancelled: false, at: now.addingTimeInterval(-60))
            _ = try await store.finishJob(id: old.id, status: .failed, cancelled: false, at: now.addingTimeInterval(-120))
            _ = try await store.claimJob(id: running.id, at: now)
            #expect(try await store.finishedJobIDs(before: now, limit: 10) == [old.id, newer.id])
            #expect(try await store.finishedJobIDs(before: now.addingTimeInterval(-90), limit: 10) == [old.id])
            #expect(try await store.finishedJobIDs(before: now, limit: 1) == [old.id])
        }
    }

    /// Many callers racing for one job: exactly one claim and one final status win, on the
    /// shared SQLite connection and on PostgreSQL's pool alike.
    @Test(arguments: StoreKind.allCases)
    func racingClaimsAndFinishesHaveOneWinner(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let job = try await store.createJob(newJob(steps: 1))
            let claims = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<12 { group.addTask { try await store.claimJob(id: job.id, at: Date()) } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(claims == 1)
            let finishes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<12 {
                    group.addTask {
                        try await store.finishJob(id: job.id, status: index.isMultiple(of: 2) ? .success : .failed, cancelled: false, at: Date())
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(finishes == 1)
        }
    }

    /// Replicas claiming from one queue: every pending job goes to exactly one owner, oldest
    /// first, with a lease.
    @Test(arguments: StoreKind.allCases)
    func concurrentClaimersShareTheQueueWithoutOverlap(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            var created: [Int] = []
            for _ in 0..<40 { created.append(try await store.createJob(newJob(steps: 1)).id) }
            let first = try await store.claimPendingJobs(owner: "a", limit: 3, at: Date(), leaseUntil: Date().addingTimeInterval(30))
            #expect(first.map(\.id) == Array(created.prefix(3)), "oldest first")
            #expect(first.allSatisfy { $0.status == .running })
            let claims = try await withThrowingTaskGroup(of: (String, [Int]).self) { group in
                for owner in ["a", "b", "c", "d"] {
                    group.addTask {
                        var mine: [Int] = []
                        while true {
                            let jobs = try await store.claimPendingJobs(owner: owner, limit: 2, at: Date(), leaseUntil: Date().addingTimeInterval(30))
                            if jobs.isEmpty { return (owner, mine) }
                            mine += jobs.map(\.id)
                        }
                    }
                }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            let all = first.map(\.id) + claims.values.flatMap { $0 }
            #expect(all.sorted() == created, "each job claimed once: \(claims)")
            for (owner, ids) in claims { for id in ids { #expect(try await store.owner(jobID: id) == owner) } }
            #expect(try await store.pendingJobs(limit: 10).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func leasesRenewCarryCancelRequestsAndExpireIntoSettlement(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let mine = try await store.createJob(newJob(steps: 1))
            let theirs = try await store.createJob(newJob(steps: 2))
            let now = Date()
            _ = try await store.claimPendingJobs(owner: "a", limit: 1, at: now, leaseUntil: now.addingTimeInterval(30))
            _ = try await store.claimPendingJobs(owner: "b", limit: 1, at: now, leaseUntil: now.addingTimeInterval(5))
            let theirSteps = try await store.steps(jobID: theirs.id)
            try await store.startStep(id: theirSteps[0].id, at: now, processGroup: nil)

            #expect(try await store.requestCancel(jobID: mine.id))
            let renewal = try await store.renewLeases(owner: "a", until: now.addingTimeInterval(60))
            #expect(renewal == LeaseRenewal(renewed: [mine.id], cancelRequested: [mine.id]))

            // Before b's lease ends nothing is settled; after, b's job is, and a's is kept.
            let early = try await store.settleInterruptedJobs(
                reason: "lease", at: now, scope: .leaseEndedBefore(now.addingTimeInterval(1), exceptOwner: "a"))
            #expect(early.jobIDs.isEmpty)
            let late = try await store.settleInterruptedJobs(
                reason: "lease ran out", at: now, scope: .leaseEndedBefore(now.addingTimeInterval(120), exceptOwner: "a"))
            #expect(late.jobIDs == [theirs.id] && late.steps.map(\.stepID) == [theirSteps[0].id])
            #expect(try await store.steps(jobID: theirs.id).map(\.status) == [.failed, .skipped])
            #expect(String(decoding: try await store.output(stepID: theirSteps[0].id), as: UTF8.self) == "[rapidflow] lease ran out\n")
            #expect(try await store.job(id: mine.id)?.status == .running)
            #expect(try await !store.requestCancel(jobID: theirs.id), "a finished job takes no cancel request")

            // A restarted "a" settles its own jobs even while their lease holds.
            let restart = try await store.settleInterruptedJobs(
                reason: "restart", at: now, scope: .ownedBy("a", orLeaseEndedBefore: now))
            #expect(restart.jobIDs == [mine.id])
            #expect(try await store.outputChunk(stepID: theirSteps[0].id, offset: 0) == Data("[rapidflow] lease ran out\n".utf8))
            #expect(try await store.outputChunk(stepID: theirSteps[0].id, offset: 3) == nil)
        }
    }

    /// Concurrent job creation keeps every job's steps and environment together.
    @Test(arguments: StoreKind.allCases)
    func concurrentCreatesKeepTheirRows(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let ids = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<10 { group.addTask { try await store.createJob(newJob(steps: 3)).id } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(Set(ids).count == 10)
            for id in ids {
                #expect(try await store.steps(jobID: id).map(\.orderNum) == [1, 2, 3])
                #expect(try await store.environment(jobID: id).map(\.key) == ["B", "A"])
            }
            try await store.ping()
        }
    }
}

@Suite("PostgreSQL store")
struct PostgresStoreTests {
    @Test func servicesMigratingTogetherApplyEachMigrationOnce() async throws {
        try await StoreFixture.with(.postgres) { fixture in
            let stores = [try await fixture.open(), try await fixture.open(), try await fixture.open()]
            try await withThrowingTaskGroup(of: Void.self) { group in
                for store in stores { group.addTask { try await store.migrate() } }
                try await group.waitForAll()
            }
            for store in stores { await store.close() }
            try await fixture.withStore { store in
                _ = try await store.createPipeline(name: "p", config: "c")
                #expect(try await store.pipelines(before: nil, limit: 5).count == 1)
            }
        }
    }

    @Test func aRefusedConnectionNamesTheServerButNotThePassword() async throws {
        var components = try #require(URLComponents(string: try PostgresScratchDatabase.adminURL()))
        components.password = "not-the-password-3141"
        let url = try #require(components.string)
        let error = await #expect(throws: RapidFlowError.self) {
            try await SQLJobStore.openPostgres(url: url, logger: Logger(label: "test"))
        }
        let message = try #require(error).message
        #expect(message.contains("\(components.host ?? ""):\(components.port ?? 0)/postgres"), "\(message)")
        #expect(message.contains("password authentication failed"), "\(message)")
        #expect(!message.contains("not-the-password-3141"))
    }

    @Test func callsOnADatabaseThatWentAwayFailWithinTheLeaseTimeout() async throws {
        let database = try await PostgresScratchDatabase.create()
        let leaseTimeout = Duration.seconds(3)
        let store = try await SQLJobStore.openPostgres(url: database.url, logger: Logger(label: "test"), leaseTimeout: leaseTimeout)
        // The behaviour is that a call ends at all, not how punctually: a generous margin, as
        // the suite runs on two loaded cores.
        let bound = leaseTimeout + .seconds(30)
        do {
            try await store.migrate()
            try await database.drop()
            // The first call may meet a connection the drop closed; the next waits for a new
            // one, which the pool never gets, and gives up at the lease timeout.
            var started = ContinuousClock.now
            await #expect(throws: (any Error).self) { try await store.ping() }
            #expect(ContinuousClock.now - started < bound)
            started = ContinuousClock.now
            await #expect(throws: PostgresLeaseTimeout.self) { try await store.ping() }
            #expect(ContinuousClock.now - started >= leaseTimeout - .milliseconds(100), "it waited for the lease timeout")
            #expect(ContinuousClock.now - started < bound)
            await store.close()
        } catch {
            await store.close()
            try? await database.drop()
            throw error
        }
    }

    @Test func aURLWithoutAUserIsRejectedWithoutEchoingIt() async throws {
        let error = await #expect(throws: RapidFlowError.self) {
            try await SQLJobStore.openPostgres(url: "postgres://127.0.0.1:1/db?secret=hunter2", logger: Logger(label: "test"))
        }
        #expect(error?.message.contains("hunter2") == false)
    }
}
