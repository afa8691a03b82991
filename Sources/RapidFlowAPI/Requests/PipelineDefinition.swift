import RapidFlowCore

extension API {
    /// `POST /pipelines` and `PUT /pipelines/:id`: a name and the pipeline's YAML.
    public struct PipelineDefinition: Codable, Sendable, Equatable {
        /// Trimmed of spaces, 1 to 200 characters.
        public var name: String
        /// The YAML text, not empty; the route parses it before anything is stored.
        public var config: String
        /// Optional: the team the pipeline and its jobs belong to (fair queueing, limits, filters)
        /// and whose stored secrets its jobs see; without one they belong to `default`.
        public var owner: String?

        public init(name: String, config: String, owner: String? = nil) {
            self.name = name
            self.config = config
            self.owner = owner
        }

        public static let fields = ["name", "config", "owner"]

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            name = try fields.requiredString("name").trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.count <= 200 else {
                throw RapidFlowError(.invalidRequest, "field 'name' must be 1 to 200 characters")
            }
            guard let config = try fields.string("config") else { throw fields.missing("config") }
            guard !config.isEmpty else { throw RapidFlowError.invalidConfig("field 'config' is empty: give the pipeline's YAML") }
            self.config = config
            owner = try fields.string("owner")
            if let owner { try JobOwner.check(owner, field: "owner") }
        }
    }
}
