import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowRunner
import RapidFlowTestSupport
import Testing

/// The faults an adversarial run found, each reproduced: runner input that crashed the
/// service, output lost under the cap, escaping processes, masking gaps, a full disk twice.
@Suite("Faults")
struct FaultTests {
    // MARK: - Runner input

    /// A "runner" that keeps the token it is given on standard input where the test can read
    /// it, then stays silent: the test plays the runner (or a step that stole its token).
    static func withTokenKeepingRunner<T>(_ body: (TestServer, _ tokenFile: String) async throws -> T) async throws -> T {
        let directory = TestFiles.temporaryDirectory()
        let script = "\(directory)/token-keeping-runner"
        try "#!/bin/bash\ncat > \(directory)/token\nexec sleep 300\n".write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        return try await TestServer.with(configure: {
            $0.executor = .runner
            $0.runnerBinary = script
            $0.killGracePeriod = .seconds(1)
        }) { try await body($0, "\(directory)/token") }
    }

    /// Starts a one-step job and waits for the token its runner was handed; returns the job and
    /// the runner's `Authorization` header.
    static func jobWithRunnerToken(_ server: TestServer, tokenFile: String) async throws -> (Int, [(String, String)]) {
        let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo never\n"))
        try await eventually("the runner of job \(jobID) is handed its token") {
            (try? String(contentsOfFile: tokenFile, encoding: .utf8))?.isEmpty == false
        }
        let token = try #require(try? String(contentsOfFile: tokenFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)
        return (jobID, [("Authorization", "Bearer \(token)")])
    }

    @Test func randomBadNumbersOnEveryRunnerRouteAreRefusedAndTheServiceLives() async throws {
        try await Self.withTokenKeepingRunner { server, tokenFile in
            let (jobID, auth) = try await Self.jobWithRunnerToken(server, tokenFile: tokenFile)
            let next = try await server.request(.GET, "/runner/jobs/\(jobID)/next?wait=5", headers: auth)
            let stepID = try #require(try next.decoded(API.RunnerNext.self).step?.stepID, "\(next.text)")

            var generator = SeededGenerator(seed: 1300)
            let fixed = ["1e300", "-1e300", "1.7976931348623157e308", "256", "-1", "1.5", "9223372036854775808", "-9223372036854775809",
                         "18446744073709551616", "1e-300", "0.0000001", "3.0000000001", "\"1\"", "true", "[]", "{}"]
            let random = (0..<60).map { _ -> String in
                let exponent = Int.random(in: -320...308, using: &generator)
                let sign = Bool.random(using: &generator) ? "-" : ""
                return "\(sign)\(Int.random(in: 1...9, using: &generator)).\(Int.random(in: 0...999_999, using: &generator))e\(exponent)"
            }
            for number in fixed + random {
                let reply = try await server.request(
                    .POST, "/runner/jobs/\(jobID)/steps/\(stepID)/exit", body: "{\"exit_code\": \(number)}", headers: auth)
                // A value that is really a whole number from 0 to 255 is an exit code; anything else is a 400.
                if let value = Double(number), value.rounded() == value, (0...255).contains(value) { continue }
                #expect(reply.status == 400 && reply.errorCode == "invalid_request", "exit_code \(number): \(reply.status) \(reply.text)")
            }
            let offsets = ["-1", "1e3", "99999999999999999999", "9223372036854775807", "abc", "", " 1", "0x10"]
                + (0..<20).map { _ in String(Int.random(in: Int.min...(-1), using: &generator)) }
            for offset in offsets {
                let reply = try await server.request(
                    .POST, "/runner/jobs/\(jobID)/steps/\(stepID)/output", body: "forged\n", headers: auth + [("RapidFlow-Offset", offset)])
                #expect(reply.status == 400, "offset \(offset.debugDescription): \(reply.status) \(reply.text)")
            }
            for wait in ["-1", "61", "1e9", "99999999999999999999", "x"] {
                for route in ["next", "steps/\(stepID)/signal"] {
                    let reply = try await server.request(.GET, "/runner/jobs/\(jobID)/\(route)?wait=\(wait)", headers: auth)
                    #expect(reply.status == 400, "\(route) wait=\(wait): \(reply.text)")
                }
            }
            for id in ["0", "-1", "99999999999999999999", "1e300", "9223372036854775808"] {
                let reply = try await server.request(.GET, "/runner/jobs/\(jobID)/steps/\(id)/signal?wait=0", headers: auth)
                #expect(reply.status == 400 || reply.status == 401, "step \(id): \(reply.text)")
                let job = try await server.request(.GET, "/runner/jobs/\(id)/next?wait=0", headers: auth)
                #expect(job.status == 400 || job.status == 401, "job \(id): \(job.text)")
            }
            #expect(try await server.get("/health").status == 200, "the service still answers")
            #expect(!(try await server.get("/jobs/\(jobID)/logs").text.contains("forged")), "no refused output was stored")
            // The step still ends, through the real route, and the job with it.
            let end = try await server.request(.POST, "/runner/jobs/\(jobID)/steps/\(stepID)/exit", body: "{\"exit_code\": 3}", headers: auth)
            #expect(end.status == 200, "\(end.text)")
            let job = try await server.waitForJob(jobID)
            #expect(job.status == .failed)
        }
    }

    @Test func aStepCannotReadItsRunnersToken() async throws {
        try await TestServer.with(configure: {
            $0.executor = .runner
            $0.runnerBinary = ServiceProcess.binary
        }) { server in
            // What the attacker's step tried: the runner's environment and command line.
            let config = """
                steps:
                  - (tr '\\0' '\\n' < /proc/$PPID/environ; tr '\\0' ' ' < /proc/$PPID/cmdline) > seen || true; grep -cE '[0-9a-f]{64}|TOKEN' seen || echo "no token in sight"; grep -c -- '--token-file -' seen
                """
            let jobID = try await server.trigger(try await server.createPipeline(config: config))
            let job = try await server.waitForJob(jobID)
            let output = try await server.logs(jobID).build
            #expect(job.status == .success, "\(output)")
            #expect(output.hasPrefix("0\nno token in sight\n1\n"), "the step saw its runner's process but no token: \(output)")
        }
    }

    @Test(arguments: [false, true]) func stepsRunAsTheStepUserAndCannotReadTheProcessThatStartedThem(throughRunner: Bool) async throws {
        try await TestServer.with(configure: {
            $0.stepUser = "nobody"
            if throughRunner {
                $0.executor = .runner
                $0.runnerBinary = ServiceProcess.binary
            } else {
                $0.executor = .shell
            }
        }) { server in
            let config = """
                steps:
                  - id -un; echo kept > in-the-workspace; cat in-the-workspace; (cat /proc/$PPID/environ /proc/$PPID/mem > /dev/null 2>&1 && echo "read its parent") || echo "its parent is hidden"
                  - cat in-the-workspace
                """
            let jobID = try await server.trigger(try await server.createPipeline(config: config))
            let job = try await server.waitForJob(jobID)
            let output = try await server.logs(jobID).build
            #expect(job.status == .success, "\(output)")
            #expect(output == "nobody\nkept\nits parent is hidden\nkept\n", "\(output)")
        }
    }

    // MARK: - Output under the cap

    static func stepOutputs(_ server: TestServer, _ jobID: Int) async throws -> [(id: Int, output: Data)] {
        try await server.logs(jobID).logs.map { ($0.stepID, Data($0.output.utf8)) }
    }

    @Test func outputUnderTheCapIsStoredAsPrintedWithNoMarker() async throws {
        try await TestServer.with(configure: { $0.stepOutputCap = 1 << 20 }) { server in
            let config = """
                steps:
                  - head -c 614400 /dev/zero | tr '\\0' 'a'
                  - head -c 1048576 /dev/zero | tr '\\0' 'b'
                  - head -c 1048577 /dev/zero | tr '\\0' 'c'
                """
            let jobID = try await server.trigger(try await server.createPipeline(config: config))
            #expect(try await server.waitForJob(jobID).status == .success)
            let outputs = try await Self.stepOutputs(server, jobID)
            #expect(outputs.map(\.output.count) == [614_400, 1_048_576, 1_048_577], "passed by one byte, nothing is cut yet")
            #expect(outputs[0].output == Data(repeating: UInt8(ascii: "a"), count: 614_400))
            #expect(outputs[1].output == Data(repeating: UInt8(ascii: "b"), count: 1_048_576))
            #expect(outputs[2].output == Data(repeating: UInt8(ascii: "c"), count: 1_048_577))
        }
    }

    @Test func outputUnderTheCapIsStoredWhileTheStepRunsAndSurvivesAKill9() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        var service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--step-output-cap-mb", "1"])
        defer { service.kill(signal: SIGTERM) }
        let printed = 728_907
        // Numbered lines, so a lost or repeated piece shows; the last line has no newline.
        let config = "steps:\n  - (seq 1 200000 || true) | head -c \(printed); sleep 300\n"
        let jobID = try await service.client.trigger(try await service.client.createPipeline(config: config))
        let expected = Data((1...200_000).map { "\($0)\n" }.joined().utf8.prefix(printed))
        #expect(expected.count == printed)
        // Stored while the step still runs: a follower and the store see it before the step ends.
        var stored = Data()
        try await eventually(timeout: .seconds(60), "\(printed) bytes of job \(jobID) are stored") {
            stored = try await Self.stepOutputs(service.client, jobID).first?.output ?? Data()
            return stored.count >= printed
        }
        #expect(stored == expected, "stored \(stored.count) of \(printed) bytes while the step runs")
        #expect(try await service.client.job(jobID).status == .running)

        try await service.killNow()
        service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--step-output-cap-mb", "1"])
        let after = try await Self.stepOutputs(service.client, jobID).first?.output ?? Data()
        #expect(after.prefix(printed) == expected, "every printed byte is back after the crash, the last line too")
        #expect(String(decoding: after.dropFirst(printed), as: UTF8.self).contains("service stopped"))
    }

    // MARK: - Containment

    /// Whether a process runs whose command line starts with `name` (`exec -a name`): the
    /// escapee itself, not the step's shell whose script merely mentions it.
    static func escapeeRuns(_ name: String) -> Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.contains { entry in
            Int(entry) != nil && FileManager.default.contents(atPath: "/proc/\(entry)/cmdline").map { $0.starts(with: Data(name.utf8)) } == true
        }
    }

    /// Waits (bounded) until the escapee runs: a step prints before its background process has exec'd.
    static func waitForEscapee(_ name: String) async throws {
        try await eventually(timeout: .seconds(20), "the escapee \(name) runs") { escapeeRuns(name) }
        try #require(escapeeRuns(name), "the escapee \(name) started")
    }

    static func escapingStep(_ name: String, then rest: String) -> String {
        "steps:\n  - env -u RAPIDFLOW_STEP_MARKER setsid bash -c 'exec -a \(name) sleep 341' > /dev/null 2>&1 & \(rest)\n"
    }

    @Test func aProcessThatDropsItsMarkerAndItsSessionDiesWithTheStep() async throws {
        try #require(StepCgroups.root != nil, "this machine has a writable cgroup v2 hierarchy: \(StepCgroups.containment)")
        try await TestServer.with { server in
            // The step ends only once its escapee runs, so its end is what must take the escapee.
            let name = "rf-escapee-\(UUID().uuidString.prefix(8))"
            let waitForIt = "until grep -qsz '^\(name)' /proc/[0-9]*/cmdline; do sleep 0.05; done; echo left it"
            let jobID = try await server.trigger(try await server.createPipeline(config: Self.escapingStep(name, then: waitForIt)))
            #expect(try await server.waitForJob(jobID).status == .success)
            #expect(!Self.escapeeRuns(name), "the escapee ended with its step")

            // And on cancel.
            let cancelName = "rf-escapee-\(UUID().uuidString.prefix(8))"
            let cancelled = try await server.trigger(try await server.createPipeline(config: Self.escapingStep(cancelName, then: "echo started; sleep 300")))
            try await Self.waitForEscapee(cancelName)
            #expect(try await server.post("/jobs/\(cancelled)/cancel").decoded(API.CancelResult.self).status == .cancelled)
            #expect(!Self.escapeeRuns(cancelName), "the escapee ended with the cancel")
        }
    }

    @Test func aProcessThatDropsItsMarkerDiesInRecoveryAfterAKill9() async throws {
        try #require(StepCgroups.root != nil, "this machine has a writable cgroup v2 hierarchy: \(StepCgroups.containment)")
        let dataDirectory = TestFiles.temporaryDirectory()
        var service = try await ServiceProcess.start(dataDirectory: dataDirectory)
        defer { service.kill(signal: SIGTERM) }
        let name = "rf-escapee-\(UUID().uuidString.prefix(8))"
        let jobID = try await service.client.trigger(try await service.client.createPipeline(config: Self.escapingStep(name, then: "echo started; sleep 300")))
        try await Self.waitForEscapee(name)
        try await service.killNow()
        #expect(Self.escapeeRuns(name), "it outlives the service")
        service = try await ServiceProcess.start(dataDirectory: dataDirectory)
        #expect(!Self.escapeeRuns(name), "recovery ended it before the service answered")
        #expect(try await service.client.job(jobID).status == .failed)
    }

    // MARK: - Masking

    @Test func overlappingAndMultilineSecretsAreMaskedInOutputDetailsAndPipelines() async throws {
        try await TestServer.with { server in
            let config = """
                env:
                  A_TOKEN: token
                  B_TOKEN: token123
                  SSH_KEY: |
                    -----BEGIN KEY-----
                    first-line-of-the-key-material
                    second-line-of-the-key-material
                    -----END KEY-----
                  QUOTED_SECRET: 'it''s-a-quoted-secret'
                  ESCAPED_PASSWORD: "caf\\u00e9-escaped-password"
                steps:
                  - echo "$B_TOKEN $A_TOKEN"; printf '%s\\n' "$SSH_KEY" | sed -n 2p; echo "$QUOTED_SECRET $ESCAPED_PASSWORD"
                """
            let pipelineID = try await server.createPipeline(config: config)
            let jobID = try await server.trigger(pipelineID)
            #expect(try await server.waitForJob(jobID).status == .success)
            let output = try await server.logs(jobID).build
            #expect(output == "******** ********\n********\n******** ********\n", "\(output)")
            let secrets = ["token123", "first-line-of-the-key-material", "second-line-of-the-key-material", "it's-a-quoted-secret",
                           "it''s-a-quoted-secret", "café-escaped-password", "caf\\u00e9-escaped-password"]
            for path in ["/jobs/\(jobID)/details", "/pipelines/\(pipelineID)", "/pipelines"] {
                let text = try await server.get(path).text
                for secret in secrets { #expect(!text.contains(secret), "\(secret) in \(path)") }
                #expect(!text.contains(": token\\n"), "the short overlapped value in \(path)")
            }
            // The shown config is still the pipeline: the same keys and step.
            let shown = try await server.get("/pipelines/\(pipelineID)").decoded(API.Pipeline.self).config
            #expect(shown.contains("A_TOKEN") && shown.contains("SSH_KEY") && shown.contains("sed -n 2p"), "\(shown)")
        }
    }

    @Test func debugLogsCarryNoEnvValuesOrConfigs() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--log-level", "debug"])
        let marker = "value-only-in-the-config-\(UUID().uuidString.prefix(6))"
        let config = "env:\n  DEPLOY_TOKEN: \"\(marker)-secret\"\n  PLAIN: \"\(marker)-plain\"\nsteps:\n  - echo done\n"
        let jobID = try await service.client.trigger(
            try await service.client.createPipeline(config: config), API.TriggerRequest(env: ["EXTRA_PASSWORD": "\(marker)-extra"]))
        #expect(try await service.client.waitForJob(jobID).status == .success)
        service.kill(signal: SIGTERM)
        _ = await service.waitForExit(timeout: 15)
        let logs = try FileManager.default.contentsOfDirectory(atPath: dataDirectory).filter { $0.hasPrefix("service-") }
        let text = try logs.map { try String(contentsOfFile: "\(dataDirectory)/\($0)", encoding: .utf8) }.joined()
        #expect(text.contains("debug") || text.contains("info"), "the log was written at debug level")
        #expect(!text.contains(marker), "no env value or config in the service's log")
    }

    // MARK: - A full disk, twice

    @Test func twoDiskFullEpisodesInARowLeaveNoJobStuckAndARestartOnAFullDiskStarts() async throws {
        let mountPoint = TestFiles.temporaryDirectory()
        try await TestFiles.shell("mount -t tmpfs -o size=32m tmpfs \(mountPoint)")
        defer { TestFiles.shellNow("umount -l \(mountPoint)") }
        let arguments = ["--max-concurrent-jobs", "2", "--kill-grace-seconds", "1"]
        let logs = TestFiles.temporaryDirectory()
        var service = try await ServiceProcess.start(dataDirectory: mountPoint, arguments: arguments, logDirectory: logs)
        defer { service.kill(signal: SIGKILL) }
        let client = service.client
        var generator = SeededGenerator(seed: 2024)
        for episode in 1...2 {
            // A flood of a random size and shape, past what the disk holds.
            let bytes = Int.random(in: 30_000_000...60_000_000, using: &generator)
            let line = ["filling", "the disk with output", String(repeating: "x", count: Int.random(in: 1...300, using: &generator))].randomElement(using: &generator)!
            let flood = try await client.trigger(try await client.createPipeline(name: "flood-\(episode)", config: "steps:\n  - yes '\(line)' | head -c \(bytes)\n  - echo never\n"))
            let job = try await client.waitForJob(flood, timeout: .seconds(90))
            #expect(job.status == .failed, "episode \(episode)")
            let output = try await client.logs(flood).build
            #expect(output.contains("disk is full"), "episode \(episode) says why: \(output.suffix(300))")
            let disk = try await TestFiles.shell("df -k \(mountPoint); ls -la \(mountPoint)")
            #expect(output.contains("was removed to free the disk"), "episode \(episode): \(output.suffix(300)) \(disk)")
            // Afterwards the service still runs jobs to the end.
            let after = try await client.trigger(try await client.createPipeline(name: "after-\(episode)", config: "steps:\n  - echo after \(episode)\n"))
            let afterJob = try await client.waitForJob(after, timeout: .seconds(60))
            let afterLogs = try await client.get("/jobs/\(after)/logs").text
            #expect(afterJob.status == .success, "episode \(episode): \(afterLogs)")
        }

        // Now fill the disk to the last byte from outside: nothing can be stored.
        let running = try await client.trigger(try await client.createPipeline(name: "long", config: "steps:\n  - echo started; sleep 300\n"))
        try await client.waitForOutput(running, containing: "started")
        _ = try? await TestFiles.shell("dd if=/dev/zero of=\(mountPoint)/filler bs=1M 2>/dev/null || true; dd if=/dev/zero of=\(mountPoint)/filler2 bs=4k 2>/dev/null || true")
        // Writes use up the reserve that was freed for them, then are refused with a 507.
        var statuses: [Int] = []
        let big = String(repeating: "y", count: 60_000)
        let bulky = "steps:\n" + String(repeating: "  - echo \(big)\n", count: 14)
        for attempt in 0..<20 where !statuses.contains(507) {
            let reply = try await client.post("/pipelines", json: ["name": "full-\(attempt)", "config": bulky])
            statuses.append(reply.status)
            #expect(reply.status == 200 || (reply.status == 507 && reply.errorCode == "insufficient_storage"), "\(reply.text.prefix(300))")
        }
        #expect(statuses.contains(507), "a write that cannot fit is answered 507: \(statuses)")
        let cancel = try await client.post("/jobs/\(running)/cancel")
        #expect(cancel.status == 200 || cancel.status == 507, "\(cancel.text)")
        #expect(try await client.get("/health").status == 200)

        // A restart on the full disk still starts and answers; once space is freed, nothing stays running.
        try await service.killNow()
        service = try await ServiceProcess.start(dataDirectory: mountPoint, arguments: arguments, logDirectory: logs)
        #expect(try await service.client.get("/health").status == 200)
        #expect(try await service.client.get("/jobs/\(running)").status == 200, "what was stored stays readable")
        try await TestFiles.shell("rm -f \(mountPoint)/filler \(mountPoint)/filler2")
        func jobs(_ status: JobStatus) async throws -> [API.Job] {
            try await service.client.get("/jobs?status=\(status.rawValue)").decoded([API.Job].self)
        }
        try await eventually(timeout: .seconds(60), "no job is running") { try await jobs(.running).isEmpty }
        #expect(try await jobs(.running).isEmpty, "every job reached a final status")
        #expect(try await jobs(.pending).isEmpty)
        let last = try await service.client.trigger(try await service.client.createPipeline(name: "last", config: "steps:\n  - echo resumed\n"))
        #expect(try await service.client.waitForJob(last).status == .success)
        // The reserve is made again by the next store calls once there is room (tried at most once a second).
        let reserve = "\(mountPoint)/.rapidflow-disk-reserve"
        try await eventually(timeout: .seconds(30), "the disk reserve is made again") {
            if FileManager.default.fileExists(atPath: reserve) { return true }
            _ = try await service.client.get("/jobs?limit=1")
            return false
        }
        #expect(FileManager.default.fileExists(atPath: reserve), "the reserve is back once there is room")
    }
}

/// A small deterministic generator (SplitMix64), so a failing random case can be run again.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
