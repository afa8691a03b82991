import Foundation
import RapidFlowCore
import RapidFlowStore

/// What a log stream client receives, after deduplication.
enum LogStreamEvent: Sendable {
    case stepStarted(Step)
    case log(stepID: Int, offset: Int, data: Data)
    case stepFinished(stepID: Int, status: StepStatus, exitCode: Int?)
    case jobFinished(JobStatus)
    /// The service is shutting down; the job goes on being recorded.
    case serviceStopping
}

/// Follows one job's log: first what the store already has, then live events, with no gap
/// and no duplicate at the seam.
///
/// It subscribes before reading the store, and every change is stored before it is
/// published, so each event is in the snapshot, in the live stream, or in both; byte
/// offsets and step sets drop what was already sent. A follower that falls behind loses
/// its live stream and simply starts over from the store at its own cursor.
struct JobLogFollower {
    let store: any JobStore
    let broadcaster: LogBroadcaster

    /// Emits the log of `jobID` from the step after `sinceStepID`; with `follow`, until the job ends.
    func run(jobID: Int, sinceStepID: Int?, follow: Bool, emit: (LogStreamEvent) async throws -> Void) async throws {
        var cursor = Cursor(sinceStepID: sinceStepID)
        while true {
            let subscription = follow ? await broadcaster.subscribe(jobID: jobID) : nil
            defer {
                if let subscription { Task { await broadcaster.unsubscribe(jobID: jobID, id: subscription.id) } }
            }
            if let status = try await catchUp(jobID: jobID, cursor: &cursor, emit: emit) {
                try await emit(.jobFinished(status))
                return
            }
            guard follow else { return }
            guard let subscription else {
                try await emit(.serviceStopping)
                return
            }
            for await event in subscription.events {
                switch event {
                case .jobFinished(let status):
                    try await emit(.jobFinished(status))
                    return
                case .recheck:
                    if let status = try await catchUp(jobID: jobID, cursor: &cursor, emit: emit) {
                        try await emit(.jobFinished(status))
                        return
                    }
                    continue
                default:
                    break
                }
                guard try await cursor.apply(event, emit) else { break }
            }
            if await broadcaster.isClosed {
                try await emit(.serviceStopping)
                return
            }
            // Fell behind (or a gap showed): catch up from the store.
        }
    }

    /// Emits what the store has beyond `cursor`; the job's status when it is final.
    private func catchUp(jobID: Int, cursor: inout Cursor, emit: (LogStreamEvent) async throws -> Void) async throws -> JobStatus? {
        let job = try await store.requireJob(id: jobID)
        let steps = try await store.steps(jobID: jobID)
        let outputs = try await store.outputs(jobID: jobID)
        for step in steps where step.startedAt != nil {
            try await cursor.apply(.stepStarted(step), emit)
            if let output = outputs[step.id] {
                try await cursor.apply(.log(stepID: step.id, offset: 0, data: output), emit)
            }
            if step.status.isFinal {
                try await cursor.apply(.stepFinished(stepID: step.id, status: step.status, exitCode: step.exitCode), emit)
            }
        }
        return job.status.isFinal ? job.status : nil
    }

    /// What this follower has sent so far.
    struct Cursor {
        let sinceStepID: Int?
        var started: Set<Int> = []
        var finished: Set<Int> = []
        var sentBytes: [Int: Int] = [:]

        func includes(_ stepID: Int) -> Bool { sinceStepID.map { stepID > $0 } ?? true }

        /// Emits what `event` adds; false when it shows a gap (the follower must resync).
        mutating func apply(_ event: JobEvent, _ emit: (LogStreamEvent) async throws -> Void) async throws -> Bool {
            switch event {
            case .stepStarted(let step):
                guard includes(step.id), started.insert(step.id).inserted else { return true }
                try await emit(.stepStarted(step))
            case .log(let stepID, let offset, let data):
                guard includes(stepID) else { return true }
                let sent = sentBytes[stepID, default: 0]
                let end = offset + data.count
                guard end > sent else { return true }
                guard offset <= sent else { return false }
                sentBytes[stepID] = end
                try await emit(.log(stepID: stepID, offset: sent, data: data.subdata(in: data.startIndex + (sent - offset)..<data.endIndex)))
            case .stepFinished(let stepID, let status, let exitCode):
                guard includes(stepID), finished.insert(stepID).inserted else { return true }
                try await emit(.stepFinished(stepID: stepID, status: status, exitCode: exitCode))
            case .jobFinished, .recheck:
                break
            }
            return true
        }
    }
}
