import Foundation
import RapidFlowCore
import SQLKit

/// A scoped API token as stored: never the token, only its SHA-256.
public struct StoredToken: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var role: TokenRole
    /// The owners it is limited to; nil: every owner.
    public var owners: [String]?
    public var tokenHash: String
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?

    public var principal: Principal { Principal(name: name, role: role, owners: owners.map(Set.init)) }
}

/// One state-changing call in the audit log.
public struct AuditEntry: Sendable, Equatable {
    public var id: Int
    public var at: Date
    /// The name of the token that made the call.
    public var actor: String
    public var method: String
    public var path: String
    /// `job 12`, `pipeline 3`, `owner team-a`, `token 2`, `secret NAME`: what the call acted on.
    public var target: String?
    /// The owner of that job or pipeline, when it has one.
    public var owner: String?
    public var address: String?
    public var status: Int

    public init(
        id: Int = 0, at: Date, actor: String, method: String, path: String, target: String?, owner: String?, address: String?, status: Int
    ) {
        self.id = id
        self.at = at
        self.actor = actor
        self.method = method
        self.path = path
        self.target = target
        self.owner = owner
        self.address = address
        self.status = status
    }
}

/// Where scoped tokens and the audit log are kept.
public protocol AccessStore: Sendable {
    /// Stores a token's hash; `tokenNameTaken` when the name is in use.
    func createToken(name: String, role: TokenRole, owners: [String]?, tokenHash: String, at: Date) async throws -> StoredToken
    /// Every token, revoked ones included, oldest first.
    func tokens() async throws -> [StoredToken]
    /// Marks the token revoked; nil when there is none of that id.
    func revokeToken(id: Int, at: Date) async throws -> StoredToken?
    /// Records when tokens were last used.
    func recordTokenUse(_ uses: [Int: Date]) async throws
    func recordAudit(_ entry: AuditEntry) async throws
    /// Entries after `since` (and of `owner`), oldest first, at most `limit`, with ids above `after`.
    func auditEntries(since: Date?, owner: String?, after: Int?, limit: Int) async throws -> [AuditEntry]
    /// Deletes entries older than `before`; how many.
    func pruneAudit(before: Date) async throws -> Int
}

extension SQLJobStore: AccessStore {
    public func createToken(name: String, role: TokenRole, owners: [String]?, tokenHash: String, at date: Date) async throws -> StoredToken {
        try await withDatabase { database in
            if try await database.raw("SELECT id FROM api_tokens WHERE name = \(bind: name)").first() != nil {
                throw RapidFlowError(.tokenNameTaken, "a token named '\(name)' exists already (revoked ones keep their name): pick another name")
            }
            guard
                let row = try await database.raw(
                    """
                    INSERT INTO api_tokens (name, role, owners, token_hash, created_at)
                    VALUES (\(bind: name), \(bind: role.rawValue), \(bind: owners.map { $0.joined(separator: ",") }), \(bind: tokenHash), \(bind: Millis(date)))
                    RETURNING *
                    """
                ).first()
            else { throw RapidFlowError(.internalError, "the store did not return the new token") }
            return try Self.token(from: row)
        }
    }

    public func tokens() async throws -> [StoredToken] {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM api_tokens ORDER BY id").all().map(Self.token(from:))
        }
    }

    public func revokeToken(id: Int, at date: Date) async throws -> StoredToken? {
        try await withDatabase { database in
            try await database.raw(
                """
                UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, \(bind: Millis(date))) WHERE id = \(bind: id) RETURNING *
                """
            ).first().map(Self.token(from:))
        }
    }

    public func recordTokenUse(_ uses: [Int: Date]) async throws {
        guard !uses.isEmpty else { return }
        try await withDatabase { database in
            for (id, date) in uses {
                try await database.raw(
                    "UPDATE api_tokens SET last_used_at = \(bind: Millis(date)) WHERE id = \(bind: id)"
                ).run()
            }
        }
    }

    public func recordAudit(_ entry: AuditEntry) async throws {
        try await withDatabase { database in
            try await database.raw(
                """
                INSERT INTO audit_log (at, actor, method, path, target, owner, address, status)
                VALUES (\(bind: Millis(entry.at)), \(bind: entry.actor), \(bind: entry.method), \(bind: entry.path),
                        \(bind: entry.target), \(bind: entry.owner), \(bind: entry.address), \(bind: entry.status))
                """
            ).run()
        }
    }

    public func auditEntries(since: Date?, owner: String?, after: Int?, limit: Int) async throws -> [AuditEntry] {
        var query = SQLQueryString("SELECT * FROM audit_log WHERE id > \(bind: after ?? 0)")
        if let since {
            query.appendInterpolation(unsafeRaw: " AND at >= ")
            query.appendInterpolation(bind: Millis(since))
        }
        if let owner {
            query.appendInterpolation(unsafeRaw: " AND owner = ")
            query.appendInterpolation(bind: owner)
        }
        query.appendInterpolation(unsafeRaw: " ORDER BY id LIMIT ")
        query.appendInterpolation(bind: limit)
        let finalQuery = query
        return try await withDatabase { database in
            try await database.raw(finalQuery).all().map { row in
                AuditEntry(
                    id: try row.decode(column: "id", as: Int.self), at: try row.decode(column: "at", as: Millis.self).date,
                    actor: try row.decode(column: "actor", as: String.self), method: try row.decode(column: "method", as: String.self),
                    path: try row.decode(column: "path", as: String.self), target: try row.decode(column: "target", as: String?.self),
                    owner: try row.decode(column: "owner", as: String?.self), address: try row.decode(column: "address", as: String?.self),
                    status: try row.decode(column: "status", as: Int.self))
            }
        }
    }

    public func pruneAudit(before: Date) async throws -> Int {
        try await withDatabase { database in
            try await database.raw("DELETE FROM audit_log WHERE at < \(bind: Millis(before)) RETURNING id").all().count
        }
    }

    private static func token(from row: any SQLRow) throws -> StoredToken {
        let roleName = try row.decode(column: "role", as: String.self)
        guard let role = TokenRole(rawValue: roleName) else {
            throw RapidFlowError(.internalError, "a stored token has an unknown role '\(roleName)'")
        }
        return StoredToken(
            id: try row.decode(column: "id", as: Int.self), name: try row.decode(column: "name", as: String.self), role: role,
            owners: try row.decode(column: "owners", as: String?.self).map { $0.split(separator: ",").map(String.init) },
            tokenHash: try row.decode(column: "token_hash", as: String.self),
            createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            lastUsedAt: try row.decode(column: "last_used_at", as: Millis?.self)?.date,
            revokedAt: try row.decode(column: "revoked_at", as: Millis?.self)?.date)
    }
}
