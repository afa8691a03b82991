import RapidFlowCore

extension API {
    /// A stored pipeline.
    public struct Pipeline: Codable, Sendable, Equatable {
        public var id: Int
        public var name: String
        /// The YAML as stored, with secret-looking env values masked: they are never shown back.
        public var config: String
        /// The owner whose stored secrets its jobs see; absent when it has none.
        public var owner: String?
        public var createdAt: String
        public var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case id, name, config, owner, createdAt = "created_at", updatedAt = "updated_at"
        }

        public init(_ pipeline: RapidFlowCore.Pipeline) {
            id = pipeline.id
            name = pipeline.name
            config = PipelineConfig.maskedText(pipeline.config)
            owner = pipeline.owner
            createdAt = Timestamp.format(pipeline.createdAt)
            updatedAt = Timestamp.format(pipeline.updatedAt)
        }
    }

    /// `DELETE /pipelines/:id`.
    public struct DeleteResult: Codable, Sendable, Equatable {
        public var deleted: Bool
        public var id: Int

        public init(id: Int) {
            deleted = true
            self.id = id
        }
    }
}
