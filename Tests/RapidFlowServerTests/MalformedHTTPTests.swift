import Foundation
import RapidFlowAPI
import RapidFlowTestSupport
import Testing

/// What no HTTP client sends, on raw connections: each gets an answer and a close, within a
/// bound far above what it takes (before, each hung for ever).
@Suite("Malformed HTTP")
struct MalformedHTTPTests {
    /// A request the parser refuses, and the answer it must get.
    struct Refusal: CustomTestStringConvertible, Sendable {
        let name: String
        let request: [UInt8]
        let status: Int
        let code: String

        var testDescription: String { self.name }

        init(_ name: String, _ request: String, _ status: Int, _ code: String) {
            self.init(name, Array(request.utf8), status, code)
        }

        init(_ name: String, _ request: [UInt8], _ status: Int, _ code: String) {
            self.name = name
            self.request = request
            self.status = status
            self.code = code
        }
    }

    static let refusals: [Refusal] = [
        Refusal("unknown method", "FOO / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501, "method_not_implemented"),
        Refusal("lowercase method", "get /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501, "method_not_implemented"),
        // The start of a TLS ClientHello: what a client speaking TLS to a plain port sends.
        Refusal("garbage", [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a], 400, "malformed_request"),
        Refusal("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "malformed_request"),
        Refusal(
            "Content-Length and Transfer-Encoding",
            "POST /pipelines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
            "malformed_request"),
        Refusal("negative Content-Length", "POST /pipelines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n", 400, "malformed_request"),
        Refusal(
            "a 2 MiB header block",
            "GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: \(String(repeating: "p", count: 2 << 20))\r\n\r\n", 431, "headers_too_large"),
        Refusal(
            "10,000 headers",
            "GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (0..<10_000).map { "X-Header-\($0): v\r\n" }.joined() + "\r\n", 431,
            "headers_too_large"),
        Refusal(
            "a malformed chunked body",
            "POST /pipelines HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", 400, "malformed_request"),
    ]

    @Test(arguments: Self.refusals)
    func aRequestTheParserRefusesIsAnsweredAndClosed(_ refusal: Refusal) async throws {
        try await TestServer.with { server in
            let transcript = try await RawHTTPConnection.exchange(port: server.port, [refusal.request])
            #expect(transcript.closed, "\(transcript)")
            let response = try #require(transcript.responses.first, "\(transcript)")
            #expect(transcript.responses.count == 1)
            #expect(response.status == refusal.status)
            #expect(response.errorCode == refusal.code, "\(transcript)")
            // The envelope's members as written, with JSONSerialization on purpose: `data` is
            // there as null, which the API types read the same as left out.
            let members = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
            #expect(members?["data"] is NSNull && members?["timestamp"] is String, "the error envelope")
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(try await server.get("/health").status == 200, "the service keeps answering")
        }
    }

    @Test func garbageAfterAnAnsweredRequestIsRefusedAfterTheAnswer() async throws {
        try await TestServer.with { server in
            let transcript = try await RawHTTPConnection.exchange(
                port: server.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\u{1}\u{2}garbage\r\n\r\n")
            #expect(transcript.closed, "\(transcript)")
            #expect(transcript.responses.map(\.status) == [200, 400], "\(transcript)")
            #expect(transcript.responses.last?.errorCode == "malformed_request")
        }
    }

    @Test func anHTTP10RequestGetsAnHTTP10AnswerAndTheConnectionCloses() async throws {
        try await TestServer.with { server in
            let transcript = try await RawHTTPConnection.exchange(port: server.port, "GET /health HTTP/1.0\r\n\r\n")
            #expect(transcript.closed, "\(transcript)")
            let response = try #require(transcript.responses.first, "\(transcript)")
            #expect(response.version == "HTTP/1.0")
            #expect(response.status == 200)
            #expect(response.header("Connection")?.lowercased() == "close")
        }
    }

    @Test func aStreamedAnswerToHTTP10IsNotChunkedAndEndsWithTheConnection() async throws {
        try await TestServer.with { server in
            let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo streamed\n"))
            try await server.waitForJob(jobID)
            let transcript = try await RawHTTPConnection.exchange(port: server.port, "GET /jobs/\(jobID)/logs/stream HTTP/1.0\r\n\r\n")
            #expect(transcript.closed, "\(transcript)")
            let response = try #require(transcript.responses.first, "\(transcript)")
            #expect(response.version == "HTTP/1.0")
            #expect(response.header("Transfer-Encoding") == nil)
            #expect(String(decoding: response.body, as: UTF8.self) == (try await LogStreamTests.expectedText(server, jobID: jobID)))
        }
    }

    @Test func connectionCloseIsHonouredAfterTheAnswer() async throws {
        try await TestServer.with { server in
            let transcript = try await RawHTTPConnection.exchange(
                port: server.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            #expect(transcript.closed, "\(transcript)")
            #expect(transcript.responses.map(\.status) == [200])
            #expect(transcript.responses.first?.header("Connection")?.lowercased() == "close")
        }
    }
}

/// The header-read and idle timeouts, with short settings so the tests wait seconds.
@Suite("HTTP timeouts")
struct HTTPTimeoutTests {
    static func withShortTimeouts(_ body: (TestServer) async throws -> Void) async throws {
        try await TestServer.with(configure: {
            $0.headerTimeout = .seconds(2)
            $0.idleTimeout = .seconds(2)
        }, body)
    }

    @Test func aClientSendingAByteASecondGetsA408AndTheConnectionCloses() async throws {
        try await Self.withShortTimeouts { server in
            // Ten bytes at one a second: the head would take 9 s; the timeout is 2 s.
            let bytes = Array("GET /health HTTP/1.1\r\n".utf8.prefix(10)).map { [$0] }
            let transcript = try await RawHTTPConnection.exchange(port: server.port, bytes, pause: .seconds(1))
            #expect(transcript.closed, "\(transcript)")
            #expect(transcript.responses.map(\.status) == [408], "\(transcript)")
            #expect(transcript.responses.first?.errorCode == "request_timeout")
        }
    }

    @Test func aConnectionThatSendsNothingGetsA408() async throws {
        try await Self.withShortTimeouts { server in
            let transcript = try await RawHTTPConnection.exchange(port: server.port, [])
            #expect(transcript.closed, "\(transcript)")
            #expect(transcript.responses.map(\.status) == [408], "\(transcript)")
        }
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterItsAnswers() async throws {
        try await Self.withShortTimeouts { server in
            let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            let transcript = try await RawHTTPConnection.exchange(port: server.port, request + request)
            #expect(transcript.closed, "\(transcript)")
            // Both answered on the one connection; the idle close itself says nothing.
            #expect(transcript.responses.map(\.status) == [200, 200], "\(transcript)")
            #expect(transcript.responses.allSatisfy { $0.header("Connection") == nil })
        }
    }

    /// A request in flight is not idle: a stream quiet for longer than the idle timeout,
    /// plain or over a WebSocket, runs to its end.
    @Test func quietStreamsOutliveTheIdleTimeout() async throws {
        try await Self.withShortTimeouts { server in
            // Every request on a connection of its own: a pooled connection left idle past the
            // 2 s timeout may be closed by the service just as the client reuses it.
            let close = [("Connection", "close")]
            let created = try await server.request(
                .POST, "/pipelines", body: #"{"name": "quiet", "config": "steps:\n  - echo before; sleep 3; echo after\n"}"#, headers: close)
            let pipelineID = try created.decoded(API.Pipeline.self).id
            let triggered = try await server.request(.POST, "/pipelines/\(pipelineID)/jobs", headers: close)
            let jobID = try triggered.decoded(API.Job.self).id
            async let socket = LogStreamTests.followWebSocket(server, jobID: jobID)
            async let plain = server.request(.GET, "/jobs/\(jobID)/logs/stream?follow=true", headers: close)
            let (transcript, streamed) = try await (socket, plain)
            let text = streamed.text
            let logs = try await server.request(.GET, "/jobs/\(jobID)/logs", headers: close)
            #expect(logs.status == 200)
            #expect(text.hasPrefix("=== Step 1 (bash) ===\n") && text.hasSuffix("=== Build completed ===\n"), "\(text)")
            #expect(text.contains("before\nafter\n"))
            #expect(transcript.kinds.last == "job_finished")
            #expect(transcript.closeCode == "normalClosure")
        }
    }
}
