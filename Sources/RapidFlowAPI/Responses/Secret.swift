import Foundation
import RapidFlowCore

extension API {
    /// A stored secret as every answer shows it: its name, scope and times, never its value.
    public struct Secret: Codable, Sendable, Equatable {
        public var name: String
        public var scope: SecretScope
        public var createdAt: String
        public var updatedAt: String
        /// When a job last started with it, and which.
        @Nullable public var lastUsedAt: String?
        @Nullable public var lastUsedJobID: Int?

        enum CodingKeys: String, CodingKey {
            case name, scope, createdAt = "created_at", updatedAt = "updated_at", lastUsedAt = "last_used_at"
            case lastUsedJobID = "last_used_job_id"
        }

        public init(_ secret: SecretMetadata) {
            name = secret.name
            scope = SecretScope(secret.scope)
            createdAt = Timestamp.format(secret.createdAt)
            updatedAt = Timestamp.format(secret.updatedAt)
            lastUsedAt = secret.lastUsedAt.map(Timestamp.format)
            lastUsedJobID = secret.lastUsedJobID
        }
    }

    /// `DELETE /secrets/:name`.
    public struct SecretDeleteResult: Codable, Sendable, Equatable {
        public var deleted: Bool
        public var name: String
        public var scope: SecretScope

        public init(name: String, scope: SecretScope) {
            deleted = true
            self.name = name
            self.scope = scope
        }
    }
}
