import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RapidFlowAPI
import RapidFlowServer
import RapidFlowTestSupport
import Testing

/// The routes and their refusals through Hummingbird's router test framework: the whole
/// service (store, scheduler, middleware, controllers) with no socket in between, and steps
/// played by a `ScriptedExecutor`, so nothing could run unnoticed.
@Suite("Routes through the router")
struct RouterTests {
    struct Answer {
        let status: Int
        let body: Data
        let contentType: String?

        func envelope<Payload: Decodable>(_ type: Payload.Type = UnreadData.self) throws -> API.Envelope<Payload> {
            try JSONDecoder().decode(API.Envelope<Payload>.self, from: body)
        }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Runs `body` with a client of a fresh service's router.
    private func withRouter(
        _ executor: ScriptedExecutor = ScriptedExecutor(),
        _ body: @escaping @Sendable (@escaping @Sendable (HTTPRequest.Method, String, String?) async throws -> Answer) async throws -> Void
    ) async throws {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.dataDirectory = TestFiles.temporaryDirectory()
        configuration.logLevel = .warning
        configuration.customExecutor = executor
        let (app, _) = try await buildApplication(configuration: configuration)
        try await app.test(.router) { client in
            try await body { method, path, text in
                try await client.execute(uri: path, method: method, body: text.map { ByteBuffer(string: $0) }) { response in
                    Answer(
                        status: Int(response.status.code), body: Data(response.body.readableBytesView),
                        contentType: response.headers[.contentType])
                }
            }
        }
    }

    @Test func everyRouteIsServedAndAMissingOneIsANotFoundEnvelope() async throws {
        try await withRouter { call in
            for path in ["/health", "/ready", "/pipelines", "/jobs", "/metrics", "/openapi.json", "/"] {
                let answer = try await call(.get, path, nil)
                #expect(answer.status == 200, "GET \(path): \(answer.text.prefix(200))")
            }
            // Each job and pipeline route on an id that does not exist: its own 404, in the envelope.
            let missing: [(HTTPRequest.Method, String, String)] = [
                (.get, "/jobs/41", "job_not_found"), (.get, "/jobs/41/status", "job_not_found"),
                (.get, "/jobs/41/logs", "job_not_found"), (.get, "/jobs/41/details", "job_not_found"),
                (.get, "/steps/41/logs", "step_not_found"), (.get, "/jobs/41/logs/raw", "job_not_found"),
                (.get, "/steps/41/logs/raw", "step_not_found"), (.post, "/jobs/41/cancel", "job_not_found"),
                (.post, "/jobs/41/kill", "job_not_found"), (.post, "/jobs/41/retry", "job_not_found"),
                (.post, "/jobs/41/cleanup", "job_not_found"), (.get, "/pipelines/41", "pipeline_not_found"),
                (.delete, "/pipelines/41", "pipeline_not_found"), (.post, "/pipelines/41/jobs", "pipeline_not_found"),
            ]
            for (method, path, code) in missing {
                let answer = try await call(method, path, nil)
                #expect(answer.status == 404, "\(method) \(path): \(answer.text.prefix(200))")
                let envelope = try answer.envelope()
                #expect(envelope.data == nil && envelope.error?.code == code, "\(method) \(path): \(answer.text.prefix(200))")
            }
            let unknown = try await call(.get, "/no/such/route", nil)
            #expect(unknown.status == 404)
            #expect(try unknown.envelope().error?.code.isEmpty == false, "\(unknown.text.prefix(200))")
            // The runner's routes want the job's token.
            let runner = try await call(.get, "/runner/jobs/41/next", nil)
            #expect(runner.status == 401)
            #expect(try runner.envelope().error?.code == "unauthorized")
        }
    }

    @Test func badInputOnEveryWritingRouteIsA4xxAndNothingIsStoredOrRun() async throws {
        let executor = ScriptedExecutor()
        try await withRouter(executor) { call in
            let created = try await call(.post, "/pipelines", #"{"name": "p", "config": "steps:\n  - exit 0\n"}"#)
            #expect(created.status == 200, "\(created.text)")
            let pipeline = try #require(try created.envelope(API.Pipeline.self).data).id

            let refused: [(HTTPRequest.Method, String, String?)] = [
                (.post, "/pipelines", #"{"name": "p", "config": "#),
                (.post, "/pipelines", "[1, 2]"),
                (.post, "/pipelines", ""),
                (.post, "/pipelines", #"{"name": 5, "config": "steps: [x]"}"#),
                (.post, "/pipelines", #"{"name": "q", "config": "steps: [x]", "colour": 1}"#),
                (.post, "/pipelines", #"{"name": "q"}"#),
                (.post, "/pipelines", #"{"name": "q", "config": "steps: []"}"#),
                (.post, "/pipelines", #"{"name": "q", "config": "steps:\n  - type: python\n    content: x\n"}"#),
                (.post, "/pipelines", #"{"name": "q", "config": "env:\n  A: 1\nsteps: [x]"}"#),
                (.put, "/pipelines/\(pipeline)", #"{"name": "p", "config": "steps: []"}"#),
                (.post, "/pipelines/\(pipeline)/jobs", #"{"branch": 3}"#),
                (.post, "/pipelines/\(pipeline)/jobs", #"{"env": {"A": 1}}"#),
                (.post, "/pipelines/\(pipeline)/jobs", #"{"colour": "red"}"#),
                (.post, "/jobs", "{}"),
                (.post, "/jobs", #"{"owner": "team"}"#),
                (.post, "/pipelines/abc/jobs", nil),
                (.get, "/jobs/abc", nil),
                (.get, "/jobs/-1", nil),
                (.get, "/jobs/99999999999999999999999", nil),
                (.get, "/jobs?limit=0", nil),
                (.get, "/jobs?limit=501", nil),
                (.get, "/jobs?status=sleeping", nil),
                (.get, "/pipelines?before=x", nil),
            ]
            for (method, path, body) in refused {
                let answer = try await call(method, path, body)
                #expect((400..<500).contains(answer.status), "\(method) \(path) \(body ?? ""): \(answer.status) \(answer.text.prefix(200))")
                let envelope = try answer.envelope()
                #expect(envelope.data == nil)
                #expect(envelope.error.map { !$0.code.isEmpty && !$0.message.isEmpty } == true, "\(path): \(answer.text.prefix(200))")
                #expect(answer.contentType?.hasPrefix("application/json") == true)
            }

            // Nothing was stored or run: the one pipeline is as created, and there is no job.
            let pipelines = try #require(try await call(.get, "/pipelines", nil).envelope([API.Pipeline].self).data)
            #expect(pipelines.map(\.id) == [pipeline])
            #expect(pipelines.first?.config == "steps:\n  - exit 0\n")
            #expect(try await call(.get, "/jobs", nil).envelope([API.Job].self).data == [])
            #expect(executor.startedSteps == 0)
        }
    }
}
