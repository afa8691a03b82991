/// What became of a RapidFlow job's Nomad batch job, read from its allocation or evaluation.
///
/// Nomad's roll-up alone misleads: a stopped allocation usually ends `complete`, so the desired
/// status is read first, and only a `Terminated` exit code says how the runner itself ended.
public enum NomadJobOutcome: Sendable, Equatable {
    /// The runner exited 0 on an allocation that was meant to run.
    case succeeded
    /// The runner ran and exited non-zero (or was killed by a signal: 128 + the signal).
    case failed(exitCode: Int, reason: String)
    /// The task never ran to an exit: its driver, setup, validation or artifact download failed.
    case infrastructureFailure(reason: String)
    /// The node running the allocation went away (`lost`, or `unknown` while disconnected).
    case nodeLost(reason: String)
    /// No node could take the job: the scheduler's reasons, naming the filtering constraint or
    /// the exhausted resource.
    case notPlaced(reason: String)
    /// The allocation was stopped: by RapidFlow's own DELETE, or by someone else.
    case cancelled(reason: String)

    /// The sentence to show on the RapidFlow job; nil for success.
    public var failureReason: String? {
        switch self {
        case .succeeded: nil
        case .failed(_, let reason), .infrastructureFailure(let reason), .nodeLost(let reason), .notPlaced(let reason),
            .cancelled(let reason):
            reason
        }
    }

    /// Task events that end a task before its process could exit.
    static let infrastructureEventTypes: Set<String> = ["Driver Failure", "Setup Failure", "Failed Validation", "Failed Artifact Download"]

    /// The outcome an allocation has reached; nil while it may still change.
    public init?(allocation: NomadAllocation) {
        let name = "Nomad allocation \(allocation.id.prefix(8))"
        if allocation.isNodeGone {
            let node = allocation.nodeID.map { "node \($0.prefix(8))" } ?? "its node"
            self = .nodeLost(reason: "\(name) is \(allocation.clientStatus): \(node) went away".joinedWith(allocation.clientDescription))
            return
        }
        guard allocation.isClientTerminal else { return nil }
        switch allocation.desiredStatus {
        case "stop":
            self = .cancelled(reason: "\(name) was stopped".joinedWith(allocation.desiredDescription))
            return
        case "evict":
            self = .infrastructureFailure(reason: "Nomad evicted \(name)".joinedWith(allocation.desiredDescription))
            return
        default: break
        }
        let states = allocation.taskStates ?? [:]
        guard let task = states[NomadJobSpec.taskName] ?? states.values.first else {
            self = .infrastructureFailure(reason: "\(name) ended \(allocation.clientStatus) without running its task".joinedWith(allocation.clientDescription))
            return
        }
        let terminated = task.events.last { $0.type == "Terminated" }
        if let terminated, let failure = Self.exitFailure(terminated) {
            self = failure
        } else if allocation.clientStatus == "complete", !task.failed {
            self = .succeeded
        } else if let event = task.events.last(where: { Self.infrastructureEventTypes.contains($0.type) }) {
            self = .infrastructureFailure(reason: event.type.joinedWith(event.explanation))
        } else {
            let last = task.events.last { $0.explanation != nil }
            self = .infrastructureFailure(
                reason: "\(name) failed".joinedWith(last.map { $0.type.joinedWith($0.explanation) } ?? allocation.clientDescription)
            )
        }
    }

    /// A non-zero exit, or death by a signal, from the `Terminated` event.
    private static func exitFailure(_ event: NomadTaskEvent) -> NomadJobOutcome? {
        let code = event.processExitCode ?? 0
        let signal = event.details?["signal"].flatMap { Int($0) } ?? event.signal ?? 0
        guard code != 0 || signal != 0 else { return nil }
        var reason = code != 0 ? "the runner exited with code \(code)" : "the runner was killed by signal \(signal)"
        if code != 0, signal != 0 { reason += " (signal \(signal))" }
        if event.details?["oom_killed"] == "true" { reason += ": out of memory" }
        if let message = event.details?["exit_message"], !message.isEmpty { reason += ": \(message)" }
        return .failed(exitCode: code != 0 ? code : 128 + signal, reason: reason)
    }

    /// Why an evaluation placed nothing, or nil when it did not fail to place.
    public static func placementFailure(_ evaluation: NomadEvaluation) -> String? {
        if let failed = evaluation.failedTaskGroupAllocations, !failed.isEmpty {
            return failed.sorted { $0.key < $1.key }
                .map { "no Nomad node could run task group \($0.key): " + describe($0.value) }
                .joined(separator: "; ")
        }
        let waiting = evaluation.status == "blocked" || (evaluation.relatedEvaluations ?? []).contains { $0.status == "blocked" }
        if waiting { return "Nomad is waiting for capacity to place the job".joinedWith(evaluation.statusDescription) }
        if evaluation.status == "failed" { return "the Nomad evaluation failed".joinedWith(evaluation.statusDescription) }
        return nil
    }

    /// The scheduler's metrics as one sentence, in the order Nomad's CLI lists them.
    private static func describe(_ metrics: NomadPlacementMetrics) -> String {
        var parts: [String] = []
        if (metrics.nodesEvaluated ?? 0) == 0 {
            let datacenters = (metrics.nodesAvailable ?? [:]).sorted { $0.key < $1.key }
            let listed = datacenters.map { "\($0.key) has \($0.value)" }.joined(separator: ", ")
            parts.append("no node was eligible" + (listed.isEmpty ? "" : " (ready nodes: \(listed))"))
        }
        for (name, count) in (metrics.classFiltered ?? [:]).sorted(by: { $0.key < $1.key }) {
            parts.append("class \(name) filtered \(count) node\(count == 1 ? "" : "s")")
        }
        for (constraint, count) in (metrics.constraintFiltered ?? [:]).sorted(by: { $0.key < $1.key }) {
            parts.append("constraint \(constraint) filtered \(count) node\(count == 1 ? "" : "s")")
        }
        if let exhausted = metrics.nodesExhausted, exhausted > 0 {
            parts.append("resources exhausted on \(exhausted) node\(exhausted == 1 ? "" : "s")")
        }
        for (name, count) in (metrics.classExhausted ?? [:]).sorted(by: { $0.key < $1.key }) {
            parts.append("class \(name) exhausted on \(count) node\(count == 1 ? "" : "s")")
        }
        for (dimension, count) in (metrics.dimensionExhausted ?? [:]).sorted(by: { $0.key < $1.key }) {
            parts.append("\(dimension) exhausted on \(count) node\(count == 1 ? "" : "s")")
        }
        for quota in metrics.quotaExhausted ?? [] {
            parts.append("quota exhausted: \(quota)")
        }
        return parts.isEmpty ? "the scheduler gave no reason" : parts.joined(separator: ", ")
    }
}

extension String {
    /// `"a: b"`, or just `"a"` when `detail` is nil or empty.
    fileprivate func joinedWith(_ detail: String?) -> String {
        guard let detail, !detail.isEmpty else { return self }
        return "\(self): \(detail)"
    }
}
