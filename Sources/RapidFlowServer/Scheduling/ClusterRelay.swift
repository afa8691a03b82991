import Foundation
import Logging
import RapidFlowCore
import RapidFlowStore
import ServiceLifecycle

/// What one replica tells the others that share its store.
struct ClusterMessage: Codable, Sendable, Equatable {
    enum Kind: String, Codable, Sendable {
        /// New pending jobs: look for work.
        case wake
        /// Cancel this job if you run it.
        case cancel
        case stepStarted = "step_started"
        /// Output stored at `offset` of `step` (the receiver reads it from the store).
        case log
        case stepFinished = "step_finished"
        case jobFinished = "job_finished"
    }

    var origin: String
    var kind: Kind
    var job: Int
    var step: Int?
    var offset: Int?
    var status: String?
    var exitCode: Int?
}

/// Where a replica's outgoing messages wait to be sent, in order.
struct ClusterOutbox: Sendable {
    let origin: String
    private let continuation: AsyncStream<ClusterMessage>.Continuation
    let messages: AsyncStream<ClusterMessage>

    init(origin: String) {
        self.origin = origin
        (messages, continuation) = AsyncStream<ClusterMessage>.makeStream(bufferingPolicy: .bufferingNewest(65_536))
    }

    func send(_ kind: ClusterMessage.Kind, job: Int, step: Int? = nil, offset: Int? = nil, status: String? = nil, exitCode: Int? = nil) {
        continuation.yield(ClusterMessage(origin: origin, kind: kind, job: job, step: step, offset: offset, status: status, exitCode: exitCode))
    }

    /// The message for a job event followers on other replicas need.
    func send(jobID: Int, event: JobEvent) {
        switch event {
        case .stepStarted(let step): send(.stepStarted, job: jobID, step: step.id)
        case .log(let stepID, let offset, _): send(.log, job: jobID, step: stepID, offset: offset)
        case .stepFinished(let stepID, let status, let exitCode):
            send(.stepFinished, job: jobID, step: stepID, status: status.rawValue, exitCode: exitCode)
        case .jobFinished(let status): send(.jobFinished, job: jobID, status: status.rawValue)
        }
    }

    func finish() { continuation.finish() }
}

/// Carries job events, cancels and wake-ups between the replicas on one PostgreSQL store.
///
/// Outgoing: what this replica's broadcaster and scheduler put in the outbox, sent in order
/// as `NOTIFY`s. Incoming: every other replica's messages, as they arrive. Log messages carry
/// where the output is stored, not the output itself (a notification holds 8,000 bytes); the
/// receiver reads that piece from the store only when it has followers of the job. After a
/// reconnect every follower catches up from the store, so a notification missed while the
/// connection was down loses nothing.
struct ClusterRelay: Service {
    let notifier: any ClusterNotifier
    let outbox: ClusterOutbox
    let store: any JobStore
    let broadcaster: LogBroadcaster
    let scheduler: JobScheduler
    let logger: Logger

    func run() async throws {
        let notifier = notifier
        let broadcaster = broadcaster
        let scheduler = scheduler
        await withDiscardingTaskGroup { group in
            group.addTask {
                let encoder = JSONEncoder()
                for await message in outbox.messages {
                    guard let payload = try? String(decoding: encoder.encode(message), as: UTF8.self) else { continue }
                    do {
                        try await notifier.notify(payload)
                    } catch {
                        logger.warning("could not notify the other replicas", metadata: ["kind": "\(message.kind.rawValue)", "error": "\(error)"])
                    }
                }
            }
            group.addTask {
                let decoder = JSONDecoder()
                let incoming = notifier.notifications {
                    // (Re)connected: whatever was missed is in the store.
                    await broadcaster.resyncAll()
                    scheduler.wake()
                }
                for await payload in incoming {
                    guard let message = try? decoder.decode(ClusterMessage.self, from: Data(payload.utf8)),
                        message.origin != outbox.origin
                    else { continue }
                    await receive(message)
                }
            }
            try? await gracefulShutdown()
            outbox.finish()
            group.cancelAll()
        }
    }

    private func receive(_ message: ClusterMessage) async {
        switch message.kind {
        case .wake:
            scheduler.wake()
        case .cancel:
            await scheduler.cancelRequested(jobID: message.job)
        case .stepStarted, .log, .stepFinished, .jobFinished:
            guard await broadcaster.hasFollowers(jobID: message.job) else { return }
            do {
                if let event = try await event(for: message) {
                    await broadcaster.publishLocally(jobID: message.job, event: event)
                } else {
                    // Not in the store as announced (cut, or a later write): read it all again.
                    await broadcaster.resync(jobID: message.job)
                }
            } catch {
                await broadcaster.resync(jobID: message.job)
            }
        }
    }

    private func event(for message: ClusterMessage) async throws -> JobEvent? {
        switch message.kind {
        case .stepStarted:
            guard let stepID = message.step, let step = try await store.step(id: stepID) else { return nil }
            return .stepStarted(step)
        case .log:
            guard let stepID = message.step, let offset = message.offset,
                let data = try await store.outputChunk(stepID: stepID, offset: offset)
            else { return nil }
            return .log(stepID: stepID, offset: offset, data: data)
        case .stepFinished:
            guard let stepID = message.step, let status = message.status.flatMap(StepStatus.init(rawValue:)) else { return nil }
            return .stepFinished(stepID: stepID, status: status, exitCode: message.exitCode)
        case .jobFinished:
            return message.status.flatMap(JobStatus.init(rawValue:)).map { .jobFinished($0) }
        case .wake, .cancel:
            return nil
        }
    }
}
