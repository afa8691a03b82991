/// Follows one Nomad batch job with blocking queries until its outcome is known, and stops it.
///
/// Blocking queries answer when the data changed past `index` or after `wait`; the answer's
/// `X-Nomad-Index` is the next `index`. No loop here sleeps: each turn waits inside Nomad.
public struct NomadJobWatcher: Sendable {
    public let client: NomadClient
    /// The Nomad job ID (`NomadJobSpec.id`).
    public let jobID: String
    /// The evaluation the registration started; nil when Nomad gave none.
    public let evaluationID: String?
    /// The longest a single blocking query waits (Nomad allows up to 10 minutes).
    public let wait: Duration
    /// Added to the grace period when `stop` waits for the allocations to end.
    public let stopMargin: Duration

    public init(client: NomadClient, jobID: String, evaluationID: String?, wait: Duration = .seconds(300), stopMargin: Duration = .seconds(10)) {
        self.client = client
        self.jobID = jobID
        self.evaluationID = evaluationID.flatMap { $0.isEmpty ? nil : $0 }
        self.wait = wait
        self.stopMargin = stopMargin
    }

    /// Waits until the job's allocation has ended (or the job could not be placed) and says what
    /// that means for the RapidFlow job. Ends early only through task cancellation.
    public func outcome() async throws -> NomadJobOutcome {
        if let evaluationID, let reason = try await placementFailure(evaluationID) {
            return .notPlaced(reason: reason)
        }
        var index: UInt64?
        var sawAllocation = false
        while true {
            let answer = try await client.jobAllocations(jobID, index: index, wait: wait)
            if let current = Self.current(in: answer.value) {
                sawAllocation = true
                // A replacement Nomad made for an ended allocation is the job's run now; a lost
                // node is reported at once instead, since a replacement would run the build twice.
                let replaced = current.isClientTerminal && !current.isNodeGone && !(current.nextAllocation ?? "").isEmpty
                if !replaced, let outcome = NomadJobOutcome(allocation: current) { return outcome }
            } else if sawAllocation {
                // Purged while we watched: only a stop does that.
                return .cancelled(reason: "the Nomad job \(jobID) was removed")
            }
            index = Self.nextIndex(after: index, answered: answer.index)
        }
    }

    /// Stops the job gracefully and removes it: `DELETE /v1/job/:id` (Nomad sends `KillSignal`,
    /// waits `KillTimeout`, then kills), waits for every allocation to end, at most `grace` plus
    /// `stopMargin`, then `DELETE ?purge=true` so the unique job does not linger until GC.
    /// Also the way to remove a job whose outcome is already known: its allocations have ended.
    public func stop(grace: Duration) async throws {
        _ = try await client.deregisterJob(jobID, purge: false)
        let deadline = ContinuousClock.now + grace + stopMargin
        var index: UInt64?
        while ContinuousClock.now < deadline {
            let answer = try await client.jobAllocations(jobID, index: index, wait: min(wait, deadline - ContinuousClock.now))
            // A lost or disconnected node's allocation will not report an end; nothing to wait for.
            if answer.value.allSatisfy({ $0.isClientTerminal || $0.isNodeGone }) { break }
            index = Self.nextIndex(after: index, answered: answer.index)
        }
        _ = try await client.deregisterJob(jobID, purge: true)
    }

    /// Follows the registration's evaluation until the scheduler has handled it, and returns why
    /// nothing could be placed, if so. A job that does not fit would otherwise wait unseen behind a
    /// blocked evaluation while its allocations list stays empty.
    private func placementFailure(_ evaluationID: String) async throws -> String? {
        var index: UInt64?
        while true {
            let answer: NomadResponse<NomadEvaluation>
            do {
                answer = try await client.evaluation(evaluationID, index: index, wait: wait)
            } catch let error as NomadError where error.isNotFound {
                return nil  // already collected: the allocations tell the rest
            }
            if answer.value.status != "pending" { return NomadJobOutcome.placementFailure(answer.value) }
            index = Self.nextIndex(after: index, answered: answer.index)
        }
    }

    /// The allocation that speaks for the job: the newest by `CreateIndex`, then along
    /// `NextAllocation` to its replacement while that is listed.
    static func current(in allocations: [NomadAllocation]) -> NomadAllocation? {
        guard var current = allocations.max(by: { $0.createIndex < $1.createIndex }) else { return nil }
        let byID = Dictionary(allocations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var visited: Set<String> = [current.id]
        while let next = current.nextAllocation, let replacement = byID[next], visited.insert(next).inserted {
            current = replacement
        }
        return current
    }

    /// The index for the next blocking query. One that went backwards (a new leader, a restored
    /// snapshot) starts over; 0 would make the next query return at once, so it is at least 1.
    static func nextIndex(after previous: UInt64?, answered: UInt64) -> UInt64 {
        guard let previous, answered < previous else { return max(answered, 1) }
        return 1
    }
}
