import AsyncHTTPClient
import Foundation
import NIOHTTP1

import NIOCore
import RapidFlowAPI
import RapidFlowServer
import ServiceLifecycle
import Testing

/// A real RapidFlow service on a free loopback port, with a fresh data directory.
struct TestServer {
    let port: Int
    let dataDirectory: String
    /// The in-process service, when the test started one (nil for a separate `rapidflow` process).
    let service: RapidFlowService?

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Runs `body` against a service started for it, then shuts the service down gracefully.
    static func with<T>(
        dataDirectory: String? = nil,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: (TestServer) async throws -> T
    ) async throws -> T {
        let directory = dataDirectory ?? TestFiles.temporaryDirectory()
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.dataDirectory = directory
        configuration.killGracePeriod = .seconds(2)
        configuration.logLevel = .warning
        // Tests clone repositories they create on this machine; RepositoryTests turns it off.
        configuration.allowLocalRepositories = true
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

    struct Reply {
        let status: Int
        let headers: [(String, String)]
        let body: Data

        /// The envelope's `data`.
        var data: Any? { (json as? [String: Any])?["data"].flatMap { $0 is NSNull ? nil : $0 } }
        var object: [String: Any] { data as? [String: Any] ?? [:] }
        var array: [[String: Any]] { data as? [[String: Any]] ?? [] }
        var error: [String: Any]? { (json as? [String: Any])?["error"] as? [String: Any] }
        var errorCode: String? { error?["code"] as? String }
        var errorMessage: String { error?["message"] as? String ?? "" }
        var json: Any? { try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }

        /// The envelope, its `data` read as one of the API's response types.
        func envelope<Payload: Decodable>(_ type: Payload.Type) throws -> API.Envelope<Payload> {
            try JSONDecoder().decode(API.Envelope<Payload>.self, from: body)
        }

        /// The envelope's `data` as one of the API's response types.
        func decoded<Payload: Decodable>(_ type: Payload.Type) throws -> Payload {
            try #require(try envelope(type).data, "\(text.prefix(300))")
        }
    }

    @discardableResult
    func request(_ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = []) async throws -> Reply {
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
    func request(_ method: HTTPMethod, _ path: String, encoding body: some Encodable, headers: [(String, String)] = []) async throws -> Reply {
        try await request(method, path, body: String(decoding: try JSONEncoder().encode(body), as: UTF8.self), headers: headers)
    }

    func get(_ path: String) async throws -> Reply { try await request(.GET, path) }
    func post(_ path: String, json: Any? = nil) async throws -> Reply {
        try await request(.POST, path, body: try json.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) })
    }

    // MARK: - Domain helpers

    func createPipeline(name: String = "test", config: String) async throws -> Int {
        let reply = try await post("/pipelines", json: ["name": name, "config": config])
        try #require(reply.status == 200, "create pipeline: \(reply.text)")
        return try #require(reply.object["id"] as? Int)
    }

    func trigger(_ pipelineID: Int, json: Any? = nil) async throws -> Int {
        let reply = try await post("/pipelines/\(pipelineID)/jobs", json: json)
        try #require(reply.status == 200, "trigger: \(reply.text)")
        return try #require(reply.object["id"] as? Int)
    }

    func job(_ id: Int) async throws -> [String: Any] { try await get("/jobs/\(id)").object }

    /// Polls the job until it has a final status (bounded by `timeout`).
    @discardableResult
    func waitForJob(_ id: Int, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let job = try await job(id)
            if let status = job["status"] as? String, ["success", "failed", "cancelled"].contains(status) { return job }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("job \(id) did not finish within \(timeout)")
    }

    /// Polls until the job reaches `status`.
    func waitForStatus(_ id: Int, _ status: String, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await job(id)["status"] as? String == status { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("job \(id) did not reach \(status) within \(timeout)")
    }

    /// Polls until the job's logs contain `text`.
    func waitForOutput(_ id: Int, containing text: String, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let logs = try await get("/jobs/\(id)/logs").object
            if (logs["build"] as? String ?? "").contains(text) || (logs["test"] as? String ?? "").contains(text) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("job \(id) never printed '\(text)'")
    }

    func counts() async throws -> (pipelines: Int, jobs: Int) {
        (try await get("/pipelines?limit=500").array.count, try await get("/jobs?limit=500").array.count)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum TestFiles {
    static func temporaryDirectory() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rapidflow-test-\(UUID().uuidString.prefix(8))").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs a shell command for test setup and returns its output; fails the test on a non-zero
    /// exit. It waits without holding a Swift concurrency thread (there are as few as there
    /// are cores, and every test shares them).
    @discardableResult
    static func shell(_ command: String) async throws -> String {
        let output = temporaryDirectory() + "/shell-output"
        FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-eo", "pipefail", "-c", command]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        try? handle.close()
        // Decoded leniently: a command may print bytes that are not UTF-8 (WebSocket frames).
        let text = String(decoding: FileManager.default.contents(atPath: output) ?? Data(), as: UTF8.self)
        guard status == 0 else { throw TestFailure("setup command failed: \(command)\n\(text)") }
        return text
    }

    /// For cleanups in `defer`: a short command, run to its end on the calling thread.
    static func shellNow(_ command: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", command]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
        process.waitUntilExit()
    }

    /// Whether any process still carries `text` on its command line.
    static func processExists(matching text: String) -> Bool {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return false }
        for entry in entries where Int(entry) != nil {
            guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let commandLine = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if commandLine.contains(text) { return true }
        }
        return false
    }
}
