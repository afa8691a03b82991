import Foundation
import Hummingbird

/// Answers the `rapidflow` WebSocket subprotocol when a client offers it.
///
/// The dashboard offers subprotocols to carry its token (see `BearerTokenMiddleware`), and a
/// browser drops a connection whose handshake answer names none of those it offered. The
/// answer is always `rapidflow`, never the entry that holds the token.
struct WebSocketSubprotocolMiddleware<Context: RequestContext>: RouterMiddleware {
    static var name: String { "rapidflow" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        if response.status == .ok, Self.offeredProtocols(request).contains(Self.name) {
            response.headers[.secWebSocketProtocol] = Self.name
        }
        return response
    }

    /// The subprotocols a handshake offers, from every `Sec-WebSocket-Protocol` line.
    static func offeredProtocols(_ request: Request) -> [String] { offeredProtocols(request.headers) }

    static func offeredProtocols(_ headers: HTTPFields) -> [String] {
        headers[values: .secWebSocketProtocol].flatMap { line in
            line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }
}
