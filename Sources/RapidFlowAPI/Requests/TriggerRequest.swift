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

        public init(branch: String? = nil, env: [String: String]? = nil, priority: JobPriority? = nil) {
            self.branch = branch
            self.env = env
            self.priority = priority
        }

        public static let fields = ["branch", "env", "priority"]

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
        }
    }
}
