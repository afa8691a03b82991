import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowServer
import RapidFlowTestSupport
import Testing

/// Stored secrets against the real service: write-only over HTTP, sealed in the store, given
/// to steps through their environment by the narrowest scope, and never shown again.
@Suite("Stored secrets")
struct SecretsTests {
    static func shell(_ configuration: inout ServerConfiguration) { configuration.executor = .shell }

    /// A value no other test prints, long enough to be masked.
    static func freshValue(_ label: String) -> String { "\(label)-\(UUID().uuidString.prefix(12))-value" }

    @discardableResult
    static func put(_ server: TestServer, _ name: String, _ value: String, scope: API.SecretScope? = nil) async throws -> API.Secret {
        let reply = try await server.request(.PUT, "/secrets/\(name)", encoding: API.SecretWrite(value: value, scope: scope))
        try #require(reply.status == 200, "PUT /secrets/\(name): \(reply.text)")
        #expect(!reply.text.contains(value))
        return try reply.decoded(API.Secret.self)
    }

    /// Sends raw bytes as the body of a PUT: for bodies that are not UTF-8.
    static func putBytes(_ server: TestServer, _ path: String, _ bytes: [UInt8]) async throws -> TestServer.Reply {
        var request = HTTPClientRequest(url: server.baseURL + path)
        request.method = .PUT
        request.body = .bytes(ByteBuffer(bytes: bytes))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return TestServer.Reply(status: Int(response.status.code), headers: [], body: Data(body.readableBytesView))
    }

    @Test func setListShowAndDeleteShowMetadataOnly() async throws {
        try await TestServer.with(configure: Self.shell) { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - echo hi\n")
            let values = [Self.freshValue("g"), Self.freshValue("p"), Self.freshValue("o")]
            let global = try await Self.put(server, "DEPLOY_TOKEN", values[0])
            #expect(global.scope == .global && global.lastUsedAt == nil && global.lastUsedJobID == nil)
            let scoped = try await Self.put(server, "DEPLOY_TOKEN", values[1], scope: .pipeline(pipeline))
            #expect(scoped.scope == .pipeline(pipeline))
            try await Self.put(server, "NPM_TOKEN", values[2], scope: .owner("team"))

            let list = try await server.get("/secrets")
            #expect(list.status == 200)
            let secrets = try list.decoded([API.Secret].self)
            #expect(secrets.map(\.name) == ["DEPLOY_TOKEN", "DEPLOY_TOKEN", "NPM_TOKEN"])
            #expect(Set(secrets.map(\.scope)).count == 3)
            #expect(values.allSatisfy { !list.text.contains($0) })

            let shown = try await server.get("/secrets/DEPLOY_TOKEN?pipeline_id=\(pipeline)")
            #expect(try shown.decoded(API.Secret.self).scope == .pipeline(pipeline))
            #expect(try await server.get("/secrets/NPM_TOKEN?owner=team").decoded(API.Secret.self).scope == .owner("team"))
            let missing = try await server.get("/secrets/NPM_TOKEN")
            #expect(missing.status == 404 && missing.errorCode == "secret_not_found", "\(missing.text)")

            // Rotating keeps the creation time.
            let rotated = try await Self.put(server, "DEPLOY_TOKEN", Self.freshValue("g2"))
            #expect(rotated.createdAt == global.createdAt)

            let deleted = try await server.request(.DELETE, "/secrets/DEPLOY_TOKEN")
            #expect(try deleted.decoded(API.SecretDeleteResult.self) == API.SecretDeleteResult(name: "DEPLOY_TOKEN", scope: .global))
            #expect(try await server.get("/secrets/DEPLOY_TOKEN").status == 404)
            #expect(try await server.request(.DELETE, "/secrets/DEPLOY_TOKEN").errorCode == "secret_not_found")
            #expect(try await server.get("/secrets").decoded([API.Secret].self).count == 2)
        }
    }

    @Test func badInputIsA400WithTheEnvelopeAndNothingIsStored() async throws {
        try await TestServer.with(configure: Self.shell) { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - echo hi\n")
            let value = #"{"value": "v-123456"}"#
            let cases: [(path: String, body: String, code: String, mentions: String)] = [
                ("/secrets/lower_case", value, "invalid_secret", "secret name"),
                ("/secrets/1ST", value, "invalid_secret", "secret name"),
                ("/secrets/" + String(repeating: "A", count: 129), value, "invalid_secret", "128"),
                ("/secrets/CI", value, "invalid_secret", "reserved"),
                ("/secrets/PATH", value, "invalid_secret", "reserved"),
                ("/secrets/HOME", value, "invalid_secret", "reserved"),
                ("/secrets/RAPIDFLOW_JOB_ID", value, "invalid_secret", "reserved"),
                ("/secrets/GOOD", #"{"value": ""}"#, "invalid_secret", "'value'"),
                ("/secrets/GOOD", #"{"value": "\#(String(repeating: "x", count: 64 * 1024 + 1))"}"#, "invalid_secret", "65536"),
                ("/secrets/GOOD", #"{"value": 5}"#, "invalid_request", "'value'"),
                ("/secrets/GOOD", #"{"scope": "global"}"#, "invalid_request", "'value'"),
                ("/secrets/GOOD", #"{"value": "v-123456", "scope": "team"}"#, "invalid_secret", "'scope'"),
                ("/secrets/GOOD", #"{"value": "v-123456", "scope": {"team": "x"}}"#, "invalid_secret", "'team'"),
                ("/secrets/GOOD", #"{"value": "v-123456", "scope": {"pipeline_id": 1, "owner": "x"}}"#, "invalid_secret", "exactly one"),
                ("/secrets/GOOD", #"{"value": "v-123456", "scope": {"pipeline_id": "one"}}"#, "invalid_request", "'pipeline_id'"),
                ("/secrets/GOOD", #"{"value": "v-123456", "scope": {"owner": "bad owner"}}"#, "invalid_request", "scope.owner"),
                ("/secrets/GOOD", #"{"value": "v-123456", "scope": {"pipeline_id": \#(pipeline + 1000)}}"#, "invalid_secret", "does not exist"),
                ("/secrets/GOOD", #"{"value": "v-123456", "colour": 1}"#, "invalid_request", "'colour'"),
            ]
            for item in cases {
                let reply = try await server.request(.PUT, item.path, body: item.body)
                #expect(reply.status == 400, "\(item.path) \(item.body.prefix(80)): \(reply.text.prefix(300))")
                #expect(reply.errorCode == item.code, "\(item.body.prefix(80)): \(reply.text.prefix(300))")
                #expect(reply.errorMessage.contains(item.mentions), "\(item.body.prefix(80)): \(reply.errorMessage)")
                #expect(!reply.errorMessage.contains("v-123456"))
            }
            // Bytes that are not UTF-8 inside the value.
            let notUTF8 = try await Self.putBytes(server, "/secrets/GOOD", Array(#"{"value": "ab"#.utf8) + [0xC3, 0x28] + Array(#"cd"}"#.utf8))
            #expect(notUTF8.status == 400 && notUTF8.errorCode == "invalid_secret" && notUTF8.errorMessage.contains("UTF-8"), "\(notUTF8.text)")
            #expect(try await server.get("/secrets").decoded([API.Secret].self).isEmpty, "nothing was stored")

            // Configs: an unknown secret, and from_secret that is not a string; nothing stored.
            let before = try await server.counts()
            let unknown = try await server.request(
                .POST, "/pipelines", encoding: API.PipelineDefinition(name: "p", config: "env:\n  T: {from_secret: NO_SUCH_SECRET}\nsteps:\n  - echo\n"))
            #expect(unknown.status == 400 && unknown.errorCode == "unknown_secret" && unknown.errorMessage.contains("NO_SUCH_SECRET"), "\(unknown.text)")
            let listed = try await server.request(
                .POST, "/pipelines", encoding: API.PipelineDefinition(name: "p", config: "secrets: [ALSO_MISSING]\nsteps:\n  - echo\n"))
            #expect(listed.status == 400 && listed.errorMessage.contains("ALSO_MISSING"), "\(listed.text)")
            let references = [
                ("{from_secret: 5}", "'from_secret' must be a string"), ("{from_secret: [A]}", "'from_secret' must be a string"),
                ("{from_secret: {A: B}}", "'from_secret' must be a string"), ("{from_secret: lower}", "secret name 'lower'"),
                ("{other: A}", "{from_secret: NAME}"),
            ]
            for (reference, mention) in references {
                let reply = try await server.request(
                    .POST, "/pipelines", encoding: API.PipelineDefinition(name: "p", config: "env:\n  T: \(reference)\nsteps:\n  - echo\n"))
                #expect(reply.status == 400 && reply.errorCode == "invalid_config", "\(reference): \(reply.text)")
                #expect(reply.errorMessage.contains(mention), "\(reference): \(reply.errorMessage)")
            }
            #expect(try await server.counts() == before)

            // A secret deleted after the pipeline was stored: triggering is refused, no job is created.
            try await Self.put(server, "SOON_GONE", Self.freshValue("gone"))
            let uses = try await server.createPipeline(config: "env:\n  T: {from_secret: SOON_GONE}\nsteps:\n  - echo \"$T\"\n")
            #expect(try await server.request(.DELETE, "/secrets/SOON_GONE").status == 200)
            let jobsBefore = try await server.counts().jobs
            let triggered = try await server.post("/pipelines/\(uses)/jobs")
            #expect(triggered.status == 400 && triggered.errorCode == "unknown_secret" && triggered.errorMessage.contains("SOON_GONE"), "\(triggered.text)")
            #expect(try await server.counts().jobs == jobsBefore)
        }
    }

    @Test func theNarrowestScopeWins() async throws {
        try await TestServer.with(configure: Self.shell) { server in
            // The step says which value it got without printing it.
            let config = """
                env:
                  T: {from_secret: SHARED}
                steps:
                  - case "$T" in g-*) echo got-global;; o-*) echo got-owner;; p-*) echo got-pipeline;; *) echo got-nothing;; esac
                """
            let owned = try await server.request(.POST, "/pipelines", encoding: API.PipelineDefinition(name: "owned", config: "steps:\n  - echo\n", owner: "team"))
            let ownedID = try owned.decoded(API.Pipeline.self).id
            #expect(try owned.decoded(API.Pipeline.self).owner == "team")
            let plain = try await server.createPipeline(name: "plain", config: "steps:\n  - echo\n")
            try await Self.put(server, "SHARED", "g-" + Self.freshValue("x"))
            try await Self.put(server, "SHARED", "o-" + Self.freshValue("x"), scope: .owner("team"))
            try await Self.put(server, "SHARED", "p-" + Self.freshValue("x"), scope: .pipeline(ownedID))
            #expect(try await server.request(.PUT, "/pipelines/\(ownedID)", encoding: API.PipelineDefinition(name: "owned", config: config, owner: "team")).status == 200)
            #expect(try await server.request(.PUT, "/pipelines/\(plain)", encoding: API.PipelineDefinition(name: "plain", config: config)).status == 200)

            func output(_ pipeline: Int) async throws -> String {
                let job = try await server.trigger(pipeline)
                #expect(try await server.waitForJob(job).status == .success)
                return try await server.logs(job).build
            }
            #expect(try await output(ownedID) == "got-pipeline\n")
            #expect(try await output(plain) == "got-global\n")
            #expect(try await server.request(.DELETE, "/secrets/SHARED?pipeline_id=\(ownedID)").status == 200)
            #expect(try await output(ownedID) == "got-owner\n")
            #expect(try await server.request(.DELETE, "/secrets/SHARED?owner=team").status == 200)
            #expect(try await output(ownedID) == "got-global\n")
        }
    }

    @Test func rotationReachesTheNextJobAndOldOutputStaysMasked() async throws {
        try await TestServer.with(configure: Self.shell) { server in
            let first = Self.freshValue("first")
            let second = Self.freshValue("second")
            try await Self.put(server, "API_TOKEN", first)
            let pipeline = try await server.createPipeline(
                config: "secrets: [API_TOKEN]\nsteps:\n  - echo \"token=$API_TOKEN\"; test \"${#API_TOKEN}\" -gt 10 && echo has-value\n")
            let old = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(old).status == .success)
            #expect(try await server.logs(old).build == "token=********\nhas-value\n")

            try await Self.put(server, "API_TOKEN", second)
            let checks = try await server.createPipeline(
                config: "secrets: [API_TOKEN]\nsteps:\n  - case \"$API_TOKEN\" in second-*) echo new-value;; esac; echo \"$API_TOKEN\"\n")
            let new = try await server.trigger(checks)
            #expect(try await server.waitForJob(new).status == .success)
            #expect(try await server.logs(new).build == "new-value\n********\n")
            let oldLogs = try await server.get("/jobs/\(old)/logs").text
            #expect(!oldLogs.contains(first) && !oldLogs.contains(second) && oldLogs.contains("token=********"))
            // A retry of the old job runs with today's value.
            let retried = try await server.post("/jobs/\(old)/retry").decoded(API.Job.self).id
            #expect(try await server.waitForJob(retried).status == .success)
            #expect(try await server.logs(retried).build == "token=********\nhas-value\n")
            let details = try await server.get("/jobs/\(retried)/details").decoded(API.JobDetails.self)
            #expect(details.secretsUsed == ["API_TOKEN"])
        }
    }

    /// The whole life of a secret on a `rapidflow serve` at trace level: every GET route of the
    /// OpenAPI document with the ids of a job that used it, both streams, the metrics, the
    /// service's log and the SQLite file hold no value; a restart with a wrong or missing key
    /// file refuses to start and names the file.
    @Test func theValueNeverLeavesTheService() async throws {
        let directory = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(dataDirectory: directory, arguments: ["--log-level", "trace", "--executor", "shell"])
        defer { service.kill(signal: SIGKILL) }
        let server = service.client
        let value = Self.freshValue("never") + "\nsecond-line-of-it"
        let secret = try await Self.put(server, "DEPLOY_TOKEN", value)
        #expect(secret.name == "DEPLOY_TOKEN")
        let config = """
            env:
              TARGET: {from_secret: DEPLOY_TOKEN}
              PLAIN: "visible"
            steps:
              - echo "$TARGET"; printf '%s\\n' "$TARGET" | head -1
            """
        let pipeline = try await server.createPipeline(name: "uses-secret", config: config)
        let shownConfig = try await server.get("/pipelines/\(pipeline)").decoded(API.Pipeline.self).config
        #expect(shownConfig.contains("from_secret: DEPLOY_TOKEN"), "the config is shown as written: \(shownConfig)")
        let jobID = try await server.trigger(pipeline)
        #expect(try await server.waitForJob(jobID).status == .success)

        let details = try await server.get("/jobs/\(jobID)/details").decoded(API.JobDetails.self)
        let target = try #require(details.environments.first { $0.key == "TARGET" })
        #expect(target.value == "********" && target.secret == true)
        #expect(details.environments.first { $0.key == "PLAIN" }?.secret == nil)
        #expect(details.secretsUsed == ["DEPLOY_TOKEN"])
        #expect(details.steps.first?.output == "********\n********\n", "\(details.steps.first?.output ?? "")")
        let used = try await server.get("/secrets/DEPLOY_TOKEN").decoded(API.Secret.self)
        #expect(used.lastUsedJobID == jobID && used.lastUsedAt != nil)

        // Every GET of the document, with this job's, its step's and its pipeline's ids.
        let stepID = try #require(details.steps.first?.id)
        let document = try #require(try JSONSerialization.jsonObject(with: try await server.get("/openapi.json").body) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var answers: [(String, String)] = []
        for (path, item) in paths where item["get"] != nil {
            let id = path.hasPrefix("/steps") ? stepID : path.hasPrefix("/pipelines") ? pipeline : jobID
            let concrete = path.replacingOccurrences(of: "{id}", with: "\(id)").replacingOccurrences(of: "{step}", with: "\(stepID)")
                .replacingOccurrences(of: "{name}", with: "DEPLOY_TOKEN")
            answers.append((concrete, try await server.get(concrete).text))
        }
        #expect(answers.contains { $0.0 == "/secrets/DEPLOY_TOKEN" }, "the document lists the secrets routes")
        answers.append(("stream follow", try await server.get("/jobs/\(jobID)/logs/stream?follow=true").text))
        answers.append(("metrics", try await server.get("/metrics").text))
        let socket = try await RawWebSocket.follow(port: server.port, path: "/jobs/\(jobID)/logs/stream")
        #expect(socket.upgraded && !socket.texts.isEmpty)
        answers.append(("websocket", socket.texts.joined(separator: "\n")))
        let pieces = value.split(separator: "\n").map(String.init)
        for (route, text) in answers {
            #expect(!pieces.contains { text.contains($0) }, "\(route) shows the secret")
            #expect(!text.contains(Data(value.utf8).base64EncodedString()), "\(route) shows the secret in base64")
        }

        service.kill(signal: SIGTERM)
        #expect(await service.waitForExit(timeout: 60))
        let log = try String(contentsOfFile: service.logPath, encoding: .utf8)
        #expect(!pieces.contains { log.contains($0) }, "the service's log holds the secret")
        // The store's files alone do not reveal it.
        for file in ["rapidflow.sqlite", "rapidflow.sqlite-wal"] {
            let bytes = FileManager.default.contents(atPath: "\(directory)/\(file)") ?? Data()
            #expect(bytes.range(of: Data(pieces[0].utf8)) == nil && bytes.range(of: Data(pieces[1].utf8)) == nil, "\(file) holds the secret")
        }
        let keyPath = "\(directory)/secrets.key"
        var info = stat()
        #expect(stat(keyPath, &info) == 0 && info.st_mode & 0o777 == 0o600, "the key file is readable by its owner only")

        // A wrong key, then none: the service refuses to start and names the file, never a value.
        let wrongKey = "\(directory)/wrong.key"
        try (Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n").write(toFile: wrongKey, atomically: true, encoding: .utf8)
        for (arguments, file) in [(["--secrets-key-file", wrongKey], wrongKey), (["--secrets-key-file", "\(directory)/absent.key"], "\(directory)/absent.key")] {
            await #expect(throws: (any Error).self, "the service starts with \(arguments)") {
                let refused = try await ServiceProcess.start(dataDirectory: directory, arguments: arguments + ["--executor", "shell"])
                refused.kill(signal: SIGKILL)
            }
            let logs = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("service-") }
            let text = try logs.map { try String(contentsOfFile: "\(directory)/\($0)", encoding: .utf8) }.joined()
            #expect(text.contains(file), "the refusal names \(file)")
            #expect(!pieces.contains { text.contains($0) })
        }
        let restarted = try await ServiceProcess.start(dataDirectory: directory, arguments: ["--executor", "shell"])
        defer { restarted.kill(signal: SIGKILL) }
        #expect(try await restarted.client.get("/secrets/DEPLOY_TOKEN").decoded(API.Secret.self).lastUsedJobID == jobID)
        let again = try await restarted.client.trigger(pipeline)
        #expect(try await restarted.client.waitForJob(again).status == .success)
    }
}
