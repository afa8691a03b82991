import Foundation
import Hummingbird
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore

/// `/secrets`: stored secrets, write-only. Values go in through `PUT` and never come out:
/// every answer is metadata (name, scope, times, the last job that used it).
struct SecretController<Context: RequestContext> {
    let vault: SecretVault
    let store: any JobStore
    let limits: Limits

    func addRoutes(to router: Router<Context>) {
        router.get("secrets", use: list)
        router.put("secrets/:name", use: put)
        router.get("secrets/:name", use: show)
        router.delete("secrets/:name", use: delete)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> APIResponse {
        try APIResponse(try await vault.store.secrets().map(API.Secret.init))
    }

    @Sendable func put(_ request: Request, context: Context) async throws -> APIResponse {
        let name = try Self.name(context)
        var request = request
        let body = Data(try await request.collectBody(upTo: limits.maxBodyBytes).readableBytesView)
        // Said before JSON is parsed: bytes that are not UTF-8 would otherwise be "not valid JSON".
        guard String(validating: body, as: UTF8.self) != nil else {
            throw RapidFlowError(.invalidSecret, "the request body is not valid UTF-8: a secret's value must be UTF-8 text")
        }
        guard let write = try RequestDecoding.decode(API.SecretWrite.self, from: body) else {
            throw RapidFlowError(.invalidRequest, "request body is empty: send {\"value\": \"...\", \"scope\": ...}")
        }
        let scope = write.scope?.scope ?? .global
        if case .pipeline(let id) = scope, try await store.pipeline(id: id) == nil {
            throw RapidFlowError(.invalidSecret, "field 'scope' names pipeline \(id), which does not exist")
        }
        let stored = try await vault.put(name: name, scope: scope, value: write.value)
        return try APIResponse(API.Secret(stored), headers: [.location: "/secrets/\(name)\(Self.query(scope))"])
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> APIResponse {
        let name = try Self.name(context)
        let scope = try Self.scope(request)
        guard let secret = try await vault.store.sealedSecret(name: name, scope: scope) else {
            throw RapidFlowError.secretNotFound(name, scope: scope)
        }
        return try APIResponse(API.Secret(secret.metadata))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> APIResponse {
        let name = try Self.name(context)
        let scope = try Self.scope(request)
        guard try await vault.store.deleteSecret(name: name, scope: scope) else {
            throw RapidFlowError.secretNotFound(name, scope: scope)
        }
        return try APIResponse(API.SecretDeleteResult(name: name, scope: API.SecretScope(scope)))
    }

    private static func name(_ context: Context) throws -> String {
        // The path segment as sent is percent-encoded: a refused name is quoted as it was written.
        let raw = context.parameters.get("name") ?? ""
        let name = raw.removingPercentEncoding ?? raw
        try SecretValidation.checkName(name)
        return name
    }

    /// `?pipeline_id=N` or `?owner=NAME` address one scope's secret; neither is the global one.
    private static func scope(_ request: Request) throws -> SecretScope {
        let pipelineID = try RequestParsing.queryInt(request, "pipeline_id", range: 1...Int.max)
        let owner = try RequestParsing.queryText(request, "owner", maxLength: 100)
        switch (pipelineID, owner) {
        case (let id?, nil): return .pipeline(id)
        case (nil, let owner?):
            try SecretValidation.checkOwner(owner, field: "owner")
            return .owner(owner)
        case (nil, nil): return .global
        case (_?, _?): throw RapidFlowError(.invalidRequest, "give at most one of the query parameters 'pipeline_id' and 'owner'")
        }
    }

    private static func query(_ scope: SecretScope) -> String {
        switch scope {
        case .global: ""
        case .pipeline(let id): "?pipeline_id=\(id)"
        case .owner(let name): "?owner=\(name)"
        }
    }
}
