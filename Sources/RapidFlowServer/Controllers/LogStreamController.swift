import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore
import ServiceLifecycle

/// `GET /jobs/:id/logs/stream`: a WebSocket of JSON events when the request asks to upgrade,
/// the pipeline API's plain-text stream otherwise.
struct LogStreamController {
    let store: any JobStore
    let broadcaster: LogBroadcaster
    /// Counts the live followers (`rapidflow_log_followers`).
    let metrics: ServiceMetrics
    /// Who a WebSocket follower's token is: a token limited to some owners follows only their jobs.
    let registry: TokenRegistry

    var follower: JobLogFollower { JobLogFollower(store: store, broadcaster: broadcaster) }

    func addRoutes(to router: Router<ServiceRequestContext>) {
        router.get("jobs/:id/logs/stream", use: plainText)
        router.get("jobs/:id/logs/raw", use: rawJobLog)
        router.get("steps/:id/logs/raw", use: rawStepLog)
    }

    func addWebSocketRoutes(to router: Router<BasicWebSocketRequestContext>) {
        router.ws("jobs/:id/logs/stream") { request, context in
            // A refused upgrade is answered by the HTTP stack with a bare 400, so only a
            // malformed request is refused; an unknown job gets an error event instead.
            guard Int(context.parameters.get("id") ?? "") != nil else { return .dontUpgrade }
            do {
                _ = try parseSince(request)
            } catch {
                return .dontUpgrade
            }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let id = Int(context.requestContext.parameters.get("id") ?? "") ?? 0
            let since = try parseSince(context.request)
            let offered = WebSocketSubprotocolMiddleware<BasicWebSocketRequestContext>.offeredProtocols(context.request.headers)
            let principal = registry.principal(
                among: BearerTokenMiddleware<BasicWebSocketRequestContext>.candidates(
                    authorization: context.request.headers[.authorization], subprotocols: offered))
            let job = try await store.job(id: id)
            let refusal: RapidFlowError? =
                if job == nil { .jobNotFound(id) }
                else if let job, principal?.reaches(owner: job.account) != true {
                    RapidFlowError(.forbidden, "the token '\(principal?.name ?? "")' does not reach the owner '\(job.account)' of job \(id)")
                } else { nil }
            if let refusal {
                try await outbound.write(.text(JSONEventRenderer.text(.error(code: refusal.code.rawValue, message: refusal.message))))
                // Returning closes the socket.
                return
            }
            metrics.followerChanged(by: 1)
            defer { metrics.followerChanged(by: -1) }
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: WebSocketEnding.self) { group in
                    // Reading the client's frames is what takes in its answers to the service's
                    // pings: a follower that did not read would be closed after two ping periods.
                    group.addTask {
                        for try await _ in inbound {}
                        return .clientClosed
                    }
                    group.addTask {
                        var renderer = JSONEventRenderer()
                        var finished = false
                        try await follower.run(jobID: id, sinceStepID: since, follow: true) { event in
                            for message in renderer.render(event) {
                                try await outbound.write(.text(message))
                            }
                            if case .jobFinished = event { finished = true }
                        }
                        try await outbound.close(
                            finished ? .normalClosure : .goingAway, reason: finished ? "job finished" : "service stopping")
                        return .serviceClosed
                    }
                    if try await group.next() == .clientClosed {
                        group.cancelAll()
                        return
                    }
                    // The reader ends when the client answers the close; a client that never
                    // does is left after a while.
                    group.addTask {
                        try await Task.sleep(for: .seconds(10))
                        return .clientSilent
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                Task { await broadcaster.close() }
            }
        }
    }

    private enum WebSocketEnding: Sendable {
        case clientClosed, serviceClosed, clientSilent
    }

    private func parseSince(_ request: Request) throws -> Int? {
        try RequestParsing.queryInt(request, "since", range: 0...Int.max)
    }

    @Sendable func plainText(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let id = try RequestParsing.id(context, what: "job")
        _ = try await store.requireJob(id: id)
        let follow = try RequestParsing.queryBool(request, "follow")
        let since = try parseSince(request)
        let follower = self.follower
        let broadcaster = self.broadcaster
        let metrics = self.metrics
        let body = ResponseBody { writer in
            var renderer = PlainTextRenderer()
            if follow { metrics.followerChanged(by: 1) }
            defer { if follow { metrics.followerChanged(by: -1) } }
            try await withGracefulShutdownHandler {
                try await follower.run(jobID: id, sinceStepID: since, follow: follow) { event in
                    let buffer = renderer.render(event)
                    if buffer.readableBytes > 0 { try await writer.write(buffer) }
                }
            } onGracefulShutdown: {
                Task { await broadcaster.close() }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: Self.textHeaders(), body: body)
    }

    /// `GET /jobs/:id/logs/raw`: the job's whole log as it is stored now, in the plain stream's
    /// format, to save or open in a browser; one step's output at a time, never the whole log in memory.
    @Sendable func rawJobLog(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let id = try RequestParsing.id(context, what: "job")
        _ = try await store.requireJob(id: id)
        let follower = self.follower
        let body = ResponseBody { writer in
            var renderer = PlainTextRenderer()
            try await follower.run(jobID: id, sinceStepID: nil, follow: false) { event in
                let buffer = renderer.render(event)
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: Self.textHeaders(filename: "job-\(id).log"), body: body)
    }

    /// `GET /steps/:id/logs/raw`: exactly the bytes the step printed (as stored), nothing added.
    @Sendable func rawStepLog(_ request: Request, context: ServiceRequestContext) async throws -> Response {
        let id = try RequestParsing.id(context, what: "step")
        guard try await store.step(id: id) != nil else { throw RapidFlowError.stepNotFound(id) }
        let output = try await store.output(stepID: id)
        return Response(
            status: .ok, headers: Self.textHeaders(filename: "step-\(id).log"), body: ResponseBody(byteBuffer: ByteBuffer(bytes: output)))
    }

    private static func textHeaders(filename: String? = nil) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-cache", .init("X-Content-Type-Options")!: "nosniff"]
        if let filename { headers[.contentDisposition] = "inline; filename=\"\(filename)\"" }
        return headers
    }
}

/// The pipeline API's format: `=== Step N (type) ===`, the output, a blank line, and the closing line.
struct PlainTextRenderer {
    private var endsWithNewline: [Int: Bool] = [:]

    mutating func render(_ event: LogStreamEvent) -> ByteBuffer {
        var buffer = ByteBuffer()
        switch event {
        case .stepStarted(let step):
            buffer.writeString("=== Step \(step.orderNum) (\(step.type)) ===\n")
            endsWithNewline[step.id] = true
        case .log(let stepID, _, let data):
            buffer.writeBytes(data)
            if let last = data.last { endsWithNewline[stepID] = last == UInt8(ascii: "\n") }
        case .stepFinished(let stepID, _, _):
            if endsWithNewline[stepID] == false { buffer.writeString("\n") }
            buffer.writeString("\n")
        case .jobFinished(let status):
            buffer.writeString("=== Build \(Self.word(for: status)) ===\n")
        case .serviceStopping:
            buffer.writeString("=== Stream closed: the service is shutting down ===\n")
        }
        return buffer
    }

    static func word(for status: JobStatus) -> String {
        switch status {
        case .success: "completed"
        case .failed: "failed"
        case .cancelled: "cancelled"
        case .pending, .running: status.rawValue
        }
    }
}

/// The WebSocket's JSON events.
///
/// A `log` event's `offset` is the byte offset in the step's stored output, and the event
/// carries exactly the bytes that follow it: as text in `data` when they are valid UTF-8,
/// else as base64 in `data_base64`. So `offset` plus the byte length is always the next
/// event's `offset`, whatever the step printed, and a client that resumes counts what it has
/// in the same unit. A character whose bytes arrive in two chunks is held back until it is
/// whole, and frames are never cut inside one.
struct JSONEventRenderer {
    private var pending: [Int: [UInt8]] = [:]
    private var nextOffset: [Int: Int] = [:]

    mutating func render(_ event: LogStreamEvent) -> [String] {
        switch event {
        case .stepStarted(let step):
            return [Self.text(.stepStarted(stepID: step.id, orderNum: step.orderNum, type: step.type, phase: step.phase))]
        case .log(let stepID, let offset, let data):
            let held = pending.removeValue(forKey: stepID) ?? []
            let bytes = held + data
            let start = offset - held.count
            let whole = UTF8Frames.incompleteTail(bytes)
            if whole < bytes.count { pending[stepID] = Array(bytes[whole...]) }
            nextOffset[stepID] = start + whole
            return Self.logMessages(stepID: stepID, offset: start, bytes: bytes[..<whole])
        case .stepFinished(let stepID, let status, let exitCode):
            var messages: [String] = []
            // The output ended inside a character: those bytes go as they are.
            if let rest = pending.removeValue(forKey: stepID), !rest.isEmpty {
                messages += Self.logMessages(stepID: stepID, offset: nextOffset[stepID] ?? 0, bytes: rest[...])
            }
            messages.append(Self.text(.stepFinished(stepID: stepID, status: status, exitCode: exitCode)))
            return messages
        case .jobFinished(let status):
            return [Self.text(.jobFinished(status: status))]
        case .serviceStopping:
            return [Self.text(.serviceStopping)]
        }
    }

    /// Frames stay small (WebSocket clients commonly refuse frames over 16 KiB): output is
    /// sent in pieces of at most `pieceSize` bytes.
    static let pieceSize = 4096

    private static func logMessages(stepID: Int, offset: Int, bytes: ArraySlice<UInt8>) -> [String] {
        UTF8Frames.cut(bytes, maxBytes: pieceSize).map { piece in
            let data: API.LogStreamEvent.LogData =
                if let text = String(validating: piece, as: UTF8.self) { .text(text) } else { .base64(Data(piece).base64EncodedString()) }
            return text(.log(stepID: stepID, offset: offset + (piece.startIndex - bytes.startIndex), data: data))
        }
    }

    /// One message's text. An event's fields are numbers and strings, which the encoder
    /// writes without fail.
    static func text(_ event: API.LogStreamEvent) -> String {
        do {
            return try JSONValueEncoder().encode(event).serialized
        } catch {
            preconditionFailure("a log stream event did not encode: \(error)")
        }
    }
}

/// Where UTF-8 characters start and end in a run of bytes that may not all be UTF-8.
enum UTF8Frames {
    /// What starts at a byte: a valid character of some length, a byte that starts none, or a
    /// valid start cut off by the end of the bytes. The rules are RFC 3629's (no overlong forms,
    /// surrogates or values past U+10FFFF), as `String(validating:)` applies them.
    enum Unit: Equatable {
        case character(length: Int)
        case invalid
        case incomplete
    }

    static func unit(_ bytes: ArraySlice<UInt8>, at index: Int) -> Unit {
        let lead = bytes[index]
        if lead < 0x80 { return .character(length: 1) }
        var second: ClosedRange<UInt8> = 0x80...0xBF
        let length: Int
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; second = 0xA0...0xBF
        case 0xED: length = 3; second = 0x80...0x9F
        case 0xE1...0xEF: length = 3
        case 0xF0: length = 4; second = 0x90...0xBF
        case 0xF4: length = 4; second = 0x80...0x8F
        case 0xF1...0xF3: length = 4
        default: return .invalid
        }
        for position in 1..<length {
            guard index + position < bytes.endIndex else { return .incomplete }
            let byte = bytes[index + position]
            guard (position == 1 ? second : 0x80...0xBF).contains(byte) else { return .invalid }
        }
        return .character(length: length)
    }

    /// Where a character that the end of `bytes` cuts off starts (more bytes may complete it),
    /// else `bytes.count`. Only the last three bytes can hold one.
    static func incompleteTail(_ bytes: [UInt8]) -> Int {
        for start in stride(from: bytes.count - 1, through: max(0, bytes.count - 3), by: -1) where bytes[start] >= 0xC0 {
            return unit(bytes[...], at: start) == .incomplete ? start : bytes.count
        }
        return bytes.count
    }

    /// `bytes` in pieces of at most `maxBytes`, each ending where a character ends (or at an
    /// invalid byte): a valid character is never split across two pieces.
    static func cut(_ bytes: ArraySlice<UInt8>, maxBytes: Int) -> [ArraySlice<UInt8>] {
        var pieces: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        while start < bytes.endIndex {
            var end = min(start + maxBytes, bytes.endIndex)
            if end < bytes.endIndex {
                // A character that starts in the last three bytes and runs past the cut moves
                // whole to the next piece.
                for lead in stride(from: end - 1, through: max(start + 1, end - 3), by: -1) where bytes[lead] >= 0xC0 {
                    if case .character(let length) = unit(bytes, at: lead), lead + length > end { end = lead }
                    break
                }
            }
            pieces.append(bytes[start..<end])
            start = end
        }
        return pieces
    }
}
