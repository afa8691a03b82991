import Foundation
import RapidFlowCore
import Testing

@testable import RapidFlowStore

/// The outbox: the triggers write one delivery per matching webhook with the change itself,
/// on SQLite and PostgreSQL alike.
@Suite("Webhook outbox on SQLite and PostgreSQL")
struct WebhookStoreTests {
    func newJob(pipelineID: Int = 1, owner: String? = nil) -> NewJob {
        var snapshot = JobSnapshot(branch: "main")
        snapshot.owner = owner
        return NewJob(
            kind: .pipeline, pipelineID: pipelineID, pipelineName: "p", snapshot: snapshot,
            steps: [StepPlan(type: .bash, content: "true", phase: .build), StepPlan(type: .bash, content: "true", phase: .test)],
            environment: [])
    }

    @Test(arguments: StoreKind.allCases)
    func eachChangeWritesItsDeliveriesForTheWebhooksThatTakeIt(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            // Nothing is written while no webhook exists.
            let before = try await store.createJob(newJob())
            let all = try await store.createWebhook(
                url: "http://127.0.0.1/all", events: ["job.created", "job.started", "job.finished", "step.finished"], owner: nil,
                pipelineID: nil, sealedSecret: Data([1]), at: Date())
            let teamA = try await store.createWebhook(
                url: "http://127.0.0.1/a", events: ["job.finished"], owner: "team-a", pipelineID: nil, sealedSecret: Data([1]), at: Date())
            let pipeline2 = try await store.createWebhook(
                url: "http://127.0.0.1/p2", events: ["job.created"], owner: nil, pipelineID: 2, sealedSecret: Data([1]), at: Date())
            #expect(try await store.deliveries(webhookID: all.id, limit: 50).isEmpty, "\(before.id) was made before any webhook")

            let job = try await store.createJob(newJob(owner: "team-a"))
            let claimed = try await store.claimPendingJobs(owner: "replica", limit: 1, at: Date(), leaseUntil: Date().addingTimeInterval(30))
            #expect(claimed.map(\.id) == [before.id], "the older job first")
            let second = try await store.claimPendingJobs(owner: "replica", limit: 1, at: Date(), leaseUntil: Date().addingTimeInterval(30))
            #expect(second.map(\.id) == [job.id])
            let steps = try await store.steps(jobID: job.id)
            try await store.startStep(id: steps[0].id, at: Date(), processGroup: nil)
            try await store.finishStep(id: steps[0].id, status: .success, exitCode: 0, at: Date())
            // Skipped steps are not announced.
            try await store.skipPendingSteps(jobID: job.id, at: Date())
            #expect(try await store.finishJob(id: job.id, status: .failed, cancelled: false, at: Date()))
            // A second end changes nothing and announces nothing.
            #expect(try await !store.finishJob(id: job.id, status: .success, cancelled: false, at: Date()))

            let forJob = try await store.deliveries(webhookID: all.id, limit: 50).filter { $0.jobID == job.id }.reversed().map(\.event)
            #expect(forJob == ["job.created", "job.started", "step.finished", "job.finished"])
            #expect(try await store.deliveries(webhookID: teamA.id, limit: 50).map(\.jobID) == [job.id], "its owner's end only")
            #expect(try await store.deliveries(webhookID: pipeline2.id, limit: 50).isEmpty, "another pipeline's")

            // One claim takes, per webhook and job, only the oldest undelivered delivery.
            let now = Date()
            let taken = try await store.claimDeliveries(claimer: "r1", limit: 50, at: now, leaseUntil: now.addingTimeInterval(60))
            #expect(Set(taken.map { "\($0.webhookID)/\($0.jobID)" }).count == taken.count, "one per webhook and job")
            #expect(try await store.claimDeliveries(claimer: "r2", limit: 50, at: now, leaseUntil: now.addingTimeInterval(60)).isEmpty, "claimed")
            for delivery in taken {
                try await store.recordDeliveryAttempt(id: delivery.id, outcome: .delivered, status: 200, error: nil, durationMilliseconds: 1, at: now)
            }
            let next = try await store.claimDeliveries(claimer: "r2", limit: 50, at: now, leaseUntil: now.addingTimeInterval(60))
            #expect(next.allSatisfy { $0.event != "job.created" } && !next.isEmpty, "the next of each job's deliveries")

            // A disabled webhook is told nothing more; finished deliveries are pruned, pending kept.
            try await store.disableWebhook(id: all.id, reason: "gone", at: Date())
            _ = try await store.createJob(newJob())
            #expect(try await store.deliveries(webhookID: all.id, limit: 50).allSatisfy { $0.state != .pending })
            let pruned = try await store.pruneWebhookDeliveries(before: Date().addingTimeInterval(60))
            #expect(pruned >= taken.count)
            #expect(try await store.deliveries(webhookID: all.id, limit: 50).isEmpty)
        }
    }
}
