import AsyncHTTPClient
import Foundation
import NIOHTTP1
import RapidFlowTestSupport
import Testing

@Suite("Routes, lists and envelope")
struct RoutesTests {
    @Test func healthReadyAndUnknownRoutesUseTheEnvelope() async throws {
        try await TestServer.with { server in
            let health = try await server.get("/health")
            #expect(health.status == 200)
            #expect(health.object["status"] as? String == "ok")
            #expect(health.object["timestamp"] is String)
            #expect((health.json as? [String: Any])?["error"] is NSNull)
            #expect((health.json as? [String: Any])?["timestamp"] is String)
            #expect(health.header("Content-Type")?.hasPrefix("application/json") == true)

            let ready = try await server.get("/ready")
            #expect(ready.status == 200)
            #expect(ready.object["status"] as? String == "ready")

            let missing = try await server.get("/no/such/route")
            #expect(missing.status == 404)
            #expect(missing.errorCode == "route_not_found")
            #expect((missing.json as? [String: Any])?["data"] is NSNull)
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
            let created = try await server.post("/pipelines", json: ["name": "second", "config": "steps:\n  - echo 2\n"])
            #expect(created.header("Location") == "/pipelines/\(created.object["id"] as? Int ?? 0)")
            let second = try #require(created.object["id"] as? Int)

            #expect(try await server.get("/pipelines").array.map { $0["id"] as? Int } == [second, first], "newest first")
            #expect(try await server.get("/pipelines?limit=1").array.map { $0["id"] as? Int } == [second])
            #expect(try await server.get("/pipelines?before=\(second)").array.map { $0["id"] as? Int } == [first])

            let shown = try await server.get("/pipelines/\(first)").object
            #expect(shown["name"] as? String == "first" && shown["config"] as? String == "steps:\n  - echo 1\n")

            let update = try await server.request(.PUT, "/pipelines/\(first)", body: #"{"name": "renamed", "config": "steps:\n  - echo 3\n"}"#)
            #expect(update.status == 200)
            #expect(try await server.get("/pipelines/\(first)").object["name"] as? String == "renamed")
            let badUpdate = try await server.request(.PUT, "/pipelines/\(first)", body: #"{"name": "x", "config": "steps: []"}"#)
            #expect(badUpdate.status == 400)
            #expect(try await server.get("/pipelines/\(first)").object["config"] as? String == "steps:\n  - echo 3\n", "a refused update changes nothing")

            let jobID = try await server.trigger(first)
            _ = try await server.waitForJobObject(jobID)
            let deleted = try await server.request(.DELETE, "/pipelines/\(first)")
            #expect(deleted.status == 200)
            #expect(try await server.get("/pipelines/\(first)").status == 404)
            #expect(try await server.request(.DELETE, "/pipelines/\(first)").status == 404)
            let job = try await server.get("/jobs/\(jobID)")
            #expect(job.status == 200, "a deleted pipeline's jobs remain")
            #expect(job.object["pipeline_name"] as? String == "renamed")
            let details = try await server.get("/jobs/\(jobID)/details").object
            #expect((details["pipeline"] as? [String: Any])?["config"] as? String == "steps:\n  - echo 3\n")
        }
    }

    @Test func jobListIsNewestFirstAndFiltersByStatusAndPipeline() async throws {
        try await TestServer.with { server in
            let good = try await server.createPipeline(config: "steps:\n  - echo ok\n")
            let bad = try await server.createPipeline(config: "steps:\n  - exit 3\n")
            let a = try await server.trigger(good)
            let b = try await server.trigger(bad)
            let c = try await server.trigger(good)
            for id in [a, b, c] { _ = try await server.waitForJobObject(id) }

            #expect(try await server.get("/jobs").array.map { $0["id"] as? Int } == [c, b, a])
            #expect(try await server.get("/jobs?limit=2").array.map { $0["id"] as? Int } == [c, b])
            #expect(try await server.get("/jobs?before=\(b)").array.map { $0["id"] as? Int } == [a])
            #expect(try await server.get("/jobs?status=failed").array.map { $0["id"] as? Int } == [b])
            #expect(try await server.get("/jobs?pipeline_id=\(good)").array.map { $0["id"] as? Int } == [c, a])
            #expect(try await server.get("/jobs?pipeline_id=\(good)&status=failed").array.isEmpty)
        }
    }

    @Test func cleanupRemovesAFinishedJobsWorkspace() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - echo data > file.txt\n")
            let jobID = try await server.trigger(pipelineID)
            _ = try await server.waitForJobObject(jobID)
            let workspace = "\(server.dataDirectory)/workspaces/job-\(jobID)"
            #expect(FileManager.default.fileExists(atPath: "\(workspace)/file.txt"))
            let reply = try await server.post("/jobs/\(jobID)/cleanup")
            #expect(reply.status == 200)
            #expect(reply.object["success"] as? Bool == true)
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
            #expect(ok.array.isEmpty, "the refused create stored nothing")
            let missing = try await server.request(.GET, "/nowhere")
            #expect(missing.status == 401, "unknown routes are guarded too")
        }
    }
}
