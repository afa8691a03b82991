import Foundation
import Glibc
import NIOHTTP1
import Testing

/// Each request limit refuses with 400 (413 for the body) and a message, storing and running nothing.
@Suite("Limits")
struct LimitsTests {
    let refusals = BadInputTests()

    func imageJob(tags: Int = 1, testCommands: Int = 1, commandBytes: Int = 4) -> String {
        let body: [String: Any] = [
            "owner": "team", "repo_url": "file:///srv/app.git", "registry_url": "127.0.0.1:5055/team/app",
            "image_tags": (0..<tags).map { "t\($0)" },
            "test_commands": (0..<testCommands).map { _ in String(repeating: "x", count: commandBytes) },
        ]
        return String(decoding: try! JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    }

    @Test func stepCountAndScriptLength() async throws {
        try await TestServer.with { server in
            let steps = String(repeating: "  - echo\n", count: 201)
            try await refusals.expectRefused(
                server, "/pipelines", body: refusals.config("steps:\n\(steps)"), code: "invalid_config", mentioning: ["201 steps", "at most 200"])
            let script = String(repeating: "a", count: 64 * 1024 + 1)
            try await refusals.expectRefused(
                server, "/pipelines", body: refusals.config("steps:\n  - echo \(script)\n"), code: "invalid_config",
                mentioning: ["bytes", "at most 65536"])
            // At the limits, accepted.
            let atLimit = try await server.post("/pipelines", json: ["name": "p", "config": "steps:\n\(String(repeating: "  - echo\n", count: 200))"])
            #expect(atLimit.status == 200)
        }
    }

    @Test func tagCountTestCommandCountAndCommandLength() async throws {
        try await TestServer.with { server in
            try await refusals.expectRefused(server, "/jobs", body: imageJob(tags: 21), mentioning: ["image_tags", "21 tags", "at most 20"])
            try await refusals.expectRefused(
                server, "/jobs", body: imageJob(testCommands: 51), mentioning: ["test_commands", "51 commands", "at most 50"])
            try await refusals.expectRefused(
                server, "/jobs", body: imageJob(commandBytes: 64 * 1024 + 1), mentioning: ["test_commands[0]", "at most 65536"])
        }
    }

    @Test func environmentEntriesOnTrigger() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - echo\n")
            let env = Dictionary(uniqueKeysWithValues: (0..<201).map { ("K\($0)", "v") })
            let body = String(decoding: try JSONSerialization.data(withJSONObject: ["env": env]), as: UTF8.self)
            try await refusals.expectRefused(server, "/pipelines/\(pipeline)/jobs", body: body, mentioning: ["env", "at most 200"])
        }
    }

    @Test func bodySize() async throws {
        try await TestServer.with { server in
            let huge = String(repeating: "a", count: (1 << 20) + 10)
            try await refusals.expectRefused(
                server, "/jobs", body: "{\"owner\": \"\(huge)\"}", status: 413, code: "body_too_large", mentioning: ["1024 KiB"])
        }
    }

    @Test func headerSize() async throws {
        try await TestServer.with { server in
            let before = try await server.counts()
            // Over the service's 32 KiB: refused with the envelope and a message.
            let big = try await server.request(
                .POST, "/pipelines", body: refusals.config("steps:\n  - echo\n"), headers: [("X-Padding", String(repeating: "p", count: 40 * 1024))])
            #expect(big.status == 400)
            #expect(big.errorCode == "invalid_request")
            #expect(big.errorMessage.contains("request headers are"))
            #expect(big.errorMessage.contains("at most 32768"))
            let hundred = try await server.request(
                .GET, "/jobs", headers: [("X-Padding", String(repeating: "p", count: 100 * 1024))])
            #expect(hundred.status == 400)
            #expect(hundred.errorMessage.contains("at most 32768"))
            // Past the HTTP parser's own 1 MiB bound the connection is closed without an answer
            // (sent on a raw socket: AsyncHTTPClient does not expect an early close), and the
            // service keeps answering.
            let raw = try Self.rawExchange(
                port: server.port,
                "GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: \(String(repeating: "p", count: 2 << 20))\r\n\r\n")
            #expect(!raw.hasPrefix("HTTP/1.1 200"))
            #expect(try await server.get("/health").status == 200)
            #expect(try await server.counts() == before)
        }
    }

    /// Writes `request` on a fresh TCP connection and returns what the server answers before closing.
    static func rawExchange(port: Int, _ request: String) throws -> String {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TestFailure("socket() failed") }
        defer { close(socket) }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("connect() failed") }
        // The server may close before everything is written; what it answered is still readable.
        _ = Array(request.utf8).withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while answer.count < 1 << 20 {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { break }
            answer += buffer[0..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
