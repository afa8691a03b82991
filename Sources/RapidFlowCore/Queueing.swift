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
    /// A job of its concurrency group runs, or an older one of the group waits ahead of it.
    case concurrencyGroup(String)

    /// As the API shows it in `waiting_for`.
    public var name: String {
        switch self {
        case .slot: "slot"
        case .ownerLimit: "owner_limit"
        case .concurrencyGroup(let group): "concurrency_group:\(group)"
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
/// applies: a job whose concurrency group already runs a job, or has an older one pending, is
/// held back; the others go by priority, then round-robin across owners (an owner's next job
/// counts the jobs it already runs, so an owner with fewer running goes first), FIFO within an
/// owner; an owner at its limit is passed over.
public struct FairQueue: Sendable {
    public struct Entry: Sendable, Equatable {
        public var id: Int
        public var owner: String
        public var priority: JobPriority
        public var group: String?

        public init(id: Int, owner: String, priority: JobPriority, group: String? = nil) {
            self.id = id
            self.owner = owner
            self.priority = priority
            self.group = group
        }
    }

    /// Jobs each owner runs now.
    public var running: [String: Int]
    /// Owners' own limits, over `defaultLimit`.
    public var limits: [String: Int]
    /// Jobs an owner may run at once when it has no limit of its own; nil for no limit.
    public var defaultLimit: Int?
    /// Concurrency groups with a running job.
    public var runningGroups: Set<String>

    public init(running: [String: Int], limits: [String: Int], defaultLimit: Int?, runningGroups: Set<String> = []) {
        self.running = running
        self.limits = limits
        self.defaultLimit = defaultLimit
        self.runningGroups = runningGroups
    }

    public func limit(of owner: String) -> Int? { limits[owner] ?? defaultLimit }

    /// The ids of the first `count` jobs the scheduler takes now from `pending`, in order.
    public func next(_ count: Int, of pending: [Entry]) -> [Int] {
        places(of: pending).filter { $0.value.waitingFor == .slot }.sorted { $0.value.position < $1.value.position }
            .prefix(count).map(\.key)
    }

    /// Every pending job with its place; `pending` in any order.
    public func places(of pending: [Entry]) -> [Int: QueuePlace] {
        // A group lets through only its oldest pending job, and only while none of it runs.
        var groupsSeen = runningGroups
        var heldByGroup: [Int: String] = [:]
        for entry in pending.sorted(by: { $0.id < $1.id }) {
            guard let group = entry.group else { continue }
            if !groupsSeen.insert(group).inserted { heldByGroup[entry.id] = group }
        }
        var turns: [String: Int] = [:]
        let keyed = pending.sorted { ($0.priority.rank, $0.id) < ($1.priority.rank, $1.id) }.map { entry in
            if let group = heldByGroup[entry.id] {
                return (entry: entry, load: 0, wait: QueueWait.concurrencyGroup(group))
            }
            turns[entry.owner, default: 0] += 1
            let load = running[entry.owner, default: 0] + turns[entry.owner]!
            let blocked = limit(of: entry.owner).map { load > $0 } ?? false
            return (entry: entry, load: load, wait: blocked ? QueueWait.ownerLimit : .slot)
        }
        // Jobs the scheduler could take now, in the order it takes them; then the held ones.
        func key(_ item: (entry: Entry, load: Int, wait: QueueWait)) -> (Int, Int, Int, Int) {
            (item.wait == .slot ? 0 : 1, item.entry.priority.rank, item.load, item.entry.id)
        }
        let ordered = keyed.sorted { key($0) < key($1) }
        var places: [Int: QueuePlace] = [:]
        for (index, item) in ordered.enumerated() {
            places[item.entry.id] = QueuePlace(position: index + 1, waitingFor: item.wait)
        }
        return places
    }
}

/// At most one job of a concurrency group runs at a time (two deploys of one app, say). A
/// pipeline or a trigger names the group with a template that may hold `${branch}` and
/// `${owner}`; what a new job does to the group's other jobs is its `OnConflict`.
public struct ConcurrencyGroup: Sendable, Equatable {
    public enum OnConflict: String, Codable, Sendable, CaseIterable {
        /// Wait behind the group's other jobs, in the order they were created.
        case queue
        /// Cancel the group's pending jobs: the newest waits alone.
        case cancelPending = "cancel_pending"
        /// Cancel the group's pending and running jobs.
        case cancelRunning = "cancel_running"

        public static func parse(_ text: String, field: String) throws(RapidFlowError) -> OnConflict {
            guard let mode = OnConflict(rawValue: text) else {
                throw RapidFlowError(
                    .invalidRequest, "'\(field)' must be one of \(allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
            }
            return mode
        }
    }

    public var template: String
    public var onConflict: OnConflict

    public static let placeholders = ["${branch}", "${owner}"]
    public static let maxLength = 200

    /// `template` after `check`.
    public init(template: String, onConflict: OnConflict = .queue) {
        self.template = template
        self.onConflict = onConflict
    }

    /// A template: 1 to 200 characters of letters, digits, `.`, `_`, `-`, `/`, `:` and `@`,
    /// with `${branch}` and `${owner}` the only placeholders.
    public static func check(_ template: String, field: String) throws(RapidFlowError) {
        var rest = template
        for placeholder in placeholders { rest = rest.replacingOccurrences(of: placeholder, with: "") }
        let allowed = Set(".-_/:@".unicodeScalars)
        guard (1...maxLength).contains(template.utf8.count),
            rest.unicodeScalars.allSatisfy({ ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || allowed.contains($0) })
        else {
            throw RapidFlowError(
                .invalidRequest,
                "'\(field)' must be 1 to \(maxLength) characters of letters, digits, '.', '_', '-', '/', ':' and '@', with ${branch} and ${owner} the only placeholders")
        }
    }

    /// The group's name for a job on `branch` (`default` when the job names none) of `owner`.
    public func name(branch: String?, owner: String) -> String {
        template.replacingOccurrences(of: "${branch}", with: branch ?? "default").replacingOccurrences(of: "${owner}", with: owner)
    }
}
