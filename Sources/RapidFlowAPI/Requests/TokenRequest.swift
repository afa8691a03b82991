import RapidFlowCore

extension API {
    /// `POST /tokens`: a named token with a role, optionally limited to some owners.
    public struct TokenRequest: Codable, Sendable, Equatable {
        public var name: String
        public var role: TokenRole
        /// The owners it reaches; absent or null: every owner.
        public var owners: [String]?

        public init(name: String, role: TokenRole, owners: [String]? = nil) {
            self.name = name
            self.role = role
            self.owners = owners
        }

        public static let fields = ["name", "role", "owners"]

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            name = try fields.requiredString("name")
            try TokenName.check(name, field: "name")
            role = try TokenRole.parse(try fields.requiredString("role"), field: "role")
            owners = fields.has("owners") ? try fields.strings("owners") : nil
            if let owners {
                guard !owners.isEmpty, owners.count <= 100 else {
                    throw RapidFlowError(.invalidRequest, "'owners' must list 1 to 100 owners, or be left out for every owner")
                }
                for owner in owners { try JobOwner.check(owner, field: "owners") }
            }
        }
    }
}
