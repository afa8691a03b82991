import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowTestSupport
import Testing

/// Each request type, encoded as the client sends it, is what the routes accept, and their
/// answers read back into the response types; bad bodies are refused with the code and the
/// message that name the field.
@Suite("API types over HTTP")
struct APITypesTests {
    /// `(body, code, message)` sent to `path`: each refused with a 400, nothing stored.
    static func expectRefusals(
        _ server: TestServer, _ path: String, method: HTTPMethod = .POST, headers: [(String, String)] = [],
        _ cases: [(String, String, String)]
    ) async throws {
        let before = try await server.counts()
        for (body, code, message) in cases {
            let reply = try await server.request(method, path, body: body, headers: headers)
            let error = try reply.envelope(API.Job.self).error
            #expect(reply.status == 400 && error == API.ErrorBody(code: code, message: message), "\(path) \(body): \(reply.text)")
        }
        #expect(try await server.counts() == before, "nothing was stored")
    }

    @Test func pipelineDefinitionsAndTriggersRoundTrip() async throws {
        try await TestServer.with { server in
            let definition = API.PipelineDefinition(name: "typed", config: "steps:\n  - echo \"$GREETING from $BRANCH_NAME\"\n")
            let created = try await server.request(.POST, "/pipelines", encoding: definition).decoded(API.Pipeline.self)
            #expect(created.name == "typed" && created.config == definition.config)
            let renamed = API.PipelineDefinition(name: "typed-2", config: "steps:\n  - echo \"$GREETING\"\n")
            let updated = try await server.request(.PUT, "/pipelines/\(created.id)", encoding: renamed).decoded(API.Pipeline.self)
            #expect(updated.id == created.id && updated.name == "typed-2" && updated.config == renamed.config)
            #expect(try await server.get("/pipelines").decoded([API.Pipeline].self) == [updated])

            let job = try await server.request(
                .POST, "/pipelines/\(created.id)/jobs", encoding: API.TriggerRequest(branch: "main", env: ["GREETING": "hi"])
            ).decoded(API.Job.self)
            #expect(job.pipelineID == created.id && job.branch == "main" && job.status == .pending)
            try await server.waitForJob(job.id)
            let details = try await server.get("/jobs/\(job.id)/details").decoded(API.JobDetails.self)
            #expect(details.environments.contains { $0.key == "GREETING" && $0.value == "hi" })
            #expect(try await server.get("/jobs/\(job.id)/logs").decoded(API.JobLogs.self).build == "hi\n")
            #expect(try await server.get("/jobs/\(job.id)/status").decoded(API.JobStatusReport.self).status == .success)

            try await Self.expectRefusals(server, "/pipelines", [
                (#"{"name": "p", "config": "steps: [x]", "colour": 1}"#, "invalid_request", "unknown field 'colour'; known fields: config, name, owner"),
                (#"{"name": 5, "config": "steps: [x]"}"#, "invalid_request", "field 'name' must be a string"),
                (#"{"name": true, "config": "steps: [x]"}"#, "invalid_request", "field 'name' must be a string"),
                (#"{"name": "p", "config": ["steps"]}"#, "invalid_request", "field 'config' must be a string"),
                (#"{"name": "p"}"#, "invalid_request", "missing field 'config'"),
                ("[1, 2]", "invalid_json", "request body must be a JSON object"),
                (#"{"name": "p", "config": "steps: [x]", "x": 01}"#, "invalid_json", "request body is not valid JSON"),
            ])
            try await Self.expectRefusals(server, "/pipelines/\(created.id)", method: .PUT, [
                (#"{"name": "p", "config": 1}"#, "invalid_request", "field 'config' must be a string"),
            ])
            try await Self.expectRefusals(server, "/pipelines/\(created.id)/jobs", [
                (#"{"branch": "main", "tag": "v1"}"#, "invalid_request", "unknown field 'tag'; known fields: branch, concurrency_group, env, on_conflict, priority"),
                (#"{"branch": 3}"#, "invalid_request", "field 'branch' must be a string"),
                (#"{"branch": true}"#, "invalid_request", "field 'branch' must be a string"),
                (#"{"env": {"A": 1}}"#, "invalid_request", "env value of 'A' must be a string"),
                (#"{"env": {"A": false}}"#, "invalid_request", "env value of 'A' must be a string"),
            ])
        }
    }

    @Test func imageJobRequestsRoundTrip() async throws {
        try await TestServer.with { server in
            let request = API.ImageJobRequest(
                owner: "team", repoURL: "https://git.example.invalid/team/app.git", gitRef: "main", testCommands: ["true"],
                testEntryPoint: false, timeoutSeconds: 30)
            let reply = try await server.request(.POST, "/jobs", encoding: request)
            let submitted = try reply.decoded(API.SubmittedJob.self)
            #expect(submitted.jobID == String(submitted.id) && reply.header("Location") == "/jobs/\(submitted.id)")
            let job = try await server.get("/jobs/\(submitted.id)").decoded(API.Job.self)
            #expect(job.kind == .image && job.repoName == request.repoURL && job.branch == "main" && job.pipelineID == nil)

            let base = #""owner": "team", "repo_url": "https://git.example.invalid/team/app.git""#
            try await Self.expectRefusals(server, "/jobs", [
                (#"{\#(base), "colour": "red"}"#, "invalid_request",
                 "unknown field 'colour'; known fields: cache_from, dockerfile_path, git_credentials_path, git_ref, image_tags, kill_timeout_seconds, owner, priority, registry_credentials_path, registry_credentials_secret, registry_url, repo_url, test_commands, test_entry_point, timeout_seconds"),
                (#"{"owner": 5, "repo_url": "u"}"#, "invalid_request", "field 'owner' must be a string"),
                (#"{\#(base), "test_commands": ["ok", 5]}"#, "invalid_request", "test_commands[1] must be a string"),
                (#"{\#(base), "test_entry_point": 1}"#, "invalid_request", "field 'test_entry_point' must be true or false"),
                (#"{\#(base), "test_entry_point": "true"}"#, "invalid_request", "field 'test_entry_point' must be true or false"),
                (#"{\#(base), "timeout_seconds": true}"#, "invalid_request", "field 'timeout_seconds' must be a number"),
                (#"{\#(base), "timeout_seconds": "30"}"#, "invalid_request", "field 'timeout_seconds' must be a number"),
            ])
        }
    }

    @Test func stepExitsRoundTrip() async throws {
        try await FaultTests.withTokenKeepingRunner { server, tokenFile in
            let (jobID, auth) = try await FaultTests.jobWithRunnerToken(server, tokenFile: tokenFile)
            let next = try await server.request(.GET, "/runner/jobs/\(jobID)/next?wait=5", headers: auth).decoded(API.RunnerNext.self)
            let step = try #require(next.step)
            #expect(!next.done && step.jobID == jobID && step.content == "echo never")

            let exit = "/runner/jobs/\(jobID)/steps/\(step.stepID)/exit"
            try await Self.expectRefusals(server, exit, headers: auth, [
                (#"{"exit_code": 0, "signal": 9}"#, "invalid_request", "unknown field 'signal'; known fields: error, exit_code"),
                (#"{"exit_code": "0"}"#, "invalid_request", "field 'exit_code' must be a number"),
                (#"{"exit_code": true}"#, "invalid_request", "field 'exit_code' must be a number"),
                (#"{"exit_code": 1.5}"#, "invalid_request", "field 'exit_code' must be a whole number from 0 to 255"),
                (#"{"error": 5}"#, "invalid_request", "field 'error' must be a string"),
                ("{}", "invalid_request", "send 'exit_code' (the step's exit code) or 'error' (why it could not run)"),
            ])
            let recorded = try await server.request(.POST, exit, encoding: API.StepExit(exitCode: 0), headers: auth)
            #expect(try recorded.decoded(API.RunnerStepRecorded.self) == API.RunnerStepRecorded(stepID: step.stepID))
            let job = try await server.waitForJob(jobID)
            #expect(job.status == .success)
        }
    }
}
