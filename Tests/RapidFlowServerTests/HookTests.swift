import Crypto
import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// Builds started by a git push: a real `git push` to a local bare repository whose
/// `post-receive` hook is `contrib/post-receive`, and every forge's recorded deliveries
/// (`Fixtures/forges`, from the forges' documentation) signed right, wrong, not at all, and
/// replayed.
@Suite("Hooks: builds started by a push") struct HookTests {
    /// A forge delivery recorded from its documentation: which field holds the event's commit
    /// and repository URL, and what the job should say about it.
    struct Fixture: CustomStringConvertible, Sendable {
        var file: String
        var forge: Forge
        /// Dotted path of the commit id in the body.
        var shaPath: String
        /// Dotted path of the repository's clone URL; every URL of that repository in the body
        /// is pointed at the local bare repository.
        var urlPath: String
        var event: TriggerEvent
        var branch: String

        var description: String { file }
    }

    static let fixtures: [Fixture] = [
        Fixture(file: "github-push", forge: .github, shaPath: "after", urlPath: "repository.clone_url", event: .push, branch: "changes"),
        Fixture(file: "github-tag", forge: .github, shaPath: "after", urlPath: "repository.clone_url", event: .tag, branch: "simple-tag"),
        Fixture(
            file: "github-pull-request", forge: .github, shaPath: "pull_request.head.sha", urlPath: "repository.clone_url", event: .pullRequest,
            branch: "changes"),
        Fixture(file: "gitea-push", forge: .gitea, shaPath: "after", urlPath: "repository.clone_url", event: .push, branch: "develop"),
        Fixture(file: "gitea-tag", forge: .gitea, shaPath: "after", urlPath: "repository.clone_url", event: .tag, branch: "v1.0.0"),
        Fixture(
            file: "gitea-pull-request", forge: .gitea, shaPath: "pull_request.head.sha", urlPath: "repository.clone_url", event: .pullRequest,
            branch: "develop"),
        Fixture(file: "gitlab-push", forge: .gitlab, shaPath: "checkout_sha", urlPath: "project.git_http_url", event: .push, branch: "master"),
        Fixture(file: "gitlab-tag", forge: .gitlab, shaPath: "checkout_sha", urlPath: "project.git_http_url", event: .tag, branch: "v1.0.0"),
        Fixture(
            file: "gitlab-merge-request", forge: .gitlab, shaPath: "object_attributes.last_commit.id", urlPath: "project.git_http_url",
            event: .pullRequest, branch: "ms-viewport"),
    ]

    static let fixtureDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/forges").path

    /// The fixture's headers and body, its commit and repository pointed at `repository` and `sha`.
    static func delivery(_ fixture: Fixture, repository: String, sha: String) throws -> (headers: [(String, String)], body: Data) {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(fixtureDirectory)/\(fixture.file).json"))
        let recorded = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let headers = try #require(recorded["headers"] as? [String: String])
        let body = try #require(recorded["body"] as? [String: Any])
        let originalSHA = try #require(value(body, fixture.shaPath) as? String, "\(fixture.file): \(fixture.shaPath)")
        let originalURL = try #require(value(body, fixture.urlPath) as? String, "\(fixture.file): \(fixture.urlPath)")
        let rewritten = replacing(body) { text in
            if text == originalSHA { return sha }
            if RepositoryIdentity.same(text, originalURL) { return repository }
            return text
        }
        return (headers.map { ($0.key, $0.value) }, try JSONSerialization.data(withJSONObject: rewritten, options: [.sortedKeys]))
    }

    static func value(_ object: Any, _ path: String) -> Any? {
        var current: Any? = object
        for key in path.split(separator: ".") { current = (current as? [String: Any])?[String(key)] }
        return current
    }

    static func replacing(_ value: Any, _ transform: (String) -> String) -> Any {
        switch value {
        case let text as String: return transform(text)
        case let object as [String: Any]: return object.mapValues { replacing($0, transform) }
        case let array as [Any]: return array.map { replacing($0, transform) }
        default: return value
        }
    }

    /// The forge's signature header for `body` with `secret`.
    static func signature(_ forge: Forge, body: Data, secret: String) -> (String, String) {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        let hex = mac.map { String(format: "%02x", $0) }.joined()
        switch forge {
        case .github: return ("X-Hub-Signature-256", "sha256=\(hex)")
        case .gitea: return ("X-Gitea-Signature", hex)
        case .gitlab: return ("X-Gitlab-Token", secret)
        case .git: return ("webhook-signature", "")
        }
    }

    static func deliveryHeader(_ forge: Forge) -> String {
        switch forge {
        case .github: "X-GitHub-Delivery"
        case .gitea: "X-Gitea-Delivery"
        case .gitlab: "X-Gitlab-Event-UUID"
        case .git: "webhook-id"
        }
    }

    /// Creates a hook; its secret.
    static func hook(_ server: TestServer, name: String, forge: Forge, secret: String? = nil, owner: String? = nil) async throws -> String {
        let reply = try await server.request(.POST, "/hooks", encoding: API.HookRequest(name: name, forge: forge, owner: owner, secret: secret))
        try #require(reply.status == 200, "create hook: \(reply.text)")
        let made = try reply.decoded(API.Hook.self).secret
        return try #require(secret ?? made)
    }

    static func jobCount(_ server: TestServer) async throws -> Int {
        try await server.get("/jobs?limit=500").decoded([API.Job].self).count
    }

    /// A bare repository (`repo.git`) and a clone (`work`) with one commit on `main`.
    static func repository() async throws -> (root: String, url: String, sha: String) {
        let root = TestFiles.temporaryDirectory()
        let sha = try await TestFiles.shell(
            """
            cd \(root) && git init -q --bare --initial-branch=main repo.git && git init -q --initial-branch=main work && cd work
            git config user.email t@example.com && git config user.name 'Test Author'
            echo one > file.txt && git add file.txt && git commit -qm 'first commit'
            git remote add origin ../repo.git && git push -q origin main && git rev-parse HEAD
            """
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        return (root, "file://\(root)/repo.git", sha)
    }

    /// Steps that prove the clone is the event's commit and the environment says so.
    static func config(repo: String, on: String?) -> String {
        var text = "repo: \(repo)\n"
        if let on { text += "on: \(on)\n" }
        text += """
            steps:
              - test "$(git rev-parse HEAD)" = "$CI_COMMIT_SHA" && echo "built $CI_EVENT $CI_COMMIT_REF $CI_COMMIT_SHA"

            """
        return text
    }

    @Test(arguments: fixtures)
    func eachForgesDeliveryRunsSignedAndIsRefusedOtherwise(_ fixture: Fixture) async throws {
        let repository = try await Self.repository()
        try await TestServer.with { server in
            let secret = "fixture-secret-\(fixture.forge.rawValue)-0123456789"
            _ = try await Self.hook(server, name: "forge", forge: fixture.forge, secret: secret)
            let selected = try await server.createPipeline(
                config: Self.config(repo: repository.url, on: "{push: {}, tag: [], pull_request: {}}"))
            // The same repository, but its `on:` takes no such event, or it has none.
            _ = try await server.createPipeline(config: Self.config(repo: repository.url, on: "{push: {branches: [nothing-matches]}}"))
            _ = try await server.createPipeline(config: Self.config(repo: repository.url, on: nil))

            let (recordedHeaders, body) = try Self.delivery(fixture, repository: repository.url, sha: repository.sha)
            let headers = recordedHeaders.filter { $0.0 != Self.deliveryHeader(fixture.forge) } + [(Self.deliveryHeader(fixture.forge), UUID().uuidString)]
            let text = String(decoding: body, as: UTF8.self)
            let path = "/hooks/\(fixture.forge.rawValue)"

            // No signature, a wrong one, and a right one over other bytes: 401, nothing runs.
            let unsigned = try await server.request(.POST, path, body: text, headers: headers)
            #expect(unsigned.status == 401 && unsigned.errorCode == "invalid_signature", "\(unsigned.status) \(unsigned.text)")
            let wrong = try await server.request(
                .POST, path, body: text, headers: headers + [Self.signature(fixture.forge, body: body, secret: "another-secret-0123456789")])
            #expect(wrong.status == 401 && wrong.errorCode == "invalid_signature", "\(wrong.status) \(wrong.text)")
            if fixture.forge != .gitlab {
                let tampered = text.replacingOccurrences(of: repository.sha, with: String(repeating: "a", count: 40))
                let forged = try await server.request(
                    .POST, path, body: tampered, headers: headers + [Self.signature(fixture.forge, body: body, secret: secret)])
                #expect(forged.status == 401, "a signature over other bytes: \(forged.text)")
            }
            #expect(try await Self.jobCount(server) == 0, "a refused delivery runs nothing")

            let signed = headers + [Self.signature(fixture.forge, body: body, secret: secret)]
            let accepted = try await server.request(.POST, path, body: text, headers: signed)
            try #require(accepted.status == 200, "\(accepted.text)")
            let answer = try accepted.decoded(API.HookAnswer.self)
            #expect(answer.event == fixture.event.rawValue && answer.replayed == false, "\(answer)")
            let jobID = try #require(answer.jobs.first, "\(answer)")
            #expect(answer.jobs.count == 1, "only the pipeline whose on: takes the event: \(answer)")

            let job = try await server.waitForJob(jobID)
            #expect(job.pipelineID == selected && job.status == .success, "\(job)")
            #expect(job.event == fixture.event.rawValue && job.commitSHA == repository.sha && job.branch == fixture.branch, "\(job)")
            let output = try await server.logs(jobID).logs.map(\.output).joined()
            #expect(output.contains("built \(fixture.event.rawValue) \(job.commitRef ?? "-") \(repository.sha)"), "\(output)")

            // The forge sends the same delivery again: the first answer, nothing new runs.
            let replay = try await server.request(.POST, path, body: text, headers: signed)
            #expect(replay.status == 200)
            let replayed = try replay.decoded(API.HookAnswer.self)
            #expect(replayed.replayed && replayed.jobs == answer.jobs, "\(replayed)")
            #expect(try await Self.jobCount(server) == 1)
        }
    }

    /// A real push: `git push` to a bare repository whose `post-receive` hook is the one in
    /// `contrib/`, which signs the event (curl, openssl) and posts it to `/hooks/git`.
    @Test func aRealGitPushStartsTheMatchingPipelineAtThePushedCommit() async throws {
        let repository = try await Self.repository()
        try await TestServer.with { server in
            let secret = try await Self.hook(server, name: "git-server", forge: .git)
            #expect(secret.hasPrefix("whsec_"))
            let main = try await server.createPipeline(config: Self.config(repo: repository.url, on: "{push: {branches: [main, \"release/*\"]}}"))
            let tags = try await server.createPipeline(config: Self.config(repo: repository.url, on: "{tag: [\"v*\"]}"))
            let apiOnly = try await server.createPipeline(config: Self.config(repo: repository.url, on: nil))
            let hook = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("contrib/post-receive").path
            try await TestFiles.shell(
                """
                cd \(repository.root)/repo.git && cp \(hook) hooks/post-receive && chmod +x hooks/post-receive
                git config rapidflow.url \(server.baseURL) && git config rapidflow.secret \(secret)
                """)

            func push(_ commands: String) async throws -> String {
                try await TestFiles.shell("cd \(repository.root)/work && \(commands) 2>&1")
            }
            func jobs(_ pipeline: Int) async throws -> [API.Job] {
                try await server.get("/jobs?pipeline_id=\(pipeline)").decoded([API.Job].self)
            }

            let pushed = try await push("echo two >> file.txt && git commit -qam 'second commit' && git push origin HEAD:main && git rev-parse HEAD")
            let sha = try #require(pushed.split(separator: "\n").last.map(String.init))
            #expect(pushed.contains("remote: rapidflow: refs/heads/main:"), "the hook's answer reaches the pusher: \(pushed)")
            let started = try await jobs(main)
            try #require(started.count == 1, "the push started the main pipeline before `git push` returned: \(pushed)")
            let job = try await server.waitForJob(started[0].id)
            #expect(job.status == .success && job.commitSHA == sha && job.event == "push" && job.branch == "main", "\(job)")
            #expect(job.commitMessage == "second commit" && job.commitAuthor == "Test Author", "\(job)")
            let (tagCount, apiOnlyCount) = (try await jobs(tags).count, try await jobs(apiOnly).count)
            #expect(tagCount == 0 && apiOnlyCount == 0, "pipelines whose on: filters the push out did not start")

            // A tag push starts the tag pipeline only.
            let tagged = try await push("git tag v1.2 && git push origin v1.2")
            #expect(tagged.contains("refs/tags/v1.2"), "\(tagged)")
            let tagJobs = try await jobs(tags)
            try #require(tagJobs.count == 1, "\(tagged)")
            #expect(try await server.waitForJob(tagJobs[0].id).status == .success)
            #expect(tagJobs[0].event == "tag" && tagJobs[0].commitSHA == sha)

            // `[skip ci]` and a deleted branch run nothing; a branch off the filter neither.
            let skipped = try await push("echo three >> file.txt && git commit -qam 'docs only [skip ci]' && git push origin HEAD:main")
            #expect(skipped.contains("skip CI"), "\(skipped)")
            let other = try await push("echo four >> file.txt && git commit -qam 'feature work' && git push origin HEAD:feature/x")
            #expect(other.contains("no pipeline"), "\(other)")
            let deleted = try await push("git push origin :feature/x")
            #expect(deleted.contains("the push deleted refs"), "\(deleted)")
            let counts = [try await jobs(main).count, try await jobs(tags).count, try await jobs(apiOnly).count]
            #expect(counts == [1, 1, 0], "nothing more ran")
        }
    }

    /// Signed, but not something to build: a ping, an event no pipeline takes, a body that is
    /// not JSON, a commit that is not a commit id.
    @Test func signedDeliveriesThatBuildNothingAreAnsweredAndRunNothing() async throws {
        let repository = try await Self.repository()
        try await TestServer.with { server in
            let secret = "another-fixture-secret-0123456789"
            _ = try await Self.hook(server, name: "gh", forge: .github, secret: secret)
            _ = try await server.createPipeline(config: Self.config(repo: repository.url, on: "{push: {}}"))
            func send(_ body: Data, event: String) async throws -> TestServer.Reply {
                try await server.request(
                    .POST, "/hooks/github", body: String(decoding: body, as: UTF8.self),
                    headers: [("X-GitHub-Event", event), ("X-GitHub-Delivery", UUID().uuidString), Self.signature(.github, body: body, secret: secret)])
            }
            let ping = try Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtureDirectory)/github-ping.json"))
            let pingBody = try JSONSerialization.data(
                withJSONObject: try #require((try JSONSerialization.jsonObject(with: ping) as? [String: Any])?["body"]))
            let pinged = try await send(pingBody, event: "ping")
            let pingAnswer = try pinged.decoded(API.HookAnswer.self)
            #expect(pinged.status == 200 && (pingAnswer.ignored ?? "").contains("ping"), "\(pinged.text)")
            let issues = try await send(Data(#"{"action": "opened"}"#.utf8), event: "issues")
            let issuesAnswer = try issues.decoded(API.HookAnswer.self)
            #expect(issues.status == 200 && issuesAnswer.jobs.isEmpty, "\(issues.text)")
            let notJSON = try await send(Data("not json".utf8), event: "push")
            #expect(notJSON.status == 400 && notJSON.errorCode == "invalid_json", "\(notJSON.text)")
            // A pull request: the pipeline's on: takes pushes only.
            let (headers, body) = try Self.delivery(Self.fixtures[2], repository: repository.url, sha: repository.sha)
            let pull = try await server.request(
                .POST, "/hooks/github", body: String(decoding: body, as: UTF8.self),
                headers: headers.filter { $0.0 != "X-GitHub-Delivery" } + [("X-GitHub-Delivery", "pr-1"), Self.signature(.github, body: body, secret: secret)])
            let pullAnswer = try pull.decoded(API.HookAnswer.self)
            #expect(pull.status == 200 && (pullAnswer.ignored ?? "").contains("no pipeline"), "\(pull.text)")
            let (_, push) = try Self.delivery(Self.fixtures[0], repository: repository.url, sha: "not-a-commit;rm -rf /")
            let badCommit = try await send(push, event: "push")
            #expect(badCommit.status == 400 && badCommit.errorMessage.contains("not a commit id"), "\(badCommit.text)")
            #expect(try await Self.jobCount(server) == 0)
        }
    }

    @Test func badHookSetupsAreRefusedAndNothingIsStored() async throws {
        try await TestServer.with { server in
            let bodies: [(String, String)] = [
                (#"{"forge": "github"}"#, "name"),
                (#"{"name": "x", "forge": "svn"}"#, "forge"),
                (#"{"name": "x", "forge": "github", "secret": "short"}"#, "secret"),
                (#"{"name": "x", "forge": "git", "secret": "not-a-standard-webhooks-key"}"#, "whsec_"),
                (#"{"name": "x", "forge": "gitea", "status_token": "t0ken"}"#, "status_url"),
                (#"{"name": "x", "forge": "github", "status_url": "ftp://example.com"}"#, "status_url"),
                (#"{"name": "x", "forge": "github", "colour": "red"}"#, "colour"),
            ]
            for (body, named) in bodies {
                let reply = try await server.request(.POST, "/hooks", body: body)
                #expect(reply.status == 400 && reply.errorMessage.contains(named), "\(body): \(reply.status) \(reply.text)")
            }
            _ = try await Self.hook(server, name: "taken", forge: .github)
            let duplicate = try await server.request(.POST, "/hooks", encoding: API.HookRequest(name: "taken", forge: .gitlab))
            #expect(duplicate.status == 409 && duplicate.errorCode == "hook_name_taken", "\(duplicate.text)")
            #expect(try await server.get("/hooks").decoded([API.Hook].self).map(\.name) == ["taken"])
            // The secret is shown once: never in a list or a read.
            #expect(!(try await server.get("/hooks").text.contains("secret\"")))
            #expect(try await server.get("/hooks/99").status == 404)

            // A forge with no hook set up: 401, nothing runs.
            let unknown = try await server.request(.POST, "/hooks/gitea", body: "{}", headers: [("X-Gitea-Event", "push")])
            #expect(unknown.status == 401 && unknown.errorMessage.contains("no gitea hook"), "\(unknown.text)")
            #expect(try await Self.jobCount(server) == 0)
        }
    }
}
