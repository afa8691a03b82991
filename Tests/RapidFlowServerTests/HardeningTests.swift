import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore
import RapidFlowTestSupport
import Testing

@Suite("Timeouts and masking")
struct HardeningTests {
    @Test func aJobPastItsTimeoutFailsWithTheReasonInItsOutput() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "timeout_seconds: 1\nsteps:\n  - echo started; sleep 300\n  - echo never\n")
            let started = ContinuousClock.now
            let jobID = try await server.trigger(pipelineID)
            let job = try await server.waitForJob(jobID)
            #expect(job.status == .failed)
            #expect(ContinuousClock.now - started < .seconds(60), "stopped by its 1 s timeout, long before the step's 300 s")
            let steps = try await server.logs(jobID).logs
            #expect(steps.map(\.status) == [.failed, .skipped])
            #expect(steps[0].output.contains("timed out after 1 s"))
        }
    }

    @Test func theServiceDefaultTimeoutAppliesWhenTheConfigSetsNone() async throws {
        try await TestServer.with(configure: { $0.jobTimeout = .milliseconds(800) }) { server in
            let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - sleep 300\n"))
            #expect(try await server.waitForJob(jobID).status == .failed)
            #expect(try await server.logs(jobID).build.contains("timed out after 0.8 s"))
            let quick = try await server.trigger(try await server.createPipeline(config: "timeout_seconds: 60\nsteps:\n  - sleep 1.2; echo done\n"))
            #expect(try await server.waitForJob(quick).status == .success, "a config's own timeout wins")
        }
    }

    @Test func aJobsKillTimeoutBoundsTheGracePeriod() async throws {
        try await TestServer.with(configure: { $0.killGracePeriod = .seconds(30) }) { server in
            let pipelineID = try await server.createPipeline(
                config: "kill_timeout_seconds: 0.5\nsteps:\n  - trap '' TERM; echo ready; while true; do sleep 0.1; done\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForOutput(jobID, containing: "ready")
            let started = ContinuousClock.now
            #expect(try await server.post("/jobs/\(jobID)/cancel").status == 200)
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(25), "killed after the job's 0.5 s, not the service's 30 s: \(elapsed)")
            #expect(try await server.job(jobID).status == .cancelled)
        }
    }

    @Test func secretEnvValuesAreMaskedWholeAndWhenSplitAcrossChunks() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: """
                env:
                  DEPLOY_TOKEN: "tok-secret-4711"
                  PLAIN: "visible-value"
                steps:
                  - echo "whole $DEPLOY_TOKEN"; printf 'split tok-sec'; sleep 0.4; printf 'ret-4711 end\\n'; echo "$PLAIN"
                """)
            let jobID = try await server.trigger(pipelineID)
            async let streamed = server.get("/jobs/\(jobID)/logs/stream?follow=true")
            try await server.waitForJob(jobID)
            let output = try await server.logs(jobID).build
            #expect(output == "whole ********\nsplit ******** end\nvisible-value\n")
            let text = try await streamed.text
            #expect(!text.contains("tok-secret-4711") && !text.contains("ret-4711"))
            #expect(text.contains("split ******** end"))
            #expect(!(try await server.get("/jobs/\(jobID)/details").text.contains("tok-secret-4711")))
        }
    }
}

@Suite("Retention and crash recovery")
struct RecoveryTests {
    @Test func theReaperRemovesOldWorkspacesAndKeepsTheJobs() async throws {
        try await TestServer.with(configure: { $0.retention = .seconds(1) }) { server in
            let jobID = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo kept > out.txt; echo logged\n"))
            try await server.waitForJob(jobID)
            let workspace = "\(server.dataDirectory)/workspaces/job-\(jobID)"
            try await eventually(timeout: .seconds(15), "the reaper removes \(workspace)") {
                !FileManager.default.fileExists(atPath: workspace)
            }
            #expect(!FileManager.default.fileExists(atPath: workspace))
            #expect(try await server.logs(jobID).build == "logged\n")
        }
    }

    @Test func killNineWithTenJobsRunningLeavesNothingRunningAfterRestart() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        let token = "rf-crash-\(UUID().uuidString.prefix(8))"
        var service = try await ServiceProcess.start(dataDirectory: dataDirectory, arguments: ["--max-concurrent-jobs", "10"])
        let shell = try await service.client.createPipeline(config: "steps:\n  - echo \"before crash $RAPIDFLOW_JOB_ID\"; setsid bash -c 'exec -a \(token) sleep 300' & exec -a \(token) sleep 300\n")
        let docker = try await service.client.createPipeline(config: "image: rapidflow-test/busybox\nsteps:\n  - echo \"before crash $RAPIDFLOW_JOB_ID\"; sleep 300\n")
        var jobs: [Int] = []
        for index in 0..<10 { jobs.append(try await service.client.trigger(index % 2 == 0 ? shell : docker)) }
        for id in jobs { try await service.client.waitForOutput(id, containing: "before crash \(id)", timeout: .seconds(90)) }
        let instance = try String(contentsOfFile: "\(dataDirectory)/instance-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!(try await TestFiles.shell("docker ps -q --filter label=rapidflow.instance=\(instance)")).isEmpty)

        try await service.killNow()
        service = try await ServiceProcess.start(dataDirectory: dataDirectory)
        defer { service.kill(signal: SIGTERM) }
        #expect(try await service.client.get("/jobs?status=running").decoded([API.Job].self).isEmpty, "no job stays running")
        for id in jobs {
            let job = try await service.client.job(id)
            #expect(job.status == .failed)
            let output = try await service.client.logs(id).build
            #expect(output.hasPrefix("before crash \(id)\n"), "output printed before the crash is readable")
        }
        #expect(!TestFiles.processExists(matching: token), "no orphaned step process")
        #expect(try await TestFiles.shell("docker ps -aq --filter label=rapidflow.instance=\(instance)").isEmpty, "no orphaned container")
    }
}

@Suite("Full disk")
struct DiskFullTests {
    @Test func aFullDataDiskFailsTheRunningStepAndTheServiceKeepsAnswering() async throws {
        let mountPoint = TestFiles.temporaryDirectory()
        try await TestFiles.shell("mount -t tmpfs -o size=16m tmpfs \(mountPoint)")
        defer { TestFiles.shellNow("umount -l \(mountPoint)") }
        try await TestServer.with(dataDirectory: mountPoint, configure: { $0.stepOutputCap = 64 << 20 }) { server in
            let small = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo stored before\n"))
            #expect(try await server.waitForJob(small).status == .success)

            let flood = try await server.trigger(try await server.createPipeline(config: "steps:\n  - yes 'filling the disk' | head -c 40000000\n  - echo never\n"))
            guard let job = try? await server.waitForJob(flood, timeout: .seconds(60)) else {
                let logs = try await server.get("/jobs/\(flood)/logs")
                Issue.record("job did not finish: \(logs.text.suffix(600)) \(try await TestFiles.shell("df -h \(mountPoint); ls -la \(mountPoint)"))")
                return
            }
            #expect(job.status == .failed)

            #expect(try await server.get("/health").status == 200)
            let earlier = try await server.get("/jobs/\(small)/logs")
            #expect(earlier.status == 200)
            #expect(try earlier.decoded(API.JobLogs.self).build == "stored before\n", "what was stored is intact")
            let steps = try await server.logs(flood).logs
            #expect(steps.map(\.status) == [.failed, .skipped])
        }
    }
}

@Suite("Zombie cleanup")
struct ZombieCleanupTests {
    @Test func cleanupSettlesAJobTheStoreShowsRunningButNothingRuns() async throws {
        try await TestServer.with { server in
            let store = try #require(server.service?.store)
            let pipelineID = try await server.createPipeline(config: "steps:\n  - echo one\n  - echo two\n")
            // A job claimed outside the scheduler: `running` in the store, run by nobody.
            let job = try await store.createJob(
                NewJob(kind: .pipeline, pipelineID: pipelineID, pipelineName: "test", snapshot: JobSnapshot(),
                       steps: [StepPlan(type: .bash, content: "echo one", phase: .build)], environment: []))
            #expect(try await store.claimJob(id: job.id, at: Date()))
            let step = try #require(try await store.steps(jobID: job.id).first)
            try await store.startStep(id: step.id, at: Date(), processGroup: nil)
            #expect(try await server.job(job.id).status == .running)

            let reply = try await server.post("/jobs/\(job.id)/cleanup")
            #expect(reply.status == 200, "\(reply.text)")
            #expect(try await server.job(job.id).status == .failed)
            let output = try await server.logs(job.id).build
            #expect(output.contains("cleanup settled it as failed"))

            // A job this service really runs is refused, and goes on.
            let live = try await server.trigger(try await server.createPipeline(config: "steps:\n  - sleep 1\n"))
            try await server.waitForStatus(live, .running)
            let refused = try await server.post("/jobs/\(live)/cleanup")
            #expect(refused.status == 400 && refused.errorCode == "job_not_finished")
            #expect(try await server.waitForJob(live).status == .success)
        }
    }
}
