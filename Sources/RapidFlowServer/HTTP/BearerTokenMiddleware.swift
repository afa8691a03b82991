import Foundation
import Hummingbird
import RapidFlowCore

/// Guards every route but `/health`, `/ready` and the static files (dashboard, OpenAPI
/// document) with a bearer token, when one is configured.
///
/// On the WebSocket router the token may also arrive as a `Sec-WebSocket-Protocol` entry
/// `bearer.<token, base64url>`: browsers cannot set headers on a WebSocket, and a query
/// parameter would put the token in URLs, which proxies and histories keep. It is base64url
/// because a subprotocol must be an HTTP token, and a bearer token may hold other characters.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String
    /// Whether the token is also read from `Sec-WebSocket-Protocol` (the WebSocket router only).
    var acceptsWebSocketProtocol = false

    static var openPaths: Set<String> { Set(["/health", "/ready"]).union(StaticAssetsController<Context>.assets.keys) }
    static var webSocketProtocolPrefix: String { "bearer." }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if Self.openPaths.contains(request.uri.path) { return try await next(request, context) }
        // A job's runner answers with its own per-job token (RunnerController checks it).
        if request.uri.path.hasPrefix("/runner/") { return try await next(request, context) }
        let expected = Array(token.utf8)
        // Every candidate is compared in full, so timing tells nothing about which came close.
        var accepted = false
        for candidate in presentedTokens(request) {
            accepted = Self.constantTimeEquals(candidate, expected) || accepted
        }
        guard accepted else {
            throw RapidFlowError(.unauthorized, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")
        }
        return try await next(request, context)
    }

    /// The tokens the request carries: the `Authorization` header's, and on the WebSocket
    /// router each `bearer.` subprotocol's.
    private func presentedTokens(_ request: Request) -> [[UInt8]] {
        var tokens: [[UInt8]] = []
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        if header.hasPrefix(prefix) { tokens.append(Array(header.utf8.dropFirst(prefix.utf8.count))) }
        guard acceptsWebSocketProtocol else { return tokens }
        for offered in WebSocketSubprotocolMiddleware<Context>.offeredProtocols(request) where offered.hasPrefix(Self.webSocketProtocolPrefix) {
            if let decoded = Self.base64URLDecoded(offered.dropFirst(Self.webSocketProtocolPrefix.count)) { tokens.append(decoded) }
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
