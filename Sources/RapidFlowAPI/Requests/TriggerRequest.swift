import RapidFlowCore

extension API {
    /// `POST /pipelines/:id/jobs`: an optional branch instead of the config's, and environment
    /// entries added to (and winning over) the config's.
    public struct TriggerRequest: Codable, Sendable, Equatable {
        /// A valid git ref.
        public var branch: String?
        /// Names are environment variable names; values are strings.
        public var env: [String: String]?
        /// Instead of the config's priority: `high`, `normal` or `low`.
        public var priority: JobPriority?
        /// Instead of the config's concurrency group: a template that may hold `${branch}` and `${owner}`.
        public var concurrencyGroup: String?
        /// Instead of the config's: `queue`, `cancel_pending` or `cancel_running`.
        public var onConflict: ConcurrencyGroup.OnConflict?

        public init(
            branch: String? = nil, env: [String: String]? = nil, priority: JobPriority? = nil, concurrencyGroup: String? = nil,
            onConflict: ConcurrencyGroup.OnConflict? = nil
        ) {
            self.branch = branch
            self.env = env
            self.priority = priority
            self.concurrencyGroup = concurrencyGroup
            self.onConflict = onConflict
        }

        public static let fields = ["branch", "env", "priority", "concurrency_group", "on_conflict"]

        enum CodingKeys: String, CodingKey {
            case branch, env, priority, concurrencyGroup = "concurrency_group", onConflict = "on_conflict"
        }

        /// The entries of `env` by name, in sorted order.
        public var environment: [(key: String, value: String)] {
            (env ?? [:]).sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
        }

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            branch = try fields.string("branch")
            if let branch { try RefValidation.checkRef(branch, field: "branch") }
            let entries = try fields.stringMap("env")
            for entry in entries { try EnvironmentValidation.checkName(entry.key, field: "env") }
            env = fields.has("env") ? Dictionary(entries, uniquingKeysWith: { $1 }) : nil
            priority = try fields.string("priority").map { text throws(RapidFlowError) in try JobPriority.parse(text, field: "priority") }
            concurrencyGroup = try fields.string("concurrency_group")
            if let concurrencyGroup { try ConcurrencyGroup.check(concurrencyGroup, field: "concurrency_group") }
            onConflict = try fields.string("on_conflict").map { text throws(RapidFlowError) in
                try ConcurrencyGroup.OnConflict.parse(text, field: "on_conflict")
            }
        }
    }
}
