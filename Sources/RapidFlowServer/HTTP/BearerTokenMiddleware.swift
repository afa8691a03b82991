import Foundation
import Hummingbird
import NIOHTTP1
import RapidFlowCore

/// Guards the WebSocket routes with a bearer token, when one is configured: the admin token or
/// a scoped one (`TokenRegistry`). The HTTP routes have `AccessMiddleware`, which also checks
/// roles and owners; every role may follow a log, and the log stream checks the job's owner.
///
/// On the WebSocket router the token may also arrive as a `Sec-WebSocket-Protocol` entry
/// `bearer.<token, base64url>`: browsers cannot set headers on a WebSocket, and a query
/// parameter would put the token in URLs, which proxies and histories keep. It is base64url
/// because a subprotocol must be an HTTP token, and a bearer token may hold other characters.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let registry: TokenRegistry
    /// Whether the token is also read from `Sec-WebSocket-Protocol` (the WebSocket router only).
    var acceptsWebSocketProtocol = false

    static var openPaths: Set<String> { Set(["/health", "/ready"]).union(StaticAssetsController<Context>.assets.keys) }
    static var webSocketProtocolPrefix: String { "bearer." }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if Self.openPaths.contains(request.uri.path) { return try await next(request, context) }
        // A job's runner answers with its own per-job token (RunnerController checks it).
        if request.uri.path.hasPrefix("/runner/") { return try await next(request, context) }
        let offered = acceptsWebSocketProtocol ? WebSocketSubprotocolMiddleware<Context>.offeredProtocols(request) : []
        if let refusal = Self.refusal(authorization: request.headers[.authorization], subprotocols: offered, registry: registry) {
            throw refusal
        }
        return try await next(request, context)
    }

    /// The refusal of a WebSocket upgrade's head, checked before the upgrade (see
    /// `HTTPConnectionGuard`); nil for an open path or a known token.
    static func refusal(of head: HTTPRequestHead, registry: TokenRegistry) -> RapidFlowError? {
        let path = String(head.uri.prefix { $0 != "?" })
        if openPaths.contains(path) || path.hasPrefix("/runner/") { return nil }
        return refusal(authorization: head.headers.first(name: "authorization"), subprotocols: offeredProtocols(head), registry: registry)
    }

    static func offeredProtocols(_ head: HTTPRequestHead) -> [String] {
        head.headers[canonicalForm: "sec-websocket-protocol"].map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Nil when the `Authorization` header or one of the `bearer.` subprotocols carries a known token.
    static func refusal(authorization: String?, subprotocols: [String], registry: TokenRegistry) -> RapidFlowError? {
        registry.principal(among: candidates(authorization: authorization, subprotocols: subprotocols)) != nil
            ? nil : RapidFlowError(.unauthorized, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")
    }

    /// The tokens a request offers: the `Authorization` header's, and each `bearer.` subprotocol's.
    static func candidates(authorization: String?, subprotocols: [String]) -> [[UInt8]] {
        var tokens: [[UInt8]] = []
        let prefix = "Bearer "
        if let header = authorization, header.hasPrefix(prefix) { tokens.append(Array(header.utf8.dropFirst(prefix.utf8.count))) }
        for offered in subprotocols where offered.hasPrefix(webSocketProtocolPrefix) {
            if let decoded = base64URLDecoded(offered.dropFirst(webSocketProtocolPrefix.count)) { tokens.append(decoded) }
        }
        return tokens
    }

    static func base64URLDecoded(_ text: Substring) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64).map(Array.init)
    }

    /// Compares without returning early, so timing does not reveal how much of a guess was right.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0xff)
        }
        return difference == 0
    }
}
