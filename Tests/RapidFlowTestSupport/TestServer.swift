import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RapidFlowServer
import ServiceLifecycle

/// A real RapidFlow service on a free loopback port, with a fresh data directory.
public struct TestServer: Sendable {
    public let port: Int
    public let dataDirectory: String
    /// The in-process service, when the test started one (nil for a separate `rapidflow` process).
    public let service: RapidFlowService?

    /// The address it listens on: loopback, or a test's own network namespace's.
    public var host = "127.0.0.1"
    public var baseURL: String { "http://\(host):\(port)" }

    /// A service already listening on `port`, e.g. a `rapidflow serve` the test started.
    public init(port: Int, dataDirectory: String, service: RapidFlowService? = nil) {
        self.port = port
        self.dataDirectory = dataDirectory
        self.service = service
    }

    /// Runs `body` against a service started for it, then shuts the service down gracefully.
    public static func with<T>(
        dataDirectory: String? = nil,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: (TestServer) async throws -> T
    ) async throws -> T {
        StallWatchdog.start()
        let directory = dataDirectory ?? TestFiles.temporaryDirectory()
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.dataDirectory = directory
        configuration.killGracePeriod = .seconds(2)
        configuration.logLevel = .warning
        // Tests clone repositories they create on this machine; RepositoryTests turns it off.
        configuration.allowLocalRepositories = true
        // Webhook deliveries and commit statuses never leave this machine.
        configuration.webhookAllowedHosts = ["127.0.0.1"]
        configure(&configuration)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let (app, service) = try await buildApplication(configuration: configuration) { port in
            portContinuation.yield(port)
        }
        let group = ServiceGroup(configuration: .init(services: [app], logger: app.logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TestFailure("server did not start") }
            // A data directory made here goes with the service: caches and workspaces of a
            // whole suite would otherwise fill the disk over repeated runs.
            defer { if dataDirectory == nil { try? FileManager.default.removeItem(atPath: directory) } }
            do {
                let result = try await body(TestServer(port: port, dataDirectory: directory, service: service))
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }

    // MARK: - HTTP

    @discardableResult
    public func request(
        _ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = []
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let buffer = try await response.body.collect(upTo: 256 << 20)
        return Reply(
            status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
            body: Data(buffer.readableBytesView))
    }

    /// One of the API's request types as the body, as the client sends it.
    @discardableResult
    public func request(
        _ method: HTTPMethod, _ path: String, encoding body: some Encodable, headers: [(String, String)] = []
    ) async throws -> Reply {
        try await request(method, path, body: String(decoding: try JSONEncoder().encode(body), as: UTF8.self), headers: headers)
    }

    public func get(_ path: String) async throws -> Reply { try await request(.GET, path) }

    /// `json` is any JSON value, written as it is: for bodies no request type can express
    /// (a wrong type, an unknown field), or none.
    @discardableResult
    public func post(_ path: String, json: Any? = nil) async throws -> Reply {
        try await request(.POST, path, body: try json.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) })
    }
}
