import Foundation
import NIOSSL
import RapidFlowTestSupport
import Testing

@testable import RapidFlowRunner

/// The Nomad client, job spec and watcher against `FakeNomadAgent`, which serves Nomad's recorded
/// bodies (`Fixtures/nomad`) and records every request, so each test checks what was sent too.
///
/// Bodies for states the recorded samples do not show are derived in `NomadFixtures` from the
/// recorded allocation and evaluation by changing only the fields the Nomad API notes name
/// (ClientStatus, DesiredStatus, NextAllocation, CreateIndex, TaskStates' State/Failed/Events,
/// an event's Type/ExitCode/Details/DisplayMessage/DriverError, an evaluation's Status/FailedTGAllocs).
@Suite("Nomad executor", .timeLimit(.minutes(1)))
struct NomadTests {
    static let aclToken = "5f8a2c1e-acl-secret-9d3b"
    static let runnerToken = "rf-runner-secret-71c4"
    /// `job-allocations.response.json`'s job, as the watcher is pointed at it.
    static let jobID = "rapidflow-1a2b3c4d-job-42-0badf00d"
    static let fast = NomadClient.RetryPolicy(attempts: 3, initialDelay: .milliseconds(10), maximumDelay: .milliseconds(20))

    func configuration(_ address: String, driver: NomadConfiguration.Driver = .rawExec) -> NomadConfiguration {
        NomadConfiguration(
            address: address, token: Self.aclToken, namespace: "apps", region: "eu-west", datacenters: ["dc1"], driver: driver,
            dockerImage: driver == .docker ? "registry.example/rapidflow:1" : nil, runnerCommand: "/usr/local/bin/rapidflow"
        )
    }

    /// A client of `agent`, shut down with it.
    func client(_ agent: FakeNomadAgent, _ configuration: NomadConfiguration? = nil) throws -> NomadClient {
        agent.adopt(try NomadClient(configuration: configuration ?? self.configuration(agent.address), retry: Self.fast))
    }

    func watcher(_ agent: FakeNomadAgent, evaluationID: String? = nil, stopMargin: Duration = .seconds(10)) throws -> NomadJobWatcher {
        NomadJobWatcher(client: try client(agent), jobID: Self.jobID, evaluationID: evaluationID, wait: .seconds(5), stopMargin: stopMargin)
    }

    func executor(_ agent: FakeNomadAgent) throws -> NomadExecutor {
        let executor = try NomadExecutor(configuration: configuration(agent.address), instanceID: "1a2b3c4d-9999", retry: Self.fast)
        _ = agent.adopt(executor.client)
        return executor
    }

    var allocationsPath: String { "/v1/job/\(Self.jobID)/allocations" }

    // MARK: Configuration

    @Test func theEnvironmentIsReadLikeTheNomadCLIReadsIt() {
        let configuration = NomadConfiguration.fromEnvironment([
            "NOMAD_ADDR": "https://nomad.internal:4646", "NOMAD_TOKEN": Self.aclToken, "NOMAD_NAMESPACE": "ci",
            "NOMAD_REGION": "eu-west", "NOMAD_CACERT": "/etc/nomad/ca.pem", "NOMAD_CLIENT_CERT": "/etc/nomad/cli.pem",
            "NOMAD_CLIENT_KEY": "/etc/nomad/cli-key.pem", "NOMAD_SKIP_VERIFY": "T",
        ])
        #expect(configuration.address == "https://nomad.internal:4646")
        #expect(configuration.token == Self.aclToken)
        #expect(configuration.namespace == "ci")
        #expect(configuration.region == "eu-west")
        #expect(configuration.tls == .init(caFile: "/etc/nomad/ca.pem", clientCertificateFile: "/etc/nomad/cli.pem", clientKeyFile: "/etc/nomad/cli-key.pem", skipVerify: true))

        // Empty counts as unset, and a value Go's ParseBool refuses is ignored.
        let defaults = NomadConfiguration.fromEnvironment(["NOMAD_ADDR": "", "NOMAD_TOKEN": "", "NOMAD_SKIP_VERIFY": "yes"])
        #expect(defaults == NomadConfiguration())
        #expect(defaults.address == "http://127.0.0.1:4646")
        #expect(defaults.token == nil && defaults.namespace == nil && defaults.region == nil && !defaults.tls.skipVerify)
        #expect(NomadConfiguration.fromEnvironment(["NOMAD_SKIP_VERIFY": "0"]).tls.skipVerify == false)
        #expect(NomadConfiguration.fromEnvironment(["NOMAD_SKIP_VERIFY": "1"]).tls.skipVerify == true)
    }

    @Test func settingsThatCannotWorkAreRefusedBeforeAnyRequest() throws {
        var docker = configuration("http://127.0.0.1:4646", driver: .docker)
        docker.dockerImage = nil
        #expect(throws: NomadError.self) { try docker.validate() }
        var halfMutualTLS = configuration("https://127.0.0.1:4646")
        halfMutualTLS.tls.clientCertificateFile = "/etc/nomad/cli.pem"
        #expect(throws: NomadError.self) { try halfMutualTLS.validate() }
        #expect(throws: NomadError.self) { try NomadClient(configuration: NomadConfiguration(address: "127.0.0.1:4646")) }

        var missingCA = configuration("https://127.0.0.1:4646")
        missingCA.tls.caFile = "/nonexistent/nomad-ca.pem"
        let error = try #require(throws: NomadError.self) { try NomadClient(configuration: missingCA) }
        #expect(error.code == .invalidConfiguration)
        #expect(!error.description.contains(Self.aclToken))
    }

    @Test func printingAConfigurationOrJobSpecNeverShowsATokenOrItsValue() {
        let configuration = configuration("http://127.0.0.1:4646")
        let spec = NomadJobSpec(
            jobID: 42, instanceID: "1a2b3c4d-0000", serverURL: "http://10.0.0.5:8080", runnerToken: Self.runnerToken,
            gracePeriod: .seconds(10), configuration: configuration
        )
        var dumped = ""
        dump(configuration, to: &dumped)
        dump(spec, to: &dumped)
        for text in ["\(configuration)", String(reflecting: configuration), "\(spec)", String(reflecting: spec), dumped] {
            #expect(!text.contains(Self.aclToken))
            #expect(!text.contains(Self.runnerToken))
        }
    }

    @Test func tlsToTheAgentUsesTheCAFileTheClientCertificateAndSkipVerify() async throws {
        let certificates = try await TestCertificates()
        defer { try? FileManager.default.removeItem(at: certificates.directory) }
        try await FakeNomadAgent.run(tls: try certificates.agentContext()) { agent in
            agent.on("GET", "/v1/status/leader", try .fixture("status-leader.response.json"))
            let leader = { (tls: NomadConfiguration.TLS) in
                try await client(agent, NomadConfiguration(address: agent.address, token: Self.aclToken, tls: tls)).leader()
            }
            let mutual = NomadConfiguration.TLS(caFile: certificates.ca, clientCertificateFile: certificates.clientCertificate, clientKeyFile: certificates.clientKey)
            #expect(try await leader(mutual) == "127.0.0.1:4647")

            // Without the CA the agent's certificate is not trusted, unless verification is skipped.
            var untrusted = mutual
            untrusted.caFile = nil
            let refusedServer = try await #require(throws: NomadError.self) { try await leader(untrusted) }
            #expect(refusedServer.code == .unreachable)
            untrusted.skipVerify = true
            #expect(try await leader(untrusted) == "127.0.0.1:4647")

            // Without a client certificate the agent refuses the handshake.
            let refusedClient = try await #require(throws: NomadError.self) { try await leader(.init(caFile: certificates.ca)) }
            #expect(refusedClient.code == .unreachable)
            #expect(!refusedClient.description.contains(Self.aclToken))

            // Only the two accepted handshakes reached HTTP.
            #expect(agent.requests.count == 2)
            #expect(agent.requests.allSatisfy { $0.header("X-Nomad-Token") == Self.aclToken })
        }
    }

    // MARK: Job spec

    @Test func theRawExecJobHasTheShapeOfNomadsBatchJob() throws {
        let spec = NomadJobSpec(
            jobID: 42, instanceID: "1A2B3C4D-5e6f-7a8b", serverURL: "http://10.0.0.5:8080", runnerToken: Self.runnerToken,
            gracePeriod: .milliseconds(7500), configuration: NomadConfiguration(datacenters: ["dc1"], runnerCommand: "/usr/local/bin/rapidflow"),
            uniqueSuffix: "0badf00d"
        )
        let body = try JSONSerialization.jsonObject(with: spec.requestBody()) as? [String: Any]
        let sample = try JSONSerialization.jsonObject(with: FakeNomadAgent.fixture("batch-job-raw_exec.request.json")) as? [String: Any]
        try expectSameShape(try #require(body), try #require(sample))

        let job = try #require(body?["Job"] as? [String: Any])
        #expect(job["ID"] as? String == "rapidflow-1a2b3c4d-job-42-0badf00d")
        #expect(job["Name"] as? String == "rapidflow-1a2b3c4d-job-42-0badf00d")
        #expect(job["Type"] as? String == "batch")
        #expect(job["Datacenters"] as? [String] == ["dc1"])
        #expect(job["Meta"] as? [String: String] == ["rapidflow_job": "42", "rapidflow_instance": "1A2B3C4D-5e6f-7a8b"])
        let group = try #require((job["TaskGroups"] as? [[String: Any]])?.first)
        #expect(group["Count"] as? Int == 1)
        #expect(try jsonText(group["RestartPolicy"]) == #"{"Attempts":0,"Mode":"fail"}"#)
        #expect(try jsonText(group["ReschedulePolicy"]) == #"{"Attempts":0,"Unlimited":false}"#)
        let task = try #require((group["Tasks"] as? [[String: Any]])?.first)
        #expect(task["Driver"] as? String == "raw_exec")
        #expect(task["KillTimeout"] as? Int == 7_500_000_000)
        #expect(task["KillSignal"] as? String == "SIGTERM")
        #expect(task["Env"] == nil, "nothing in the task's environment: its steps could read it")
        let template = try #require((task["Templates"] as? [[String: Any]])?.first)
        #expect(template["EmbeddedTmpl"] as? String == Self.runnerToken)
        #expect(template["DestPath"] as? String == "secrets/rapidflow-runner-token")
        #expect(template["Perms"] as? String == "0400")
        let config = try #require(task["Config"] as? [String: Any])
        #expect(config["command"] as? String == "/usr/local/bin/rapidflow")
        #expect(config["args"] as? [String] == ["runner", "--server", "http://10.0.0.5:8080", "--job", "42", "--token-file", "${NOMAD_SECRETS_DIR}/rapidflow-runner-token", "--lease-seconds", "30", "--grace-seconds", "7.5"])
        #expect(config["image"] == nil)
    }

    @Test func theDockerJobRunsTheRunnerInTheConfiguredImage() throws {
        var configuration = configuration("http://127.0.0.1:4646", driver: .docker)
        configuration.resources = .init(cpu: 500, memoryMB: 256)
        configuration.namespace = nil
        configuration.region = nil
        let spec = NomadJobSpec(
            jobID: 7, instanceID: "feedface", serverURL: "https://ci.example", runnerToken: Self.runnerToken, gracePeriod: .seconds(5),
            configuration: configuration, uniqueSuffix: "00c0ffee"
        )
        let body = try #require(try JSONSerialization.jsonObject(with: spec.requestBody()) as? [String: Any])
        let sample = try #require(try JSONSerialization.jsonObject(with: FakeNomadAgent.fixture("batch-job-docker.request.json")) as? [String: Any])
        try expectSameShape(body, sample)
        let job = try #require(body["Job"] as? [String: Any])
        let task = try #require(((job["TaskGroups"] as? [[String: Any]])?.first?["Tasks"] as? [[String: Any]])?.first)
        #expect(task["Driver"] as? String == "docker")
        #expect(task["KillTimeout"] as? Int == 5_000_000_000)
        #expect(task["Resources"] as? [String: Int] == ["CPU": 500, "MemoryMB": 256])
        let config = try #require(task["Config"] as? [String: Any])
        #expect(config["image"] as? String == "registry.example/rapidflow:1")
        #expect(config["command"] as? String == "/usr/local/bin/rapidflow")
        #expect(config["args"] as? [String] == ["runner", "--server", "https://ci.example", "--job", "7", "--token-file", "${NOMAD_SECRETS_DIR}/rapidflow-runner-token", "--lease-seconds", "30", "--grace-seconds", "5"])
    }

    /// An image job's runner talks to the node's engine: with the docker driver its container
    /// gets the engine's socket; a pipeline job's does not.
    @Test func anImageJobsDockerTaskMountsTheEnginesSocket() throws {
        let configuration = configuration("http://127.0.0.1:4646", driver: .docker)
        func config(usesDockerEngine: Bool) throws -> [String: Any] {
            let spec = NomadJobSpec(
                jobID: 8, instanceID: "feedface", serverURL: "https://ci.example", runnerToken: Self.runnerToken, gracePeriod: .seconds(5),
                configuration: configuration, uniqueSuffix: "00c0ffee", usesDockerEngine: usesDockerEngine)
            let body = try #require(try JSONSerialization.jsonObject(with: spec.requestBody()) as? [String: Any])
            if usesDockerEngine {
                let sample = try #require(
                    try JSONSerialization.jsonObject(with: FakeNomadAgent.fixture("batch-job-docker-socket.request.json")) as? [String: Any])
                try expectSameShape(body, sample)
            }
            let job = try #require(body["Job"] as? [String: Any])
            let task = try #require(((job["TaskGroups"] as? [[String: Any]])?.first?["Tasks"] as? [[String: Any]])?.first)
            return try #require(task["Config"] as? [String: Any])
        }
        #expect(try config(usesDockerEngine: true)["volumes"] as? [String] == ["/var/run/docker.sock:/var/run/docker.sock"])
        #expect(try config(usesDockerEngine: false)["volumes"] == nil)
    }

    @Test func everyRunGetsItsOwnJobID() {
        let configuration = NomadConfiguration()
        let ids = (0..<20).map { _ in
            NomadJobSpec(jobID: 42, instanceID: "1a2b3c4d-aaaa", serverURL: "http://x", runnerToken: "t", gracePeriod: .seconds(1), configuration: configuration).id
        }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.wholeMatch(of: /rapidflow-1a2b3c4d-job-42-[0-9a-f]{8}/) != nil })
    }

    /// Same keys at every level as Nomad's sample, except the optional ones the sample leaves out
    /// (Namespace, Region) or sets where we keep Nomad's default (LogConfig, Resources); same JSON types.
    func expectSameShape(_ ours: Any, _ sample: Any, path: String = "", sourceLocation: SourceLocation = #_sourceLocation) throws {
        let optional: Set<String> = ["Namespace", "Region", "LogConfig", "Resources", "Env"]
        switch (ours, sample) {
        case (let ours as [String: Any], let sample as [String: Any]):
            // Driver config, Env and Meta are free-form maps whose keys are values, not fields.
            guard !["Config", "Env", "Meta"].contains(where: { path.hasSuffix($0) }) else { return }
            #expect(Set(ours.keys).subtracting(optional) == Set(sample.keys).subtracting(optional), "keys of \(path)", sourceLocation: sourceLocation)
            for (key, value) in ours {
                if let expected = sample[key] { try expectSameShape(value, expected, path: "\(path).\(key)", sourceLocation: sourceLocation) }
            }
        case (let ours as [Any], let sample as [Any]):
            if let first = ours.first, let expected = sample.first { try expectSameShape(first, expected, path: path, sourceLocation: sourceLocation) }
        default:
            #expect(type(of: ours) == type(of: sample) || (ours is NSNumber && sample is NSNumber), "type of \(path)", sourceLocation: sourceLocation)
        }
    }

    // MARK: Client requests and answers

    @Test func registeringSendsTheJobWithTokenNamespaceAndRegion() async throws {
        try await FakeNomadAgent.run { agent in
            // The docs' "Create Job" sample shows EvalID "" (a docs quirk: a batch register starts an
            // evaluation); "Update Existing Job" has the same shape with a real one.
            agent.on("POST", "/v1/jobs", try .fixture("update-job.response.json"), try .fixture("register-job.response.json"))
            let executor = try self.executor(agent)
            let watcher = try await executor.submit(jobID: 42, serverURL: "http://10.0.0.5:8080", runnerToken: Self.runnerToken, gracePeriod: .seconds(3))
            #expect(watcher.evaluationID == "d092fdc0-e1fd-2536-67d8-43af8ca798ac")
            #expect(watcher.jobID.wholeMatch(of: /rapidflow-1a2b3c4d-job-42-[0-9a-f]{8}/) != nil)
            let second = try await executor.submit(jobID: 42, serverURL: "http://10.0.0.5:8080", runnerToken: Self.runnerToken, gracePeriod: .seconds(3))
            #expect(second.evaluationID == nil)
            #expect(second.jobID != watcher.jobID)

            let requests = agent.requests
            #expect(requests.map(\.line) == ["POST /v1/jobs", "POST /v1/jobs"])
            let request = try #require(requests.first)
            #expect(request.header("X-Nomad-Token") == Self.aclToken)
            #expect(request.header("Content-Type") == "application/json")
            #expect(request.query == ["namespace": "apps", "region": "eu-west"])
            let job = try #require(try request.jsonObject()["Job"] as? [String: Any])
            #expect(job["ID"] as? String == watcher.jobID)
            #expect(job["Namespace"] as? String == "apps")
            #expect(job["Region"] as? String == "eu-west")
            let group = try #require((job["TaskGroups"] as? [[String: Any]])?.first)
            #expect(try jsonText(group["RestartPolicy"]) == #"{"Attempts":0,"Mode":"fail"}"#)
            #expect(try jsonText(group["ReschedulePolicy"]) == #"{"Attempts":0,"Unlimited":false}"#)
            let task = try #require((group["Tasks"] as? [[String: Any]])?.first)
            #expect(task["KillTimeout"] as? Int == 3_000_000_000)
            // The runner's token is in the template once: not in the environment or the arguments.
            #expect(String(decoding: request.body, as: UTF8.self).components(separatedBy: Self.runnerToken).count == 2)
            #expect(task["Env"] == nil)
            #expect((task["Templates"] as? [[String: Any]])?.first?["EmbeddedTmpl"] as? String == Self.runnerToken)
        }
    }

    @Test func nomadsPlainTextErrorsSurfaceWithStatusAndText() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", "/v1/job/missing", try .error(404, "read-job.404.txt"))
            agent.on("POST", "/v1/jobs", try .error(403, "acl-permission-denied.403.txt"), try .error(400, "register-job-missing-job.400.txt"))
            agent.on("GET", "/v1/allocation/unknown", try .error(404, "read-allocation.404.txt"))
            agent.on("GET", "/v1/job/example", try .error(400, "blocking-query-bad-index.400.txt"))
            agent.on("GET", "/v1/allocation/a8198d79-cfdb-6593-a999-1e9adabcba2e", try .error(403, "acl-token-not-found.403.txt"))
            agent.on("GET", "/v1/evaluation/gone", try .error(404, "read-evaluation.404.txt"))
            agent.on("GET", "/v1/agent/health", .answer(status: 500, index: nil, contentType: "text/plain; charset=utf-8", body: try FakeNomadAgent.fixture("agent-health.unhealthy.response.txt")))
            let client = try self.client(agent)

            let notFound = try await #require(throws: NomadError.self) { try await client.job("missing") }
            #expect(notFound.code == .response && notFound.status == 404 && notFound.isNotFound)
            #expect(notFound.message == "job not found")
            #expect(notFound.description == "Nomad answered 404 to GET /v1/job/missing: job not found")

            let spec = NomadJobSpec(jobID: 1, instanceID: "abc", serverURL: "http://x", runnerToken: Self.runnerToken, gracePeriod: .seconds(1), configuration: client.configuration)
            let denied = try await #require(throws: NomadError.self) { try await client.registerJob(spec) }
            #expect(denied.status == 403 && denied.message == "Permission denied")
            #expect(denied.description == "Nomad answered 403 to POST /v1/jobs: Permission denied")

            let unknownToken = try await #require(throws: NomadError.self) { try await client.allocation("a8198d79-cfdb-6593-a999-1e9adabcba2e") }
            #expect(unknownToken.status == 403 && unknownToken.message == "ACL token not found")

            let gone = try await #require(throws: NomadError.self) { try await client.evaluation("gone") }
            #expect(gone.isNotFound && gone.message == "eval not found")

            let noAllocation = try await #require(throws: NomadError.self) { try await client.allocation("unknown") }
            #expect(noAllocation.isNotFound && noAllocation.message == "alloc not found")

            let badIndex = try await #require(throws: NomadError.self) { try await client.job("example", index: 3, wait: .seconds(1)) }
            #expect(badIndex.status == 400 && badIndex.message == "Invalid index")

            let noJob = try await #require(throws: NomadError.self) { try await client.registerJob(spec) }
            #expect(noJob.status == 400 && noJob.message == "Job must be specified")

            // An unhealthy agent's 500 carries JSON as a plain-text error: kept as text, not decoded.
            let unhealthy = try await #require(throws: NomadError.self) { try await client.agentHealth() }
            #expect(unhealthy.status == 500)
            #expect(unhealthy.message == #"{"server":{"ok":false,"message":"server not enabled"}}"#)

            for error in [notFound, denied, unknownToken, gone, noAllocation, badIndex, noJob, unhealthy] {
                #expect(!error.description.contains(Self.aclToken))
                #expect(!error.description.contains(Self.runnerToken))
            }
        }
    }

    @Test func recordedAnswersDecode() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", "/v1/job/example", try .fixture("read-job.response.json", index: 7))
            agent.on("GET", "/v1/allocation/a8198d79-cfdb-6593-a999-1e9adabcba2e", try .fixture("allocation.response.json", index: 57))
            agent.on("GET", "/v1/evaluation/2deb5f06-a100-f01a-3316-5e501a4965e7", try .fixture("evaluation.response.json", index: 30))
            agent.on("GET", "/v1/agent/health", try .fixture("agent-health.response.json"))
            agent.on("GET", "/v1/status/leader", try .fixture("status-leader.response.json"))
            let client = try self.client(agent)

            let job = try await client.job("example")
            #expect(job.index == 7)
            #expect(job.value.id == "example" && job.value.namespace == "apps" && job.value.type == "batch")
            #expect(job.value.status == "running" && !job.value.stop)

            // The docs sample repeats "PreviousAllocation" and has a string "Delay": neither breaks decoding.
            let allocation = try await client.allocation("a8198d79-cfdb-6593-a999-1e9adabcba2e")
            #expect(allocation.index == 57)
            #expect(allocation.value.clientStatus == "running" && allocation.value.desiredStatus == "run")
            #expect(allocation.value.createIndex == 54)
            #expect(allocation.value.nextAllocation == "cd13d9b9-4f97-7184-c88b-7b451981616b")
            #expect(allocation.value.taskStates?["redis"]?.events.map(\.type) == ["Received", "Driver", "Started"])

            let evaluation = try await client.evaluation("2deb5f06-a100-f01a-3316-5e501a4965e7")
            #expect(evaluation.value.status == "blocked")
            #expect(evaluation.value.relatedEvaluations?.first?.blockedEvaluation == "2deb5f06-a100-f01a-3316-5e501a4965e7")
            #expect(evaluation.value.failedTaskGroupAllocations?["cache"]?.nodesAvailable == ["dc1": 0])

            #expect(try await client.agentHealth() == NomadAgentHealth(client: .init(ok: true, message: "ok"), server: .init(ok: true, message: "ok")))
            #expect(try await client.leader() == "127.0.0.1:4647")

            let requests = agent.requests
            #expect(requests.map(\.line) == [
                "GET /v1/job/example", "GET /v1/allocation/a8198d79-cfdb-6593-a999-1e9adabcba2e",
                "GET /v1/evaluation/2deb5f06-a100-f01a-3316-5e501a4965e7", "GET /v1/agent/health", "GET /v1/status/leader",
            ])
            #expect(requests[2].query == ["related": "true", "namespace": "apps", "region": "eu-west"])
            #expect(requests.allSatisfy { $0.header("X-Nomad-Token") == Self.aclToken && $0.query["namespace"] == "apps" })
        }
    }

    @Test func withoutTokenNamespaceOrRegionNoneIsSent() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", "/v1/status/leader", try .fixture("status-leader.response.json"))
            _ = try await client(agent, NomadConfiguration(address: agent.address)).leader()
            let request = try #require(agent.requests.first)
            #expect(request.header("X-Nomad-Token") == nil)
            #expect(request.query.isEmpty)
        }
    }

    @Test func aBlockingQueryThatEndsInEOFIsRetriedThenGivesUp() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", allocationsPath, .dropConnection, .dropConnection, try .fixture("job-allocations.response.json", index: 13))
            let client = try self.client(agent)
            let answer = try await client.jobAllocations(Self.jobID, index: 9, wait: .seconds(5))
            #expect(answer.index == 13 && answer.value.count == 1)
            let queries = agent.requests.map(\.query)
            #expect(queries.count == 3)
            #expect(queries.allSatisfy { $0 == ["index": "9", "wait": "5s", "namespace": "apps", "region": "eu-west"] })
        }
        try await FakeNomadAgent.run { agent in
            agent.on("GET", allocationsPath, .dropConnection)
            let error = try await #require(throws: NomadError.self) {
                try await client(agent).jobAllocations(Self.jobID, index: 9, wait: .seconds(5))
            }
            #expect(error.code == .unreachable)
            #expect(agent.requests.count == Self.fast.attempts)
            #expect(!error.description.contains(Self.aclToken))
        }
    }

    // MARK: Watching a job

    @Test func aCompletedAllocationThatExitedZeroIsSuccess() async throws {
        try await FakeNomadAgent.run { agent in
            let evaluationID = "2deb5f06-a100-f01a-3316-5e501a4965e7"
            agent.on(
                "GET", "/v1/evaluation/\(evaluationID)",
                .json(try NomadFixtures.evaluation(status: "pending"), index: 27), .json(try NomadFixtures.evaluation(status: "complete"), index: 28)
            )
            agent.on(
                "GET", allocationsPath, try .fixture("job-allocations.response.json", index: 13),
                .json(try NomadFixtures.allocations(.complete(exitCode: 0)), index: 17)
            )
            #expect(try await watcher(agent, evaluationID: evaluationID).outcome() == .succeeded)

            let requests = agent.requests
            #expect(requests.map(\.line) == [
                "GET /v1/evaluation/\(evaluationID)", "GET /v1/evaluation/\(evaluationID)", "GET \(allocationsPath)", "GET \(allocationsPath)",
            ])
            let scope = ["namespace": "apps", "region": "eu-west"]
            #expect(requests[0].query == scope.merging(["related": "true"]) { a, _ in a })
            #expect(requests[1].query == scope.merging(["related": "true", "index": "27", "wait": "5s"]) { a, _ in a })
            #expect(requests[2].query == scope)
            #expect(requests[3].query == scope.merging(["index": "13", "wait": "5s"]) { a, _ in a })
        }
    }

    @Test func aNonZeroExitIsAFailedJobWithItsCode() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", allocationsPath, .json(try NomadFixtures.allocations(.failed(exitCode: 2)), index: 20))
            let outcome = try await watcher(agent).outcome()
            #expect(outcome == .failed(exitCode: 2, reason: "the runner exited with code 2"))
        }
    }

    @Test func aDriverFailureIsAnInfrastructureFailureWithNomadsMessage() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", allocationsPath, .json(try NomadFixtures.allocations(.driverFailure), index: 20))
            let outcome = try await watcher(agent).outcome()
            #expect(outcome == .infrastructureFailure(reason: "Driver Failure: Failed to pull `registry.example/rapidflow:1`: manifest unknown"))
        }
    }

    @Test func aLostOrDisconnectedNodeFailsTheJob() async throws {
        for status in ["lost", "unknown"] {
            try await FakeNomadAgent.run { agent in
                agent.on("GET", allocationsPath, .json(try NomadFixtures.allocations(.nodeGone(status)), index: 20))
                let outcome = try await watcher(agent).outcome()
                guard case .nodeLost(let reason) = outcome else { Issue.record("\(status): \(outcome)"); return }
                #expect(reason == "Nomad allocation ed344e0a is \(status): node cb1f6030 went away")
            }
        }
    }

    @Test func aStoppedAllocationIsCancelledNotSuccessEvenWhenComplete() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", allocationsPath, .json(try NomadFixtures.allocations(.stopped), index: 20))
            #expect(try await watcher(agent).outcome() == .cancelled(reason: "Nomad allocation ed344e0a was stopped"))
        }
    }

    @Test func aJobNoNodeCanTakeIsNotPlacedWithTheSchedulersReason() async throws {
        try await FakeNomadAgent.run { agent in
            // The recorded sample: a blocked evaluation whose only datacenter has no ready node.
            agent.on("GET", "/v1/evaluation/2deb5f06-a100-f01a-3316-5e501a4965e7", try .fixture("evaluation.response.json", index: 30))
            let outcome = try await watcher(agent, evaluationID: "2deb5f06-a100-f01a-3316-5e501a4965e7").outcome()
            #expect(outcome == .notPlaced(reason: "no Nomad node could run task group cache: no node was eligible (ready nodes: dc1 has 0)"))
            #expect(agent.requests.map(\.line) == ["GET /v1/evaluation/2deb5f06-a100-f01a-3316-5e501a4965e7"])
        }
        try await FakeNomadAgent.run { agent in
            agent.on("GET", "/v1/evaluation/e1", .json(try NomadFixtures.evaluationFilteredAndExhausted(), index: 31))
            let outcome = try await watcher(agent, evaluationID: "e1").outcome()
            #expect(outcome == .notPlaced(reason: "no Nomad node could run task group cache: constraint ${attr.kernel.name} = windows filtered 2 nodes, resources exhausted on 1 node, memory exhausted on 1 node"))
        }
    }

    @Test func theWatcherFollowsTheNewestAllocationAndItsReplacement() async throws {
        try await FakeNomadAgent.run { agent in
            // First only the ended allocation pointing at a replacement not listed yet, then both.
            agent.on(
                "GET", allocationsPath, .json(try NomadFixtures.allocations(.replaced), index: 20),
                .json(try NomadFixtures.allocations(.replaced, .replacement(createIndex: 25)), index: 26)
            )
            #expect(try await watcher(agent).outcome() == .succeeded)
            #expect(agent.requests.map { $0.query["index"] } == [nil, "20"])
        }
        // The newest by CreateIndex names its replacement, which speaks for the job whatever its index.
        let replaced = try NomadFixtures.decoded(.replaced)
        let replacement = try NomadFixtures.decoded(.replacement(createIndex: 5))
        #expect(NomadJobWatcher.current(in: [replaced, replacement])?.id == NomadFixtures.replacementID)
        #expect(NomadJobWatcher.current(in: [try NomadFixtures.decoded(.failed(exitCode: 1)), replacement])?.createIndex == 9)
        #expect(NomadJobWatcher.current(in: [])?.id == nil)
    }

    @Test func anIndexThatGoesBackwardsStartsOverAndNeverZero() {
        #expect(NomadJobWatcher.nextIndex(after: nil, answered: 13) == 13)
        #expect(NomadJobWatcher.nextIndex(after: 13, answered: 13) == 13)
        #expect(NomadJobWatcher.nextIndex(after: 13, answered: 20) == 20)
        #expect(NomadJobWatcher.nextIndex(after: 20, answered: 4) == 1)
        #expect(NomadJobWatcher.nextIndex(after: nil, answered: 0) == 1)
    }

    // MARK: Stopping and cleanup

    @Test func stopDeletesWaitsForTheAllocationToEndThenPurges() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("DELETE", "/v1/job/\(Self.jobID)", try .fixture("stop-job.response.json"))
            agent.on(
                "GET", allocationsPath, try .fixture("job-allocations.response.json", index: 13),
                .json(try NomadFixtures.allocations(.stopped), index: 21)
            )
            try await watcher(agent).stop(grace: .seconds(3))
            let requests = agent.requests
            #expect(requests.map(\.line) == ["DELETE /v1/job/\(Self.jobID)", "GET \(allocationsPath)", "GET \(allocationsPath)", "DELETE /v1/job/\(Self.jobID)"])
            #expect(requests[0].query == ["namespace": "apps", "region": "eu-west"])
            #expect(requests[2].query["index"] == "13")
            #expect(requests[3].query == ["purge": "true", "namespace": "apps", "region": "eu-west"])
            #expect(requests.allSatisfy { $0.header("X-Nomad-Token") == Self.aclToken })
        }
    }

    @Test func stopWaitsNoLongerThanTheGracePeriodAndMargin() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("DELETE", "/v1/job/\(Self.jobID)", try .fixture("stop-job.response.json"))
            agent.on("GET", allocationsPath, try .fixture("job-allocations.response.json", index: 13))
            let watcher = try self.watcher(agent, stopMargin: .milliseconds(300))
            let started = ContinuousClock.now
            try await watcher.stop(grace: .milliseconds(200))
            // What bounds the stop is what the watcher asks Nomad to wait for: never past the
            // grace period and margin, all blocking queries together. Wall time under a loaded
            // test run says little; it only has to show the stop did not hang.
            #expect(ContinuousClock.now - started < .seconds(20))
            let requests = agent.requests
            let waits = requests.compactMap { $0.query["wait"] }.map { text -> Int in
                text.hasSuffix("ms") ? Int(text.dropLast(2)) ?? .max : (Int(text.dropLast()) ?? .max) * 1000
            }
            #expect(waits.reduce(0, +) <= 500, "blocking waits in ms: \(waits)")
            #expect(requests.last?.line == "DELETE /v1/job/\(Self.jobID)")
            #expect(requests.last?.query["purge"] == "true")
            #expect(requests.count <= 6)
        }
    }

    @Test func aJobPurgedWhileWatchedIsCancelled() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", allocationsPath, try .fixture("job-allocations.response.json", index: 13), .json(Data("[]".utf8), index: 30))
            #expect(try await watcher(agent).outcome() == .cancelled(reason: "the Nomad job \(Self.jobID) was removed"))
        }
    }

    @Test func cleanupAsksNomadToCollectGarbage() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("PUT", "/v1/system/gc", try .fixture("system-gc.response.txt"))
            let executor = try self.executor(agent)
            try await executor.cleanup()
            let request = try #require(agent.requests.first)
            #expect(agent.requests.count == 1)
            #expect(request.line == "PUT /v1/system/gc")
            #expect(request.body.isEmpty)
            #expect(request.header("X-Nomad-Token") == Self.aclToken)
        }
    }

    @Test func readinessNeedsAHealthyAgentAndALeader() async throws {
        try await FakeNomadAgent.run { agent in
            agent.on("GET", "/v1/agent/health", try .fixture("agent-health.response.json"))
            agent.on("GET", "/v1/status/leader", try .fixture("status-leader.response.json"), .json(Data(#""""#.utf8)))
            let executor = try self.executor(agent)
            try await executor.checkReady()
            let error = try await #require(throws: NomadError.self) { try await executor.checkReady() }
            #expect(error.code == .unhealthy && error.message == "the Nomad cluster has no leader")
        }
    }
}

/// Nomad bodies for states the recorded samples do not show, each derived from a recorded body
/// (`job-allocations.response.json`, `evaluation.response.json`) by changing only the fields the
/// Nomad API notes name for that state. New task events copy the recorded `Started` event and
/// change its Type and the fields the notes name for that event.
enum NomadFixtures {
    enum State {
        /// ClientStatus complete, task dead, a Terminated event with this exit code.
        case complete(exitCode: Int)
        /// Terminated with a non-zero exit, Not Restarting, task Failed, ClientStatus failed.
        case failed(exitCode: Int)
        /// A Driver Failure event (an image that cannot be pulled) instead of a start.
        case driverFailure
        /// ClientStatus lost or unknown: the node went away while the task ran (the recorded
        /// NextAllocation stays: a replacement must not keep the watcher waiting).
        case nodeGone(String)
        /// DesiredStatus stop after a DELETE: Killing, Terminated 0, Killed, ClientStatus complete.
        case stopped
        /// Failed, with NextAllocation naming a replacement.
        case replaced
        /// The replacement: the recorded NextAllocation's ID, complete with exit 0.
        case replacement(createIndex: Int)
    }

    static let replacementID = "cd13d9b9-4f97-7184-c88b-7b451981616b"

    static func allocations(_ states: State...) throws -> Data {
        let recorded = try recordedAllocation()
        return try JSONSerialization.data(withJSONObject: states.map { derive(recorded, $0) })
    }

    static func decoded(_ state: State) throws -> NomadAllocation {
        let body = try JSONSerialization.data(withJSONObject: derive(try recordedAllocation(), state))
        return try JSONDecoder().decode(NomadAllocation.self, from: body)
    }

    static func evaluation(status: String) throws -> Data {
        var evaluation = try recordedEvaluation()
        evaluation["Status"] = status
        evaluation["FailedTGAllocs"] = NSNull()
        return try JSONSerialization.data(withJSONObject: evaluation)
    }

    /// The recorded blocked evaluation with metrics that name a constraint and an exhausted dimension.
    static func evaluationFilteredAndExhausted() throws -> Data {
        var evaluation = try recordedEvaluation()
        var failed = try #require(evaluation["FailedTGAllocs"] as? [String: [String: Any]])
        failed["cache"]?["NodesAvailable"] = ["dc1": 3]
        failed["cache"]?["NodesEvaluated"] = 3
        failed["cache"]?["NodesFiltered"] = 2
        failed["cache"]?["ConstraintFiltered"] = ["${attr.kernel.name} = windows": 2]
        failed["cache"]?["NodesExhausted"] = 1
        failed["cache"]?["DimensionExhausted"] = ["memory": 1]
        evaluation["FailedTGAllocs"] = failed
        return try JSONSerialization.data(withJSONObject: evaluation)
    }

    private static func recordedAllocation() throws -> [String: Any] {
        let list = try JSONSerialization.jsonObject(with: FakeNomadAgent.fixture("job-allocations.response.json")) as? [[String: Any]]
        return try #require(list?.first)
    }

    private static func recordedEvaluation() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: FakeNomadAgent.fixture("evaluation.response.json")) as? [String: Any])
    }

    private static func derive(_ recorded: [String: Any], _ state: State) -> [String: Any] {
        var allocation = recorded
        var task = (recorded["TaskStates"] as? [String: [String: Any]])?["redis"] ?? [:]
        let events = task["Events"] as? [[String: Any]] ?? []
        let started = events.first { $0["Type"] as? String == "Started" } ?? [:]
        func event(_ type: String, _ fields: [String: Any] = [:]) -> [String: Any] {
            started.merging(["Type": type]) { _, new in new }.merging(fields) { _, new in new }
        }
        func terminated(_ code: Int) -> [String: Any] {
            event("Terminated", ["ExitCode": code, "Details": ["exit_code": String(code), "signal": "0", "oom_killed": "false"]])
        }
        let notRestarting = event("Not Restarting", ["FailsTask": true, "RestartReason": "Policy allows no restarts"])
        func end(client: String, failed: Bool, events added: [[String: Any]], keeping kept: [[String: Any]] = events) {
            allocation["ClientStatus"] = client
            allocation["NextAllocation"] = ""
            task["State"] = "dead"
            task["Failed"] = failed
            task["Events"] = kept + added
        }
        switch state {
        case .complete(let code):
            end(client: "complete", failed: false, events: [terminated(code)])
        case .failed(let code):
            end(client: "failed", failed: true, events: [terminated(code), notRestarting])
        case .driverFailure:
            let failure = event("Driver Failure", [
                "FailsTask": true, "DriverError": "failed to pull image registry.example/rapidflow:1: manifest unknown",
                "DisplayMessage": "Failed to pull `registry.example/rapidflow:1`: manifest unknown",
            ])
            end(client: "failed", failed: true, events: [failure, notRestarting], keeping: Array(events.prefix(2)))
        case .nodeGone(let status):
            allocation["ClientStatus"] = status
        case .stopped:
            allocation["DesiredStatus"] = "stop"
            end(client: "complete", failed: false, events: [event("Killing"), terminated(0), event("Killed")])
        case .replaced:
            end(client: "failed", failed: true, events: [terminated(1), notRestarting])
            allocation["NextAllocation"] = replacementID
        case .replacement(let createIndex):
            end(client: "complete", failed: false, events: [terminated(0)])
            allocation["ID"] = replacementID
            allocation["PreviousAllocation"] = recorded["ID"]
            allocation["CreateIndex"] = createIndex
        }
        allocation["TaskStates"] = ["redis": task]
        return allocation
    }
}

/// A JSON value as compact text with sorted keys, to compare parsed bodies.
func jsonText(_ value: Any?) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: try #require(value), options: [.sortedKeys, .fragmentsAllowed])
    return String(decoding: data, as: UTF8.self)
}

/// A throwaway CA, an agent certificate for 127.0.0.1 and a client certificate, made by openssl
/// in a temporary directory, for the way Nomad clusters run TLS: mutual, with their own CA.
struct TestCertificates {
    let directory: URL
    var ca: String { path("ca.pem") }
    var clientCertificate: String { path("client.pem") }
    var clientKey: String { path("client.key") }

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rapidflow-nomad-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try await openssl(["req", "-x509"] + newKey + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=rapidflow test CA"])
        try "subjectAltName=IP:127.0.0.1,DNS:server.global.nomad\n".write(to: url("agent.ext"), atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(to: url("client.ext"), atomically: true, encoding: .utf8)
        for name in ["agent", "client"] {
            try await openssl(["req"] + newKey + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name)"])
            try await openssl([
                "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
                "-extfile", "\(name).ext", "-out", "\(name).pem",
            ])
        }
    }

    /// The agent's side: its certificate, and client certificates required and checked against the CA.
    func agentContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(path("agent.pem")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: path("agent.key"), format: .pem))
        )
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
        configuration.certificateVerification = .noHostnameVerification
        return try NIOSSLContext(configuration: configuration)
    }

    private func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
    private func path(_ name: String) -> String { url(name).path }

    /// Key generation takes a while under load: it runs without holding a concurrency thread.
    private func openssl(_ arguments: [String]) async throws {
        let quoted = arguments.map { "'\($0)'" }.joined(separator: " ")
        try await TestFiles.shell("cd '\(directory.path)' && openssl \(quoted)")
    }
}
