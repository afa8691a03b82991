import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Bytes written to the service on a TCP connection of its own, and what came back until the
/// service closed it: for requests no HTTP client would send.
///
/// Reading runs beside writing (the service may answer before the request is all written)
/// on NIO's event loops, so waiting never holds a Swift concurrency thread.
public enum RawHTTPConnection {
    public struct Transcript: Sendable, CustomStringConvertible {
        public let bytes: [UInt8]
        /// The service closed the connection (within the bound given to `exchange`).
        public let closed: Bool
        public let elapsed: Duration

        public var responses: [RawResponse] { RawResponse.parseAll(self.bytes) }
        public var description: String {
            let text = String(decoding: self.bytes.prefix(600), as: UTF8.self)
            return "closed: \(self.closed) after \(self.elapsed), \(self.bytes.count) bytes: \(text.debugDescription)"
        }
    }

    /// Writes each chunk in turn (`pause` between them), reading all the while; returns once
    /// the service closes the connection, or after `bound` with `closed` false.
    public static func exchange(
        port: Int, _ chunks: [[UInt8]], pause: Duration? = nil, bound: Duration = .seconds(15)
    ) async throws -> Transcript {
        let started = ContinuousClock.now
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let received = ReceivedBytes()
        let closed = try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Bool?.self) { tasks in
                tasks.addTask {
                    for (index, chunk) in chunks.enumerated() {
                        if index > 0, let pause { try await Task.sleep(for: pause) }
                        // The service may close before everything is written; what it answered still counts.
                        do { try await outbound.write(ByteBuffer(bytes: chunk)) } catch { break }
                    }
                    return nil
                }
                tasks.addTask {
                    do {
                        for try await buffer in inbound { received.bytes.withLock { $0 += buffer.readableBytesView } }
                    } catch {
                        // A reset after the answer is still a close.
                    }
                    return true
                }
                tasks.addTask {
                    try await Task.sleep(for: bound)
                    return false
                }
                var closed = false
                while let outcome = try await tasks.next() {
                    guard let outcome else { continue }
                    closed = outcome
                    break
                }
                tasks.cancelAll()
                return closed
            }
        }
        return Transcript(bytes: received.bytes.withLock { $0 }, closed: closed, elapsed: ContinuousClock.now - started)
    }

    /// What was read so far, also when the bound passes first.
    private final class ReceivedBytes: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    public static func exchange(port: Int, _ request: String, bound: Duration = .seconds(15)) async throws -> Transcript {
        try await exchange(port: port, [Array(request.utf8)], bound: bound)
    }
}
