import Foundation
import RapidFlowCore

/// What live followers of a job receive, in order.
enum JobEvent: Sendable {
    case stepStarted(Step)
    case log(stepID: Int, offset: Int, data: Data)
    case stepFinished(stepID: Int, status: StepStatus, exitCode: Int?)
    case jobFinished(JobStatus)
    /// Events of this job may have been written without being announced here: read the store
    /// again (the live stream goes on).
    case recheck
}

/// Hands a job's events to its live followers from memory, as they happen.
///
/// Each follower has its own bounded buffer: a follower that falls behind is told so
/// (`overflowed`) and catches up from the store, and never slows the step or the others.
actor LogBroadcaster {
    struct Subscription: Sendable {
        let id: UUID
        let events: AsyncStream<JobEvent>
    }

    private var followers: [Int: [UUID: AsyncStream<JobEvent>.Continuation]] = [:]
    private let bufferLimit: Int
    /// Set on graceful shutdown: streams end and no new follower is taken.
    private(set) var isClosed = false

    /// Where events also go for followers on other replicas; nil when none share the store.
    private let outbox: ClusterOutbox?
    /// Jobs other replicas have followers of, and which replicas: only their events are sent.
    private var followedByOthers: [Int: Set<String>] = [:]
    /// Jobs this replica told the others it follows (still followed here, or about to be again
    /// after a resync).
    private var announced: Set<Int> = []

    init(bufferLimit: Int = 512, outbox: ClusterOutbox? = nil) {
        self.bufferLimit = bufferLimit
        self.outbox = outbox
    }

    /// Starts following `jobID`; events published from now on are delivered. Nil once closed.
    func subscribe(jobID: Int) -> Subscription? {
        guard !isClosed else { return nil }
        let id = UUID()
        let (stream, continuation) = AsyncStream<JobEvent>.makeStream(bufferingPolicy: .bufferingOldest(bufferLimit))
        followers[jobID, default: [:]][id] = continuation
        if announced.insert(jobID).inserted, let outbox, outbox.hasPeers { outbox.send(.follow, job: jobID) }
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(jobID: jobID, id: id) }
        }
        return Subscription(id: id, events: stream)
    }

    /// Ends every follower's stream: the service is shutting down.
    func close() {
        isClosed = true
        for continuation in followers.values.flatMap(\.values) { continuation.finish() }
        followers = [:]
    }

    func unsubscribe(jobID: Int, id: UUID) {
        followers[jobID]?[id]?.finish()
        followers[jobID]?[id] = nil
        if followers[jobID]?.isEmpty == true { followers[jobID] = nil }
        if followers[jobID] == nil, announced.remove(jobID) != nil, let outbox, outbox.hasPeers { outbox.send(.unfollow, job: jobID) }
    }

    /// Hands an event of a job this replica runs to its followers here and, when another
    /// replica follows the job, there.
    func publish(jobID: Int, event: JobEvent) {
        if let outbox, followedByOthers[jobID] != nil { outbox.send(jobID: jobID, event: event) }
        if case .jobFinished = event { followedByOthers[jobID] = nil }
        publishLocally(jobID: jobID, event: event)
    }

    /// Jobs this replica has followers of, as announced to the others.
    func followedJobs() -> [Int] { Array(announced) }

    /// `replica` has followers of `jobID`: its events go there too from now on.
    func followedElsewhere(jobID: Int, by replica: String) {
        followedByOthers[jobID, default: []].insert(replica)
    }

    func unfollowedElsewhere(jobID: Int, by replica: String) {
        followedByOthers[jobID]?.remove(replica)
        if followedByOthers[jobID]?.isEmpty == true { followedByOthers[jobID] = nil }
    }

    /// The job ended on another replica: nothing about it is kept.
    func jobEndedElsewhere(jobID: Int) {
        followedByOthers[jobID] = nil
        if followers[jobID] == nil { announced.remove(jobID) }
    }

    /// Whether another replica follows `jobID` (its events are sent).
    func isFollowedElsewhere(jobID: Int) -> Bool { followedByOthers[jobID] != nil }

    /// Tells the job's followers to read the store again, keeping their live streams.
    func recheck(jobID: Int) {
        publishLocally(jobID: jobID, event: .recheck)
    }

    func hasFollowers(jobID: Int) -> Bool { followers[jobID] != nil }

    /// Ends the job's followers' streams: they catch up from the store (an event from another
    /// replica was not in the store as announced, or some may have been missed), or, once the
    /// job is over, end.
    func resync(jobID: Int) {
        for continuation in followers[jobID]?.values ?? [:].values { continuation.finish() }
        followers[jobID] = nil
    }

    func resyncAll() {
        for jobID in Array(followers.keys) { resync(jobID: jobID) }
    }

    /// Hands an event to this replica's followers only.
    func publishLocally(jobID: Int, event: JobEvent) {
        guard let subscribers = followers[jobID] else { return }
        for (id, continuation) in subscribers {
            if case .dropped = continuation.yield(event) {
                // Too far behind: end its stream; the follower resumes from the store.
                continuation.finish()
                followers[jobID]?[id] = nil
            }
        }
        // The job is over: its streams end.
        if case .jobFinished = event {
            resync(jobID: jobID)
            announced.remove(jobID)
        }
    }
}
