import RapidFlowCore

extension API {
    /// `POST /pipelines/:id/jobs`: an optional branch instead of the config's, and environment
    /// entries added to (and winning over) the config's.
    public struct TriggerRequest: Codable, Sendable, Equatable {
        /// A valid git ref.
        public var branch: String?
        /// Names are environment variable names; values are strings.
        public var env: [String: String]?

        public init(branch: String? = nil, env: [String: String]? = nil) {
            self.branch = branch
            self.env = env
        }

        public static let fields = ["branch", "env"]

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
        }
    }
}
