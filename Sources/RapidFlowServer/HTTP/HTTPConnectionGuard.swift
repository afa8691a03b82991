import Logging
import NIOCore
import NIOHTTP1
import RapidFlowCore

/// Keeps every HTTP/1 connection moving towards an answer or a close.
///
/// - What the request decoder refuses gets an answer (400, 431, 501) in the error envelope,
///   then the connection closes. Without this the decoder's error went nowhere: before the
///   first request head the WebSocket upgrade handler waits for a head that never comes.
/// - A request head must arrive within `timeouts.header` of the connection opening, or of its
///   first byte after the previous response (408 and close): a client sending a byte a
///   second no longer holds a connection for ever.
/// - A connection with no request in flight, or whose request body stops arriving, closes
///   after `timeouts.idle`. A request being answered is never timed out: long polls, log
///   streams and WebSockets (which leave this handler behind) run as long as they need.
/// - A request that asks for it (HTTP/1.0 without keep-alive, `Connection: close`) gets
///   `Connection: close` and the connection is closed after its answer.
///
/// It sits right after the request decoder, so it sees the decoder's errors and each request
/// part before the upgrade handler does, and each response part on its way out. Its
/// `InputTap`, first in the pipeline, tells it when bytes arrive and keeps the first bytes of
/// each request, to tell an unknown method (501) from garbage (400). Closing shuts the output
/// first and reads what the client still sends for up to `timeouts.linger`, so a client still
/// writing (a 2 MiB header block) reads the answer rather than a connection reset.
final class HTTPConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    // Any rather than HTTPServerRequestPart: a WebSocket upgrade removes the decoder, which
    // then hands the bytes it had not parsed on, as a ByteBuffer, through this handler.
    typealias InboundIn = Any
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    struct Timeouts: Sendable {
        var header: TimeAmount
        var idle: TimeAmount
        /// Long enough for a client on a slow link to finish a write it had started; bounded so
        /// a client that never stops cannot keep the connection.
        var linger: TimeAmount = .seconds(2)
    }

    /// What is known of a request whose answer has not ended yet.
    private struct PendingRequest {
        let version: HTTPVersion
        let keepAlive: Bool
    }

    private enum Phase {
        case open
        /// Answered or given up: writes from the application are refused, input is discarded,
        /// and the application's closes wait for the answer to go out and the linger to end.
        case closing(lingerDeadline: NIODeadline?)
        case closed
        /// Switched to WebSocket: nothing here applies any more.
        case upgraded
    }

    private enum Expiry {
        case header, idle, linger
    }

    private let timeouts: Timeouts
    private let logger: Logger?
    /// Weak: the pipeline owns the tap, and the tap its guard.
    weak var inputTap: InputTap?
    private var context: ChannelHandlerContext?
    private var phase = Phase.open

    /// Requests whose head was decoded and whose response has not ended, oldest first.
    private var awaitingResponse = CircularBuffer<PendingRequest>(initialCapacity: 2)
    /// The request whose body is still arriving (head decoded, end not yet), and whether it keeps the connection.
    private var readingRequestKeepsAlive: Bool?
    /// When the request now awaited began (connection opened, or its first byte came); nil while idle.
    private var headClockStart: NIODeadline?
    /// Whether the next byte that arrives is the first of a request.
    private var atRequestStart = true
    /// The first bytes of the request being received; nil when its start was not seen.
    private var requestStart: [UInt8]? = []
    private var lastInput = NIODeadline.now()
    private var lastResponseEnd = NIODeadline.now()
    /// No more input reaches the application: after a parser error, or a request that closes the connection.
    private var inputFinished = false
    private var closeAfterResponses = false
    /// The parser's refusal, answered once the responses in flight have ended.
    private var pendingRefusal: RapidFlowError?
    private var peerClosedInput = false
    private var inputClosedForwarded = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    /// Decides on a WebSocket upgrade request before the upgrade handler sees it: an error is
    /// answered here in the envelope (a refused upgrade would otherwise get a bare 400).
    private let admitUpgrade: (@Sendable (HTTPRequestHead) -> RapidFlowError?)?

    init(timeouts: Timeouts, logger: Logger? = nil, admitUpgrade: (@Sendable (HTTPRequestHead) -> RapidFlowError?)? = nil) {
        self.timeouts = timeouts
        self.logger = logger
        self.admitUpgrade = admitUpgrade
    }

    // MARK: - Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { self.connectionOpened() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.cancelTimer()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.connectionOpened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.cancelTimer()
        context.fireChannelInactive()
    }

    private func connectionOpened() {
        guard self.headClockStart == nil, self.awaitingResponse.isEmpty, self.readingRequestKeepsAlive == nil else { return }
        let now = NIODeadline.now()
        self.headClockStart = now
        self.lastResponseEnd = now
        self.armTimer()
    }

    // MARK: - Input

    /// Bytes off the socket, before the decoder; returns whether to pass them on.
    fileprivate func inputArrived(_ bytes: ByteBuffer) -> Bool {
        switch self.phase {
        case .upgraded: return true
        case .closing, .closed: return false
        case .open: break
        }
        if self.inputFinished { return false }
        let now = NIODeadline.now()
        self.lastInput = now
        if self.atRequestStart {
            self.atRequestStart = false
            self.requestStart = []
            if self.headClockStart == nil { self.headClockStart = now }
            self.armTimer()
        }
        if var start = self.requestStart, start.count < Self.requestStartLength {
            for byte in bytes.readableBytesView.prefix(Self.requestStartLength) {
                // The parser skips empty lines before a request line; so does this.
                if start.isEmpty && (byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n")) { continue }
                start.append(byte)
                if start.count == Self.requestStartLength { break }
            }
            self.requestStart = start
        }
        return true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .open = self.phase, let part = Self.unwrapInboundIn(data) as? HTTPServerRequestPart else {
            if case .upgraded = self.phase { context.fireChannelRead(data) }
            if case .open = self.phase { context.fireChannelRead(data) }
            return
        }
        if self.inputFinished { return }
        switch part {
        case .head(let head):
            if let admitUpgrade, head.headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" }),
                let refusal = admitUpgrade(head)
            {
                self.respond(refusal, context)
                return
            }
            self.awaitingResponse.append(PendingRequest(version: head.version, keepAlive: head.isKeepAlive))
            self.readingRequestKeepsAlive = head.isKeepAlive
            self.headClockStart = nil
            self.requestStart = nil
            self.armTimer()
        case .body:
            break
        case .end:
            // Whatever follows a request that closes the connection is not read (RFC 9112 9.6).
            if self.readingRequestKeepsAlive == false { self.inputFinished = true }
            self.readingRequestKeepsAlive = nil
            self.atRequestStart = true
            self.armTimer()
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            // After a parser error the decoder reports each further read; those are answered already.
            if !(error is ByteToMessageDecoderError) { context.fireErrorCaught(error) }
            return
        }
        guard case .open = self.phase, !self.inputFinished else { return }
        self.inputFinished = true
        if self.readingRequestKeepsAlive != nil {
            if self.awaitingResponse.isEmpty {
                // Its answer went out already; the rest of the connection cannot be read.
                self.finishClosing(context)
            } else {
                // A broken body: the handler reading it gets the error and answers; then the
                // connection closes.
                self.closeAfterResponses = true
                context.fireErrorCaught(error)
            }
            return
        }
        let refusal = self.refusal(for: parserError)
        if self.awaitingResponse.isEmpty {
            self.respond(refusal, context)
        } else {
            // Garbage after requests still being answered: refused after their answers.
            self.pendingRefusal = refusal
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch (self.phase, event) {
        case (.closing(lingerDeadline: .some(_)), let event as ChannelEvent) where event == .inputClosed:
            // The client read the answer and closed: done lingering.
            self.peerClosedInput = true
            self.finishClosing(context)
        case (.closing, let event as ChannelEvent) where event == .inputClosed:
            self.peerClosedInput = true
        case (.open, let event as ChannelEvent) where event == .inputClosed:
            self.peerClosedInput = true
            self.inputClosedForwarded = true
            context.fireUserInboundEventTriggered(event)
        case (.open, is ChannelShouldQuiesceEvent):
            // The server is stopping: an idle connection closes now, a busy one after its answer.
            context.fireUserInboundEventTriggered(event)
            if self.awaitingResponse.isEmpty && self.readingRequestKeepsAlive == nil {
                self.finishClosing(context)
            } else {
                self.closeAfterResponses = true
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: - Output

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.phase {
        case .upgraded:
            context.write(data, promise: promise)
            return
        case .closing, .closed:
            promise?.fail(ChannelError.outputClosed)
            return
        case .open:
            break
        }
        switch Self.unwrapOutboundIn(data) {
        case .head(let head) where head.status == .switchingProtocols:
            self.phase = .upgraded
            self.cancelTimer()
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.write(data, promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in self.stepAside(context) }
        case .head(let head) where head.status.code < 200:
            context.write(data, promise: promise)
        case .head(var head):
            self.prepare(&head)
            context.write(Self.wrapOutboundOut(.head(head)), promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            self.responseEnded(context, data: data, promise: promise)
        }
    }

    /// Matches the answer to its request: HTTP/1.0 gets a 1.0 answer (which a 1.0 client can
    /// frame: no chunked encoding), and `Connection: close` when the connection will close.
    private func prepare(_ head: inout HTTPResponseHead) {
        guard let request = self.awaitingResponse.first else { return }
        if request.version.major == 1 && request.version.minor == 0 { head.version = .http1_0 }
        // A 1.0 answer without a length ends where the connection does.
        let framed = head.version != .http1_0 || head.headers.contains(name: "content-length")
        let closes =
            !request.keepAlive || !framed || self.closeAfterResponses
            || head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "close" }
        if closes {
            head.headers.replaceOrAdd(name: "connection", value: "close")
            self.closeAfterResponses = true
        } else if head.version == .http1_0 {
            head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
    }

    private func responseEnded(_ context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !self.awaitingResponse.isEmpty { self.awaitingResponse.removeFirst() }
        self.lastResponseEnd = .now()
        guard self.awaitingResponse.isEmpty else {
            context.write(data, promise: promise)
            return
        }
        if let refusal = self.pendingRefusal {
            context.write(data, promise: promise)
            self.respond(refusal, context)
        } else if self.closeAfterResponses {
            self.inputFinished = true
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
            self.shutOutput(context, after: written.futureResult)
        } else {
            context.write(data, promise: promise)
            self.armTimer()
        }
    }

    // MARK: - Answering and closing

    private static let requestStartLength = 32

    /// The parser reports an unknown method like any bad first byte; the request's first
    /// bytes tell them apart: a token and a space is a method this service does not have.
    /// A request pipelined into the read that ended the one before is seen from its next read
    /// on; what was missed is a prefix of a known method, so at worst a 501 becomes a 400.
    private func refusal(for error: HTTPParserError) -> RapidFlowError {
        if case .invalidMethod = error, let start = self.requestStart, let space = start.firstIndex(of: UInt8(ascii: " ")),
            space > 0, start[..<space].allSatisfy(Self.isTokenCharacter)
        {
            let method = String(decoding: start[..<space], as: UTF8.self)
            return RapidFlowError(.methodNotImplemented, "method '\(method)' is not implemented (methods are case-sensitive)")
        }
        return APIResponse.malformed(error)
    }

    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// Writes the error envelope with `Connection: close`, then closes.
    private func respond(_ error: RapidFlowError, _ context: ChannelHandlerContext) {
        self.inputFinished = true
        self.pendingRefusal = nil
        let status = APIResponse.status(for: error.code)
        let body = APIResponse.envelopeBody(data: .null, error: APIResponse.errorObject(error))
        let headers = HTTPHeaders([
            ("content-type", "application/json; charset=utf-8"), ("content-length", "\(body.readableBytes)"), ("connection", "close"),
        ])
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: Int(status.code), reasonPhrase: status.reasonPhrase),
            headers: headers)
        self.logger?.debug("refused a request", metadata: ["code": "\(error.code)", "reason": "\(error.message)"])
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let written = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        self.shutOutput(context, after: written)
    }

    /// Once the answer is out: FIN to the client, then discard what it still sends until it
    /// closes or `linger` has passed.
    private func shutOutput(_ context: ChannelHandlerContext, after written: EventLoopFuture<Void>) {
        self.phase = .closing(lingerDeadline: nil)
        self.cancelTimer()
        self.endApplicationInput(context)
        written.assumeIsolated().whenComplete { result in
            guard case .closing = self.phase else { return }
            guard case .success = result, !self.peerClosedInput else { return self.finishClosing(context) }
            self.phase = .closing(lingerDeadline: .now() + self.timeouts.linger)
            context.close(mode: .output).assumeIsolated().whenFailure { _ in self.finishClosing(context) }
            self.armTimer()
        }
    }

    private func finishClosing(_ context: ChannelHandlerContext) {
        self.phase = .closed
        self.cancelTimer()
        self.endApplicationInput(context)
        context.close(promise: nil)
    }

    /// Tells the handlers after this one that no more input comes. Before the first request
    /// the upgrade handler waits for a head: told so, it gives up quietly, where a channel
    /// closing under it would be logged as an error.
    private func endApplicationInput(_ context: ChannelHandlerContext) {
        guard !self.inputClosedForwarded else { return }
        self.inputClosedForwarded = true
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard case .closing = self.phase else { return context.close(mode: mode, promise: promise) }
        // The application is done once its input ended; the close is this handler's, after
        // the answer is out and the client had its chance to read it.
        if mode == .all {
            context.channel.closeFuture.cascade(to: promise)
        } else {
            promise?.succeed()
        }
    }

    /// A WebSocket took over the connection: leave the pipeline, with the tap.
    private func stepAside(_ context: ChannelHandlerContext) {
        if let inputTap = self.inputTap { context.pipeline.syncOperations.removeHandler(inputTap, promise: nil) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    // MARK: - Timer

    /// The next moment something is due, and what.
    private func nextExpiry() -> (NIODeadline, Expiry)? {
        switch self.phase {
        case .upgraded, .closed, .closing(lingerDeadline: nil):
            return nil
        case .closing(lingerDeadline: .some(let deadline)):
            return (deadline, .linger)
        case .open:
            break
        }
        if self.readingRequestKeepsAlive != nil { return (self.lastInput + self.timeouts.idle, .idle) }
        if !self.awaitingResponse.isEmpty { return nil }
        if let start = self.headClockStart { return (max(start, self.lastResponseEnd) + self.timeouts.header, .header) }
        return (self.lastResponseEnd + self.timeouts.idle, .idle)
    }

    private func armTimer() {
        guard let context = self.context else { return }
        guard let (deadline, _) = self.nextExpiry() else { return self.cancelTimer() }
        // A timer due earlier looks again when it fires.
        if self.timer != nil, let scheduled = self.timerDeadline, scheduled <= deadline { return }
        self.timer?.cancel()
        self.timerDeadline = deadline
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { self.timerFired() }
    }

    private func cancelTimer() {
        self.timer?.cancel()
        self.timer = nil
        self.timerDeadline = nil
    }

    private func timerFired() {
        self.timer = nil
        self.timerDeadline = nil
        guard let context = self.context, let (deadline, expiry) = self.nextExpiry() else { return }
        guard deadline <= .now() else { return self.armTimer() }
        switch expiry {
        case .header:
            let milliseconds = self.timeouts.header.nanoseconds / 1_000_000
            let seconds = milliseconds % 1000 == 0 ? "\(milliseconds / 1000)" : "\(Double(milliseconds) / 1000)"
            self.respond(RapidFlowError(.requestTimeout, "the request head did not arrive within \(seconds) s"), context)
        case .idle:
            self.finishClosing(context)
        case .linger:
            self.finishClosing(context)
        }
    }

    /// First in the pipeline: tells the guard of each read before the decoder parses it, and
    /// drops reads once the guard takes no more input.
    final class InputTap: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        private let connectionGuard: HTTPConnectionGuard

        init(connectionGuard: HTTPConnectionGuard) {
            self.connectionGuard = connectionGuard
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if self.connectionGuard.inputArrived(Self.unwrapInboundIn(data)) { context.fireChannelRead(data) }
        }
    }
}

@available(*, unavailable)
extension HTTPConnectionGuard: Sendable {}

@available(*, unavailable)
extension HTTPConnectionGuard.InputTap: Sendable {}
