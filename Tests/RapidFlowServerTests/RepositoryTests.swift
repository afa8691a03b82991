import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

@testable import RapidFlowServer

/// Clone sources: a repository on the service's disk is cloned only with `--allow-local-repos`,
/// credentials never sit in a URL, and git's own transport list holds when a step runs, also
/// for jobs stored under other rules.
@Suite("Local repositories and git transports")
struct RepositoryTests {
    static func withoutLocalRepositories<T>(executor: ServerConfiguration.ExecutorKind = .shell, _ body: (TestServer) async throws -> T) async throws -> T {
        try await TestServer.with(configure: {
            $0.allowLocalRepositories = false
            $0.executor = executor
            $0.runnerBinary = ServiceProcess.binary
        }, body)
    }

    /// The envelope of a refusal: no data, a code, a message, a timestamp. Its members are
    /// read with JSONSerialization on purpose: `data` must be there as null, which the API
    /// types read the same as left out.
    static func expectEnvelope(_ reply: TestServer.Reply, code: String, mentioning words: [String], _ label: String) {
        #expect(reply.status == 400, "\(label): \(reply.text)")
        let members = (try? JSONSerialization.jsonObject(with: reply.body)) as? [String: Any] ?? [:]
        #expect(members["data"] is NSNull, "\(label): data is null")
        #expect(members["timestamp"] is String, "\(label): a timestamp")
        #expect(reply.errorCode == code, "\(label): \(reply.text)")
        for word in words {
            #expect(reply.errorMessage.contains(word), "\(label): '\(reply.errorMessage)' should mention '\(word)'")
        }
    }

    /// A real repository on this machine at a path git reads as local although it looks scp-like.
    static func scpLookingRepository() async throws -> String {
        let root = TestFiles.temporaryDirectory()
        try await TestFiles.shell("""
            cd \(root) && git init -q --bare 'x@y:repo.git' && git init -q work && cd work
            git config user.email t@example.com && git config user.name test
            echo from-disk > message.txt && git add . && git commit -qm one && git push -q '../x@y:repo.git' HEAD:main
            """)
        return "\(root)/x@y:repo.git"
    }

    @Test func localSourcesAndURLCredentialsAreRefusedWithoutTheAllowance() async throws {
        let fileURL = try await GitFixture.repository(branches: ["main": "secret on disk"])
        let path = String(fileURL.dropFirst("file://".count))
        let scpLooking = try await Self.scpLookingRepository()
        let marker = TestFiles.temporaryDirectory() + "/ext-ran"
        let local = [fileURL, "file://localhost\(path)", scpLooking, path, "./rel", "../up.git"]
        let credentials = ["https://u:p@git.example.com/x.git", "ssh://u:p@git.example.com/x.git", "https://token@git.example.com/x.git"]
        let helpers = ["ext::sh -c touch% \(marker)", "ext::/bin/true"]
        try await Self.withoutLocalRepositories { server in
            for source in local + credentials + helpers {
                let words =
                    local.contains(source) ? ["repo_url", "--allow-local-repos"]
                    : credentials.contains(source) ? ["repo_url", "credentials", "git_credentials_path"] : ["repo_url"]
                let job = try await server.post("/jobs", json: ["owner": "it", "repo_url": source])
                Self.expectEnvelope(job, code: "invalid_request", mentioning: words, "image job \(source)")
                #expect(!job.errorMessage.contains("u:p") && !job.errorMessage.contains("token@"), "credentials are not echoed")

                let config = "repo: \"\(source)\"\nsteps:\n  - echo never\n"
                let pipeline = try await server.post("/pipelines", json: ["name": "p", "config": config])
                let pipelineWords =
                    local.contains(source) ? ["'repo'", "--allow-local-repos"]
                    : credentials.contains(source) ? ["'repo'", "credentials cannot be written in the URL"] : ["'repo'"]
                Self.expectEnvelope(pipeline, code: "invalid_config", mentioning: pipelineWords, "pipeline \(source)")
            }
            #expect(try await server.get("/jobs").decoded([API.Job].self).isEmpty, "no job was stored")
            #expect(try await server.get("/pipelines").decoded([API.Pipeline].self).isEmpty, "no pipeline was stored")
            #expect(!FileManager.default.fileExists(atPath: marker), "nothing ran")
        }
    }

    @Test func withTheAllowanceLocalRepositoriesAreCloned() async throws {
        let fileURL = try await GitFixture.repository(branches: ["main": "cloned from disk"])
        let scpLooking = try await Self.scpLookingRepository()
        try await TestServer.with(configure: { $0.allowLocalRepositories = true; $0.executor = .shell }) { server in
            for (source, expected) in [(fileURL, "cloned from disk"), (String(fileURL.dropFirst("file://".count)), "cloned from disk")] {
                let jobID = try await server.trigger(try await server.createPipeline(config: "repo: \"\(source)\"\nbranch: main\nsteps:\n  - cat app/message.txt\n"))
                let job = try await server.waitForJob(jobID)
                let steps = try await server.logs(jobID).logs
                #expect(job.status == .success, "\(source): \(steps.first?.output ?? "")")
                #expect(steps.last?.output == "\(expected)\n")
            }
            let jobID = try await server.trigger(try await server.createPipeline(config: "repo: \"\(scpLooking)\"\nbranch: main\nsteps:\n  - cat message.txt\n"))
            #expect(try await server.waitForJob(jobID).status == .success)
            let steps = try await server.logs(jobID).logs
            #expect(steps.last?.output == "from-disk\n", "git read '/…/x@y:repo.git' as the path it is")
        }
    }

    @Test func aPipelineStoredUnderTheAllowanceCannotStartAJobWithoutIt() async throws {
        let fileURL = try await GitFixture.repository(branches: ["main": "x"])
        try await Self.withoutLocalRepositories { server in
            let store = try #require(server.service?.store)
            // As a service that allowed local repositories stored it before a restart without.
            let pipeline = try await store.createPipeline(name: "old", config: "repo: \(fileURL)\nsteps:\n  - echo never\n")
            let reply = try await server.post("/pipelines/\(pipeline.id)/jobs")
            Self.expectEnvelope(reply, code: "invalid_config", mentioning: ["'repo'", "--allow-local-repos"], "trigger")
            #expect(try await server.get("/jobs").decoded([API.Job].self).isEmpty, "no job was created")
        }
    }

    /// Jobs stored under other rules (or by a service that checked less) meet git's transport
    /// list when they run: neither a file:// clone nor an `ext::` command, whatever the job's
    /// env says, and a retry is refused like a new job.
    @Test(arguments: [ServerConfiguration.ExecutorKind.shell, .runner])
    func gitRefusesOtherTransportsWhenTheStepRuns(executor: ServerConfiguration.ExecutorKind) async throws {
        let fileURL = try await GitFixture.repository(branches: ["main": "x"])
        let marker = TestFiles.temporaryDirectory() + "/ext-ran"
        try await Self.withoutLocalRepositories(executor: executor) { server in
            let service = try #require(server.service)
            var jobs: [(id: Int, transport: String)] = []
            for (repo, transport) in [(fileURL, "file"), ("ext::sh -c touch% \(marker)", "ext")] {
                let snapshot = JobSnapshot(repo: repo, branch: "main", config: "stored")
                let job = try await service.store.createJob(
                    NewJob(
                        kind: .pipeline, pipelineID: nil, pipelineName: nil, snapshot: snapshot,
                        steps: [
                            StepPlan(type: .git, name: "clone", content: GitClonePlan(url: repo, ref: "main").description, phase: .build),
                            StepPlan(type: .bash, content: "echo never", phase: .build),
                        ],
                        // A job's env must not widen what the clone may do.
                        environment: [("GIT_ALLOW_PROTOCOL", "file:ext"), ("GIT_CONFIG_COUNT", "1"), ("GIT_CONFIG_KEY_0", "protocol.allow"), ("GIT_CONFIG_VALUE_0", "always")]))
                jobs.append((job.id, transport))
            }
            service.scheduler.jobsCreated()
            for (jobID, transport) in jobs {
                #expect(try await server.waitForJob(jobID).status == .failed)
                let steps = try await server.logs(jobID).logs
                #expect(steps.map(\.status) == [.failed, .skipped])
                let output = steps.first?.output ?? ""
                #expect(output.contains("transport '\(transport)' not allowed"), "\(executor) \(transport): \(output)")

                let before = try await server.get("/jobs").decoded([API.Job].self).count
                let retry = try await server.post("/jobs/\(jobID)/retry")
                Self.expectEnvelope(retry, code: "invalid_config", mentioning: ["'repo'"], "retry of \(transport)")
                #expect(try await server.get("/jobs").decoded([API.Job].self).count == before, "the retry created no job")
            }
            #expect(!FileManager.default.fileExists(atPath: marker), "the ext:: command never ran")
        }
    }

    @Test func rapidflowServeTakesTheAllowanceFromItsFlagOrTheEnvironment() async throws {
        let fileURL = try await GitFixture.repository(branches: ["main": "x"])
        let config = "repo: \(fileURL)\nsteps:\n  - echo hi\n"
        for (arguments, environment, accepted) in [
            ([], [:], false), ([], ["RAPIDFLOW_ALLOW_LOCAL_REPOS": "true"], true), (["--allow-local-repos"], [:], true),
            ([], ["RAPIDFLOW_ALLOW_LOCAL_REPOS": "false"], false),
        ] as [([String], [String: String], Bool)] {
            let service = try await ServiceProcess.start(
                dataDirectory: TestFiles.temporaryDirectory(), arguments: arguments, environment: environment, allowLocalRepos: false)
            defer { service.kill(signal: SIGKILL) }
            let reply = try await service.client.post("/pipelines", json: ["name": "p", "config": config])
            #expect(reply.status == (accepted ? 200 : 400), "\(arguments) \(environment): \(reply.text)")
        }
        await #expect(throws: TestFailure.self, "a value that is no boolean stops startup") {
            _ = try await ServiceProcess.start(
                dataDirectory: TestFiles.temporaryDirectory(), environment: ["RAPIDFLOW_ALLOW_LOCAL_REPOS": "maybe"], allowLocalRepos: false)
        }
    }

    @Test func theRunnerClonesLocalRepositoriesWhenTheServiceAllowsThem() async throws {
        let fileURL = try await GitFixture.repository(branches: ["main": "through the runner"])
        try await TestServer.with(configure: {
            $0.allowLocalRepositories = true
            $0.executor = .runner
            $0.runnerBinary = ServiceProcess.binary
        }) { server in
            let jobID = try await server.trigger(try await server.createPipeline(config: "repo: \(fileURL)\nbranch: main\nsteps:\n  - cat app/message.txt\n"))
            let job = try await server.waitForJob(jobID)
            let steps = try await server.logs(jobID).logs
            #expect(job.status == .success, "\(steps.first?.output ?? "")")
            #expect(steps.last?.output == "through the runner\n")
        }
    }
}
