import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// Scoped tokens: roles, owners, hashing, revocation, and the audit log.
@Suite("Scoped tokens and the audit log") struct AccessTests {
    static let adminToken = "access-test-admin-token-5309"

    static func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

    /// Creates a token with the admin token; its value.
    static func token(_ server: TestServer, _ name: String, _ role: TokenRole, owners: [String]? = nil) async throws -> String {
        let reply = try await server.request(
            .POST, "/tokens", encoding: API.TokenRequest(name: name, role: role, owners: owners), headers: bearer(adminToken))
        try #require(reply.status == 200, "create token \(name): \(reply.text)")
        return try #require(try reply.decoded(API.Token.self).token)
    }

    static func withServer(_ body: (TestServer) async throws -> Void) async throws {
        try await TestServer.with(configure: {
            $0.apiToken = adminToken
            $0.maxConcurrentJobs = 4
        }, body)
    }

    /// The role an operation needs, as the README states it.
    static func requiredRole(_ method: String, _ path: String) -> TokenRole {
        if method == "get" || method == "head" {
            if path == "/tokens/current" { return .read }
            return ["/tokens", "/audit", "/secrets", "/hooks", "/webhooks"].contains { path.hasPrefix($0) } ? .admin : .read
        }
        let run = ["post /jobs", "post /jobs/{id}/cancel", "post /jobs/{id}/kill", "post /jobs/{id}/retry", "post /pipelines/{id}/jobs", "delete /caches/{id}"]
        return run.contains("\(method) \(path)") ? .run : .admin
    }

    @Test func everyRoleIsAllowedAndRefusedWhatTheDocumentSays() async throws {
        try await Self.withServer { server in
            let tokens: [TokenRole: String] = [
                .read: try await Self.token(server, "reader", .read), .run: try await Self.token(server, "runner", .run),
                .admin: try await Self.token(server, "operator", .admin),
            ]
            let admin = Self.bearer(Self.adminToken)
            let pipeline = try await server.request(
                .POST, "/pipelines", encoding: API.PipelineDefinition(name: "walk", config: "steps:\n  - echo walk\n"), headers: admin)
            let pipelineID = try pipeline.decoded(API.Pipeline.self).id
            let job = try await server.request(.POST, "/pipelines/\(pipelineID)/jobs", headers: admin).decoded(API.Job.self).id
            try await eventually(timeout: .seconds(60), "the job finished") {
                try await server.request(.GET, "/jobs/\(job)", headers: admin).decoded(API.Job.self).status.isFinal
            }
            let logs = try await server.request(.GET, "/jobs/\(job)/logs", headers: admin).decoded(API.JobLogs.self)
            let step = try #require(logs.logs.first?.stepID)

            let document = try #require(
                try JSONSerialization.jsonObject(with: try await server.get("/openapi.json").body) as? [String: Any])
            let operations = OpenAPIDocumentTests.operations(document).filter { !$0.isOpen && !$0.path.hasPrefix("/runner/") }
            #expect(operations.count >= 28)
            for role in [TokenRole.read, .run, .admin] {
                for operation in operations.sorted(by: { ($0.method == "delete" ? 1 : 0, $0.path) < ($1.method == "delete" ? 1 : 0, $1.path) }) {
                    // Deletes act on things made for the purpose, so the walk goes on.
                    var id = operation.path.hasPrefix("/steps/") ? step : operation.path.hasPrefix("/pipelines/") ? pipelineID : job
                    if operation.method == "delete", operation.path == "/pipelines/{id}" {
                        id = try await server.request(
                            .POST, "/pipelines", encoding: API.PipelineDefinition(name: "gone-\(role)", config: "steps:\n  - echo\n"),
                            headers: admin
                        ).decoded(API.Pipeline.self).id
                    }
                    if operation.method == "delete", operation.path == "/tokens/{id}" {
                        let made = try await server.request(
                            .POST, "/tokens", encoding: API.TokenRequest(name: "spare-\(role)", role: .read), headers: admin)
                        id = try made.decoded(API.Token.self).id
                    }
                    let path = operation.path.replacingOccurrences(of: "{id}", with: String(id))
                        .replacingOccurrences(of: "{name}", with: "ACCESS_TEST").replacingOccurrences(of: "{owner}", with: "team-walk")
                    var body = try OpenAPIDocumentTests.exampleBody(operation, document)
                    if operation.path == "/tokens", let text = body { body = text.replacingOccurrences(of: "ci-deployer", with: "made-by-\(role)") }
                    let reply = try await server.request(
                        HTTPMethod(rawValue: operation.method.uppercased()), path, body: body, headers: Self.bearer(tokens[role]!))
                    let needed = Self.requiredRole(operation.method, operation.path)
                    #expect(reply.status != 401, "\(role) \(operation): \(reply.text.prefix(200))")
                    if role == .admin, operation.path == "/tokens", operation.method == "post" {
                        #expect(reply.status == 200, "the document's example body makes a token: \(reply.text)")
                    }
                    if role >= needed {
                        #expect(reply.status != 403, "\(role) may \(operation): \(reply.text.prefix(200))")
                    } else {
                        #expect(reply.status == 403 && reply.errorCode == "forbidden", "\(role) may not \(operation): \(reply.status) \(reply.text.prefix(200))")
                        #expect(reply.errorMessage.contains(needed.rawValue), "\(reply.errorMessage)")
                    }
                }
            }
            // What the read token may not do changed nothing: its refused trigger made no job.
            let jobs = try await server.request(.GET, "/jobs?pipeline_id=\(pipelineID)", headers: admin).decoded([API.Job].self)
            let triggeredBy = jobs.count
            let refused = try await server.request(.POST, "/pipelines/\(pipelineID)/jobs", headers: Self.bearer(tokens[.read]!))
            #expect(refused.status == 403)
            #expect(try await server.request(.GET, "/jobs?pipeline_id=\(pipelineID)", headers: admin).decoded([API.Job].self).count == triggeredBy)
            let me = try await server.request(.GET, "/tokens/current", headers: Self.bearer(tokens[.run]!)).decoded(API.CurrentToken.self)
            #expect(me.name == "runner" && me.role == .run && me.owners == nil)
        }
    }

    @Test func tokensAreStoredHashedShownOnceAndRevocable() async throws {
        try await Self.withServer { server in
            let admin = Self.bearer(Self.adminToken)
            let made = try await server.request(.POST, "/tokens", encoding: API.TokenRequest(name: "ci", role: .run), headers: admin)
            let created = try made.decoded(API.Token.self)
            let token = try #require(created.token)
            #expect(token.hasPrefix("rft_") && token.count >= 40)
            #expect(created.revokedAt == nil && created.lastUsedAt == nil)
            #expect(try await server.request(.GET, "/jobs", headers: Self.bearer(token)).status == 200)
            let listed = try await server.request(.GET, "/tokens", headers: admin)
            #expect(!listed.text.contains(token), "the list never shows a token")
            #expect(try listed.decoded([API.Token].self).map(\.name) == ["ci"])
            try await eventually(timeout: .seconds(30), "the use is recorded") {
                try await server.request(.GET, "/tokens", headers: admin).decoded([API.Token].self).first?.lastUsedAt != nil
            }
            // The database holds the token's SHA-256, never the token.
            var stored = Data()
            for file in try FileManager.default.contentsOfDirectory(atPath: server.dataDirectory) where file.hasPrefix("rapidflow.sqlite") {
                stored.append(try Data(contentsOf: URL(fileURLWithPath: "\(server.dataDirectory)/\(file)")))
            }
            #expect(!stored.isEmpty, "the SQLite files were read")
            #expect(stored.range(of: Data(token.utf8)) == nil, "the store holds the token")
            #expect(stored.range(of: Data(token.dropFirst(4).prefix(16).utf8)) == nil, "the store holds part of the token")

            let revoked = try await server.request(.DELETE, "/tokens/\(created.id)", headers: admin).decoded(API.Token.self)
            #expect(revoked.revokedAt != nil && revoked.token == nil)
            let refused = try await server.request(.GET, "/jobs", headers: Self.bearer(token))
            #expect(refused.status == 401 && refused.errorCode == "unauthorized")
            #expect(try await server.request(.DELETE, "/tokens/999", headers: admin).status == 404)
        }
    }

    @Test func aTokenLimitedToOneOwnerReachesOnlyItsJobsAndTheAuditLogShowsWho() async throws {
        let gate = TestFiles.temporaryDirectory() + "/gate"
        try await Self.withServer { server in
            let admin = Self.bearer(Self.adminToken)
            func pipeline(_ name: String, _ owner: String) async throws -> Int {
                try await server.request(
                    .POST, "/pipelines", encoding: API.PipelineDefinition(name: name, config: FairQueueTests.gated(gate), owner: owner),
                    headers: admin
                ).decoded(API.Pipeline.self).id
            }
            let mine = try await pipeline("mine", "team-a"), theirs = try await pipeline("theirs", "team-b")
            let teamA = try await Self.token(server, "team-a-runner", .run, owners: ["team-a"])
            let asA = Self.bearer(teamA)
            let aJob = try await server.request(.POST, "/pipelines/\(mine)/jobs", headers: asA).decoded(API.Job.self).id
            let refusedTrigger = try await server.request(.POST, "/pipelines/\(theirs)/jobs", headers: asA)
            #expect(refusedTrigger.status == 403 && refusedTrigger.errorMessage.contains("team-b"), "\(refusedTrigger.text)")
            let bJob = try await server.request(.POST, "/pipelines/\(theirs)/jobs", headers: admin).decoded(API.Job.self).id
            for id in [aJob, bJob] {
                try await eventually("job \(id) runs") {
                    try await server.request(.GET, "/jobs/\(id)", headers: admin).decoded(API.Job.self).status == .running
                }
            }

            // Owner B's job: not cancelled, not read, not followed.
            let refusedCancel = try await server.request(.POST, "/jobs/\(bJob)/cancel", headers: asA)
            #expect(refusedCancel.status == 403 && refusedCancel.errorCode == "forbidden", "\(refusedCancel.text)")
            #expect(try await server.request(.GET, "/jobs/\(bJob)", headers: admin).decoded(API.Job.self).status == .running)
            #expect(try await server.request(.GET, "/jobs/\(bJob)", headers: asA).status == 403)
            #expect(try await server.request(.GET, "/jobs/\(bJob)/logs/stream", headers: asA).status == 403)
            let socket = try await RawWebSocket.follow(port: server.port, path: "/jobs/\(bJob)/logs/stream", headers: asA)
            #expect(socket.upgraded && socket.texts.count == 1 && socket.texts[0].contains("forbidden"), "\(socket.texts)")
            // Lists name an owner the token reaches.
            #expect(try await server.request(.GET, "/jobs", headers: asA).status == 403)
            #expect(try await server.request(.GET, "/jobs?owner=team-b", headers: asA).status == 403)
            let listed = try await server.request(.GET, "/jobs?owner=team-a", headers: asA).decoded([API.Job].self)
            #expect(listed.map(\.id) == [aJob])
            // Image jobs and pipelines are checked by the owner in their body.
            let image = #"{"owner": "team-b", "repo_url": "https://git.example.com/b/app.git"}"#
            #expect(try await server.request(.POST, "/jobs", body: image, headers: asA).status == 403)
            #expect(try await server.request(.GET, "/audit", headers: asA).status == 403)

            // Its own job: cancelled, and the audit log says who did it, from where.
            let cancelled = try await server.request(.POST, "/jobs/\(aJob)/cancel", headers: asA)
            #expect(cancelled.status == 200, "\(cancelled.text)")
            FileManager.default.createFile(atPath: gate, contents: nil)
            let audit = try await server.request(.GET, "/audit?owner=team-a", headers: admin).decoded([API.AuditEntry].self)
            let cancel = try #require(audit.first { $0.path == "/jobs/\(aJob)/cancel" }, "\(audit)")
            #expect(cancel.actor == "team-a-runner" && cancel.method == "POST" && cancel.status == 200)
            #expect(cancel.target == "job \(aJob)" && cancel.owner == "team-a" && cancel.address == "127.0.0.1")
            let refusals = try await server.request(.GET, "/audit?owner=team-b", headers: admin).decoded([API.AuditEntry].self)
            #expect(refusals.contains { $0.path == "/jobs/\(bJob)/cancel" && $0.status == 403 && $0.actor == "team-a-runner" })
            #expect(refusals.contains { $0.path == "/pipelines/\(theirs)/jobs" && $0.actor == "api-token" && $0.status == 200 })
            let later = try await server.request(.GET, "/audit?since=2999-01-01T00:00:00Z", headers: admin).decoded([API.AuditEntry].self)
            #expect(later.isEmpty)
            let page = try await server.request(.GET, "/audit?limit=1", headers: admin).decoded([API.AuditEntry].self)
            let next = try await server.request(.GET, "/audit?limit=1&after=\(page[0].id)", headers: admin).decoded([API.AuditEntry].self)
            #expect(next.count == 1 && next[0].id > page[0].id)
            #expect(try await server.request(.GET, "/audit", headers: admin).decoded([API.AuditEntry].self).allSatisfy { $0.method != "GET" })
        }
    }

    @Test func badTokenRequestsAreRefusedAndCreateNothing() async throws {
        try await Self.withServer { server in
            let admin = Self.bearer(Self.adminToken)
            _ = try await Self.token(server, "taken", .read)
            let refusals: [(String, Int, String)] = [
                (#"{"name": "x", "role": "superuser"}"#, 400, "role"),
                (#"{"name": "has space", "role": "read"}"#, 400, "name"),
                (#"{"role": "read"}"#, 400, "name"),
                (#"{"name": "x"}"#, 400, "role"),
                (#"{"name": "x", "role": "read", "owners": []}"#, 400, "owners"),
                (#"{"name": "x", "role": "read", "owners": ["Team A"]}"#, 400, "owners"),
                (#"{"name": "x", "role": "read", "owners": "team-a"}"#, 400, "owners"),
                (#"{"name": "x", "role": "read", "expires": 3}"#, 400, "expires"),
                (#"{"name": "taken", "role": "admin"}"#, 409, "taken"),
            ]
            for (body, status, word) in refusals {
                let reply = try await server.request(.POST, "/tokens", body: body, headers: admin)
                #expect(reply.status == status, "\(body): \(reply.text)")
                #expect(reply.errorMessage.contains(word), "'\(reply.errorMessage)' should mention '\(word)'")
            }
            #expect(try await server.request(.GET, "/tokens", headers: admin).decoded([API.Token].self).map(\.name) == ["taken"])
        }
        // Without the service's own token there is nothing to scope.
        try await TestServer.with { server in
            let reply = try await server.request(.POST, "/tokens", encoding: API.TokenRequest(name: "ci", role: .read))
            #expect(reply.status == 400 && reply.errorMessage.contains("--api-token"), "\(reply.text)")
            #expect(try await server.get("/tokens").decoded([API.Token].self).isEmpty)
        }
    }

    @Test func theCommandLineCreatesListsAndRevokesTokens() async throws {
        try await Self.withServer { server in
            let created = try await CLITests.cli(
                ["token", "create", "--name", "deployer", "--role", "run", "--owner", "team-a"], server: server, token: Self.adminToken)
            #expect(created.status == 0, "\(created.stderr)")
            let token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(token.hasPrefix("rft_") && created.stderr.contains("not shown again"), "\(created.stdout) \(created.stderr)")
            let mine = try await CLITests.cli(["jobs", "--owner", "team-a"], server: server, token: token)
            #expect(mine.status == 0, "\(mine.stderr)")
            let listed = try await CLITests.cli(["token", "list"], server: server, token: Self.adminToken)
            #expect(listed.status == 0 && listed.stdout.contains("deployer") && listed.stdout.contains("team-a"), "\(listed.stdout)")
            #expect(!listed.stdout.contains(token))
            let notAllowed = try await CLITests.cli(["token", "list"], server: server, token: token)
            #expect(notAllowed.status == 1 && notAllowed.stderr.contains("admin"), "\(notAllowed.stderr)")
            let revoked = try await CLITests.cli(["token", "revoke", "deployer"], server: server, token: Self.adminToken)
            #expect(revoked.status == 0 && revoked.stdout.contains("revoked"), "\(revoked.stderr)")
            let refused = try await CLITests.cli(["jobs", "--owner", "team-a"], server: server, token: token)
            #expect(refused.status == 1, "a revoked token is refused: \(refused.stdout)")
            let badRole = try await CLITests.cli(["token", "create", "--name", "x", "--role", "root"], server: server, token: Self.adminToken)
            #expect(badRole.status != 0 && badRole.stderr.contains("--role"), "\(badRole.stderr)")
        }
    }
}
