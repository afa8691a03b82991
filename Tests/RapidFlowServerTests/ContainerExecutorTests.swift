import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// `--executor docker`: pipeline steps in containers on the real engine.
@Suite("Docker executor for pipelines")
struct ContainerExecutorTests {
    static func withDockerServer(_ body: (TestServer) async throws -> Void) async throws {
        try await TestServer.with(configure: {
            $0.executor = .docker
            $0.languageImages["rftest"] = "rapidflow-test/{version}"
        }, body)
    }

    @Test func stepsRunInContainersOfTheImageSharingTheWorkspace() async throws {
        try await Self.withDockerServer { server in
            let pipelineID = try await server.createPipeline(config: """
                image: rapidflow-test/busybox
                env:
                  GREETING: "hi from the container"
                steps:
                  - echo "$GREETING in $(pwd)"; test -x /bin/busybox; echo data > file.txt
                  - cat file.txt; echo to-stderr >&2
                  - false | cat
                """)
            let jobID = try await server.trigger(pipelineID)
            let job = try await server.waitForJob(jobID, timeout: .seconds(120))
            let steps = try await server.logs(jobID).logs
            #expect(job.status == .failed, "pipefail holds in the container")
            #expect(steps.map(\.status) == [.success, .success, .failed])
            #expect(steps[0].output == "hi from the container in /workspace\n")
            #expect(steps[1].output == "data\nto-stderr\n")
            #expect(job.containerID != nil)
            #expect(FileManager.default.fileExists(atPath: "\(server.dataDirectory)/workspaces/job-\(jobID)/file.txt"))
        }
    }

    @Test func languageAndVersionPickTheImageThroughTheMap() async throws {
        try await Self.withDockerServer { server in
            let pipelineID = try await server.createPipeline(config: "language: rftest\nversion: busybox\nsteps:\n  - test -x /bin/busybox && echo mapped\n")
            let jobID = try await server.trigger(pipelineID)
            #expect(try await server.waitForJob(jobID, timeout: .seconds(120)).status == .success)
            #expect(try await server.logs(jobID).build == "mapped\n")
            let none = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo x\n"))
            #expect(try await server.waitForJob(none).status == .failed)
            #expect(try await server.logs(none).build.contains("needs 'image' or 'language'"))
        }
    }

    @Test func cancelStopsTheStepsContainer() async throws {
        try await Self.withDockerServer { server in
            let pipelineID = try await server.createPipeline(config: "image: rapidflow-test/busybox\nsteps:\n  - echo up; sleep 300\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForOutput(jobID, containing: "up", timeout: .seconds(60))
            let container = try #require(try await server.job(jobID).containerID)
            #expect(try await server.post("/jobs/\(jobID)/cancel").status == 200)
            #expect(try await server.job(jobID).status == .cancelled)
            let running = try await TestFiles.shell("docker ps -q --no-trunc")
            #expect(!running.contains(container))
        }
    }

    @Test func exposePortsPublishesOnLoopbackAndListsThemInDetails() async throws {
        let build = TestFiles.temporaryDirectory()
        try "FROM rapidflow-test/busybox\nEXPOSE 8080\n".write(toFile: "\(build)/Dockerfile", atomically: true, encoding: .utf8)
        try await TestFiles.shell("DOCKER_BUILDKIT=0 docker build -q -t rapidflow-test/busybox-web \(build)")
        try await Self.withDockerServer { server in
            let pipelineID = try await server.createPipeline(config: """
                image: rapidflow-test/busybox-web
                expose_ports: true
                steps:
                  - echo served > index.html; echo listening; httpd -f -p 8080 -h .
                """)
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForOutput(jobID, containing: "listening", timeout: .seconds(60))
            let details = try await server.get("/jobs/\(jobID)/details").decoded(API.JobDetails.self)
            let ports = details.job.ports
            try #require(ports.count == 1, "\(details)")
            #expect(ports[0].hasPrefix("8080/tcp -> 127.0.0.1:"))
            let hostPort = try #require(ports[0].split(separator: ":").last.map(String.init))
            var body = ""
            try await eventually(timeout: .seconds(10), "the step's httpd answers on port \(hostPort)") {
                body = (try? await TestFiles.shell("curl -s http://127.0.0.1:\(hostPort)/index.html")) ?? ""
                return body.contains("served")
            }
            #expect(body == "served\n")
            #expect(try await server.post("/jobs/\(jobID)/cancel").status == 200)
        }
    }

    @Test func cleanupAsksTheEngineOnTheConfiguredSocket() async throws {
        try await TestServer.with(configure: { $0.executor = .shell; $0.dockerSocket = "/nonexistent/docker.sock" }) { server in
            let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo hi\n"))
            #expect(try await server.waitForJob(jobID).status == .success)
            let reply = try await server.post("/jobs/\(jobID)/cleanup")
            #expect(reply.status == 200, "\(reply.text)")
            let removed = try reply.decoded(API.CleanupResult.self).removed
            // The engine on the default socket answers here; the configured one does not.
            #expect(removed.workspace == true && removed.containers == nil, "\(removed)")
        }
    }

    @Test func readyIs503WhenTheEngineDoesNotAnswer() async throws {
        try await TestServer.with(configure: { $0.executor = .docker; $0.dockerSocket = "/nonexistent/docker.sock" }) { server in
            let ready = try await server.get("/ready")
            #expect(ready.status == 503)
            #expect(ready.errorCode == "not_ready")
            #expect(ready.errorMessage.contains("Docker"))
        }
        try await TestServer.with { server in
            let ready = try await server.get("/ready")
            #expect(ready.status == 200)
            #expect(try ready.decoded(API.Readiness.self).docker == "ok")
        }
    }
}
