import Foundation
import RapidFlowRunner
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// The client subcommands of the real `rapidflow` binary against a real service.
@Suite("Command-line client", .serialized)
struct CLITests {
    /// Runs `rapidflow <arguments>` with its output in files, without blocking a Swift
    /// concurrency thread while it runs.
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func cli(_ arguments: [String], server: TestServer, token: String? = nil, input: String? = nil) async throws -> Run {
        let directory = TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let out = "\(directory)/out", err = "\(directory)/err"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        var environment = ProcessInfo.processInfo.environment
        environment["RAPIDFLOW_SERVER"] = server.baseURL
        environment["RAPIDFLOW_API_TOKEN"] = token
        var inputPath: String?
        if let input {
            inputPath = "\(directory)/in"
            FileManager.default.createFile(atPath: inputPath!, contents: Data(input.utf8))
        }
        let status = try await Command.run(ServiceProcess.binary, arguments, environment: environment, output: out, error: err, input: inputPath)
        return Run(
            status: status, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// What `--json` printed: the API's response type the command read.
    static func decoded<Payload: Decodable>(_ type: Payload.Type, _ run: Run) throws -> Payload {
        try JSONDecoder().decode(type, from: Data(run.stdout.utf8))
    }

    @Test func pipelineSubcommandsCreateListShowUpdateAndDelete() async throws {
        try await TestServer.with { server in
            let directory = TestFiles.temporaryDirectory()
            let file = "\(directory)/pipeline.yml"
            try "steps:\n  - echo one\n".write(toFile: file, atomically: true, encoding: .utf8)

            let created = try await Self.cli(["pipeline", "create", "--name", "cli-demo", "--file", file], server: server)
            #expect(created.status == 0, "\(created.stderr)")
            #expect(created.stdout == "pipeline 1 created\n")

            let list = try await Self.cli(["pipeline", "list"], server: server)
            #expect(list.stdout.contains("cli-demo"))
            let listed = try Self.decoded([API.Pipeline].self, try await Self.cli(["pipeline", "list", "--json"], server: server))
            #expect(listed.map(\.name) == ["cli-demo"])

            let shown = try await Self.cli(["pipeline", "show", "cli-demo"], server: server)
            #expect(shown.stdout.contains("echo one"))

            // A config from standard input replaces the stored one; the name is kept.
            let updated = try await Self.cli(["pipeline", "update", "1", "--file", "-"], server: server, input: "steps:\n  - echo two\n")
            #expect(updated.status == 0, "\(updated.stderr)")
            let stored = try await server.get("/pipelines/1").decoded(API.Pipeline.self)
            #expect(stored.config == "steps:\n  - echo two\n")
            #expect(stored.name == "cli-demo")

            // A bad config is refused with the service's message, and nothing changes.
            let bad = try await Self.cli(["pipeline", "update", "1", "--file", "-"], server: server, input: "steps: 12\n")
            #expect(bad.status != 0)
            #expect(bad.stderr.hasPrefix("error: "))
            #expect(bad.stderr.contains("invalid_config"))
            #expect(try await server.get("/pipelines/1").decoded(API.Pipeline.self).config == "steps:\n  - echo two\n")

            let deleted = try await Self.cli(["pipeline", "delete", "cli-demo"], server: server)
            #expect(deleted.status == 0)
            #expect(try await server.get("/pipelines/1").status == 404)
            let missing = try await Self.cli(["pipeline", "show", "cli-demo"], server: server)
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("no pipeline is named 'cli-demo'"))
        }
    }

    @Test func logsFollowReceivesTheWholeOutputOfALiveJob() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(
                config: "steps:\n  - for i in $(seq 1 40); do echo \"line $i\"; sleep 0.02; done\n  - echo tail >&2\n")
            let run = try await Self.cli(["run", String(pipeline), "--env", "GREETING=hi"], server: server)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.hasPrefix("job 1 created"))
            try await server.waitForOutput(1, containing: "line 1")

            // Started while the job runs; ends by itself when the job ends.
            let followed = try await Self.cli(["logs", "1", "--follow"], server: server)
            #expect(followed.status == 0)
            var expected = "=== Step 1 (bash) ===\n"
            for index in 1...40 { expected += "line \(index)\n" }
            expected += "\n=== Step 2 (bash) ===\ntail\n\n=== Build completed ===\n"
            #expect(followed.stdout == expected)

            // Piped output has no colour codes; --since starts after a step.
            #expect(!followed.stdout.contains("\u{1B}["))
            let since = try await Self.cli(["logs", "1", "--since", "1"], server: server)
            #expect(since.stdout == "=== Step 2 (bash) ===\ntail\n\n=== Build completed ===\n")

            let details = try await server.get("/jobs/1/details").decoded(API.JobDetails.self)
            #expect(details.environments.contains { $0.key == "GREETING" && $0.value == "hi" })
        }
    }

    @Test func waitExitsZeroOnSuccessOneOnFailureTwoWhenCancelled() async throws {
        try await TestServer.with { server in
            let passing = try await server.createPipeline(name: "passing", config: "steps:\n  - sleep 0.3\n")
            let failing = try await server.createPipeline(name: "failing", config: "steps:\n  - exit 3\n")
            let slow = try await server.createPipeline(name: "slow", config: "steps:\n  - sleep 30\n")

            let success = try await server.trigger(passing)
            let waited = try await Self.cli(["wait", String(success)], server: server)
            #expect(waited.status == 0)
            #expect(waited.stdout.hasPrefix("job \(success) success after"))

            let failure = try await server.trigger(failing)
            #expect(try await Self.cli(["wait", String(failure)], server: server).status == 1)

            let cancelled = try await server.trigger(slow)
            try await server.waitForStatus(cancelled, .running)
            let timedOut = try await Self.cli(["wait", String(cancelled), "--timeout", "0.5"], server: server)
            #expect(timedOut.status == 124)
            #expect(timedOut.stderr.contains("still running"))
            async let waiting = Self.cli(["wait", String(cancelled), "--json"], server: server)
            try await Task.sleep(for: .milliseconds(300))
            let cancel = try await Self.cli(["cancel", String(cancelled)], server: server)
            #expect(cancel.stdout == "job \(cancelled) cancelled\n")
            let result = try await waiting
            #expect(result.status == 2)
            #expect(try Self.decoded(API.JobStatusReport.self, result).status == .cancelled)
        }
    }

    @Test func jobsStatusRetryKillAndCleanup() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(name: "table", config: "steps:\n  - echo built\n  - exit 1\n")
            let first = try await server.trigger(pipeline)
            try await server.waitForJob(first)

            let table = try await Self.cli(["jobs"], server: server)
            let lines = table.stdout.split(separator: "\n")
            #expect(lines.first?.hasPrefix("ID  KIND") == true)
            #expect(lines.count == 2 && lines[1].contains("table") && lines[1].contains("failed"))
            let filtered = try Self.decoded([API.Job].self, try await Self.cli(["jobs", "--status", "success", "--json"], server: server))
            #expect(filtered.isEmpty)
            let badFilter = try await Self.cli(["jobs", "--status", "sideways"], server: server)
            #expect(badFilter.status != 0)
            #expect(badFilter.stderr.contains("query parameter 'status' must be one of"))

            let status = try await Self.cli(["status", String(first)], server: server)
            #expect(status.stdout.contains("job \(first)  failed"))
            #expect(status.stdout.contains("skipped") == false)
            let statusJSON = try Self.decoded(API.JobStatusReport.self, try await Self.cli(["status", String(first), "--json"], server: server))
            #expect(statusJSON.steps.count == 2)

            let retry = try await Self.cli(["retry", String(first), "--json"], server: server)
            let retried = try Self.decoded(API.Job.self, retry)
            #expect(retried.retryOf == first)
            let second = retried.id
            try await server.waitForJob(second)

            let killTarget = try await server.trigger(try await server.createPipeline(name: "long", config: "steps:\n  - sleep 30\n"))
            try await server.waitForStatus(killTarget, .running)
            let killed = try await Self.cli(["kill", String(killTarget)], server: server)
            #expect(killed.stdout == "job \(killTarget) cancelled\n")
            #expect(try await server.job(killTarget).status == .cancelled)

            let cleanup = try await Self.cli(["cleanup", String(first)], server: server)
            #expect(cleanup.status == 0, "\(cleanup.stderr)")
            #expect(cleanup.stdout.hasPrefix("job \(first) cleaned up: workspace removed"))
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/workspaces/job-\(first)"))

            let unknown = try await Self.cli(["status", "999"], server: server)
            #expect(unknown.status == 1)
            #expect(unknown.stderr == "error: job 999 does not exist (job_not_found)\n")
        }
    }

    @Test func submitSendsAnImageJobFromFlagsAndFile() async throws {
        try await TestServer.with { server in
            let directory = TestFiles.temporaryDirectory()
            let file = "\(directory)/job.json"
            try #"{"owner": "team", "repo_url": "file:///nonexistent/repo.git", "image_tags": ["from-file"], "registry_url": "127.0.0.1:5055/team/app"}"#
                .write(toFile: file, atomically: true, encoding: .utf8)
            let submitted = try await Self.cli(
                ["submit", "--file", file, "--tag", "1.0", "--test-command", "true", "--git-ref", "main", "--json"], server: server)
            #expect(submitted.status == 0, "\(submitted.stderr)")
            let reply = try Self.decoded(API.SubmittedJob.self, submitted)
            let id = try #require(Int(reply.jobID))
            let steps = try await server.get("/jobs/\(id)/status").decoded(API.JobStatusReport.self).steps
            // Flags win over the file: one tag (one push), one test command.
            #expect(steps.filter { $0.phase == .publish }.count == 1)
            #expect(steps.filter { $0.phase == .test }.count == 1)

            let bad = try await Self.cli(["submit", "--owner", "team", "--repo-url", "not a url"], server: server)
            #expect(bad.status == 1)
            #expect(bad.stderr.hasPrefix("error: "))
            #expect(bad.stderr.contains("repo_url"))
            #expect(try await server.get("/jobs").decoded([API.Job].self).count == 1)
        }
    }

    @Test func tokenAndUnreachableServiceErrors() async throws {
        try await TestServer.with(configure: { $0.apiToken = "cli-token-123" }) { server in
            let refused = try await Self.cli(["jobs"], server: server)
            #expect(refused.status == 1)
            // A client user is told the client's way to give a token, not the HTTP header.
            #expect(refused.stderr == "error: the service needs a token: pass --token or set RAPIDFLOW_API_TOKEN (unauthorized)\n")
            let wrong = try await Self.cli(["jobs"], server: server, token: "not-the-token")
            #expect(wrong.status == 1)
            #expect(wrong.stderr == "error: the service refused the token: check --token or RAPIDFLOW_API_TOKEN (unauthorized)\n")
            #expect(!wrong.stderr.contains("not-the-token") && !wrong.stderr.contains("cli-token-123"))
            let allowed = try await Self.cli(["jobs"], server: server, token: "cli-token-123")
            #expect(allowed.status == 0)
            #expect(allowed.stdout == "no jobs\n")
            let flag = try await Self.cli(["pipeline", "list", "--token", "cli-token-123"], server: server)
            #expect(flag.stdout == "no pipelines\n")
        }
        let nowhere = try await Self.cli(
            ["jobs", "--server", "http://127.0.0.1:9"], server: TestServer(port: 9, dataDirectory: "/tmp", service: nil))
        #expect(nowhere.status == 1)
        #expect(nowhere.stderr == "error: cannot reach the service at http://127.0.0.1:9: connection refused\n")
    }

    /// `pipeline create -f FILE` takes the name from the config when `--name` is absent, and
    /// `jobs --pipeline` takes a name as every other command does.
    @Test func namesComeFromTheConfigAndAreTakenWhereIdsAre() async throws {
        try await TestServer.with { server in
            let directory = TestFiles.temporaryDirectory()
            let named = "\(directory)/named.yml", unnamed = "\(directory)/unnamed.yml"
            try "name: from-yaml\nsteps:\n  - echo one\n".write(toFile: named, atomically: true, encoding: .utf8)
            try "steps:\n  - echo one\n".write(toFile: unnamed, atomically: true, encoding: .utf8)

            let created = try await Self.cli(["pipeline", "create", "-f", named], server: server)
            #expect(created.status == 0, "\(created.stderr)")
            #expect(created.stdout == "pipeline 1 created\n")
            #expect(try await server.get("/pipelines/1").decoded(API.Pipeline.self).name == "from-yaml")

            let refused = try await Self.cli(["pipeline", "create", "-f", unnamed], server: server)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("--name"), "\(refused.stderr)")
            let broken = try await Self.cli(["pipeline", "create", "-f", "-"], server: server, input: "name: x\nsteps: []\n")
            #expect(broken.status == 1)
            #expect(broken.stderr.contains("steps"), "\(broken.stderr)")
            #expect(try await server.get("/pipelines").decoded([API.Pipeline].self).count == 1, "nothing else was stored")

            let other = try await server.createPipeline(name: "other", config: "steps:\n  - echo two\n")
            let mine = try await server.trigger(1)
            _ = try await server.trigger(other)
            let listed = try await Self.cli(["jobs", "--pipeline", "from-yaml", "--json"], server: server)
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(try Self.decoded([API.Job].self, listed).map(\.id) == [mine])
            let unknown = try await Self.cli(["jobs", "--pipeline", "nope"], server: server)
            #expect(unknown.status == 1)
            #expect(unknown.stderr == "error: no pipeline is named 'nope'\n")
        }
    }

    /// `secret set` reads the value from standard input or a file, never an argument; `list`
    /// shows no value; `--pipeline` takes a name; `rm` deletes one scope's secret.
    @Test func secretSubcommandsSetListAndRemoveWithoutShowingValues() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(name: "deploy", config: "steps:\n  - echo hi\n")
            let fromStdin = "stdin-\(UUID().uuidString.prefix(12))", fromFile = "file-\(UUID().uuidString.prefix(12))"

            let piped = try await Self.cli(["secret", "set", "DEPLOY_TOKEN"], server: server, input: fromStdin + "\n")
            #expect(piped.status == 0, "\(piped.stderr)")
            #expect(piped.stdout == "secret DEPLOY_TOKEN set (global)\n")
            #expect(!piped.stdout.contains(fromStdin) && !piped.stderr.contains(fromStdin))

            let directory = TestFiles.temporaryDirectory()
            let file = "\(directory)/value"
            try (fromFile + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let filed = try await Self.cli(["secret", "set", "DEPLOY_TOKEN", "--pipeline", "deploy", "--value-file", file], server: server)
            #expect(filed.status == 0, "\(filed.stderr)")
            #expect(filed.stdout == "secret DEPLOY_TOKEN set (pipeline \(pipeline))\n")
            let owned = try await Self.cli(["secret", "set", "NPM_TOKEN", "--owner", "team", "--json"], server: server, input: "npm-value-1234")
            #expect(try Self.decoded(API.Secret.self, owned).scope == .owner("team"))

            // The value reached the service as given, its one trailing newline dropped.
            let job = try await server.trigger(
                try await server.createPipeline(
                    name: "reader", config: "secrets: [DEPLOY_TOKEN]\nsteps:\n  - test \"${#DEPLOY_TOKEN}\" = \(fromStdin.utf8.count)\n"))
            #expect(try await server.waitForJob(job).status == .success)

            let list = try await Self.cli(["secret", "list"], server: server)
            #expect(list.status == 0, "\(list.stderr)")
            let lines = list.stdout.split(separator: "\n")
            #expect(lines.first?.hasPrefix("NAME") == true && lines.first?.contains("LAST USED") == true)
            #expect(lines.count == 4)
            #expect(lines.contains { $0.contains("DEPLOY_TOKEN") && $0.contains("global") && $0.contains("(job \(job))") })
            #expect(lines.contains { $0.contains("DEPLOY_TOKEN") && $0.contains("pipeline \(pipeline)") })
            #expect(lines.contains { $0.contains("NPM_TOKEN") && $0.contains("owner team") })
            for value in [fromStdin, fromFile, "npm-value-1234"] {
                #expect(!list.stdout.contains(value))
            }
            let scoped = try Self.decoded([API.Secret].self, try await Self.cli(["secret", "list", "--pipeline", "deploy", "--json"], server: server))
            #expect(scoped.map(\.scope) == [.pipeline(pipeline)])

            // No value ever comes from an argument: the option does not exist, nothing is stored.
            let argument = try await Self.cli(["secret", "set", "ARGUMENT_TOKEN", "--value", "argument-value-99"], server: server)
            #expect(argument.status != 0)
            #expect(argument.stderr.contains("Unknown option '--value'"), "\(argument.stderr)")
            #expect(try await server.get("/secrets/ARGUMENT_TOKEN").status == 404)

            // The service's refusals are its message, and a non-zero exit.
            let badName = try await Self.cli(["secret", "set", "lower"], server: server, input: "v-123456")
            #expect(badName.status == 1)
            #expect(badName.stderr.hasPrefix("error: secret name 'lower' must be"), "\(badName.stderr)")
            #expect(badName.stderr.hasSuffix("(invalid_secret)\n"))
            let spaced = try await Self.cli(["secret", "set", "BAD NAME"], server: server, input: "v-123456")
            #expect(spaced.status == 1 && spaced.stderr.hasPrefix("error: secret name 'BAD NAME' must be"), "\(spaced.stderr)")
            let empty = try await Self.cli(["secret", "set", "EMPTY_TOKEN"], server: server, input: "")
            #expect(empty.status == 1 && empty.stderr.contains("'value' is empty"), "\(empty.stderr)")
            let both = try await Self.cli(["secret", "list", "--pipeline", "deploy", "--owner", "team"], server: server)
            #expect(both.status != 0 && both.stderr.contains("at most one of --pipeline and --owner"), "\(both.stderr)")

            let removed = try await Self.cli(["secret", "rm", "DEPLOY_TOKEN", "--pipeline", "deploy"], server: server)
            #expect(removed.status == 0, "\(removed.stderr)")
            #expect(removed.stdout == "secret DEPLOY_TOKEN deleted (pipeline \(pipeline))\n")
            #expect(try await server.get("/secrets/DEPLOY_TOKEN?pipeline_id=\(pipeline)").status == 404)
            #expect(try await server.get("/secrets/DEPLOY_TOKEN").status == 200, "the global one stays")
            let again = try await Self.cli(["secret", "rm", "DEPLOY_TOKEN", "--pipeline", "deploy"], server: server)
            #expect(again.status == 1)
            #expect(again.stderr == "error: secret 'DEPLOY_TOKEN' does not exist in pipeline \(pipeline)'s scope (secret_not_found)\n")
            let unknownPipeline = try await Self.cli(["secret", "rm", "DEPLOY_TOKEN", "--pipeline", "nope"], server: server)
            #expect(unknownPipeline.stderr == "error: no pipeline is named 'nope'\n")
        }
    }

    /// `rapidflow status 1 | head -3`: the reader goes away and the client ends quietly, with
    /// no crash, no backtrace and no error line. Here the output's reading end is closed before
    /// the client starts, so every write meets a closed pipe.
    @Test func aClosedOutputEndsTheClientQuietly() async throws {
        try await TestServer.with { server in
            let job = try await server.trigger(try await server.createPipeline(config: "steps:\n  - seq 1 20000\n"))
            try await server.waitForJob(job)
            for arguments in [["status", "\(job)"], ["logs", "\(job)"], ["jobs"], ["status", "\(job)", "--json"]] {
                let directory = TestFiles.temporaryDirectory()
                let err = "\(directory)/err"
                FileManager.default.createFile(atPath: err, contents: nil)
                let output = Pipe()
                try output.fileHandleForReading.close()
                let process = Process()
                process.executableURL = URL(fileURLWithPath: ServiceProcess.binary)
                process.arguments = arguments + ["--server", server.baseURL]
                process.standardOutput = output.fileHandleForWriting
                process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
                let status: Int32 = try await withCheckedThrowingContinuation { continuation in
                    process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
                    do { try ProcessSpawning.run(process) } catch { continuation.resume(throwing: error) }
                }
                let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
                #expect(process.terminationReason == .exit && status == 0, "\(arguments): \(process.terminationReason) \(status)")
                #expect(stderr.isEmpty, "\(arguments): \(stderr.prefix(500))")
            }
        }
    }

    @Test func artifactsListsAndDownloadsAJobsFiles() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(
                config: "artifacts:\n  paths: [\"dist/\", \"~/note.txt\"]\nsteps:\n  - mkdir -p dist/sub && echo one > dist/a.txt && echo two > dist/sub/b.txt && echo three > ~/note.txt\n")
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .success)
            let listed = try await Self.cli(["artifacts", String(job)], server: server)
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stdout.contains("dist/a.txt") && listed.stdout.contains("dist/sub/b.txt") && listed.stdout.contains("~/note.txt"), "\(listed.stdout)")
            let folder = TestFiles.temporaryDirectory()
            let saved = try await Self.cli(["artifacts", String(job), "--download", folder], server: server)
            #expect(saved.status == 0, "\(saved.stderr)")
            #expect(try String(contentsOfFile: "\(folder)/dist/sub/b.txt", encoding: .utf8) == "two\n")
            #expect(try String(contentsOfFile: "\(folder)/~/note.txt", encoding: .utf8) == "three\n")
            let missing = try await Self.cli(["artifacts", "424242"], server: server)
            #expect(missing.status != 0 && missing.stderr.contains("424242"), "\(missing.stderr)")
        }
    }

    @Test func hookAndWebhookSubcommandsSetUpListAndRemove() async throws {
        try await TestServer.with { server in
            let created = try await Self.cli(["hook", "create", "--name", "git-server", "--forge", "git"], server: server)
            #expect(created.status == 0, "\(created.stderr)")
            #expect(created.stdout.hasPrefix("whsec_") && created.stderr.contains("\(server.baseURL)/hooks/git"), "\(created.stdout) \(created.stderr)")
            let hooks = try await Self.cli(["hook", "list"], server: server)
            #expect(hooks.stdout.contains("git-server") && hooks.stdout.contains("/hooks/git") && !hooks.stdout.contains("whsec_"), "\(hooks.stdout)")
            let bad = try await Self.cli(["hook", "create", "--name", "x", "--forge", "svn"], server: server)
            #expect(bad.status != 0 && bad.stderr.contains("--forge"), "\(bad.stderr)")

            let webhook = try await Self.cli(
                ["webhook", "create", "http://127.0.0.1:9/never", "--event", "job.created", "--event", "job.finished"], server: server)
            #expect(webhook.status == 0 && webhook.stdout.hasPrefix("whsec_"), "\(webhook.stderr)")
            let listed = try await Self.cli(["webhook", "list", "--json"], server: server)
            let webhooks = try Self.decoded([API.Webhook].self, listed)
            #expect(webhooks.map(\.events) == [["job.created", "job.finished"]])
            let refused = try await Self.cli(["webhook", "create", "http://127.0.0.1:9/x", "--event", "job.exploded"], server: server)
            #expect(refused.status == 1 && refused.stderr.contains("job.exploded"), "\(refused.stderr)")

            _ = try await server.trigger(try await server.createPipeline(config: "steps:\n  - \"true\"\n"))
            try await eventually("a delivery is listed") {
                try await Self.cli(["webhook", "deliveries", "\(webhooks[0].id)"], server: server).stdout.contains("job.created")
            }
            #expect(try await Self.cli(["webhook", "delete", "\(webhooks[0].id)"], server: server).status == 0)
            #expect(try await Self.cli(["hook", "delete", "git-server"], server: server).stdout == "hook 1 deleted\n")
            #expect(try await server.get("/hooks").decoded([API.Hook].self).isEmpty)
        }
    }
}
