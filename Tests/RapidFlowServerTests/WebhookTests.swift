import AsyncHTTPClient
import Foundation
import RapidFlowRunner
import NIOCore
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// The Python receiver in `Tests/webhook-receiver`: it verifies every delivery with the
/// `standardwebhooks` package from PyPI (a verifier nobody here wrote) and records it.
final class WebhookReceiver: Sendable {
    struct Entry: Sendable {
        var path: String
        var webhookID: String?
        var verified: Bool?
        var answered: Int
        /// Standard Webhooks' `type` of the body.
        var type: String?
        var jobID: Int?
        var jobStatus: String?
        var headers: [String: String]
        var body: [String: any Sendable]?
        var raw: String
    }

    let process: Process
    let port: Int
    let secret: String

    var url: String { "http://127.0.0.1:\(port)/deliveries" }
    var base: String { "http://127.0.0.1:\(port)" }

    private init(process: Process, port: Int, secret: String) {
        self.process = process
        self.port = port
        self.secret = secret
    }

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("webhook-receiver/receiver.py").path

    static func start(secret: String = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()) async throws
        -> WebhookReceiver
    {
        let python = ProcessInfo.processInfo.environment["RAPIDFLOW_TEST_PYTHON"] ?? "/tmp/rapidflow-test-services/venv/bin/python"
        let portFile = TestFiles.temporaryDirectory() + "/port"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, "--port-file", portFile, "--secret", secret]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try ProcessSpawning.run(process)
        var port = 0
        try await eventually("the webhook receiver listens") {
            if !process.isRunning { throw TestFailure("the webhook receiver exited (is standardwebhooks installed? scripts/test-services.sh)") }
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) } ?? 0
            return port > 0
        }
        return WebhookReceiver(process: process, port: port, secret: secret)
    }

    /// SIGKILL: the test process may have SIGTERM blocked, and the child inherits the mask.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    func setMode(_ mode: String) async throws {
        var request = HTTPClientRequest(url: "\(base)/_mode/\(mode)")
        request.method = .PUT
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        guard response.status == .ok else { throw TestFailure("receiver mode \(mode): \(response.status)") }
    }

    func received() async throws -> [Entry] {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(base)/_received"), timeout: .seconds(10))
        let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        let list = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        return list.map { item in
            let body = item["body"] as? [String: Any]
            let job = (body?["data"] as? [String: Any])?["job"] as? [String: Any]
            return Entry(
                path: item["path"] as? String ?? "", webhookID: item["webhook_id"] as? String, verified: item["verified"] as? Bool,
                answered: item["answered"] as? Int ?? 0, type: body?["type"] as? String, jobID: job?["id"] as? Int,
                jobStatus: job?["status"] as? String, headers: item["headers"] as? [String: String] ?? [:],
                body: body.map { $0.mapValues { "\($0)" } }, raw: item["raw"] as? String ?? "")
        }
    }

    /// Deliveries answered 2xx, for one job, in arrival order.
    func accepted(jobID: Int) async throws -> [Entry] {
        try await received().filter { $0.jobID == jobID && (200..<300).contains($0.answered) }
    }
}

/// Outgoing webhooks: deliveries written with the change they announce (an outbox), sent
/// signed, at least once, in order per job, retried, never redirected, disabled on 410, sent
/// once across replicas and after a crash; commit statuses posted to the forges' APIs.
@Suite("Webhooks: the world hears when builds end") struct WebhookTests {
    static let allEvents = ["job.created", "job.started", "job.finished", "step.finished"]

    static func register(
        _ server: TestServer, _ receiver: WebhookReceiver, events: [String] = allEvents, owner: String? = nil, pipelineID: Int? = nil
    ) async throws -> Int {
        let reply = try await server.request(
            .POST, "/webhooks",
            encoding: API.WebhookRequest(url: receiver.url, events: events, owner: owner, pipelineID: pipelineID, secret: receiver.secret))
        try #require(reply.status == 200, "register webhook: \(reply.text)")
        let webhook = try reply.decoded(API.Webhook.self)
        #expect(webhook.secret == nil, "a secret the caller gave is not echoed")
        return webhook.id
    }

    static func deliveries(_ server: TestServer, _ webhook: Int) async throws -> [API.WebhookDelivery] {
        try await server.get("/webhooks/\(webhook)/deliveries?limit=500").decoded([API.WebhookDelivery].self)
    }

    @Test func deliveriesAreSignedInOrderAndCarryNoOutput() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { receiver.stop() }
        try await TestServer.with { server in
            let webhook = try await Self.register(server, receiver)
            // Another owner's only: it hears nothing of this job.
            let elsewhere = try await Self.register(server, receiver, owner: "another-team")
            let pipeline = try await server.createPipeline(
                config: "steps:\n  - echo OUTPUT-MARKER-4711\n  - type: bash\n    content: echo testing\n    phase: test\n")
            let jobID = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(jobID).status == .success)
            try await eventually("the job's end is delivered") { try await receiver.accepted(jobID: jobID).contains { $0.type == "job.finished" } }

            let accepted = try await receiver.accepted(jobID: jobID)
            #expect(accepted.map(\.type) == ["job.created", "job.started", "step.finished", "step.finished", "job.finished"], "in order, each once")
            #expect(accepted.allSatisfy { $0.verified == true }, "every signature verifies with the standardwebhooks package")
            #expect(Set(accepted.compactMap(\.webhookID)).count == accepted.count)
            #expect(accepted.map(\.jobStatus) == ["pending", "running", "running", "running", "success"], "each says the job's status at the change")
            let finished = try #require(accepted.last)
            #expect(finished.raw.contains("\"logs_url\":\"\(server.baseURL)/jobs/\(jobID)/logs\""), "\(finished.raw)")
            #expect(finished.raw.contains("\"phases\":{\"build\":{"), "\(finished.raw)")
            #expect(!accepted.contains { $0.raw.contains("OUTPUT-MARKER") }, "no delivery carries output")

            let listed = try await Self.deliveries(server, webhook)
            #expect(listed.count == 5 && listed.allSatisfy { $0.state == "delivered" && $0.tries == 1 && $0.statusCode == 200 }, "\(listed)")
            #expect(try await Self.deliveries(server, elsewhere).isEmpty, "an owner filter holds")
        }
    }

    @Test func aReceiverDownForAWhileGetsEveryDeliveryInOrderOnceItIsBack() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { receiver.stop() }
        try await receiver.setMode("down")
        try await TestServer.with(configure: { $0.webhookRetrySchedule = Array(repeating: .seconds(1), count: 7) }) { server in
            let webhook = try await Self.register(server, receiver, events: ["job.created", "job.started", "job.finished"])
            let pipeline = try await server.createPipeline(config: "steps:\n  - \"true\"\n")
            let jobID = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(jobID).status == .success)
            try await eventually("the first delivery was tried twice") {
                try await Self.deliveries(server, webhook).contains { $0.event == "job.created" && $0.tries >= 2 }
            }
            let waiting = try await Self.deliveries(server, webhook)
            let first = try #require(waiting.first { $0.event == "job.created" })
            #expect(first.state == "pending" && first.statusCode == 503 && first.nextTryAt != nil, "\(first)")
            // In order: nothing later for the job was sent while the first was not through.
            #expect(try await receiver.received().allSatisfy { $0.type == "job.created" }, "later deliveries wait for the first")

            try await receiver.setMode("ok")
            try await eventually("all delivered once the receiver is back") {
                try await Self.deliveries(server, webhook).allSatisfy { $0.state == "delivered" }
            }
            #expect(try await receiver.accepted(jobID: jobID).map(\.type) == ["job.created", "job.started", "job.finished"])
        }
    }

    @Test func aGoneTargetIsDisabledAndRedirectsAreNotFollowed() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { receiver.stop() }
        try await TestServer.with(configure: { $0.webhookRetrySchedule = Array(repeating: .seconds(30), count: 7) }) { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - \"true\"\n")
            try await receiver.setMode("redirect")
            let redirected = try await Self.register(server, receiver, events: ["job.created"])
            let first = try await server.trigger(pipeline)
            try await eventually("the redirect was answered") { try await Self.deliveries(server, redirected).first?.tries == 1 }
            let delivery = try #require(try await Self.deliveries(server, redirected).first)
            #expect(delivery.statusCode == 302 && delivery.state == "pending", "a redirect is a failed try: \(delivery)")
            #expect(try await receiver.received().allSatisfy { $0.path != "/redirected" }, "the redirect was not followed")
            _ = try await server.request(.DELETE, "/webhooks/\(redirected)")

            try await receiver.setMode("gone")
            let gone = try await Self.register(server, receiver, events: ["job.created", "job.finished"])
            let second = try await server.trigger(pipeline)
            try await eventually("the webhook is disabled") { try await server.get("/webhooks/\(gone)").decoded(API.Webhook.self).disabledAt != nil }
            try await eventually("its deliveries failed") { try await Self.deliveries(server, gone).allSatisfy { $0.state == "failed" } }
            _ = try await server.waitForJob(first)
            _ = try await server.waitForJob(second)
            let third = try await server.trigger(pipeline)
            _ = try await server.waitForJob(third)
            #expect(try await Self.deliveries(server, gone).allSatisfy { $0.jobID != third }, "a disabled webhook is told nothing more")
            let redeliver = try await server.request(.POST, "/webhooks/\(gone)/deliveries/1/redeliver")
            #expect(redeliver.status == 400 || redeliver.status == 404, "\(redeliver.text)")
        }
    }

    @Test func aTryWithoutAnAnswerInTimeFailsAndIsTriedAgain() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { receiver.stop() }
        try await receiver.setMode("slow")
        try await TestServer.with(configure: {
            $0.webhookTimeout = .seconds(1)
            $0.webhookRetrySchedule = Array(repeating: .seconds(30), count: 7)
        }) { server in
            let webhook = try await Self.register(server, receiver, events: ["job.created"])
            _ = try await server.trigger(try await server.createPipeline(config: "steps:\n  - \"true\"\n"))
            try await eventually("the first try timed out") { try await Self.deliveries(server, webhook).first?.tries == 1 }
            let delivery = try #require(try await Self.deliveries(server, webhook).first)
            #expect(delivery.state == "pending" && delivery.statusCode == nil && delivery.error == "no answer within the timeout", "\(delivery)")
            #expect((delivery.durationMs ?? 0) >= 900 && (delivery.durationMs ?? 0) < 10_000, "the try gave up after its timeout: \(delivery)")
        }
    }

    @Test func redeliverSendsADeliveryAgain() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { receiver.stop() }
        try await TestServer.with { server in
            let webhook = try await Self.register(server, receiver, events: ["job.finished"])
            let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - \"true\"\n"))
            try await eventually("delivered") { try await receiver.accepted(jobID: jobID).count == 1 }
            let delivery = try #require(try await Self.deliveries(server, webhook).first)
            let again = try await server.request(.POST, "/webhooks/\(webhook)/deliveries/\(delivery.id)/redeliver")
            #expect(again.status == 200, "\(again.text)")
            try await eventually("delivered again") { try await receiver.accepted(jobID: jobID).count == 2 }
            let both = try await receiver.accepted(jobID: jobID)
            #expect(both[0].webhookID == both[1].webhookID && both[0].raw == both[1].raw, "the same message, the same body")
            #expect(try await server.request(.POST, "/webhooks/\(webhook)/deliveries/999/redeliver").status == 404)
        }
    }

    @Test func badRegistrationsAreRefusedAndNothingIsStored() async throws {
        try await TestServer.with(configure: { $0.webhookAllowedHosts = ["127.0.0.1"] }) { server in
            let bodies: [(String, String)] = [
                (#"{"events": ["job.finished"]}"#, "url"),
                (#"{"url": "ftp://127.0.0.1/x"}"#, "url"),
                (#"{"url": "http://user:pw@127.0.0.1/x"}"#, "url"),
                (#"{"url": "http://127.0.0.1/x", "events": ["job.exploded"]}"#, "job.exploded"),
                (#"{"url": "http://127.0.0.1/x", "events": []}"#, "events"),
                (#"{"url": "http://127.0.0.1/x", "secret": "plain"}"#, "whsec_"),
                (#"{"url": "http://example.com/x"}"#, "webhook-allow-hosts"),
                (#"{"url": "http://127.0.0.1/x", "colour": "red"}"#, "colour"),
            ]
            for (body, named) in bodies {
                let reply = try await server.request(.POST, "/webhooks", body: body)
                #expect(reply.status == 400 && reply.errorMessage.contains(named), "\(body): \(reply.status) \(reply.text)")
            }
            let missing = try await server.request(.POST, "/webhooks", body: #"{"url": "http://127.0.0.1/x", "pipeline_id": 42}"#)
            #expect(missing.status == 404 && missing.errorCode == "pipeline_not_found", "\(missing.text)")
            #expect(try await server.get("/webhooks").decoded([API.Webhook].self).isEmpty)
            #expect(try await server.get("/webhooks/7").status == 404)
            #expect(try await server.get("/webhooks/7/deliveries").errorCode == "webhook_not_found")
            // Made by the service when not given, shown once.
            let made = try await server.request(.POST, "/webhooks", body: #"{"url": "http://127.0.0.1/x"}"#).decoded(API.Webhook.self)
            #expect(made.secret?.hasPrefix("whsec_") == true && made.events == ["job.finished"])
            #expect(!(try await server.get("/webhooks").text.contains("whsec_")))
        }
    }

    /// `kill -9` after the jobs changed but before their deliveries went out: after the
    /// restart each is delivered, once.
    @Test func aKilledServiceDeliversAfterItsRestartOnce() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { receiver.stop() }
        try await receiver.setMode("down")
        let data = TestFiles.temporaryDirectory()
        let arguments = ["--executor", "shell", "--webhook-retry-seconds", "1,1,1,1,1,1,1"]
        let first = try await ServiceProcess.start(dataDirectory: data, arguments: arguments)
        let webhook = try await Self.register(first.client, receiver, events: ["job.created", "job.started", "job.finished"])
        let jobID = try await first.client.trigger(try await first.client.createPipeline(config: "steps:\n  - \"true\"\n"))
        #expect(try await first.client.waitForJob(jobID).status == .success)
        try await first.killNow()
        try await receiver.setMode("ok")
        #expect(try await receiver.accepted(jobID: jobID).isEmpty, "nothing was delivered before the kill")

        let second = try await ServiceProcess.start(dataDirectory: data, arguments: arguments)
        defer { second.kill(signal: SIGTERM) }
        try await eventually("delivered after the restart") {
            try await Self.deliveries(second.client, webhook).allSatisfy { $0.state == "delivered" }
        }
        let accepted = try await receiver.accepted(jobID: jobID)
        #expect(accepted.map(\.type) == ["job.created", "job.started", "job.finished"], "each once, in order")
    }

    /// Commit statuses, posted as GitHub, Gitea and GitLab document their APIs; the receiver
    /// plays the forge (`/forge/...` answers 201 and records the call).
    @Test(arguments: [Forge.github, .gitea, .gitlab])
    func jobsAForgeStartedPostTheirCommitStatus(_ forge: Forge) async throws {
        let receiver = try await WebhookReceiver.start()
        defer { receiver.stop() }
        let repository = try await HookTests.repository()
        try await TestServer.with { server in
            let secret = "status-secret-0123456789"
            let reply = try await server.request(
                .POST, "/hooks",
                encoding: API.HookRequest(
                    name: "with-status", forge: forge, secret: secret, statusToken: "forge-token-42", statusURL: "\(receiver.base)/forge/api"))
            try #require(reply.status == 200, "\(reply.text)")
            #expect(try reply.decoded(API.Hook.self).postsCommitStatus)
            _ = try await server.createPipeline(name: "build", config: HookTests.config(repo: repository.url, on: "{push: {}}"))
            let fixture = try #require(HookTests.fixtures.first { $0.forge == forge && $0.event == .push })
            let (headers, body) = try HookTests.delivery(fixture, repository: repository.url, sha: repository.sha)
            let answer = try await server.request(
                .POST, "/hooks/\(forge.rawValue)", body: String(decoding: body, as: UTF8.self),
                headers: headers + [HookTests.signature(forge, body: body, secret: secret)])
            let jobID = try #require(try answer.decoded(API.HookAnswer.self).jobs.first, "\(answer.text)")
            #expect(try await server.waitForJob(jobID).status == .success)
            try await eventually("the final status is posted") { try await receiver.received().count >= 2 }

            let calls = try await receiver.received()
            #expect(calls.count == 2, "pending, then the end: \(calls.map(\.path))")
            for call in calls {
                #expect(call.path.contains("/statuses/\(repository.sha)"), "\(call.path)")
                switch forge {
                case .github:
                    #expect(call.path.hasPrefix("/forge/api/repos/baxterthehacker/public-repo/statuses/"), "\(call.path)")
                    #expect(call.headers["authorization"] == "Bearer forge-token-42")
                case .gitea:
                    #expect(call.path.hasPrefix("/forge/api/repos/gitea/webhooks/statuses/"), "\(call.path)")
                    #expect(call.headers["authorization"] == "token forge-token-42")
                default:
                    #expect(call.path.hasPrefix("/forge/api/projects/15/statuses/"), "\(call.path)")
                    #expect(call.headers["private-token"] == "forge-token-42")
                }
            }
            let states =
                forge == .gitlab
                ? calls.map { URLComponents(string: $0.path)?.queryItems?.first { $0.name == "state" }?.value ?? "" }
                : calls.map { $0.body?["state"] as? String ?? "" }
            #expect(states == ["pending", "success"], "\(states)")
            if forge != .gitlab {
                #expect(calls[1].body?["target_url"] as? String == "\(server.baseURL)/jobs/\(jobID)")
                #expect(calls[1].body?["context"] as? String == "rapidflow/build")
            }
        }
    }
}
