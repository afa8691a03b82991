import AsyncHTTPClient
import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowTestSupport
import Testing

/// Every bad input is a 400 (or 413) with a message naming the problem, and nothing is stored or run.
@Suite("Bad input")
struct BadInputTests {
    static let valid = "steps:\n  - echo ok\n"

    /// Sends `body` to `path` and checks the refusal, and that no pipeline or job appeared.
    func expectRefused(
        _ server: TestServer, _ path: String, method: HTTPMethod = .POST, body: String?, status: Int = 400,
        code: String? = nil, mentioning words: [String] = []
    ) async throws {
        let before = try await server.counts()
        let reply = try await server.request(method, path, body: body)
        #expect(reply.status == status, "\(path) \(body?.prefix(80) ?? ""): \(reply.text.prefix(300))")
        #expect(try reply.envelope(UnreadData.self).data == nil)
        if let code { #expect(reply.errorCode == code, "\(reply.text.prefix(300))") }
        #expect(!reply.errorMessage.isEmpty)
        for word in words {
            #expect(reply.errorMessage.contains(word), "message '\(reply.errorMessage)' should mention '\(word)'")
        }
        #expect(try await server.counts() == before, "nothing was stored")
    }

    func config(_ yaml: String) -> String {
        String(decoding: try! JSONEncoder().encode(API.PipelineDefinition(name: "p", config: yaml)), as: UTF8.self)
    }

    @Test func malformedJSONIsRefused() async throws {
        try await TestServer.with { server in
            try await expectRefused(server, "/pipelines", body: #"{"name": "p", "config": "#, code: "invalid_json")
            try await expectRefused(server, "/pipelines", body: "[1, 2]", code: "invalid_json", mentioning: ["object"])
            try await expectRefused(server, "/pipelines", body: "", mentioning: ["empty"])
        }
    }

    @Test func wrongTypesAreRefusedNamingTheField() async throws {
        try await TestServer.with { server in
            try await expectRefused(server, "/pipelines", body: #"{"name": 5, "config": "steps: [x]"}"#, mentioning: ["name"])
            try await expectRefused(server, "/pipelines", body: #"{"name": "p", "config": ["steps"]}"#, mentioning: ["config"])
            try await expectRefused(server, "/pipelines", body: #"{"name": true, "config": "steps: [x]"}"#, mentioning: ["name"])
            try await expectRefused(server, "/pipelines", body: #"{"name": "p", "config": "steps: [x]", "colour": 1}"#, mentioning: ["colour"])
            let pipelineID = try await server.createPipeline(config: Self.valid)
            let before = try await server.counts()
            for body in [#"{"branch": 3}"#, #"{"env": "A=1"}"#, #"{"env": {"A": 1}}"#, #"{"env": {"A": null}}"#, #"{"branch": "-x"}"#, #"{"env": {"1A": "x"}}"#] {
                let reply = try await server.request(.POST, "/pipelines/\(pipelineID)/jobs", body: body)
                #expect(reply.status == 400, "\(body): \(reply.text)")
            }
            #expect(try await server.counts() == before, "no job was created")
        }
    }

    @Test func missingOrEmptyConfigIsRefused() async throws {
        try await TestServer.with { server in
            try await expectRefused(server, "/pipelines", body: #"{"name": "p"}"#, mentioning: ["config"])
            try await expectRefused(server, "/pipelines", body: #"{"name": "p", "config": ""}"#, mentioning: ["config"])
            try await expectRefused(server, "/pipelines", body: config("   \n"), mentioning: ["empty"])
            try await expectRefused(server, "/pipelines", body: #"{"config": "steps: [x]"}"#, mentioning: ["name"])
        }
    }

    @Test func yamlThatDoesNotParseIsRefused() async throws {
        try await TestServer.with { server in
            try await expectRefused(server, "/pipelines", body: config("steps: [echo, \n  - : :"), code: "invalid_config", mentioning: ["YAML"])
            try await expectRefused(server, "/pipelines", body: config("- just\n- a list\n"), code: "invalid_config", mentioning: ["mapping"])
        }
    }

    @Test func unknownConfigKeysAreRefusedNamingTheKey() async throws {
        try await TestServer.with { server in
            try await expectRefused(server, "/pipelines", body: config("stepz:\n  - echo\n"), code: "invalid_config", mentioning: ["stepz"])
            try await expectRefused(
                server, "/pipelines", body: config("steps:\n  - type: bash\n    content: echo\n    retries: 3\n"), mentioning: ["retries"])
        }
    }

    @Test func emptyStepListIsRefused() async throws {
        try await TestServer.with { server in
            try await expectRefused(server, "/pipelines", body: config("steps: []\n"), mentioning: ["steps"])
            try await expectRefused(server, "/pipelines", body: config("name: x\n"), mentioning: ["steps"])
            try await expectRefused(server, "/pipelines", body: config("steps:\n  - \"  \"\n"), mentioning: ["empty"])
        }
    }

    @Test func stepOfUnknownTypeIsRefused() async throws {
        try await TestServer.with { server in
            try await expectRefused(
                server, "/pipelines", body: config("steps:\n  - type: powershell\n    content: echo hi\n"), mentioning: ["powershell"])
            try await expectRefused(
                server, "/pipelines", body: config("steps:\n  - type: bash\n    content: echo\n    phase: deploy\n"), mentioning: ["deploy"])
        }
    }

    @Test func nonStringEnvValueIsRefusedNamingTheKey() async throws {
        try await TestServer.with { server in
            try await expectRefused(server, "/pipelines", body: config("env:\n  CGO_ENABLED: 0\nsteps:\n  - echo\n"), mentioning: ["CGO_ENABLED"])
            try await expectRefused(server, "/pipelines", body: config("env:\n  DEBUG: true\nsteps:\n  - echo\n"), mentioning: ["DEBUG"])
            try await expectRefused(server, "/pipelines", body: config("env:\n  LIST: [a]\nsteps:\n  - echo\n"), mentioning: ["LIST"])
            try await expectRefused(server, "/pipelines", body: config("env:\n  bad-name: \"x\"\nsteps:\n  - echo\n"), mentioning: ["bad-name"])
        }
    }

    @Test func bodyOverOneMebibyteIsRefusedWith413() async throws {
        try await TestServer.with { server in
            let huge = String(repeating: "a", count: (1 << 20) + 10)
            try await expectRefused(server, "/pipelines", body: config("steps:\n  - echo \(huge)\n"), status: 413, code: "body_too_large")
        }
    }

    @Test func nonNumericIdsAreA400AndUnknownIdsA404() async throws {
        try await TestServer.with { server in
            for path in ["/jobs/abc", "/jobs/1.5/status", "/jobs/-1/logs", "/steps/x/logs", "/pipelines/%20"] {
                let reply = try await server.get(path)
                #expect(reply.status == 400, "\(path): \(reply.text)")
                #expect(reply.errorCode == "invalid_id")
            }
            try await expectRefused(server, "/jobs/abc/cancel", body: nil, code: "invalid_id")
            try await expectRefused(server, "/pipelines/abc/jobs", body: nil, code: "invalid_id")
            for (path, code) in [
                ("/jobs/999", "job_not_found"), ("/jobs/999/status", "job_not_found"), ("/jobs/999/details", "job_not_found"),
                ("/steps/999/logs", "step_not_found"), ("/pipelines/999", "pipeline_not_found"),
            ] {
                let reply = try await server.get(path)
                #expect(reply.status == 404, "\(path)")
                #expect(reply.errorCode == code)
            }
            try await expectRefused(server, "/pipelines/999/jobs", body: nil, status: 404, code: "pipeline_not_found")
            try await expectRefused(server, "/jobs/999/retry", body: nil, status: 404, code: "job_not_found")
        }
    }

    @Test func badQueryParametersAreRefused() async throws {
        try await TestServer.with { server in
            for path in ["/jobs?limit=0", "/jobs?limit=501", "/jobs?limit=ten", "/jobs?status=done", "/jobs?before=x", "/pipelines?limit=-3",
                         "/jobs?q=" + String(repeating: "x", count: 256), "/jobs?branch=" + String(repeating: "b", count: 256)] {
                let reply = try await server.get(path)
                #expect(reply.status == 400, "\(path)")
                #expect(reply.errorCode == "invalid_request")
            }
        }
    }
}

