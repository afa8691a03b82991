import AsyncHTTPClient
import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowTestSupport
import Testing

@Suite("Routes, lists and envelope")
struct RoutesTests {
    /// The envelope's members as they are on the wire. Deliberately JSONSerialization: this
    /// checks that a null `data` or `error` is there as null, which the API types read the
    /// same as a member left out.
    static func envelopeMembers(_ reply: TestServer.Reply) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: reply.body) as? [String: Any], "\(reply.text)")
    }

    @Test func healthReadyAndUnknownRoutesUseTheEnvelope() async throws {
        try await TestServer.with { server in
            let health = try await server.get("/health")
            #expect(health.status == 200)
            let payload = try health.decoded(API.Health.self)
            #expect(payload.status == "ok")
            #expect(!payload.timestamp.isEmpty)
            #expect(try Self.envelopeMembers(health)["error"] is NSNull)
            #expect(try Self.envelopeMembers(health)["timestamp"] is String)
            #expect(health.header("Content-Type")?.hasPrefix("application/json") == true)

            let ready = try await server.get("/ready")
            #expect(ready.status == 200)
            #expect(try ready.decoded(API.Readiness.self).status == "ready")

            let missing = try await server.get("/no/such/route")
            #expect(missing.status == 404)
            #expect(missing.errorCode == "route_not_found")
            #expect(try Self.envelopeMembers(missing)["data"] is NSNull)
        }
    }

    @Test func readyAnswers503WhenTheStoreIsUnusable() async throws {
        try await TestServer.with { server in
            await server.service!.store.close()
            let ready = try await server.get("/ready")
            #expect(ready.status == 503)
            #expect(ready.errorCode == "not_ready")
            #expect(try await server.get("/health").status == 200, "health only says the process serves")
        }
    }

    @Test func pipelinesCanBeListedShownUpdatedAndDeletedWhileTheirJobsRemain() async throws {
        try await TestServer.with { server in
            let first = try await server.createPipeline(name: "first", config: "steps:\n  - echo 1\n")
            let created = try await server.request(.POST, "/pipelines", encoding: API.PipelineDefinition(name: "second", config: "steps:\n  - echo 2\n"))
            let second = try created.decoded(API.Pipeline.self).id
            #expect(created.header("Location") == "/pipelines/\(second)")

            #expect(try await server.get("/pipelines").decoded([API.Pipeline].self).map(\.id) == [second, first], "newest first")
            #expect(try await server.get("/pipelines?limit=1").decoded([API.Pipeline].self).map(\.id) == [second])
            #expect(try await server.get("/pipelines?before=\(second)").decoded([API.Pipeline].self).map(\.id) == [first])

            let shown = try await server.get("/pipelines/\(first)").decoded(API.Pipeline.self)
            #expect(shown.name == "first" && shown.config == "steps:\n  - echo 1\n")

            let update = try await server.request(.PUT, "/pipelines/\(first)", body: #"{"name": "renamed", "config": "steps:\n  - echo 3\n"}"#)
            #expect(update.status == 200)
            #expect(try await server.get("/pipelines/\(first)").decoded(API.Pipeline.self).name == "renamed")
            let badUpdate = try await server.request(.PUT, "/pipelines/\(first)", body: #"{"name": "x", "config": "steps: []"}"#)
            #expect(badUpdate.status == 400)
            #expect(try await server.get("/pipelines/\(first)").decoded(API.Pipeline.self).config == "steps:\n  - echo 3\n", "a refused update changes nothing")

            let jobID = try await server.trigger(first)
            try await server.waitForJob(jobID)
            let deleted = try await server.request(.DELETE, "/pipelines/\(first)")
            #expect(deleted.status == 200)
            #expect(try await server.get("/pipelines/\(first)").status == 404)
            #expect(try await server.request(.DELETE, "/pipelines/\(first)").status == 404)
            let job = try await server.get("/jobs/\(jobID)")
            #expect(job.status == 200, "a deleted pipeline's jobs remain")
            #expect(try job.decoded(API.Job.self).pipelineName == "renamed")
            let details = try await server.get("/jobs/\(jobID)/details").decoded(API.JobDetails.self)
            #expect(details.pipeline?.config == "steps:\n  - echo 3\n")
        }
    }

    @Test func jobListIsNewestFirstAndFiltersByStatusAndPipeline() async throws {
        try await TestServer.with { server in
            let good = try await server.createPipeline(config: "steps:\n  - echo ok\n")
            let bad = try await server.createPipeline(config: "steps:\n  - exit 3\n")
            let a = try await server.trigger(good)
            let b = try await server.trigger(bad)
            let c = try await server.trigger(good)
            for id in [a, b, c] { try await server.waitForJob(id) }

            func ids(_ path: String) async throws -> [Int] { try await server.get(path).decoded([API.Job].self).map(\.id) }
            #expect(try await ids("/jobs") == [c, b, a])
            #expect(try await ids("/jobs?limit=2") == [c, b])
            #expect(try await ids("/jobs?before=\(b)") == [a])
            #expect(try await ids("/jobs?status=failed") == [b])
            #expect(try await ids("/jobs?pipeline_id=\(good)") == [c, a])
            #expect(try await ids("/jobs?pipeline_id=\(good)&status=failed").isEmpty)
        }
    }

    @Test func jobListFiltersByBranchAndSearchesNamesBranchesAndIds() async throws {
        try await TestServer.with { server in
            let web = try await server.createPipeline(name: "web-frontend", config: "steps:\n  - \"true\"\n")
            let api = try await server.createPipeline(name: "api_server", config: "steps:\n  - \"true\"\n")
            let a = try await server.trigger(web, API.TriggerRequest(branch: "main"))
            let b = try await server.trigger(web, API.TriggerRequest(branch: "feature/login"))
            let c = try await server.trigger(api, API.TriggerRequest(branch: "main"))
            let d = try await server.trigger(api)
            for id in [a, b, c, d] { try await server.waitForJob(id) }

            func ids(_ path: String) async throws -> [Int] {
                let reply = try await server.get(path)
                try #require(reply.status == 200, "\(path): \(reply.text)")
                return try reply.decoded([API.Job].self).map(\.id)
            }
            #expect(try await ids("/jobs?branch=main") == [c, a])
            #expect(try await ids("/jobs?branch=feature%2Flogin") == [b])
            #expect(try await ids("/jobs?branch=main&pipeline_id=\(web)") == [a])
            #expect(try await ids("/jobs?q=FRONT") == [b, a], "the pipeline's name, any case")
            #expect(try await ids("/jobs?q=login") == [b], "the branch")
            #expect(try await ids("/jobs?q=\(d)").contains(d), "a job id")
            #expect(try await ids("/jobs?q=%23\(c)") == [c], "a job id written #N")
            #expect(try await ids("/jobs?q=_") == [d, c], "LIKE's wildcards are taken literally")
            #expect(try await ids("/jobs?q=%25").isEmpty)
            #expect(try await ids("/jobs?q=main&limit=1&before=\(c)") == [a], "with paging")

            // An id whose digits newer jobs' pipeline names hold: the job of that id comes first,
            // and is not repeated on the next page.
            let named = try await server.createPipeline(name: "build-\(a)-\(a)", config: "steps:\n  - \"true\"\n")
            var newer: [Int] = []
            for _ in 0..<3 { newer.append(try await server.trigger(named)) }
            for id in newer { try await server.waitForJob(id) }
            let first = try await ids("/jobs?q=\(a)&limit=2")
            #expect(first == [a, newer[2]], "\(first)")
            #expect(try await ids("/jobs?q=\(a)&limit=2&before=\(newer[2])") == [newer[1], newer[0]], "job \(a) is not listed again")
        }
    }

    @Test func rawLogsAreTheStoredTextForAJobAndTheExactBytesForAStep() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - printf 'one\\ntwo'\n  - printf '\\x1b[31mred\\r\\xff\\n'\n")
            let job = try await server.trigger(pipeline)
            try await server.waitForJob(job)
            let raw = try await server.get("/jobs/\(job)/logs/raw")
            #expect(raw.status == 200)
            #expect(raw.header("content-type") == "text/plain; charset=utf-8")
            #expect(raw.header("content-disposition") == "inline; filename=\"job-\(job).log\"")
            let stream = try await server.get("/jobs/\(job)/logs/stream")
            #expect(raw.body == stream.body, "the same transcript as the finished job's stream")
            #expect(raw.text.hasPrefix("=== Step 1 (bash) ===\none\ntwo\n"))
            let steps = try await server.logs(job).logs
            let second = try #require(steps.last?.stepID)
            let bytes = try await server.get("/steps/\(second)/logs/raw")
            #expect(bytes.status == 200)
            #expect(bytes.body == Data([0x1b] + Array("[31mred\r".utf8) + [0xff, 0x0a]), "every byte as printed, invalid UTF-8 too")
        }
    }

    @Test func cleanupRemovesAFinishedJobsWorkspace() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - echo data > file.txt\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForJob(jobID)
            let workspace = "\(server.dataDirectory)/workspaces/job-\(jobID)"
            #expect(FileManager.default.fileExists(atPath: "\(workspace)/file.txt"))
            let reply = try await server.post("/jobs/\(jobID)/cleanup")
            #expect(reply.status == 200)
            #expect(try reply.decoded(API.CleanupResult.self).success)
            #expect(!FileManager.default.fileExists(atPath: workspace))
            #expect(try await server.get("/jobs/\(jobID)/logs").status == 200, "the job and its output stay")
        }
    }
}

@Suite("Bearer token")
struct BearerTokenTests {
    @Test func aConfiguredTokenGuardsEveryRouteButHealthAndReady() async throws {
        try await TestServer.with(configure: { $0.apiToken = "s3cret-token" }) { server in
            #expect(try await server.get("/health").status == 200)
            #expect(try await server.get("/ready").status == 200)
            for headers in [[], [("Authorization", "Bearer wrong")], [("Authorization", "s3cret-token")], [("Authorization", "Bearer s3cret-toke")]] {
                let reply = try await server.request(.GET, "/jobs", headers: headers)
                #expect(reply.status == 401)
                #expect(reply.errorCode == "unauthorized")
                #expect(!reply.text.contains("s3cret"), "the token never appears in a response")
            }
            let refused = try await server.request(.POST, "/pipelines", body: #"{"name":"p","config":"steps: [x]"}"#)
            #expect(refused.status == 401)
            let ok = try await server.request(.GET, "/jobs", headers: [("Authorization", "Bearer s3cret-token")])
            #expect(ok.status == 200)
            #expect(try ok.decoded([API.Job].self).isEmpty, "the refused create stored nothing")
            let missing = try await server.request(.GET, "/nowhere")
            #expect(missing.status == 401, "unknown routes are guarded too")
        }
    }
}
