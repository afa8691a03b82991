import Foundation
import RapidFlowCore

extension API {
    /// A scoped API token as every answer shows it; `token` itself only in the answer to
    /// `POST /tokens`, once: the service keeps its hash only.
    public struct Token: Codable, Sendable, Equatable {
        public var id: Int
        public var name: String
        public var role: TokenRole
        /// The owners it reaches; null: every owner.
        @Nullable public var owners: [String]?
        public var createdAt: String
        @Nullable public var lastUsedAt: String?
        @Nullable public var revokedAt: String?
        /// The token, in the answer that created it; absent everywhere else.
        public var token: String?

        enum CodingKeys: String, CodingKey {
            case id, name, role, owners, createdAt = "created_at", lastUsedAt = "last_used_at", revokedAt = "revoked_at", token
        }

        public init(
            id: Int, name: String, role: TokenRole, owners: [String]?, createdAt: Date, lastUsedAt: Date?, revokedAt: Date?,
            token: String? = nil
        ) {
            self.id = id
            self.name = name
            self.role = role
            self.owners = owners
            self.createdAt = Timestamp.format(createdAt)
            self.lastUsedAt = lastUsedAt.map(Timestamp.format)
            self.revokedAt = revokedAt.map(Timestamp.format)
            self.token = token
        }
    }

    /// `GET /tokens/current`: who the request's token is.
    public struct CurrentToken: Codable, Sendable, Equatable {
        public var name: String
        public var role: TokenRole
        @Nullable public var owners: [String]?

        public init(_ principal: Principal) {
            name = principal.name
            role = principal.role
            owners = principal.owners?.sorted()
        }
    }

    /// One state-changing call in `GET /audit`.
    public struct AuditEntry: Codable, Sendable, Equatable {
        public var id: Int
        public var at: String
        /// The name of the token that made the call (`api-token` for the service's own,
        /// `anonymous` when the service has none).
        public var actor: String
        public var method: String
        public var path: String
        @Nullable public var target: String?
        @Nullable public var owner: String?
        @Nullable public var address: String?
        public var status: Int

        public init(
            id: Int, at: Date, actor: String, method: String, path: String, target: String?, owner: String?, address: String?, status: Int
        ) {
            self.id = id
            self.at = Timestamp.format(at)
            self.actor = actor
            self.method = method
            self.path = path
            self.target = target
            self.owner = owner
            self.address = address
            self.status = status
        }
    }
}
