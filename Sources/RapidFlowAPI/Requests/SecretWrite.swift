import RapidFlowCore

extension API {
    /// Where a stored secret applies, as requests and answers write it: `"global"`,
    /// `{"pipeline_id": N}` or `{"owner": "name"}`.
    public enum SecretScope: Codable, Sendable, Hashable {
        case global
        case pipeline(Int)
        case owner(String)

        public init(_ scope: RapidFlowCore.SecretScope) {
            switch scope {
            case .global: self = .global
            case .pipeline(let id): self = .pipeline(id)
            case .owner(let name): self = .owner(name)
            }
        }

        public var scope: RapidFlowCore.SecretScope {
            switch self {
            case .global: .global
            case .pipeline(let id): .pipeline(id)
            case .owner(let name): .owner(name)
            }
        }

        enum CodingKeys: String, CodingKey {
            case pipelineID = "pipeline_id", owner
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .global:
                var container = encoder.singleValueContainer()
                try container.encode("global")
            case .pipeline(let id):
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(id, forKey: .pipelineID)
            case .owner(let name):
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(name, forKey: .owner)
            }
        }

        /// How an answer is read back (a request's scope is read by `SecretWrite`).
        public init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self), text == "global" {
                self = .global
                return
            }
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let id = try container.decodeIfPresent(Int.self, forKey: .pipelineID) {
                self = .pipeline(id)
            } else {
                self = .owner(try container.decode(String.self, forKey: .owner))
            }
        }
    }

    /// `PUT /secrets/:name`: the value (write-only: no answer ever holds it) and the scope.
    public struct SecretWrite: Codable, Sendable, Equatable {
        /// 1 byte to 64 KiB of UTF-8; newlines allowed.
        public var value: String
        /// Absent or `"global"`: every job sees it.
        public var scope: SecretScope?

        public init(value: String, scope: SecretScope? = nil) {
            self.value = value
            self.scope = scope
        }

        public static let fields = ["value", "scope"]
        static let scopeAdvice = "field 'scope' must be \"global\", {\"pipeline_id\": N} or {\"owner\": \"name\"}"

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            guard let value = try fields.string("value") else { throw fields.missing("value") }
            try SecretValidation.checkValue(value)
            self.value = value
            scope = try Self.scope(fields)
        }

        private static func scope(_ fields: RequestFields) throws(RapidFlowError) -> SecretScope? {
            guard fields.has("scope") else { return nil }
            if let text = try? fields.string("scope") {
                guard text == "global" else { throw RapidFlowError(.invalidSecret, "\(scopeAdvice); got '\(text.prefix(100))'") }
                return .global
            }
            let object: RequestFields?
            do {
                object = try fields.object("scope", known: ["pipeline_id", "owner"])
            } catch {
                throw RapidFlowError(.invalidSecret, error.message.hasPrefix("unknown field") ? error.message : scopeAdvice)
            }
            guard let object else { return nil }
            switch (object.has("pipeline_id"), object.has("owner")) {
            case (true, false):
                guard let id = try object.integer("pipeline_id", range: 1...Int.max) else { throw RapidFlowError(.invalidSecret, scopeAdvice) }
                return .pipeline(id)
            case (false, true):
                guard let owner = try object.string("owner") else { throw RapidFlowError(.invalidSecret, scopeAdvice) }
                try SecretValidation.checkOwner(owner, field: "scope.owner")
                return .owner(owner)
            default:
                throw RapidFlowError(.invalidSecret, "\(scopeAdvice): give exactly one of 'pipeline_id' and 'owner'")
            }
        }
    }
}
