import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowTestSupport
import Testing

/// Each request limit refuses with 400 (413 for the body) and a message, storing and running nothing.
@Suite("Limits")
struct LimitsTests {
    let refusals = BadInputTests()

    func imageJob(tags: Int = 1, testCommands: Int = 1, commandBytes: Int = 4) -> String {
        let body = API.ImageJobRequest(
            owner: "team", repoURL: "file:///srv/app.git", imageTags: (0..<tags).map { "t\($0)" }, registryURL: "127.0.0.1:5055/team/app",
            testCommands: (0..<testCommands).map { _ in String(repeating: "x", count: commandBytes) })
        return String(decoding: try! JSONEncoder().encode(body), as: UTF8.self)
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
            let body = String(decoding: try JSONEncoder().encode(API.TriggerRequest(env: env)), as: UTF8.self)
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
            // Past the HTTP parser's own 1 MiB bound the answer is a 431 and the connection closes
            // (sent on a raw connection: AsyncHTTPClient does not expect an answer before it has
            // written the request), and the service keeps answering.
            let raw = try await RawHTTPConnection.exchange(
                port: server.port,
                "GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: \(String(repeating: "p", count: 2 << 20))\r\n\r\n")
            #expect(raw.closed)
            #expect(raw.responses.map(\.status) == [431], "\(raw)")
            #expect(try await server.get("/health").status == 200)
            #expect(try await server.counts() == before)
        }
    }
}
