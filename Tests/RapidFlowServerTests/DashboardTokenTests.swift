import Foundation
import HTTPTypes
import Logging
import NIOHTTP1
import RapidFlowAPI
import RapidFlowTestSupport
import Synchronization
import Testing

/// The dashboard's way in when the service has a token: its files are open, and its
/// WebSocket carries the token as a `bearer.<base64url>` subprotocol (browsers cannot set
/// headers on a WebSocket).
@Suite("Dashboard token", .timeLimit(.minutes(3)))
struct DashboardTokenTests {
    /// Characters outside an HTTP token, so the base64url encoding is what makes it fit.
    static let token = "dash/t0ken+=\(UUID().uuidString.prefix(8))"

    static func base64URL(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The events of one WebSocket follow with `headers` on the handshake; nil when the upgrade was refused.
    static func follow(_ server: TestServer, jobID: Int, headers: [(String, String)]) async throws -> [String]? {
        let session = try await RawWebSocket.follow(port: server.port, path: "/jobs/\(jobID)/logs/stream", headers: headers)
        return session.upgraded ? session.texts : nil
    }

    /// The raw handshake answer's header lines, read with curl (the WebSocket client hides them).
    static func handshakeHeaders(_ server: TestServer, jobID: Int, protocols: String) async throws -> String {
        let answer = try await TestFiles.shell(
            "curl -s -i -N --http1.1 --max-time 10 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' "
                + "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Sec-WebSocket-Protocol: \(protocols)' "
                + "'\(server.baseURL)/jobs/\(jobID)/logs/stream' || true")
        return String(answer.prefix { $0 != "{" })
    }

    @Test func theWebSocketTakesTheTokenAsASubprotocolAndNeverEchoesIt() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(
            dataDirectory: dataDirectory, arguments: ["--api-token", Self.token, "--executor", "shell", "--log-level", "trace"])
        defer { service.kill(signal: SIGTERM) }
        let server = service.client
        let bearer = [("Authorization", "Bearer \(Self.token)")]

        for asset in ["/", "/assets/app.js", "/assets/style.css"] {
            #expect(try await server.get(asset).status == 200, "\(asset) is served without the token")
        }
        let created = try await server.request(.POST, "/pipelines", body: #"{"name":"p","config":"steps:\n  - echo from the step\n"}"#, headers: bearer)
        try #require(created.status == 200)
        let pipelineID = try created.decoded(API.Pipeline.self).id
        let triggered = try await server.request(.POST, "/pipelines/\(pipelineID)/jobs", headers: bearer)
        let jobID = try triggered.decoded(API.Job.self).id

        let encoded = Self.base64URL(Self.token)
        let accepted = try #require(
            try await Self.follow(server, jobID: jobID, headers: [("Sec-WebSocket-Protocol", "rapidflow, bearer.\(encoded)")]),
            "the right token as a subprotocol opens the stream")
        #expect(accepted.contains { $0.contains("from the step") })
        #expect(accepted.last?.contains("job_finished") == true)
        let viaHeader = try await Self.follow(server, jobID: jobID, headers: [("Authorization", "Bearer \(Self.token)")])
        #expect(viaHeader?.last?.contains("job_finished") == true, "the Authorization header still works")

        let refusals: [(String, [(String, String)])] = [
            ("no token", []),
            ("a wrong token", [("Sec-WebSocket-Protocol", "rapidflow, bearer.\(Self.base64URL("wrong"))")]),
            ("a prefix of the token", [("Sec-WebSocket-Protocol", "rapidflow, bearer.\(Self.base64URL(String(Self.token.dropLast())))")]),
            ("the token not encoded", [("Sec-WebSocket-Protocol", "rapidflow, bearer.\(Self.token)")]),
            ("no bearer entry", [("Sec-WebSocket-Protocol", "rapidflow")]),
        ]
        for (what, headers) in refusals {
            #expect(try await Self.follow(server, jobID: jobID, headers: headers) == nil, "refused with \(what)")
        }

        let answer = try await Self.handshakeHeaders(server, jobID: jobID, protocols: "rapidflow, bearer.\(encoded)")
        #expect(answer.hasPrefix("HTTP/1.1 101"), "\(answer)")
        #expect(answer.lowercased().contains("sec-websocket-protocol: rapidflow\r\n"), "the answer names rapidflow: \(answer)")
        #expect(!answer.contains(encoded) && !answer.contains(Self.token), "the answer never echoes the token")

        let overHTTP = try await server.request(.GET, "/jobs", headers: [("Sec-WebSocket-Protocol", "rapidflow, bearer.\(encoded)")])
        #expect(overHTTP.status == 401, "the subprotocol form is for the WebSocket only")

        service.kill(signal: SIGTERM)
        #expect(await service.waitForExit(timeout: 20))
        let logs = try FileManager.default.contentsOfDirectory(atPath: dataDirectory).filter { $0.hasSuffix(".log") }
        try #require(!logs.isEmpty)
        for log in logs {
            let text = try String(contentsOfFile: "\(dataDirectory)/\(log)", encoding: .utf8)
            #expect(text.contains("listening on"), "the service log was captured")
            #expect(!text.contains(Self.token) && !text.contains(encoded), "the token never reaches the service log")
        }
    }

    /// A WebSocket upgrade without the token, or with a wrong one, is answered 401 with the
    /// envelope (not a bare 400), before any upgrade, and nothing streams.
    @Test func aRefusedUpgradeIsA401WithTheEnvelope() async throws {
        try await TestServer.with(configure: { $0.apiToken = Self.token }) { server in
            func upgrade(_ extra: String) async throws -> RawResponse? {
                let request =
                    "GET /jobs/1/logs/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\(extra)\r\n"
                return try await RawHTTPConnection.exchange(port: server.port, request).responses.first
            }
            for (what, extra) in [
                ("no token", ""), ("a wrong bearer header", "Authorization: Bearer wrong\r\n"),
                ("a wrong subprotocol token", "Sec-WebSocket-Protocol: rapidflow, bearer.\(Self.base64URL("wrong"))\r\n"),
            ] {
                let answer = try #require(try await upgrade(extra), "an answer to \(what)")
                #expect(answer.status == 401, "\(what): \(answer.status)")
                #expect(answer.errorCode == "unauthorized", "\(what)")
                #expect(answer.header("content-type")?.hasPrefix("application/json") == true, "\(what)")
                #expect(answer.header("upgrade") == nil, "\(what): not upgraded")
            }
            let accepted = try #require(try await upgrade("Authorization: Bearer \(Self.token)\r\n"))
            #expect(accepted.status == 101, "the right token still upgrades")
        }
    }

    @Test func withoutATokenTheOfferedSubprotocolIsStillAnswered() async throws {
        // A browser drops a handshake whose answer names none of the subprotocols it offered.
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - echo open\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForJob(jobID)
            let answer = try await Self.handshakeHeaders(server, jobID: jobID, protocols: "rapidflow")
            #expect(answer.hasPrefix("HTTP/1.1 101"), "\(answer)")
            #expect(answer.lowercased().contains("sec-websocket-protocol: rapidflow\r\n"), "\(answer)")
            let plain = try await Self.handshakeHeaders(server, jobID: jobID, protocols: "")
            #expect(!plain.lowercased().contains("sec-websocket-protocol"), "nothing is answered when nothing was offered")
        }
    }
}
