import Foundation
import Hummingbird
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore

/// `/tokens`: scoped API tokens. A token is shown once, in the answer that made it; the store
/// keeps its SHA-256 only. Revoked tokens stay listed, with when they were revoked.
struct TokenController {
    let registry: TokenRegistry
    let limits: Limits

    func addRoutes(to router: Router<ServiceRequestContext>) {
        router.post("tokens", use: create)
        router.get("tokens", use: list)
        router.get("tokens/current", use: current)
        router.delete("tokens/:id", use: revoke)
    }

    @Sendable func create(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        guard let body = try await request.decodeJSON(as: API.TokenRequest.self, limits: limits) else {
            throw RapidFlowError(.invalidRequest, "request body is empty: send {\"name\": ..., \"role\": \"read|run|admin\", \"owners\": [...]}")
        }
        guard registry.requiresToken else {
            throw RapidFlowError(
                .invalidRequest, "scoped tokens need the service's own --api-token: without it no request is asked for a token")
        }
        let token = TokenRegistry.newToken()
        let stored = try await registry.store.createToken(
            name: body.name, role: body.role, owners: body.owners.map { Array(Set($0)).sorted() }, tokenHash: TokenRegistry.hash(Array(token.utf8)),
            at: Date())
        await registry.changed()
        return try APIResponse(Self.payload(stored, lastUsed: nil, token: token), headers: [.location: "/tokens/\(stored.id)"])
    }

    @Sendable func list(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        try APIResponse(try await registry.store.tokens().map { Self.payload($0, lastUsed: registry.lastUsed($0)) })
    }

    @Sendable func current(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        try APIResponse(API.CurrentToken(context.principal))
    }

    @Sendable func revoke(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "token")
        guard let revoked = try await registry.store.revokeToken(id: id, at: Date()) else {
            throw RapidFlowError(.tokenNotFound, "token \(id) does not exist")
        }
        await registry.changed()
        return try APIResponse(Self.payload(revoked, lastUsed: registry.lastUsed(revoked)))
    }

    static func payload(_ token: StoredToken, lastUsed: Date?, token value: String? = nil) -> API.Token {
        API.Token(
            id: token.id, name: token.name, role: token.role, owners: token.owners, createdAt: token.createdAt, lastUsedAt: lastUsed,
            revokedAt: token.revokedAt, token: value)
    }
}

/// `GET /audit`: every state-changing call, oldest first: `?since=` an RFC 3339 time,
/// `?owner=`, `?after=` the last id read (to page on), `?limit=` up to 500.
struct AuditController {
    let store: any AccessStore

    func addRoutes(to router: Router<ServiceRequestContext>) {
        router.get("audit", use: list)
    }

    @Sendable func list(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        let limit = try RequestParsing.queryInt(request, "limit", range: 1...500) ?? 100
        let after = try RequestParsing.queryInt(request, "after", range: 1...Int.max)
        let owner = try RequestParsing.queryOwner(request)
        var since: Date?
        if let text = request.uri.queryParameters.get("since") {
            guard let date = Timestamp.parse(text) else {
                throw RapidFlowError(.invalidRequest, "'since' must be an RFC 3339 time such as 2026-01-31T12:00:00Z, not '\(text)'")
            }
            since = date
        }
        let entries = try await store.auditEntries(since: since, owner: owner, after: after, limit: limit)
        return try APIResponse(
            entries.map {
                API.AuditEntry(
                    id: $0.id, at: $0.at, actor: $0.actor, method: $0.method, path: $0.path, target: $0.target, owner: $0.owner,
                    address: $0.address, status: $0.status)
            })
    }
}
