import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import RapidFlowCore

/// A server child channel (HTTP/1 with the WebSocket upgrade) with an `HTTPConnectionGuard`
/// around its request decoder.
///
/// The guard has to see the decoder's output before the upgrade handler does, and bytes
/// before the decoder; Hummingbird's own `additionalChannelHandlers` are only added after the
/// first request head, so the guard is placed once the wrapped channel has built its pipeline.
struct GuardedHTTPChannel<Wrapped: ServerChildChannel>: ServerChildChannel {
    let wrapped: Wrapped
    let timeouts: HTTPConnectionGuard.Timeouts
    let admitUpgrade: (@Sendable (HTTPRequestHead) -> RapidFlowError?)?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Wrapped.Value> {
        self.wrapped.setup(channel: channel, logger: logger).assumeIsolated().flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let connectionGuard = HTTPConnectionGuard(timeouts: self.timeouts, logger: logger, admitUpgrade: self.admitUpgrade)
            let inputTap = HTTPConnectionGuard.InputTap(connectionGuard: connectionGuard)
            connectionGuard.inputTap = inputTap
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(connectionGuard, position: .after(decoder))
            try pipeline.addHandler(inputTap, position: .first)
            return value
        }.nonisolated()
    }

    func handle(value: Wrapped.Value, logger: Logger) async {
        await self.wrapped.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with the WebSocket upgrade on `webSocketRouter`, each connection guarded; with an
    /// API token, an upgrade without it is answered 401 in the envelope before any upgrade.
    static func guardedHTTP1WebSocketUpgrade(
        webSocketRouter: Router<BasicWebSocketRequestContext>, limits: Limits, timeouts: HTTPConnectionGuard.Timeouts,
        webSocketPing: Duration = .seconds(30), registry: TokenRegistry? = nil
    ) -> HTTPServerBuilder {
        let webSocketResponder = webSocketRouter.buildResponder()
        // The parser's own bounds sit well above the service's header limit, so headers between
        // the two get the envelope and a message from `HeaderLimitMiddleware`; past them, a 431.
        let decoder = HTTP1Channel.Configuration.DecoderConfiguration(
            maxHeaderFieldSize: limits.maxParsedHeaderBytes, maxHeaderListSize: limits.maxParsedHeaderBytes,
            maxHeaderFieldCount: limits.maxHeaderFields)
        var admitUpgrade: (@Sendable (HTTPRequestHead) -> RapidFlowError?)?
        if let registry, registry.requiresToken {
            admitUpgrade = { head in BearerTokenMiddleware<BasicWebSocketRequestContext>.refusal(of: head, registry: registry) }
        }
        let admit = admitUpgrade
        return HTTPServerBuilder { responder in
            GuardedHTTPChannel(
                wrapped: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(
                        http1: .init(httpDecoderConfiguration: decoder),
                        ws: .init(autoPing: .enabled(timePeriod: webSocketPing)))),
                timeouts: timeouts, admitUpgrade: admit)
        }
    }
}
