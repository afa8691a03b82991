import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A WebSocket client for the tests, on a TCP connection of its own: the handshake, then
/// frames read until the service closes, answering its close and pings.
///
/// The WebSocket client library sometimes lost what a server sent right after the 101 and
/// then never ended (its socket left in CLOSE-WAIT), which hung whole test runs; a server
/// probe showed every frame was sent. This client reads bytes as they come, on NIO's event
/// loops, and ends within `bound` whatever happens.
public enum RawWebSocket {
    public struct Session: Sendable {
        /// The handshake's status: 101 when upgraded.
        public var status = 0
        public var headers: [(String, String)] = []
        /// Text messages, in order.
        public var texts: [String] = []
        /// The close frame's code, e.g. 1000; nil when none came.
        public var closeCode: UInt16?
        /// The close frame's reason text, e.g. "job finished".
        public var closeReason = ""
        /// What followed a refused handshake's head.
        public var body: [UInt8] = []
        /// The error that ended reading, when the connection did not simply close.
        public var readError: String?

        public var upgraded: Bool { status == 101 }
    }

    public static func follow(
        port: Int, path: String, headers: [(String, String)] = [], bound: Duration = .seconds(120),
        answersPings: Bool = true
    ) async throws -> Session {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let state = ParserBox()
        state.parser.withLock { $0.answersPings = answersPings }
        let ended = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            return try await withThrowingTaskGroup(of: Bool.self) { tasks in
                tasks.addTask {
                    do {
                        for try await buffer in inbound {
                            let (replies, done) = state.parser.withLock { parser in
                                (parser.feed(Array(buffer.readableBytesView)), parser.refusalComplete)
                            }
                            for reply in replies { try? await outbound.write(ByteBuffer(bytes: reply)) }
                            // A refused handshake's answer may leave the connection open (keep-alive).
                            if done { break }
                        }
                    } catch {
                        // A reset after the close is still the end; before it, the transcript says why it stopped.
                        state.parser.withLock { $0.session.readError = String(describing: error) }
                    }
                    return true
                }
                tasks.addTask {
                    try await Task.sleep(for: bound)
                    return false
                }
                let first = try await tasks.next() ?? false
                tasks.cancelAll()
                return first
            }
        }
        let session = state.parser.withLock { $0.session }
        guard ended else { throw TestFailure("the WebSocket to \(path) did not end within \(bound): \(session.texts.suffix(3))") }
        return session
    }

    private final class ParserBox: Sendable {
        let parser = Mutex(Parser())
    }

    /// Turns the bytes of the answer into the session; returns frames to send back.
    private struct Parser {
        var session = Session()
        private var buffer: [UInt8] = []
        private var headDone = false
        private var fragments: [UInt8] = []
        private var closed = false
        var answersPings = true

        /// A refused handshake's whole answer (its Content-Length) has arrived.
        var refusalComplete: Bool {
            guard headDone, !session.upgraded else { return false }
            let length = session.headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) }
            return length.map { session.body.count >= $0 } ?? false
        }

        mutating func feed(_ bytes: [UInt8]) -> [[UInt8]] {
            buffer += bytes
            if !headDone {
                guard let end = Self.find([13, 10, 13, 10], in: buffer) else { return [] }
                let lines = String(decoding: buffer[..<end], as: UTF8.self).components(separatedBy: "\r\n")
                session.status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
                session.headers = lines.dropFirst().compactMap { line in
                    guard let colon = line.firstIndex(of: ":") else { return nil }
                    return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
                }
                buffer.removeFirst(end + 4)
                headDone = true
            }
            guard session.upgraded else {
                session.body += buffer
                buffer = []
                return []
            }
            var replies: [[UInt8]] = []
            while let (opcode, fin, payload, size) = Self.frame(in: buffer) {
                buffer.removeFirst(size)
                switch opcode {
                case 0, 1, 2:
                    fragments += payload
                    if fin {
                        if opcode != 2 { session.texts.append(String(decoding: fragments, as: UTF8.self)) }
                        fragments = []
                    }
                case 8:
                    if payload.count >= 2 {
                        session.closeCode = UInt16(payload[0]) << 8 | UInt16(payload[1])
                        session.closeReason = String(decoding: payload.dropFirst(2), as: UTF8.self)
                    }
                    if !closed {
                        closed = true
                        replies.append(Self.masked(opcode: 8, Array(payload.prefix(2))))
                    }
                case 9 where answersPings:
                    replies.append(Self.masked(opcode: 10, payload))
                default:
                    break
                }
            }
            return replies
        }

        /// One complete unmasked frame at the start of `bytes`: opcode, FIN, payload, its size on the wire.
        static func frame(in bytes: [UInt8]) -> (UInt8, Bool, [UInt8], Int)? {
            guard bytes.count >= 2 else { return nil }
            let fin = bytes[0] & 0x80 != 0
            let opcode = bytes[0] & 0x0f
            var length = Int(bytes[1] & 0x7f)
            var header = 2
            if length == 126 {
                guard bytes.count >= 4 else { return nil }
                length = Int(bytes[2]) << 8 | Int(bytes[3])
                header = 4
            } else if length == 127 {
                guard bytes.count >= 10 else { return nil }
                length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
                header = 10
            }
            let masked = bytes[1] & 0x80 != 0
            let maskSize = masked ? 4 : 0
            guard bytes.count >= header + maskSize + length else { return nil }
            var payload = Array(bytes[(header + maskSize)..<(header + maskSize + length)])
            if masked {
                let mask = Array(bytes[header..<(header + 4)])
                for index in payload.indices { payload[index] ^= mask[index % 4] }
            }
            return (opcode, fin, payload, header + maskSize + length)
        }

        /// A client frame (clients must mask) of at most 125 bytes.
        static func masked(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
            let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
            let body = payload.prefix(125).enumerated().map { $0.element ^ mask[$0.offset % 4] }
            return [0x80 | opcode, 0x80 | UInt8(body.count)] + mask + body
        }

        static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
            guard haystack.count >= needle.count else { return nil }
            for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
                return start
            }
            return nil
        }
    }
}
