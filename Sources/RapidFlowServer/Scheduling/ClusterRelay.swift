import Foundation
import Logging
import RapidFlowCore
import RapidFlowStore
import ServiceLifecycle
import Synchronization

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
        /// A replica started listening (or listens again): tell it who you are and what you follow.
        case hello
        /// The answer to `hello`: this replica shares the store too.
        case present
        /// The sender has live followers of `job`: send its events.
        case follow
        /// The sender's followers of `job` are gone.
        case unfollow
        /// The answer to `follow`, addressed `to` its sender: from now on this replica sends the
        /// job's events, and whatever it wrote before is in the store.
        case following
    }

    var origin: String
    var kind: Kind
    var job: Int
    var step: Int?
    var offset: Int?
    var status: String?
    var exitCode: Int?
    /// The one replica the message is for (`following`); nil for every replica.
    var to: String?
}

/// Where a replica's outgoing messages wait to be sent, in order.
///
/// A `NOTIFY` costs a round trip and wakes every listening replica, so only what another
/// replica needs is sent: job events only for jobs another replica follows (see
/// `LogBroadcaster`), and wake-ups only once another replica has said it is there.
final class ClusterOutbox: Sendable {
    let origin: String
    private let continuation: AsyncStream<ClusterMessage>.Continuation
    let messages: AsyncStream<ClusterMessage>
    /// The other replicas heard from since start (by their `hello`, `present` or anything else).
    private let peers = Mutex<Set<String>>([])

    init(origin: String) {
        self.origin = origin
        (messages, continuation) = AsyncStream<ClusterMessage>.makeStream(bufferingPolicy: .bufferingNewest(65_536))
    }

    func send(
        _ kind: ClusterMessage.Kind, job: Int, step: Int? = nil, offset: Int? = nil, status: String? = nil, exitCode: Int? = nil,
        to: String? = nil
    ) {
        continuation.yield(
            ClusterMessage(origin: origin, kind: kind, job: job, step: step, offset: offset, status: status, exitCode: exitCode, to: to))
    }

    /// New pending jobs: the other replicas look for work, if there are any.
    func sendWake() {
        guard hasPeers else { return }
        send(.wake, job: 0)
    }

    /// Another replica shares the store; true when it was not known before.
    @discardableResult
    func heard(from replica: String) -> Bool {
        guard replica != origin else { return false }
        return peers.withLock { $0.insert(replica).inserted }
    }

    var hasPeers: Bool { peers.withLock { !$0.isEmpty } }

    /// The message for a job event followers on other replicas need.
    func send(jobID: Int, event: JobEvent) {
        switch event {
        case .stepStarted(let step): send(.stepStarted, job: jobID, step: step.id)
        case .log(let stepID, let offset, _): send(.log, job: jobID, step: stepID, offset: offset)
        case .stepFinished(let stepID, let status, let exitCode):
            send(.stepFinished, job: jobID, step: stepID, status: status.rawValue, exitCode: exitCode)
        case .jobFinished(let status): send(.jobFinished, job: jobID, status: status.rawValue)
        case .recheck: break
        }
    }

    func finish() { continuation.finish() }
}

/// Carries job events, cancels and wake-ups between the replicas on one PostgreSQL store.
///
/// Outgoing: what this replica's broadcaster and scheduler put in the outbox, sent in order
/// as `NOTIFY`s. Incoming: every other replica's messages, as they arrive. Log messages carry
/// where the output is stored, not the output itself (a notification holds 8,000 bytes); the
/// receiver reads that piece from the store. After a reconnect every follower catches up from
/// the store, so a notification missed while the connection was down loses nothing.
///
/// Job events go only to replicas that follow the job. A replica whose first follower of a
/// job arrives sends `follow`; every replica records it and answers `following`, and the
/// follower reads the store again on that answer: whatever the answering replica wrote before
/// it knew is in the store by then, and whatever it writes after is announced. A replica
/// that (re)connects says `hello`, and the others answer `present` and send their `follow`s
/// again, so a replica started later, or one that missed messages, learns what is followed.
/// A job's end drops what was recorded about it.
struct ClusterRelay: Service {
    let notifier: any ClusterNotifier
    let outbox: ClusterOutbox
    let store: any JobStore
    let broadcaster: LogBroadcaster
    let scheduler: JobScheduler
    let metrics: ServiceMetrics
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
                        metrics.recordClusterMessage(kind: message.kind.rawValue)
                    } catch {
                        logger.warning("could not notify the other replicas", metadata: ["kind": "\(message.kind.rawValue)", "error": "\(error)"])
                    }
                }
            }
            group.addTask {
                let decoder = JSONDecoder()
                let incoming = notifier.notifications {
                    // (Re)connected: whatever was missed is in the store; the others may not
                    // know this replica or what it follows.
                    outbox.send(.hello, job: 0)
                    for jobID in await broadcaster.followedJobs() { outbox.send(.follow, job: jobID) }
                    await broadcaster.resyncAll()
                    scheduler.wake()
                }
                for await payload in incoming {
                    guard let message = try? decoder.decode(ClusterMessage.self, from: Data(payload.utf8)),
                        message.origin != outbox.origin, message.to == nil || message.to == outbox.origin
                    else { continue }
                    if outbox.heard(from: message.origin), message.kind != .hello {
                        // A replica this one did not know: its followers may have started while
                        // none was known, so their `follow` was never sent.
                        for jobID in await broadcaster.followedJobs() { outbox.send(.follow, job: jobID) }
                    }
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
        case .hello:
            outbox.send(.present, job: 0)
            for jobID in await broadcaster.followedJobs() { outbox.send(.follow, job: jobID) }
        case .present:
            break
        case .follow:
            await broadcaster.followedElsewhere(jobID: message.job, by: message.origin)
            outbox.send(.following, job: message.job, to: message.origin)
        case .unfollow:
            await broadcaster.unfollowedElsewhere(jobID: message.job, by: message.origin)
        case .following:
            await broadcaster.recheck(jobID: message.job)
        case .stepStarted, .log, .stepFinished, .jobFinished:
            if message.kind == .jobFinished { await broadcaster.jobEndedElsewhere(jobID: message.job) }
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
        case .wake, .cancel, .hello, .present, .follow, .unfollow, .following:
            return nil
        }
    }
}
