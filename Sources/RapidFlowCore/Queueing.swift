import Foundation

/// How soon a pending job is taken: every `high` job before any `normal` one, every `normal`
/// before any `low`; owners share each level fairly. A running job is never preempted.
public enum JobPriority: String, Codable, Sendable, CaseIterable, Comparable {
    case high, normal, low

    /// Stored in the job's `priority` column; lower is taken first.
    public var rank: Int {
        switch self {
        case .high: 0
        case .normal: 1
        case .low: 2
        }
    }

    public init?(rank: Int) {
        guard let priority = Self.allCases.first(where: { $0.rank == rank }) else { return nil }
        self = priority
    }

    public static func < (lhs: JobPriority, rhs: JobPriority) -> Bool { lhs.rank < rhs.rank }

    /// Parses `text` for the field or key named `field`.
    public static func parse(_ text: String, field: String) throws(RapidFlowError) -> JobPriority {
        guard let priority = JobPriority(rawValue: text) else {
            throw RapidFlowError(
                .invalidRequest, "'\(field)' must be one of \(allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
        }
        return priority
    }
}

/// The team a job belongs to: the owner of an image job, of a pipeline (and so its jobs).
public enum JobOwner {
    /// What a pipeline without an owner, and so its jobs, belongs to.
    public static let fallback = "default"

    /// A name `PUT /owners/:owner` and the `owner` query parameters take: a lowercase letter or
    /// digit, then up to 62 lowercase letters, digits, '.', '_' or '-'.
    public static func check(_ owner: String, field: String) throws(RapidFlowError) {
        let bytes = Array(owner.utf8)
        func allowed(_ byte: UInt8, first: Bool) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (!first && [UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-")].contains(byte))
        }
        guard (1...63).contains(bytes.count), allowed(bytes[0], first: true), bytes.dropFirst().allSatisfy({ allowed($0, first: false) }) else {
            throw RapidFlowError(
                .invalidRequest,
                "'\(field)' must be 1 to 63 characters: a lowercase letter or digit, then lowercase letters, digits, '.', '_' or '-'")
        }
    }
}

/// Why a pending job has not started yet.
public enum QueueWait: Sendable, Equatable {
    /// Every slot of the service is taken (or jobs ahead of it will take the next ones).
    case slot
    /// Its owner already runs as many jobs as the owner may.
    case ownerLimit

    /// As the API shows it in `waiting_for`.
    public var name: String {
        switch self {
        case .slot: "slot"
        case .ownerLimit: "owner_limit"
        }
    }
}

/// Where a pending job stands: its place among the pending jobs in the order the scheduler
/// takes them (1 is next), and what it waits for.
public struct QueuePlace: Sendable, Equatable {
    public var position: Int
    public var waitingFor: QueueWait

    public init(position: Int, waitingFor: QueueWait) {
        self.position = position
        self.waitingFor = waitingFor
    }
}

/// The order in which pending jobs are taken, the same rule the store's claim statement
/// applies: by priority, then round-robin across owners (an owner's next job counts the jobs
/// it already runs, so an owner with fewer running goes first), FIFO within an owner; an owner
/// at its limit is passed over.
public struct FairQueue: Sendable {
    public struct Entry: Sendable, Equatable {
        public var id: Int
        public var owner: String
        public var priority: JobPriority

        public init(id: Int, owner: String, priority: JobPriority) {
            self.id = id
            self.owner = owner
            self.priority = priority
        }
    }

    /// Jobs each owner runs now.
    public var running: [String: Int]
    /// Owners' own limits, over `defaultLimit`.
    public var limits: [String: Int]
    /// Jobs an owner may run at once when it has no limit of its own; nil for no limit.
    public var defaultLimit: Int?

    public init(running: [String: Int], limits: [String: Int], defaultLimit: Int?) {
        self.running = running
        self.limits = limits
        self.defaultLimit = defaultLimit
    }

    public func limit(of owner: String) -> Int? { limits[owner] ?? defaultLimit }

    /// Every pending job with its place; `pending` in any order.
    public func places(of pending: [Entry]) -> [Int: QueuePlace] {
        var turns: [String: Int] = [:]
        let keyed = pending.sorted { ($0.priority.rank, $0.id) < ($1.priority.rank, $1.id) }.map { entry in
            turns[entry.owner, default: 0] += 1
            let load = running[entry.owner, default: 0] + turns[entry.owner]!
            let blocked = limit(of: entry.owner).map { load > $0 } ?? false
            return (entry: entry, load: load, blocked: blocked)
        }
        // Jobs the scheduler could take now, in the order it takes them; then the blocked ones.
        let ordered = keyed.sorted {
            ($0.blocked ? 1 : 0, $0.entry.priority.rank, $0.load, $0.entry.id) < ($1.blocked ? 1 : 0, $1.entry.priority.rank, $1.load, $1.entry.id)
        }
        var places: [Int: QueuePlace] = [:]
        for (index, item) in ordered.enumerated() {
            places[item.entry.id] = QueuePlace(position: index + 1, waitingFor: item.blocked ? .ownerLimit : .slot)
        }
        return places
    }
}
