import Foundation
import Logging
import RapidFlowCore
import Testing

@testable import RapidFlowStore

@Suite("SQL store on SQLite")
struct SQLJobStoreTests {
    func withStore<T>(path: String? = nil, _ body: (SQLJobStore) async throws -> T) async throws -> T {
        let file = path ?? FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString).sqlite").path
        let store = try await SQLJobStore.openSQLite(path: file, logger: Logger(label: "test"))
        do {
            try await store.migrate()
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }

    func newJob(steps: Int = 2) -> NewJob {
        NewJob(
            kind: .pipeline, pipelineID: 1, pipelineName: "p", snapshot: JobSnapshot(branch: "main"),
            steps: (1...steps).map { StepPlan(type: "bash", content: "echo \($0)", phase: .build) },
            environment: [("B", "2"), ("A", "1")])
    }

    @Test func migrationsAreIdempotentAndDataSurvivesReopening() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString).sqlite").path
        let jobID = try await withStore(path: path) { store in
            try await store.migrate()
            return try await store.createJob(newJob()).id
        }
        try await withStore(path: path) { store in
            let job = try #require(try await store.job(id: jobID))
            #expect(job.snapshot.branch == "main")
            #expect(try await store.environment(jobID: jobID).map(\.key) == ["B", "A"], "env keeps its order")
        }
    }

    @Test func outputChunksConcatenateInOffsetOrder() async throws {
        try await withStore { store in
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

    @Test func aFinalStatusIsReachedOnce() async throws {
        try await withStore { store in
            let job = try await store.createJob(newJob())
            #expect(try await store.claimJob(id: job.id, at: Date()))
            #expect(try await !store.claimJob(id: job.id, at: Date()), "a job is claimed once")
            #expect(try await !store.cancelPendingJob(id: job.id, at: Date()), "a running job is not cancelled as pending")
            #expect(try await store.finishJob(id: job.id, status: .success, cancelled: false, at: Date()))
            #expect(try await !store.finishJob(id: job.id, status: .failed, cancelled: false, at: Date()))
            #expect(try await store.job(id: job.id)?.status == .success)
        }
    }

    @Test func interruptedJobsAreSettledFailedWithTheReasonInTheOutput() async throws {
        try await withStore { store in
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

    @Test func listsPageNewestFirst() async throws {
        try await withStore { store in
            var ids: [Int] = []
            for _ in 0..<5 { ids.append(try await store.createJob(newJob(steps: 1)).id) }
            #expect(try await store.jobs(JobFilter(limit: 2)).map(\.id) == [ids[4], ids[3]])
            #expect(try await store.jobs(JobFilter(before: ids[3], limit: 2)).map(\.id) == [ids[2], ids[1]])
            #expect(try await store.pendingJobs(limit: 2).map(\.id) == [ids[0], ids[1]], "the queue is FIFO")
        }
    }
}
