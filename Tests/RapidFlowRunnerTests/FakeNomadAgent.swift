import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Testing

@testable import RapidFlowRunner

/// A stand-in for a Nomad agent on 127.0.0.1 (Nomad itself cannot be installed here): it answers
/// each request with the next reply scripted for its method and path, most of them the recorded
/// bodies in `Fixtures/nomad`, byte for byte, and records every request it received.
///
/// The agent also shuts down the Nomad clients a test made against it (`adopt`), however the test
/// ends: each owns an HTTP client that must be shut down.
///
/// Blocking queries are honoured the way Nomad does: when the reply left for a route is its last
/// one and the request's `index` is already at that reply's index, the answer waits out `wait`
/// (capped at two seconds), so a loop that follows the index cannot spin.
final class FakeNomadAgent: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        var query: [String: String]
        var headers: HTTPHeaders
        var body: Data

        var line: String { "\(method) \(path)" }

        func header(_ name: String) -> String? { headers.first(name: name) }

        /// The body parsed as a JSON object.
        func jsonObject() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        }
    }

    enum Reply: Sendable {
        case answer(status: Int, index: UInt64?, contentType: String, body: Data)
        /// Closes the connection without answering: what a client sees as Nomad's `EOF`.
        case dropConnection

        /// A recorded success body from `Fixtures/nomad`.
        static func fixture(_ name: String, index: UInt64? = nil) throws -> Reply {
            .answer(status: 200, index: index, contentType: "application/json", body: try FakeNomadAgent.fixture(name))
        }

        /// A body built by the test (a fixture with some fields changed).
        static func json(_ body: Data, index: UInt64? = nil) -> Reply {
            .answer(status: 200, index: index, contentType: "application/json", body: body)
        }

        /// A recorded error from `Fixtures/nomad/errors`, as Nomad sends errors: plain text.
        static func error(_ status: Int, _ name: String) throws -> Reply {
            .answer(status: status, index: nil, contentType: "text/plain; charset=utf-8", body: try FakeNomadAgent.fixture("errors/\(name)"))
        }

        var index: UInt64? {
            if case .answer(_, let index, _, _) = self { index } else { nil }
        }
    }

    /// Answers what no scripted reply covers (IDs the test learns only from a request).
    typealias Handler = @Sendable (Request) -> (Reply, Duration?)?

    private struct State {
        var routes: [String: [Reply]] = [:]
        var fallback: Handler?
        var requests: [Request] = []
        var clients: [NomadClient] = []
    }

    private let state = Mutex(State())
    /// `http://127.0.0.1:<port>`, or `https://` with TLS.
    let address: String

    private init(address: String) {
        self.address = address
    }

    /// Shut down when the agent stops.
    func adopt(_ client: NomadClient) -> NomadClient {
        state.withLock { $0.clients.append(client) }
        return client
    }

    static let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/nomad")

    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: fixturesDirectory.appendingPathComponent(name))
    }

    /// Queues replies for `method path`, answered in order; the last one keeps answering.
    func on(_ method: String, _ path: String, _ replies: Reply...) {
        state.withLock { $0.routes["\(method) \(path)", default: []].append(contentsOf: replies) }
    }

    /// Sets the handler for requests without a scripted reply.
    func onUnscripted(_ handler: @escaping Handler) {
        state.withLock { $0.fallback = handler }
    }

    /// Every request received so far, in order.
    var requests: [Request] {
        state.withLock { $0.requests }
    }

    /// Runs `body` with an agent listening on a free port of 127.0.0.1, and stops it afterwards.
    /// With `tls` the agent speaks HTTPS only, as Nomad does with `tls.http` on.
    static func run<Result: Sendable>(
        tls: NIOSSLContext? = nil, _ body: (FakeNomadAgent) async throws -> Result
    ) async throws -> Result {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        let port = try #require(server.channel.localAddress?.port)
        let agent = FakeNomadAgent(address: "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)")
        do {
            let result = try await agent.serve(server, while: body)
            await agent.shutDownClients()
            return result
        } catch {
            await agent.shutDownClients()
            throw error
        }
    }

    private func shutDownClients() async {
        for client in state.withLock({ $0.clients }) { try? await client.shutdown() }
    }

    /// Accepts connections until `body` is done.
    private func serve<Result: Sendable>(
        _ server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>,
        while body: (FakeNomadAgent) async throws -> Result
    ) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await server.executeThenClose { connections in
                    try await withThrowingDiscardingTaskGroup { handlers in
                        for try await connection in connections {
                            handlers.addTask { try? await self.serve(connection) }
                        }
                    }
                }
            }
            defer { group.cancelAll() }
            return try await body(self)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let received):
                    head = received
                    body.clear()
                case .body(var chunk):
                    body.writeBuffer(&chunk)
                case .end:
                    guard let head else { return }
                    let request = Self.request(head, body)
                    let (reply, delay) = next(for: request)
                    if let delay { try await Task.sleep(for: delay) }
                    guard case .answer(let status, let index, let contentType, let bytes) = reply else { return }
                    var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(bytes.count))])
                    if let index { headers.add(name: "X-Nomad-Index", value: String(index)) }
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
                    try await outbound.write(.end(nil))
                }
            }
        }
    }

    /// Records the request and takes its reply, with how long a blocking query should wait first.
    private func next(for request: Request) -> (Reply, Duration?) {
        state.withLock { state in
            state.requests.append(request)
            guard var queue = state.routes[request.line], let reply = queue.first else {
                if let answer = state.fallback?(request) { return answer }
                let text = "no reply scripted for \(request.line)"
                return (.answer(status: 404, index: nil, contentType: "text/plain; charset=utf-8", body: Data(text.utf8)), nil)
            }
            if queue.count > 1 {
                queue.removeFirst()
                state.routes[request.line] = queue
                return (reply, nil)
            }
            let waited = request.query["index"].flatMap(UInt64.init).flatMap { asked in
                reply.index.map { asked >= $0 }
            }
            guard waited == true else { return (reply, nil) }
            let wait = request.query["wait"].flatMap(Self.parseWait) ?? .seconds(2)
            return (reply, min(wait, .seconds(2)))
        }
    }

    private static func request(_ head: HTTPRequestHead, _ body: ByteBuffer) -> Request {
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                    String($0).removingPercentEncoding ?? String($0)
                }
                query[keyValue[0]] = keyValue.count == 2 ? keyValue[1] : ""
            }
        }
        return Request(
            method: head.method.rawValue, path: String(parts[0]), query: query, headers: head.headers, body: Data(body.readableBytesView)
        )
    }

    /// `300s`, `1500ms`: the forms the client sends.
    private static func parseWait(_ text: String) -> Duration? {
        if text.hasSuffix("ms"), let value = Int(text.dropLast(2)) { return .milliseconds(value) }
        if text.hasSuffix("s"), let value = Int(text.dropLast()) { return .seconds(value) }
        return nil
    }
}
