import AsyncHTTPClient
import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// Image jobs against the real Docker engine, a real registry with htpasswd auth, and git
/// repositories over file and ssh URLs. `scripts/test-services.sh` starts all of them.
@Suite("Image jobs on Docker")
struct ImageJobTests {
    static let environment = ProcessInfo.processInfo.environment
    static let registry = environment["RAPIDFLOW_TEST_REGISTRY"] ?? "127.0.0.1:5055"
    static let registryUser = environment["RAPIDFLOW_TEST_REGISTRY_USER"] ?? "rapidflow"
    static let registryPassword = environment["RAPIDFLOW_TEST_REGISTRY_PASSWORD"] ?? "registry-test-pass-4711"

    /// A repository whose image prints which ref it was built from.
    struct Repository {
        let url: String
        let sha: String
        let root: String
    }

    static func repository(dockerfile: String? = nil) async throws -> Repository {
        let root = TestFiles.temporaryDirectory()
        let file = dockerfile ?? """
            FROM rapidflow-test/busybox
            COPY message.txt /message.txt
            RUN echo built > /built.txt
            CMD ["sh", "-c", "echo entry point says $(cat /message.txt)"]
            """
        try await TestFiles.shell("""
            cd \(root) && git init -q --bare --initial-branch=main repo.git && git init -q work && cd work
            git config user.email t@example.com && git config user.name test
            cat > Dockerfile <<'DOCKERFILE'
            \(file)
            DOCKERFILE
            echo from-main > message.txt && git add . && git commit -qm main && git branch -M main
            git tag v1.0 && echo from-tag-commit > message.txt && git commit -qam second
            git push -q ../repo.git main v1.0
            """)
        let sha = try await TestFiles.shell("git -C \(root)/work rev-parse HEAD~1").trimmingCharacters(in: .whitespacesAndNewlines)
        return Repository(url: "file://\(root)/repo.git", sha: sha, root: root)
    }

    /// The registry's tag list (the Docker registry API); its `errors` answer for an unknown
    /// repository has no tags.
    struct TagList: Decodable {
        var tags: [String]?
    }

    static func tags(_ repository: String) async throws -> [String] {
        let text = try await TestFiles.shell("curl -s -u \(registryUser):\(registryPassword) http://\(registry)/v2/\(repository)/tags/list")
        return (try JSONDecoder().decode(TagList.self, from: Data(text.utf8)).tags ?? []).sorted()
    }

    /// A server with a secrets directory holding the registry login.
    static func withServer(_ body: (TestServer, String) async throws -> Void) async throws {
        let secrets = TestFiles.temporaryDirectory()
        try #"{"username": "\#(registryUser)", "password": "\#(registryPassword)"}"#.write(toFile: "\(secrets)/registry.json", atomically: true, encoding: .utf8)
        try await TestServer.with(configure: { $0.secretsDirectory = secrets; $0.killGracePeriod = .seconds(2) }) { server in
            try await body(server, secrets)
        }
    }

    static func submit(_ server: TestServer, _ request: API.ImageJobRequest) async throws -> Int {
        let reply = try await server.request(.POST, "/jobs", encoding: request)
        try #require(reply.status == 200, "submit: \(reply.text)")
        let id = try reply.decoded(API.SubmittedJob.self).jobID
        #expect(reply.header("Location") == "/jobs/\(id)")
        return try #require(Int(id))
    }

    /// The service instance id that labels a server's containers and images.
    static func instance(_ server: TestServer) throws -> String {
        try String(contentsOfFile: "\(server.dataDirectory)/instance-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func steps(_ server: TestServer, _ jobID: Int) async throws -> [API.StepLog] {
        try await server.logs(jobID).logs
    }

    @Test(arguments: ["main", "v1.0", "sha"])
    func aJobAtARefBuildsTestsAndPushesTwoTags(ref: String) async throws {
        try await Self.withServer { server, _ in
            let repository = try await Self.repository()
            let gitRef = ref == "sha" ? repository.sha : ref
            let path = "it/\(ref == "sha" ? "bysha" : ref.replacingOccurrences(of: ".", with: ""))-\(UUID().uuidString.prefix(6).lowercased())"
            let jobID = try await Self.submit(server, API.ImageJobRequest(
                owner: "it", repoURL: repository.url, gitRef: gitRef, dockerfilePath: "Dockerfile",
                imageTags: ["1.0", "latest"], registryURL: "http://\(Self.registry)/\(path)",
                registryCredentialsPath: "registry.json",
                testCommands: ["cat /built.txt", "half=registry-test-pass; echo password is ${half}-4711"],
                testEntryPoint: true))
            let job = try await server.waitForJob(jobID, timeout: .seconds(120))
            let steps = try await Self.steps(server, jobID)
            #expect(job.status == .success, "\(steps.map { ($0.type, $0.output) })")
            #expect(job.kind == .image)
            #expect(steps.map(\.type) == [.git, .dockerBuild, .dockerRun, .dockerRun, .dockerRun, .dockerPush, .dockerPush])
            #expect(steps.map(\.phase) == [.build, .build, .test, .test, .test, .publish, .publish])
            #expect(steps[2].output == "built\n")
            #expect(steps[3].output == "password is ********\n", "credential values are masked")
            let expectedMessage = ref == "main" ? "from-tag-commit" : "from-main"
            #expect(steps[4].output == "entry point says \(expectedMessage)\n")
            #expect(steps[5].output.contains("1.0: digest: sha256:"))
            #expect(steps[6].output.contains("latest: digest: sha256:"))
            #expect(try await Self.tags(path) == ["1.0", "latest"])
            #expect(job.containerID != nil, "the container of the last test is recorded")

            let status = try await server.get("/jobs/\(jobID)/status").decoded(API.JobStatusReport.self)
            let timestamps = status.phaseTimestamps
            let ordered = [
                timestamps.jobStart, timestamps.buildStart, timestamps.buildEnd, timestamps.testStart, timestamps.testEnd,
                timestamps.publishStart, timestamps.publishEnd, timestamps.jobEnd,
            ].compactMap { $0 }
            #expect(ordered.count == 8)
            #expect(ordered == ordered.sorted())
            for phase in Phase.allCases {
                #expect((status.metrics[phase] ?? 0) > 0)
            }
            let logs = try await server.logs(jobID)
            #expect(logs.publish.contains("digest: sha256:"))
            #expect(!logs.test.contains(Self.registryPassword))
            #expect(!(try await server.get("/jobs/\(jobID)/details").text.contains(Self.registryPassword)))
        }
    }

    /// `--executor runner`: the clone, build, test and push run in the job's `rapidflow runner`
    /// against the engine of the runner's machine, with the credentials that reached it over
    /// its own channel; the job ends as it does on the local executor, and the runner's copy of
    /// the credentials is gone with it.
    @Test func anImageJobRunsThroughRapidflowRunnerAsItDoesLocally() async throws {
        let repository = try await Self.repository()
        let secrets = TestFiles.temporaryDirectory()
        try #"{"username": "\#(Self.registryUser)", "password": "\#(Self.registryPassword)"}"#.write(
            toFile: "\(secrets)/registry.json", atomically: true, encoding: .utf8)
        struct Outcome {
            var job: API.Job
            var steps: [API.StepLog]
            var status: API.JobStatusReport
            var path: String
            var answers: String
        }
        func run(throughRunner: Bool) async throws -> Outcome {
            try await TestServer.with(configure: {
                $0.secretsDirectory = secrets
                $0.killGracePeriod = .seconds(2)
                if throughRunner {
                    $0.executor = .runner
                    $0.runnerBinary = ServiceProcess.binary
                }
            }) { server in
                let path = "it/\(throughRunner ? "runner" : "local")-\(UUID().uuidString.prefix(6).lowercased())"
                let jobID = try await Self.submit(server, API.ImageJobRequest(
                    owner: "it", repoURL: repository.url, gitRef: "v1.0", dockerfilePath: "Dockerfile",
                    imageTags: ["1.0", "latest"], registryURL: "http://\(Self.registry)/\(path)", registryCredentialsPath: "registry.json",
                    testCommands: ["cat /built.txt", "half=registry-test-pass; echo password is ${half}-4711"], testEntryPoint: true))
                let job = try await server.waitForJob(jobID, timeout: .seconds(120))
                if throughRunner {
                    #expect(
                        FileManager.default.fileExists(atPath: "\(server.dataDirectory)/runner-workspaces/job-\(jobID)/Dockerfile"),
                        "the runner cloned the repository into its own workspace")
                    try await eventually("the runner's copy of the credentials is removed") {
                        !FileManager.default.fileExists(atPath: "\(server.dataDirectory)/runner-workspaces/credentials-\(jobID)")
                    }
                }
                let answers = try await server.get("/jobs/\(jobID)/details").text + server.get("/jobs/\(jobID)/logs").text
                return Outcome(
                    job: job, steps: try await Self.steps(server, jobID),
                    status: try await server.get("/jobs/\(jobID)/status").decoded(API.JobStatusReport.self), path: path, answers: answers)
            }
        }
        let local = try await run(throughRunner: false)
        let runner = try await run(throughRunner: true)
        #expect(local.job.status == .success, "\(local.steps.map { ($0.type, $0.output) })")
        #expect(runner.job.status == .success, "\(runner.steps.map { ($0.type, $0.output) })")
        #expect(runner.steps.map(\.type) == local.steps.map(\.type))
        #expect(runner.steps.map(\.phase) == local.steps.map(\.phase))
        #expect(runner.steps.map(\.status) == local.steps.map(\.status))
        #expect(runner.steps.map(\.exitCode) == local.steps.map(\.exitCode))
        // The test steps print the same; the masked password stays masked.
        #expect(runner.steps[2...4].map(\.output) == local.steps[2...4].map(\.output))
        #expect(runner.steps[3].output == "password is ********\n")
        for outcome in [local, runner] {
            #expect(outcome.steps[5].output.contains("1.0: digest: sha256:") && outcome.steps[6].output.contains("latest: digest: sha256:"))
            #expect(try await Self.tags(outcome.path) == ["1.0", "latest"])
            let timestamps = outcome.status.phaseTimestamps
            let ordered = [
                timestamps.jobStart, timestamps.buildStart, timestamps.buildEnd, timestamps.testStart, timestamps.testEnd,
                timestamps.publishStart, timestamps.publishEnd, timestamps.jobEnd,
            ].compactMap { $0 }
            #expect(ordered.count == 8 && ordered == ordered.sorted())
            #expect(!outcome.answers.contains(Self.registryPassword))
        }
    }

    /// The registry login from a stored secret (`registry_credentials_secret`) instead of a file
    /// in `--secrets-dir` (the service here has none): looked up in the owner's scope, then the
    /// global one; an unknown name is refused before anything is stored; the push authenticates
    /// with it, and no answer about the job shows the password.
    @Test func aStoredSecretHoldsTheRegistryCredentials() async throws {
        try await TestServer.with(configure: { $0.killGracePeriod = .seconds(2) }) { server in
            let repository = try await Self.repository()
            let path = "it/from-secret-\(UUID().uuidString.prefix(6).lowercased())"
            let login = #"{"username": "\#(Self.registryUser)", "password": "\#(Self.registryPassword)"}"#
            let wrong = #"{"username": "\#(Self.registryUser)", "password": "not-the-password-\#(UUID().uuidString.prefix(6))"}"#
            // The owner's value wins over the global one of the same name.
            for (value, scope) in [(wrong, API.SecretScope.global), (login, .owner("it")), (login, .owner("someone-else"))] {
                let name = scope == .owner("someone-else") ? "OTHERS_LOGIN" : "REGISTRY_LOGIN"
                let reply = try await server.request(.PUT, "/secrets/\(name)", encoding: API.SecretWrite(value: value, scope: scope))
                try #require(reply.status == 200, "\(reply.text)")
            }
            func request(_ secret: String?, path credentialsPath: String? = nil, testCommands: [String]? = nil) -> API.ImageJobRequest {
                API.ImageJobRequest(
                    owner: "it", repoURL: repository.url, imageTags: ["1.0"], registryURL: "http://\(Self.registry)/\(path)",
                    registryCredentialsPath: credentialsPath, registryCredentialsSecret: secret, testCommands: testCommands)
            }

            // Refused before anything is stored: an unknown name, another owner's secret, a bad
            // name, a path as well.
            let before = try await server.counts()
            for (secret, code, mentions) in [
                ("NO_SUCH_LOGIN", "unknown_secret", "NO_SUCH_LOGIN"), ("OTHERS_LOGIN", "unknown_secret", "owner 'it'"),
                ("lower", "invalid_request", "registry_credentials_secret"),
            ] {
                let reply = try await server.request(.POST, "/jobs", encoding: request(secret))
                #expect(reply.status == 400 && reply.errorCode == code, "\(secret): \(reply.text)")
                #expect(reply.errorMessage.contains(mentions), "\(reply.errorMessage)")
            }
            let both = try await server.request(.POST, "/jobs", encoding: request("REGISTRY_LOGIN", path: "registry.json"))
            #expect(both.status == 400 && both.errorMessage.contains("not both"), "\(both.text)")
            #expect(try await server.counts() == before, "nothing was stored")

            // A test prints the password (built at run time, so the request does not hold it).
            let half = Self.registryPassword.count / 2
            let command = "a='\(Self.registryPassword.prefix(half))'; b='\(Self.registryPassword.dropFirst(half))'; echo \"password is $a$b\""
            let jobID = try await Self.submit(server, request("REGISTRY_LOGIN", testCommands: [command]))
            let job = try await server.waitForJob(jobID, timeout: .seconds(120))
            let steps = try await Self.steps(server, jobID)
            #expect(job.status == .success, "\(steps.map { ($0.type, $0.output) })")
            #expect(steps.map(\.type) == [.git, .dockerBuild, .dockerRun, .dockerPush])
            #expect(steps[2].output == "password is ********\n")
            #expect(steps[3].output.contains("1.0: digest: sha256:"))
            #expect(try await Self.tags(path) == ["1.0"])
            let details = try await server.get("/jobs/\(jobID)/details").decoded(API.JobDetails.self)
            #expect(details.secretsUsed == ["REGISTRY_LOGIN"])
            let used = try await server.get("/secrets/REGISTRY_LOGIN?owner=it").decoded(API.Secret.self)
            #expect(used.lastUsedJobID == jobID)
            #expect(try await server.get("/secrets/REGISTRY_LOGIN").decoded(API.Secret.self).lastUsedJobID == nil, "the global one was not used")

            // Every GET route of the document with this job's ids, the streams and the metrics.
            let stepID = steps[2].stepID
            let document = try #require(try JSONSerialization.jsonObject(with: try await server.get("/openapi.json").body) as? [String: Any])
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            var answers: [(String, String)] = []
            for (route, item) in paths where item["get"] != nil && !route.hasPrefix("/pipelines/") {
                let concrete = route.replacingOccurrences(of: "{id}", with: "\(route.hasPrefix("/steps") ? stepID : jobID)")
                    .replacingOccurrences(of: "{step}", with: "\(stepID)").replacingOccurrences(of: "{name}", with: "REGISTRY_LOGIN")
                answers.append((concrete, try await server.get(concrete).text))
            }
            answers.append(("owner's secret", try await server.get("/secrets/REGISTRY_LOGIN?owner=it").text))
            answers.append(("stream", try await server.get("/jobs/\(jobID)/logs/stream").text))
            answers.append(("metrics", try await server.get("/metrics").text))
            let auth = Data("\(Self.registryUser):\(Self.registryPassword)".utf8).base64EncodedString()
            for (route, text) in answers {
                #expect(!text.contains(Self.registryPassword), "\(route) shows the registry password")
                #expect(!text.contains(auth), "\(route) shows the registry login in base64")
            }
            #expect(answers.contains { $0.0 == "/jobs/\(jobID)/details" } && answers.count > 10)
        }
    }

    @Test func aFailingTestFailsTheJobAndLeavesTheRegistryUntouched() async throws {
        try await Self.withServer { server, _ in
            let repository = try await Self.repository()
            let path = "it/failing-\(UUID().uuidString.prefix(6).lowercased())"
            let jobID = try await Self.submit(server, API.ImageJobRequest(
                owner: "it", repoURL: repository.url, gitRef: "main", imageTags: ["1.0"],
                registryURL: "\(Self.registry)/\(path)", registryCredentialsPath: "registry.json",
                testCommands: ["echo checking; exit 3", "echo never"]))
            let job = try await server.waitForJob(jobID, timeout: .seconds(120))
            #expect(job.status == .failed)
            let steps = try await Self.steps(server, jobID)
            #expect(steps.map(\.status) == [.success, .success, .failed, .skipped, .skipped])
            #expect(steps[2].exitCode == 3)
            #expect(try await Self.tags(path).isEmpty)
            let status = try await server.get("/jobs/\(jobID)/status").decoded(API.JobStatusReport.self)
            #expect(status.metrics.publishDurationSeconds == nil)
        }
    }

    @Test func killMidBuildAndMidTestLeavesNoContainerRunning() async throws {
        try await Self.withServer { server, _ in
            let token = "rfbuild\(UUID().uuidString.prefix(8).lowercased())"
            let slow = try await Self.repository(dockerfile: "FROM rapidflow-test/busybox\nRUN echo \(token) && sleep 120\n")
            let building = try await Self.submit(server, API.ImageJobRequest(owner: "it", repoURL: slow.url, gitRef: "main"))
            try await server.waitForOutput(building, containing: token, timeout: .seconds(60))
            let reply = try await server.post("/jobs/\(building)/kill")
            #expect(reply.status == 200)
            #expect(try reply.decoded(API.KillResult.self).success == true)
            #expect(try await server.job(building).status == .cancelled)
            // The builder removes its container when the build is cancelled; allow it a bounded moment.
            var running = ""
            try await eventually(timeout: .seconds(15), "the build's container of job \(building) stops") {
                running = try await TestFiles.shell("docker ps --no-trunc --format '{{.Command}}'")
                return !running.contains(token)
            }
            #expect(!running.contains(token), "the build's container was stopped")

            let repository = try await Self.repository()
            let testing = try await Self.submit(
                server, API.ImageJobRequest(owner: "it", repoURL: repository.url, gitRef: "main", testCommands: ["echo testing; sleep 120"]))
            try await server.waitForOutput(testing, containing: "testing", timeout: .seconds(60))
            #expect(try await server.post("/jobs/\(testing)/kill").status == 200)
            #expect(try await server.job(testing).status == .cancelled)
            let labelled = try await TestFiles.shell("docker ps -q --filter label=rapidflow.job=\(testing) --filter label=rapidflow.instance=\(try Self.instance(server))")
            #expect(labelled.isEmpty, "the test container was stopped")
        }
    }

    @Test func cleanupRemovesTheWorkspaceContainersAndImages() async throws {
        try await Self.withServer { server, _ in
            let repository = try await Self.repository()
            let jobID = try await Self.submit(server, API.ImageJobRequest(owner: "it", repoURL: repository.url, testCommands: ["true"]))
            #expect(try await server.waitForJob(jobID, timeout: .seconds(120)).status == .success)
            let labels = "--filter label=rapidflow.job=\(jobID) --filter label=rapidflow.instance=\(try Self.instance(server))"
            #expect(!(try await TestFiles.shell("docker images -q \(labels)")).isEmpty)
            let reply = try await server.post("/jobs/\(jobID)/cleanup")
            #expect(reply.status == 200)
            #expect(try reply.decoded(API.CleanupResult.self).success == true)
            // What stays is the layer cache of the owner's repository, under its own tag only.
            let left = try await TestFiles.shell("docker images --format '{{.Repository}}:{{.Tag}}' \(labels)")
            #expect(left.split(separator: "\n").allSatisfy { $0.hasPrefix("rapidflow-layers/") }, "\(left)")
            #expect(try await TestFiles.shell("docker ps -aq \(labels)").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/workspaces/job-\(jobID)"))
        }
    }

    /// The newest build of an owner's repository keeps its layers through cleanup, so the next
    /// build of that repository reuses them; another owner's build does not get them.
    @Test func theNextBuildOfTheSameRepositoryReusesTheLayersCleanupKept() async throws {
        try await Self.withServer { server, _ in
            // Its own first instruction, so no other test's image lends it layers.
            let repository = try await Self.repository(
                dockerfile: "FROM rapidflow-test/busybox\nRUN echo layers-\(UUID().uuidString.prefix(8)) > /id.txt\nCOPY message.txt /message.txt\nRUN echo built > /built.txt")
            let owner = "layers-\(UUID().uuidString.prefix(6).lowercased())"
            let first = try await Self.submit(server, API.ImageJobRequest(owner: owner, repoURL: repository.url, testCommands: ["true"]))
            #expect(try await server.waitForJob(first, timeout: .seconds(120)).status == .success)
            let firstBuild = try await Self.steps(server, first).first { $0.type == .dockerBuild }?.output ?? ""
            #expect(!firstBuild.contains("Using cache"), "a new repository builds from scratch: \(firstBuild)")
            #expect(try await server.post("/jobs/\(first)/cleanup").status == 200)

            let second = try await Self.submit(server, API.ImageJobRequest(owner: owner, repoURL: repository.url, testCommands: ["cat /built.txt"]))
            #expect(try await server.waitForJob(second, timeout: .seconds(120)).status == .success)
            let secondBuild = try await Self.steps(server, second).first { $0.type == .dockerBuild }?.output ?? ""
            #expect(secondBuild.components(separatedBy: "Using cache").count - 1 >= 2, "COPY and RUN come from the kept layers: \(secondBuild)")

            let stranger = try await Self.submit(server, API.ImageJobRequest(owner: owner + "-b", repoURL: repository.url, testCommands: ["true"]))
            #expect(try await server.waitForJob(stranger, timeout: .seconds(120)).status == .success)
            let tags = try await TestFiles.shell("docker images --format '{{.Repository}}' | grep '^rapidflow-layers/' | sort -u")
            #expect(tags.split(separator: "\n").count >= 2, "one layer cache per owner and repository: \(tags)")
        }
    }

    /// `cache_from`: images pulled from the registry before the build lend it their layers.
    @Test func cacheFromPullsAnImageWhoseLayersTheBuildReuses() async throws {
        try await Self.withServer { server, _ in
            let dockerfile = """
                FROM rapidflow-test/busybox
                RUN echo cache-from-\(UUID().uuidString.prefix(8)) > /marker.txt
                COPY message.txt /message.txt
                """
            let repository = try await Self.repository(dockerfile: dockerfile)
            let path = "it/cachefrom-\(UUID().uuidString.prefix(6).lowercased())"
            let pushing = try await Self.submit(server, API.ImageJobRequest(
                owner: "pusher", repoURL: repository.url, imageTags: ["1"], registryURL: "http://\(Self.registry)/\(path)",
                registryCredentialsPath: "registry.json"))
            #expect(try await server.waitForJob(pushing, timeout: .seconds(120)).status == .success)
            #expect(try await server.post("/jobs/\(pushing)/cleanup").status == 200)
            // No local layers of that build remain (its image goes, with the layer tag cleanup
            // kept): the pushed image is the only source.
            let labels = "--filter label=rapidflow.job=\(pushing) --filter label=rapidflow.instance=\(try Self.instance(server))"
            _ = try await TestFiles.shell("docker images -q \(labels) | sort -u | xargs -r docker rmi -f >/dev/null")
            #expect(try await TestFiles.shell("docker images -q \(labels)").isEmpty)
            let image = "\(Self.registry)/\(path):1"
            let pulling = try await Self.submit(server, API.ImageJobRequest(
                owner: "puller", repoURL: repository.url, registryURL: "http://\(Self.registry)/\(path)",
                registryCredentialsPath: "registry.json", cacheFrom: [image]))
            #expect(try await server.waitForJob(pulling, timeout: .seconds(120)).status == .success)
            let build = try await Self.steps(server, pulling).first { $0.type == .dockerBuild }?.output ?? ""
            #expect(build.contains("Pulling \(image) for its layers (cache_from)"), "\(build)")
            #expect(build.contains("Using cache"), "the RUN step's layer came from the pulled image: \(build)")
        }
    }

    @Test func aPrivateRepositoryIsClonedOverSSHWithAKey() async throws {
        let key = Self.environment["RAPIDFLOW_TEST_SSH_KEY"] ?? "/tmp/rapidflow-test-services/ssh/id_ed25519"
        let otherKey = Self.environment["RAPIDFLOW_TEST_SSH_OTHER_KEY"] ?? "/tmp/rapidflow-test-services/ssh/other_key"
        let port = Self.environment["RAPIDFLOW_TEST_SSH_PORT"] ?? "2222"
        try await Self.withServer { server, secrets in
            try FileManager.default.copyItem(atPath: key, toPath: "\(secrets)/deploy_key")
            try FileManager.default.copyItem(atPath: otherKey, toPath: "\(secrets)/wrong_key")
            let repository = try await Self.repository()
            let url = "ssh://root@127.0.0.1:\(port)\(repository.root)/repo.git"
            let good = try await Self.submit(
                server, API.ImageJobRequest(owner: "it", repoURL: url, gitCredentialsPath: "deploy_key", testEntryPoint: true))
            let job = try await server.waitForJob(good, timeout: .seconds(120))
            let steps = try await Self.steps(server, good)
            #expect(job.status == .success, "\(steps.first?.output ?? "")")
            #expect(steps.last?.output == "entry point says from-tag-commit\n")
            let keyBody = try String(contentsOfFile: key, encoding: .utf8).split(separator: "\n")[1]
            #expect(!(try await server.get("/jobs/\(good)/details").text.contains(keyBody)))
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(server.dataDirectory)/workspaces/job-\(good)").contains(".git"))
            let gitConfig = try String(contentsOfFile: "\(server.dataDirectory)/workspaces/job-\(good)/.git/config", encoding: .utf8)
            #expect(!gitConfig.contains("deploy_key") && !gitConfig.contains("ssh-key"), "no credential in the workspace's git config")

            let wrong = try await Self.submit(server, API.ImageJobRequest(owner: "it", repoURL: url, gitCredentialsPath: "wrong_key"))
            #expect(try await server.waitForJob(wrong, timeout: .seconds(120)).status == .failed)
            let failed = try await Self.steps(server, wrong)
            #expect(failed.map(\.status) == [.failed, .skipped])
            #expect(failed[0].output.lowercased().contains("permission denied"))
        }
    }

    @Test func faultsWhileRunningBecomeFailedJobsWithAClearMessage() async throws {
        try await Self.withServer { server, secrets in
            let repository = try await Self.repository()
            try #"{"username": "rapidflow", "password": "wrong-password-123"}"#.write(toFile: "\(secrets)/bad.json", atomically: true, encoding: .utf8)
            let failingBuild = try await Self.repository(dockerfile: "FROM rapidflow-test/busybox\nRUN exit 7\n")
            let cases: [(body: API.ImageJobRequest, failing: StepType, words: [String])] = [
                (API.ImageJobRequest(owner: "it", repoURL: "file:///nonexistent/repo.git"), .git, ["does not appear", "repo.git"]),
                (API.ImageJobRequest(owner: "it", repoURL: repository.url, gitRef: "no-such-branch"), .git, ["no-such-branch"]),
                (API.ImageJobRequest(owner: "it", repoURL: repository.url, dockerfilePath: "missing/Dockerfile"), .dockerBuild, ["no Dockerfile"]),
                (API.ImageJobRequest(owner: "it", repoURL: failingBuild.url), .dockerBuild, ["returned a non-zero code: 7"]),
                (API.ImageJobRequest(
                    owner: "it", repoURL: repository.url, imageTags: ["x"], registryURL: "\(Self.registry)/it/denied",
                    registryCredentialsPath: "bad.json"), .dockerPush, ["unauthorized", "authentication required"]),
                (API.ImageJobRequest(owner: "it", repoURL: repository.url, imageTags: ["x"], registryURL: "127.0.0.1:5999/it/down"),
                 .dockerPush, ["connection refused"]),
            ]
            var jobs: [Int] = []
            for testCase in cases { jobs.append(try await Self.submit(server, testCase.body)) }
            for (jobID, testCase) in zip(jobs, cases) {
                let job = try await server.waitForJob(jobID, timeout: .seconds(180))
                #expect(job.status == .failed)
                let steps = try await Self.steps(server, jobID)
                let failing = steps.first { $0.status == .failed }
                #expect(failing?.type == testCase.failing)
                let output = (failing?.output ?? "").lowercased()
                #expect(testCase.words.contains { output.contains($0.lowercased()) }, "\(testCase.failing): \(output)")
                #expect(!output.contains("wrong-password-123"))
            }
        }
    }

    @Test func badImageJobRequestsAreRefusedBeforeAnythingRuns() async throws {
        try await Self.withServer { server, secrets in
            let outside = TestFiles.temporaryDirectory()
            try "x".write(toFile: "\(outside)/creds.json", atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: "\(secrets)/escape.json", withDestinationPath: "\(outside)/creds.json")
            // Bodies as JSON objects: several hold a wrong type, which no request type can.
            let base: [String: Any] = ["owner": "it", "repo_url": "file:///tmp/repo.git"]
            func with(_ changes: [String: Any]) -> [String: Any] { base.merging(changes) { $1 } }
            let cases: [([String: Any], String)] = [
                (with(["git_ref": "-upload-pack=evil"]), "git_ref"),
                (with(["git_ref": "bad..ref"]), "git_ref"),
                (with(["git_ref": "has space"]), "git_ref"),
                (with(["image_tags": ["-x"], "registry_url": "r.example/a"]), "-x"),
                (with(["image_tags": ["a:b"], "registry_url": "r.example/a"]), "a:b"),
                (with(["dockerfile_path": "../Dockerfile"]), "dockerfile_path"),
                (with(["dockerfile_path": "/etc/Dockerfile"]), "dockerfile_path"),
                (with(["git_credentials_path": "/etc/passwd"]), "git_credentials_path"),
                (with(["git_credentials_path": "../../etc/passwd"]), "git_credentials_path"),
                (with(["registry_credentials_path": "escape.json", "image_tags": ["1"], "registry_url": "r.example/a"]), "registry_credentials_path"),
                (with(["registry_url": "not a url"]), "registry_url"),
                (with(["registry_url": "ftp://r.example/a"]), "registry_url"),
                (with(["registry_url": "r.example/UPPER"]), "registry_url"),
                (with(["image_tags": ["1.0"]]), "registry_url"),
                (["repo_url": "file:///tmp/repo.git"], "owner"),
                (["owner": "it"], "repo_url"),
                (with(["repo_url": "-oProxyCommand=evil"]), "repo_url"),
                (with(["repo_url": "ftp://example.com/x"]), "repo_url"),
                (with(["test_commands": "make test"]), "test_commands"),
                (with(["test_commands": ["ok", 5]]), "test_commands[1]"),
                (with(["test_entry_point": "yes"]), "test_entry_point"),
                (with(["image_tags": "latest"]), "image_tags"),
                (with(["cache_from": "registry.example/app:1"]), "cache_from"),
                (with(["cache_from": ["-oops"]]), "cache_from[0]"),
                (with(["cache_from": ["https://registry.example/app:1"]]), "cache_from[0]"),
                (with(["cache_from": ["Registry.example/UPPER:1"]]), "cache_from[0]"),
                (with(["cache_from": (0..<11).map { "r.example/app:\($0)" }]), "at most 10"),
                (with(["owner": 5]), "owner"),
                (with(["colour": "red"]), "colour"),
            ]
            for (body, word) in cases {
                let before = try await server.counts()
                let reply = try await server.post("/jobs", json: body)
                #expect(reply.status == 400, "\(body): \(reply.text)")
                #expect(reply.errorMessage.contains(word), "'\(reply.errorMessage)' should name \(word)")
                #expect(try await server.counts() == before, "nothing was stored")
            }
            let malformed = try await server.request(.POST, "/jobs", body: "{not json")
            #expect(malformed.status == 400)
            #expect(malformed.errorCode == "invalid_json")
        }
    }
}
