import Foundation
import RapidFlowAPI
import RapidFlowRunner
import RapidFlowServer
import RapidFlowTestSupport
import Synchronization
import Testing

/// `rapidflow serve --executor nomad` end to end against the fake agent, which plays a Nomad
/// node with the raw_exec driver: it starts the registered task's command (a real
/// `rapidflow runner`) with the task's environment, and reports the allocation from that
/// process (running, then complete with its exit code, or stopped after a DELETE).
///
/// The job Nomad is sent is Nomad's JSON, read here as JSONSerialization objects; the
/// service's own answers are read through the API types.
@Suite("Service on Nomad", .serialized)
struct NomadServiceTests {
    /// The node's side: the runner process per Nomad job and how it ended.
    final class Node: Sendable {
        struct Run {
            var process: Process
            var stopped = false
        }
        let runs = Mutex<[String: Run]>([:])

        func start(_ request: FakeNomadAgent.Request) throws -> String {
            let job = try #require(try request.jsonObject()["Job"] as? [String: Any])
            let id = try #require(job["ID"] as? String)
            let task = try #require(((job["TaskGroups"] as? [[String: Any]])?.first?["Tasks"] as? [[String: Any]])?.first)
            let config = try #require(task["Config"] as? [String: Any])
            // Nomad renders the task's templates into its directories and interpolates ${VAR} in
            // the arguments from the task's environment, which names those directories.
            let secrets = TestFiles.temporaryDirectory()
            for template in task["Templates"] as? [[String: Any]] ?? [] {
                let destination = try #require(template["DestPath"] as? String)
                let path = secrets + "/" + destination.replacingOccurrences(of: "secrets/", with: "")
                FileManager.default.createFile(atPath: path, contents: Data((template["EmbeddedTmpl"] as? String ?? "").utf8), attributes: [.posixPermissions: 0o400])
            }
            let environment = (task["Env"] as? [String: String] ?? [:]).merging(["NOMAD_SECRETS_DIR": secrets]) { $1 }
            let arguments = (config["args"] as? [String] ?? []).map { argument in
                environment.reduce(argument) { $0.replacingOccurrences(of: "${\($1.key)}", with: $1.value) }
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try #require(config["command"] as? String))
            process.arguments = arguments + ["--workspace", NSTemporaryDirectory() + "rapidflow-nomad-test", "--executor", "shell"]
            process.environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"].merging(environment) { $1 }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try ProcessSpawning.run(process)
            runs.withLock { $0[id] = Run(process: process) }
            return id
        }

        func stop(_ id: String) {
            runs.withLock { runs in
                guard var run = runs[id] else { return }
                run.stopped = true
                if run.process.isRunning { kill(run.process.processIdentifier, SIGTERM) }
                runs[id] = run
            }
        }

        /// The allocation list now, and its index (10 while running, 20 once ended).
        func allocations(_ id: String) throws -> (Data, UInt64) {
            guard let run = runs.withLock({ $0[id] }) else { return (Data("[]".utf8), 1) }
            if run.process.isRunning { return (try NomadFixtures.allocations(), 10) }
            if run.stopped { return (try NomadFixtures.allocations(.stopped), 20) }
            return (try NomadFixtures.allocations(.complete(exitCode: Int(run.process.terminationStatus))), 20)
        }

        func endAll() {
            runs.withLock { $0.values.forEach { if $0.process.isRunning { kill($0.process.processIdentifier, SIGKILL) } } }
        }
    }

    /// Scripts the agent as a node that runs what it is given.
    static func play(_ node: Node, on agent: FakeNomadAgent, evaluation: Data, places: Bool = true) throws {
        let registered = try JSONSerialization.jsonObject(with: FakeNomadAgent.fixture("register-job.response.json")) as? [String: Any] ?? [:]
        let evaluationID = try #require(try JSONSerialization.jsonObject(with: evaluation) as? [String: Any])["ID"] as? String ?? "eval"
        let registerReply = try JSONSerialization.data(withJSONObject: registered.merging(["EvalID": evaluationID]) { $1 })
        agent.on("GET", "/v1/evaluation/\(evaluationID)", .json(evaluation, index: 30))
        agent.on("GET", "/v1/agent/health", try .fixture("agent-health.response.json"))
        agent.on("GET", "/v1/status/leader", try .fixture("status-leader.response.json"))
        agent.on("PUT", "/v1/system/gc", .answer(status: 200, index: nil, contentType: "text/plain", body: try FakeNomadAgent.fixture("system-gc.response.txt")))
        agent.onUnscripted { request in
            let parts = request.path.split(separator: "/").map(String.init)
            switch (request.method, parts.count) {
            case ("POST", 2) where request.path == "/v1/jobs":
                if places { guard (try? node.start(request)) != nil else { return (.dropConnection, nil) } }
                return (.json(registerReply, index: 5), nil)
            case ("GET", 4) where parts[1] == "job" && parts[3] == "allocations":
                guard let (body, index) = try? node.allocations(parts[2]) else { return nil }
                // A blocking query at the current index waits a little, as Nomad's would.
                let waits = request.query["index"].flatMap(UInt64.init).map { $0 >= index } ?? false
                return (.json(body, index: index), waits ? .milliseconds(100) : nil)
            case ("DELETE", 3) where parts[1] == "job":
                node.stop(parts[2])
                guard let reply = try? FakeNomadAgent.Reply.fixture("stop-job.response.json") else { return nil }
                return (reply, nil)
            default:
                return nil
            }
        }
    }

    /// An in-process service on `--executor nomad` at the fake agent.
    static func withService<T>(agent: FakeNomadAgent, _ body: (TestServer) async throws -> T) async throws -> T {
        try await TestServer.with(configure: {
            $0.executor = .nomad
            $0.nomad = NomadConfiguration(address: agent.address, token: "nomad-acl-token-5150", runnerCommand: ServiceProcess.binary)
        }, body)
    }

    static func trigger(_ server: TestServer, config: String) async throws -> Int {
        try await server.trigger(try await server.createPipeline(name: "nomad", config: config))
    }

    @Test func aJobRunsInTheRunnerTheNomadNodeStartsAndIsStoppedAndPurgedAfter() async throws {
        let node = Node()
        defer { node.endAll() }
        try await FakeNomadAgent.run { agent in
            try Self.play(node, on: agent, evaluation: try NomadFixtures.evaluation(status: "complete"))
            try await Self.withService(agent: agent) { server in
                let jobID = try await Self.trigger(server, config: "kill_timeout_seconds: 3\nenv:\n  DEPLOY_TOKEN: \"nomad-secret-77\"\nsteps:\n  - echo \"on the node $CI $DEPLOY_TOKEN\"\n  - echo second; exit 4\n")
                let job = try await server.waitForJob(jobID)
                #expect(job.status == .failed)
                let logs = try await server.logs(jobID)
                #expect(logs.logs.map(\.exitCode) == [0, 4])
                #expect(logs.build == "on the node true ********\nsecond\n[rapidflow] step failed with exit code 4\n")
                // Ready while the agent is healthy and there is a leader; cleanup asks Nomad to collect garbage.
                #expect(try await server.get("/ready").decoded(API.Readiness.self).executor == "nomad")
                let cleaned = try await server.post("/jobs/\(jobID)/cleanup")
                #expect(try cleaned.decoded(API.CleanupResult.self).removed.nomadGC == true, "\(cleaned.text)")
            }
            let requests = agent.requests
            let register = try #require(requests.first { $0.line == "POST /v1/jobs" })
            #expect(register.header("X-Nomad-Token") == "nomad-acl-token-5150")
            let body = String(decoding: register.body, as: UTF8.self)
            #expect(body.contains("${NOMAD_SECRETS_DIR}/rapidflow-runner-token"), "the arguments name the file, not the token")
            let job = try #require(try register.jsonObject()["Job"] as? [String: Any])
            let nomadID = try #require(job["ID"] as? String)
            #expect(job["Type"] as? String == "batch")
            let task = ((job["TaskGroups"] as? [[String: Any]])?.first?["Tasks"] as? [[String: Any]])?.first
            #expect(task?["KillTimeout"] as? Int == 3_000_000_000, "the job's own kill_timeout_seconds")
            // After the job: DELETE, then DELETE ?purge=true.
            let deletes = requests.filter { $0.method == "DELETE" && $0.path == "/v1/job/\(nomadID)" }
            #expect(deletes.map { $0.query["purge"] } == [nil, "true"])
            #expect(requests.contains { $0.line == "PUT /v1/system/gc" })
        }
    }

    /// Caches and artifacts of jobs on a node: the runner restores, saves and collects in its
    /// own workspace, and the archives and files travel over its channel to the service.
    @Test func cachesAndArtifactsOfJobsOnTheNodeTravelOverTheRunnersChannel() async throws {
        let node = Node()
        defer { node.endAll() }
        try await FakeNomadAgent.run { agent in
            try Self.play(node, on: agent, evaluation: try NomadFixtures.evaluation(status: "complete"))
            try await Self.withService(agent: agent) { server in
                let pipeline = try await server.createPipeline(
                    name: "nomad-cached",
                    config: """
                        cache:
                          - key: "deps-${branch}"
                            paths: [.deps]
                        artifacts:
                          paths: [report.txt]
                        steps:
                          - "echo restored=$(cat .deps/runs 2>/dev/null | tr '\\n' ,)"
                          - "mkdir -p .deps && echo $RAPIDFLOW_JOB_ID >> .deps/runs && echo report-$RAPIDFLOW_JOB_ID > report.txt"
                        """)
                let first = try await server.trigger(pipeline)
                let firstStatus = try await server.waitForJob(first).status
                let firstLogs = try await server.get("/jobs/\(first)/logs").text
                #expect(firstStatus == .success, "\(firstLogs)")
                let second = try await server.trigger(pipeline)
                #expect(try await server.waitForJob(second).status == .success)
                let logs = try await server.logs(second)
                #expect(logs.build.contains("restored=\(first),\n"), "\(logs.build)")
                let restore = logs.logs.filter { $0.type == .cacheRestore }.map(\.output).joined()
                #expect(restore.contains(": hit, restoring"), "\(restore)")
                #expect(try await server.get("/jobs/\(second)/artifacts/report.txt").text == "report-\(second)\n")
                #expect(try await server.get("/caches").decoded([API.Cache].self).map(\.jobID) == [first])
            }
        }
    }

    /// An image job on Nomad: its clone, build, test and push run in the runner the node starts,
    /// against the node's Docker engine, with the registry login that reached the runner over
    /// its own channel: no request the service made to Nomad carries it.
    @Test func anImageJobBuildsTestsAndPushesOnTheNodeAndNoNomadRequestCarriesItsCredentials() async throws {
        let environment = ProcessInfo.processInfo.environment
        let registry = environment["RAPIDFLOW_TEST_REGISTRY"] ?? "127.0.0.1:5055"
        let user = environment["RAPIDFLOW_TEST_REGISTRY_USER"] ?? "rapidflow"
        let password = environment["RAPIDFLOW_TEST_REGISTRY_PASSWORD"] ?? "registry-test-pass-4711"
        let root = TestFiles.temporaryDirectory()
        try await TestFiles.shell("""
            cd \(root) && git init -q --bare --initial-branch=main repo.git && git init -q work && cd work
            git config user.email t@example.com && git config user.name test
            printf 'FROM rapidflow-test/busybox\\nRUN echo built on the node > /built.txt\\n' > Dockerfile
            git add . && git commit -qm main && git branch -M main && git push -q ../repo.git main
            """)
        let secrets = TestFiles.temporaryDirectory()
        try #"{"username": "\#(user)", "password": "\#(password)"}"#.write(toFile: "\(secrets)/registry.json", atomically: true, encoding: .utf8)
        let path = "nomad/image-\(UUID().uuidString.prefix(6).lowercased())"
        let node = Node()
        defer { node.endAll() }
        try await FakeNomadAgent.run { agent in
            try Self.play(node, on: agent, evaluation: try NomadFixtures.evaluation(status: "complete"))
            try await TestServer.with(configure: {
                $0.executor = .nomad
                $0.nomad = NomadConfiguration(address: agent.address, token: "nomad-acl-token-5150", runnerCommand: ServiceProcess.binary)
                $0.secretsDirectory = secrets
            }) { server in
                let reply = try await server.request(.POST, "/jobs", encoding: API.ImageJobRequest(
                    owner: "it", repoURL: "file://\(root)/repo.git", gitRef: "main", dockerfilePath: "Dockerfile", imageTags: ["1.0"],
                    registryURL: "http://\(registry)/\(path)", registryCredentialsPath: "registry.json", testCommands: ["cat /built.txt"]))
                try #require(reply.status == 200, "\(reply.text)")
                let jobID = try #require(Int(try reply.decoded(API.SubmittedJob.self).jobID))
                let job = try await server.waitForJob(jobID, timeout: .seconds(120))
                let logs = try await server.logs(jobID).logs
                #expect(job.status == .success, "\(logs.map { ($0.type, $0.output) })")
                #expect(logs.map(\.type) == [.git, .dockerBuild, .dockerRun, .dockerPush])
                #expect(logs[2].output == "built on the node\n")
                #expect(logs[3].output.contains("1.0: digest: sha256:"))
                #expect(logs.map(\.status) == [.success, .success, .success, .success])
                // Phase timings as on the local executor: every phase started and ended, in order.
                let timestamps = try await server.get("/jobs/\(jobID)/status").decoded(API.JobStatusReport.self).phaseTimestamps
                let ordered = [
                    timestamps.jobStart, timestamps.buildStart, timestamps.buildEnd, timestamps.testStart, timestamps.testEnd,
                    timestamps.publishStart, timestamps.publishEnd, timestamps.jobEnd,
                ].compactMap { $0 }
                #expect(ordered.count == 8 && ordered == ordered.sorted(), "\(timestamps)")
            }
            let requests = agent.requests
            #expect(requests.contains { $0.line == "POST /v1/jobs" }, "the job went to Nomad")
            let auth = Data("\(user):\(password)".utf8).base64EncodedString()
            for request in requests {
                let text = String(decoding: request.body, as: UTF8.self) + request.line
                #expect(!text.contains(password) && !text.contains(auth), "\(request.line) carries the registry login")
            }
        }
        let tags = try await TestFiles.shell("curl -s -u \(user):\(password) http://\(registry)/v2/\(path)/tags/list")
        #expect(tags.contains("\"1.0\""), "\(tags)")
    }

    @Test func aJobNomadCannotPlaceFailsWithTheSchedulersReason() async throws {
        let node = Node()
        defer { node.endAll() }
        try await FakeNomadAgent.run { agent in
            try Self.play(node, on: agent, evaluation: try NomadFixtures.evaluationFilteredAndExhausted(), places: false)
            try await Self.withService(agent: agent) { server in
                let jobID = try await Self.trigger(server, config: "steps:\n  - echo never\n")
                let job = try await server.waitForJob(jobID)
                #expect(job.status == .failed)
                let output = try await server.logs(jobID).build
                #expect(output.contains("Nomad:") && output.contains("windows"), "\(output)")
            }
        }
    }
}
