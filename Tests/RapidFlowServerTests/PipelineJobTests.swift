import Foundation
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

@testable import RapidFlowServer

@Suite("Pipelines and jobs over HTTP")
struct PipelineJobTests {
    static let twoSteps = """
        name: two steps
        env:
          GREETING: "hello"
          DEPLOY_TOKEN: "tok-123"
        steps:
          - echo "$GREETING from stdout"; echo "to stderr" >&2; echo after
          - type: bash
            content: |
              echo "second step in $(basename "$PWD")"
              test "$RAPIDFLOW_JOB_ID" -gt 0
            phase: test
        """

    @Test func twoStepPipelineOutputIsInLogsDetailsStepLogsAndStatus() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(name: "demo", config: Self.twoSteps)
            let jobID = try await server.trigger(pipelineID)
            let job = try await server.waitForJob(jobID)
            #expect(job.status == .success)
            #expect(job.pipelineID == pipelineID)
            #expect(job.startedAt != nil && job.finishedAt != nil)
            #expect(job.containerID == nil)

            let reply = try await server.get("/jobs/\(jobID)/logs")
            #expect(reply.status == 200)
            let logs = try reply.decoded(API.JobLogs.self)
            let entries = logs.logs
            try #require(entries.count == 2)
            #expect(entries[0].output == "hello from stdout\nto stderr\nafter\n")
            #expect(entries[0].orderNum == 1 && entries[0].type == .bash)
            #expect(entries[1].output == "second step in job-\(jobID)\n")
            #expect(entries.allSatisfy { $0.status == .success && $0.exitCode == 0 })
            #expect(logs.build == "hello from stdout\nto stderr\nafter\n")
            #expect(logs.test == "second step in job-\(jobID)\n")
            #expect(logs.publish == "")

            let details = try await server.get("/jobs/\(jobID)/details").decoded(API.JobDetails.self)
            #expect(details.steps.map(\.output) == entries.map(\.output))
            #expect(details.pipeline?.name == "demo")
            #expect(details.environments.map(\.key) == ["GREETING", "DEPLOY_TOKEN"])
            #expect(details.environments.map(\.value) == ["hello", "********"], "secret-looking values are masked")

            let stepLogs = try await server.get("/steps/\(entries[1].stepID)/logs").decoded(API.StepLog.self)
            #expect(stepLogs.jobID == jobID)
            #expect(stepLogs.output == "second step in job-\(jobID)\n")

            let status = try await server.get("/jobs/\(jobID)/status").decoded(API.JobStatusReport.self)
            #expect(status.status == .success)
            let metrics = status.metrics
            let timestamps = status.phaseTimestamps
            #expect((metrics.buildDurationSeconds ?? -1) >= 0)
            #expect((metrics.testDurationSeconds ?? -1) >= 0)
            #expect(metrics.publishDurationSeconds == nil)
            #expect(metrics.concurrentJobsTotal == 0)
            let ordered = [
                timestamps.jobStart, timestamps.buildStart, timestamps.buildEnd, timestamps.testStart, timestamps.testEnd, timestamps.jobEnd,
            ].compactMap { $0 }
            #expect(ordered.count == 6)
            #expect(ordered == ordered.sorted(), "phase timestamps are in order: \(ordered)")
            #expect(timestamps.publishStart == nil && timestamps.publishEnd == nil)
        }
    }

    @Test func failingStepFailsTheJobAndSkipsLaterSteps() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: """
                steps:
                  - echo one
                  - echo two; false; echo never
                  - echo three > three.txt
                """)
            let jobID = try await server.trigger(pipelineID)
            let job = try await server.waitForJob(jobID)
            #expect(job.status == .failed)
            let steps = try await server.logs(jobID).logs
            #expect(steps.map(\.status) == [.success, .failed, .skipped])
            #expect(steps[1].exitCode == 1)
            #expect(steps[1].output.hasPrefix("two\n"))
            #expect(!steps[1].output.contains("never"), "bash -e stops at the failing command")
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/workspaces/job-\(jobID)/three.txt"))
        }
    }

    @Test func pipefailFailsAStepWhoseEarlyPipeCommandFails() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - false | cat\n")
            let job = try await server.waitForJob(try await server.trigger(pipelineID))
            #expect(job.status == .failed)
        }
    }

    @Test func cancelStopsTheWholeProcessTreeAndAnswersOnceStopped() async throws {
        try await TestServer.with { server in
            let token = "rf-cancel-\(UUID().uuidString.prefix(8))"
            let pipelineID = try await server.createPipeline(config: """
                steps:
                  - (exec -a \(token)-bg sleep 300) & setsid bash -c 'exec -a \(token)-setsid sleep 300' & echo started; exec -a \(token)-fg sleep 300
                  - echo never
                """)
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForOutput(jobID, containing: "started")
            // The background processes exist before they are stopped.
            try await eventually(timeout: .seconds(10), "the step's three processes run") {
                ["bg", "setsid", "fg"].allSatisfy { TestFiles.processExists(matching: "\(token)-\($0)") }
            }
            #expect(TestFiles.processExists(matching: "\(token)-bg"))

            let reply = try await server.post("/jobs/\(jobID)/cancel")
            #expect(reply.status == 200)
            #expect(try reply.decoded(API.CancelResult.self).message == "job cancelled successfully")
            // The call answers once stopped: the job is final and nothing of it runs.
            let job = try await server.job(jobID)
            #expect(job.status == .cancelled)
            #expect(job.cancelled == true)
            for suffix in ["bg", "setsid", "fg"] {
                #expect(!TestFiles.processExists(matching: "\(token)-\(suffix)"), "\(suffix) process survived the cancel")
            }
            let steps = try await server.logs(jobID).logs
            #expect(steps.map(\.status) == [.cancelled, .skipped])
            #expect(steps[0].output.hasPrefix("started\n"), "output written before the stop is kept")

            let again = try await server.post("/jobs/\(jobID)/cancel")
            #expect(again.status == 400)
            #expect(again.errorCode == "job_not_cancellable")
            let kill = try await server.post("/jobs/\(jobID)/kill")
            #expect(kill.status == 400)
        }
    }

    @Test func killIsTheSameActionAsCancelAndAnswersSuccess() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - echo up; sleep 300\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForOutput(jobID, containing: "up")
            let reply = try await server.post("/jobs/\(jobID)/kill")
            #expect(reply.status == 200)
            #expect(try reply.decoded(API.KillResult.self).success == true)
            #expect(try await server.job(jobID).status == .cancelled)
        }
    }

    @Test func stepThatIgnoresSigtermIsKilledAfterTheGracePeriod() async throws {
        try await TestServer.with(configure: { $0.killGracePeriod = .milliseconds(500) }) { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - trap '' TERM; echo ready; while true; do sleep 0.1; done\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForOutput(jobID, containing: "ready")
            let started = ContinuousClock.now
            let reply = try await server.post("/jobs/\(jobID)/cancel")
            #expect(reply.status == 200)
            #expect(ContinuousClock.now - started >= .milliseconds(400), "SIGKILL waits for the grace period")
            #expect(try await server.job(jobID).status == .cancelled)
        }
    }

    @Test func cancellingAPendingJobSkipsAllItsSteps() async throws {
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 1 }) { server in
            let blocker = try await server.createPipeline(config: "steps:\n  - sleep 300\n")
            let first = try await server.trigger(blocker)
            try await server.waitForStatus(first, .running)
            let quick = try await server.createPipeline(config: "steps:\n  - echo hi\n")
            let second = try await server.trigger(quick)
            #expect(try await server.job(second).status == .pending)
            #expect(try await server.post("/jobs/\(second)/cancel").status == 200)
            let steps = try await server.logs(second).logs
            #expect(steps.map(\.status) == [.skipped])
            #expect(try await server.job(second).startedAt == nil, "a cancelled pending job never ran")
            #expect(try await server.post("/jobs/\(first)/cancel").status == 200)
        }
    }

    @Test func jobsWaitInFifoOrderForAFreeSlot() async throws {
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 2 }) { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - sleep 1\n")
            var ids: [Int] = []
            for _ in 0..<5 { ids.append(try await server.trigger(pipelineID)) }
            // The last job waits while the slots are taken; the status reports who runs.
            let last = try await server.get("/jobs/\(ids[4])/status").decoded(API.JobStatusReport.self)
            if last.status == .pending {
                #expect((1...2).contains(last.metrics.concurrentJobsTotal))
            }
            var intervals: [(start: String, end: String)] = []
            for id in ids {
                let job = try await server.waitForJob(id)
                #expect(job.status == .success)
                intervals.append((job.startedAt ?? "", job.finishedAt ?? ""))
            }
            let starts = intervals.map(\.start)
            #expect(starts == starts.sorted(), "jobs start in the order they were created")
            for interval in intervals {
                let overlapping = intervals.filter { $0.start <= interval.start && $0.end > interval.start }.count
                #expect(overlapping <= 2, "at most two jobs run at once")
            }
            #expect(intervals[2].start >= min(intervals[0].end, intervals[1].end), "the third job waited for a free slot")
        }
    }

    @Test func retryRunsTheOriginalSnapshotEvenAfterThePipelineChanged() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "env:\n  WORD: \"first\"\nsteps:\n  - echo $WORD\n")
            let original = try await server.trigger(pipelineID, API.TriggerRequest(env: ["EXTRA": "x"]))
            #expect(try await server.waitForJob(original).status == .success)
            let edit = try await server.request(.PUT, "/pipelines/\(pipelineID)", body: #"{"name":"edited","config":"steps:\n  - echo changed\n"}"#)
            #expect(edit.status == 200)

            let reply = try await server.post("/jobs/\(original)/retry")
            #expect(reply.status == 200)
            let retry = try reply.decoded(API.Job.self)
            #expect(retry.status == .pending)
            #expect(retry.startedAt == nil && retry.containerID == nil)
            let retryID = retry.id
            #expect(retryID > original)
            #expect(reply.header("Location") == "/jobs/\(retryID)")
            #expect(try await server.waitForJob(retryID).status == .success)
            let logs = try await server.logs(retryID)
            #expect(logs.build == "first\n")
            let environment = try await server.get("/jobs/\(retryID)/details").decoded(API.JobDetails.self).environments
            #expect(environment.map(\.key) == ["WORD", "EXTRA"])

            // A new trigger runs the edited config.
            let fresh = try await server.trigger(pipelineID)
            try await server.waitForJob(fresh)
            #expect(try await server.logs(fresh).build == "changed\n")
        }
    }

    @Test func retryOfARunningJobIsRefused() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - sleep 300\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForStatus(jobID, .running)
            let before = try await server.counts()
            let reply = try await server.post("/jobs/\(jobID)/retry")
            #expect(reply.status == 400)
            #expect(reply.errorCode == "job_not_retryable")
            #expect(reply.errorMessage.contains("running"))
            #expect(try await server.counts() == before, "no job was created")
            _ = try await server.post("/jobs/\(jobID)/cancel")
        }
    }

    @Test func triggerOverridesBranchAndAddsEnvironment() async throws {
        try await TestServer.with { server in
            let repository = try await GitFixture.repository(branches: ["main": "on main", "feature": "on feature"])
            let pipelineID = try await server.createPipeline(config: """
                repo: \(repository)
                branch: main
                folder: app
                env:
                  WHO: "config"
                steps:
                  - cat message.txt; echo "$WHO $EXTRA"
                """)
            let jobID = try await server.trigger(pipelineID, API.TriggerRequest(branch: "feature", env: ["EXTRA": "added", "WHO": "trigger"]))
            let job = try await server.waitForJob(jobID)
            #expect(job.status == .success)
            #expect(job.branch == "feature")
            #expect(job.repoName == repository)
            let steps = try await server.logs(jobID).logs
            #expect(steps.map(\.type) == [.git, .bash])
            #expect(steps[1].output == "on feature\ntrigger added\n")
        }
    }

    @Test func cloneOfAMissingBranchFailsTheJobWithGitsMessage() async throws {
        try await TestServer.with { server in
            let repository = try await GitFixture.repository(branches: ["main": "x"])
            let pipelineID = try await server.createPipeline(config: "repo: \(repository)\nbranch: nope\nsteps:\n  - echo never\n")
            let jobID = try await server.trigger(pipelineID)
            #expect(try await server.waitForJob(jobID).status == .failed)
            let steps = try await server.logs(jobID).logs
            #expect(steps.map(\.status) == [.failed, .skipped])
            #expect(steps[0].output.contains("nope"))
        }
    }
}

/// Local git repositories served over file URLs.
enum GitFixture {
    /// A bare repository with one commit per branch, each with `app/message.txt`.
    static func repository(branches: [String: String]) async throws -> String {
        let root = TestFiles.temporaryDirectory()
        var script = """
            cd \(root) && git init -q --bare repo.git && git init -q work && cd work
            git config user.email t@example.com && git config user.name test
            """
        for (branch, message) in branches.sorted(by: { $0.key < $1.key }) {
            script += """

                git checkout -q --orphan \(branch) && git rm -rfq . >/dev/null 2>&1 || true
                mkdir -p app && echo '\(message)' > app/message.txt && git add app && git commit -qm '\(branch)'
                git push -q ../repo.git \(branch)
                """
        }
        try await TestFiles.shell(script)
        return "file://\(root)/repo.git"
    }
}
