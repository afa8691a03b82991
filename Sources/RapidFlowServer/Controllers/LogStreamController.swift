import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import RapidFlowCore
import RapidFlowStore
import ServiceLifecycle

/// `GET /jobs/:id/logs/stream`: a WebSocket of JSON events when the request asks to upgrade,
/// the plain-text stream of document 002 otherwise.
struct LogStreamController {
    let store: any JobStore
    let broadcaster: LogBroadcaster

    var follower: JobLogFollower { JobLogFollower(store: store, broadcaster: broadcaster) }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("jobs/:id/logs/stream", use: plainText)
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
        } onUpgrade: { _, outbound, context in
            let id = Int(context.requestContext.parameters.get("id") ?? "") ?? 0
            let since = try parseSince(context.request)
            guard try await store.job(id: id) != nil else {
                let error = RapidFlowError.jobNotFound(id)
                try await outbound.write(.text(JSONValue.object([
                    ("event", "error"), ("code", .string(error.code.rawValue)), ("message", .string(error.message)),
                ]).serialized))
                // Returning closes the socket.
                return
            }
            var renderer = JSONEventRenderer()
            var finished = false
            try await withGracefulShutdownHandler {
                try await follower.run(jobID: id, sinceStepID: since, follow: true) { event in
                    for message in renderer.render(event) {
                        try await outbound.write(.text(message))
                    }
                    if case .jobFinished = event { finished = true }
                }
            } onGracefulShutdown: {
                Task { await broadcaster.close() }
            }
            try await outbound.close(finished ? .normalClosure : .goingAway, reason: finished ? "job finished" : "service stopping")
        }
    }

    private func parseSince(_ request: Request) throws -> Int? {
        try RequestParsing.queryInt(request, "since", range: 0...Int.max)
    }

    @Sendable func plainText(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let id = try RequestParsing.id(context, what: "job")
        _ = try await store.requireJob(id: id)
        let follow = try RequestParsing.queryBool(request, "follow")
        let since = try parseSince(request)
        let follower = self.follower
        let broadcaster = self.broadcaster
        let body = ResponseBody { writer in
            var renderer = PlainTextRenderer()
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
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-cache", .init("X-Content-Type-Options")!: "nosniff"],
            body: body)
    }
}

/// Document 002's format: `=== Step N (type) ===`, the output, a blank line, and the closing line.
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

/// The WebSocket's JSON events. Output is sent as text: bytes of a UTF-8 character split
/// across two chunks are held back until the character is whole.
struct JSONEventRenderer {
    private var pending: [Int: Data] = [:]
    private var nextOffset: [Int: Int] = [:]

    mutating func render(_ event: LogStreamEvent) -> [String] {
        switch event {
        case .stepStarted(let step):
            return [JSONValue.object([
                ("event", "step_started"), ("step_id", .int(step.id)), ("order_num", .int(step.orderNum)),
                ("type", .string(step.type)), ("phase", .string(step.phase.rawValue)),
            ]).serialized]
        case .log(let stepID, let offset, let data):
            let held = pending[stepID] ?? Data()
            var bytes = held + data
            let start = offset - held.count
            let cut = Self.completeUTF8Prefix(bytes)
            pending[stepID] = bytes.count > cut ? bytes.subdata(in: cut..<bytes.count) : nil
            bytes = bytes.prefix(cut)
            nextOffset[stepID] = start + bytes.count
            return Self.logMessages(stepID: stepID, offset: start, bytes: bytes)
        case .stepFinished(let stepID, let status, let exitCode):
            var messages: [String] = []
            if let rest = pending.removeValue(forKey: stepID), !rest.isEmpty {
                messages.append(Self.logMessage(stepID: stepID, offset: nextOffset[stepID] ?? 0, bytes: rest))
            }
            messages.append(JSONValue.object([
                ("event", "step_finished"), ("step_id", .int(stepID)), ("status", .string(status.rawValue)),
                ("exit_code", .optional(exitCode)),
            ]).serialized)
            return messages
        case .jobFinished(let status):
            return [JSONValue.object([("event", "job_finished"), ("status", .string(status.rawValue))]).serialized]
        case .serviceStopping:
            return [JSONValue.object([("event", "service_stopping")]).serialized]
        }
    }

    /// Frames stay small (WebSocket clients commonly refuse frames over 16 KiB): output is
    /// sent in pieces of at most `pieceSize` bytes, cut at character boundaries.
    static let pieceSize = 4096

    private static func logMessages(stepID: Int, offset: Int, bytes: Data) -> [String] {
        var messages: [String] = []
        var start = bytes.startIndex
        while start < bytes.endIndex {
            var end = min(start + pieceSize, bytes.endIndex)
            if end < bytes.endIndex {
                let whole = completeUTF8Prefix(bytes.subdata(in: start..<end))
                if whole > 0 { end = start + whole }
            }
            messages.append(logMessage(stepID: stepID, offset: offset + (start - bytes.startIndex), bytes: bytes.subdata(in: start..<end)))
            start = end
        }
        return messages
    }

    private static func logMessage(stepID: Int, offset: Int, bytes: Data) -> String {
        JSONValue.object([
            ("event", "log"), ("step_id", .int(stepID)), ("offset", .int(offset)),
            ("data", .string(String(decoding: bytes, as: UTF8.self))),
        ]).serialized
    }

    /// The length of the longest prefix that does not end inside a UTF-8 sequence.
    static func completeUTF8Prefix(_ bytes: Data) -> Int {
        let count = bytes.count
        var index = count - 1
        var continuation = 0
        while index >= 0, continuation < 3, bytes[bytes.startIndex + index] & 0xC0 == 0x80 {
            continuation += 1
            index -= 1
        }
        guard index >= 0 else { return count }
        let lead = bytes[bytes.startIndex + index]
        let needed: Int =
            if lead & 0x80 == 0 { 0 } else if lead & 0xE0 == 0xC0 { 1 } else if lead & 0xF0 == 0xE0 { 2 } else if lead & 0xF8 == 0xF0 { 3 } else { 0 }
        return needed > continuation ? index : count
    }
}
