import Foundation
import NIOHTTP1
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
            let job = try await server.waitForJobObject(jobID)
            #expect(job["status"] as? String == "success")
            #expect(job["pipeline_id"] as? Int == pipelineID)
            #expect(job["started_at"] is String && job["finished_at"] is String)
            #expect(job["container_id"] is NSNull)

            let logs = try await server.get("/jobs/\(jobID)/logs")
            #expect(logs.status == 200)
            let entries = logs.object["logs"] as? [[String: Any]] ?? []
            try #require(entries.count == 2)
            #expect(entries[0]["output"] as? String == "hello from stdout\nto stderr\nafter\n")
            #expect(entries[0]["order_num"] as? Int == 1 && entries[0]["type"] as? String == "bash")
            #expect(entries[1]["output"] as? String == "second step in job-\(jobID)\n")
            #expect(entries.allSatisfy { $0["status"] as? String == "success" && $0["exit_code"] as? Int == 0 })
            #expect(logs.object["build"] as? String == "hello from stdout\nto stderr\nafter\n")
            #expect(logs.object["test"] as? String == "second step in job-\(jobID)\n")
            #expect(logs.object["publish"] as? String == "")

            let details = try await server.get("/jobs/\(jobID)/details").object
            let steps = details["steps"] as? [[String: Any]] ?? []
            #expect(steps.map { $0["output"] as? String } == entries.map { $0["output"] as? String })
            #expect((details["pipeline"] as? [String: Any])?["name"] as? String == "demo")
            let environment = details["environments"] as? [[String: Any]] ?? []
            #expect(environment.map { $0["key"] as? String } == ["GREETING", "DEPLOY_TOKEN"])
            #expect(environment.map { $0["value"] as? String } == ["hello", "********"], "secret-looking values are masked")

            let stepID = try #require(entries[1]["step_id"] as? Int)
            let stepLogs = try await server.get("/steps/\(stepID)/logs").object
            #expect(stepLogs["job_id"] as? Int == jobID)
            #expect(stepLogs["output"] as? String == "second step in job-\(jobID)\n")

            let status = try await server.get("/jobs/\(jobID)/status").object
            #expect(status["status"] as? String == "success")
            let metrics = status["metrics"] as? [String: Any] ?? [:]
            let timestamps = status["phase_timestamps"] as? [String: Any] ?? [:]
            #expect((metrics["build_duration_seconds"] as? Double ?? -1) >= 0)
            #expect((metrics["test_duration_seconds"] as? Double ?? -1) >= 0)
            #expect(metrics["publish_duration_seconds"] is NSNull)
            #expect(metrics["concurrent_jobs_total"] as? Int == 0)
            let ordered = ["job_start", "build_start", "build_end", "test_start", "test_end", "job_end"].compactMap { timestamps[$0] as? String }
            #expect(ordered.count == 6)
            #expect(ordered == ordered.sorted(), "phase timestamps are in order: \(ordered)")
            #expect(timestamps["publish_start"] is NSNull && timestamps["publish_end"] is NSNull)
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
            let job = try await server.waitForJobObject(jobID)
            #expect(job["status"] as? String == "failed")
            let steps = try await server.get("/jobs/\(jobID)/logs").object["logs"] as? [[String: Any]] ?? []
            #expect(steps.map { $0["status"] as? String } == ["success", "failed", "skipped"])
            #expect(steps[1]["exit_code"] as? Int == 1)
            #expect((steps[1]["output"] as? String ?? "").hasPrefix("two\n"))
            #expect(!(steps[1]["output"] as? String ?? "").contains("never"), "bash -e stops at the failing command")
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/workspaces/job-\(jobID)/three.txt"))
        }
    }

    @Test func pipefailFailsAStepWhoseEarlyPipeCommandFails() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - false | cat\n")
            let job = try await server.waitForJobObject(try await server.trigger(pipelineID))
            #expect(job["status"] as? String == "failed")
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
            // Give the background processes time to exist before stopping them.
            let deadline = ContinuousClock.now + .seconds(10)
            while !(TestFiles.processExists(matching: "\(token)-bg") && TestFiles.processExists(matching: "\(token)-setsid")
                && TestFiles.processExists(matching: "\(token)-fg")), ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(TestFiles.processExists(matching: "\(token)-bg"))

            let reply = try await server.post("/jobs/\(jobID)/cancel")
            #expect(reply.status == 200)
            #expect(reply.object["message"] as? String == "job cancelled successfully")
            // The call answers once stopped: the job is final and nothing of it runs.
            let job = try await server.jobObject(jobID)
            #expect(job["status"] as? String == "cancelled")
            #expect(job["cancelled"] as? Bool == true)
            for suffix in ["bg", "setsid", "fg"] {
                #expect(!TestFiles.processExists(matching: "\(token)-\(suffix)"), "\(suffix) process survived the cancel")
            }
            let steps = try await server.get("/jobs/\(jobID)/logs").object["logs"] as? [[String: Any]] ?? []
            #expect(steps.map { $0["status"] as? String } == ["cancelled", "skipped"])
            #expect((steps[0]["output"] as? String ?? "").hasPrefix("started\n"), "output written before the stop is kept")

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
            #expect(reply.object["success"] as? Bool == true)
            #expect(try await server.jobObject(jobID)["status"] as? String == "cancelled")
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
            #expect(try await server.jobObject(jobID)["status"] as? String == "cancelled")
        }
    }

    @Test func cancellingAPendingJobSkipsAllItsSteps() async throws {
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 1 }) { server in
            let blocker = try await server.createPipeline(config: "steps:\n  - sleep 300\n")
            let first = try await server.trigger(blocker)
            try await server.waitForStatus(first, "running")
            let quick = try await server.createPipeline(config: "steps:\n  - echo hi\n")
            let second = try await server.trigger(quick)
            #expect(try await server.jobObject(second)["status"] as? String == "pending")
            #expect(try await server.post("/jobs/\(second)/cancel").status == 200)
            let steps = try await server.get("/jobs/\(second)/logs").object["logs"] as? [[String: Any]] ?? []
            #expect(steps.map { $0["status"] as? String } == ["skipped"])
            #expect(try await server.jobObject(second)["started_at"] is NSNull, "a cancelled pending job never ran")
            #expect(try await server.post("/jobs/\(first)/cancel").status == 200)
        }
    }

    @Test func jobsWaitInFifoOrderForAFreeSlot() async throws {
        try await TestServer.with(configure: { $0.maxConcurrentJobs = 2 }) { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - sleep 1\n")
            var ids: [Int] = []
            for _ in 0..<5 { ids.append(try await server.trigger(pipelineID)) }
            // The last job waits while the slots are taken; the status reports who runs.
            let last = try await server.get("/jobs/\(ids[4])/status").object
            if last["status"] as? String == "pending" {
                let running = (last["metrics"] as? [String: Any])?["concurrent_jobs_total"] as? Int ?? 0
                #expect((1...2).contains(running))
            }
            var intervals: [(start: String, end: String)] = []
            for id in ids {
                let job = try await server.waitForJobObject(id)
                #expect(job["status"] as? String == "success")
                intervals.append((job["started_at"] as? String ?? "", job["finished_at"] as? String ?? ""))
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
            let original = try await server.trigger(pipelineID, json: ["env": ["EXTRA": "x"]])
            #expect(try await server.waitForJobObject(original)["status"] as? String == "success")
            let edit = try await server.request(.PUT, "/pipelines/\(pipelineID)", body: #"{"name":"edited","config":"steps:\n  - echo changed\n"}"#)
            #expect(edit.status == 200)

            let reply = try await server.post("/jobs/\(original)/retry")
            #expect(reply.status == 200)
            #expect(reply.object["status"] as? String == "pending")
            #expect(reply.object["started_at"] is NSNull && reply.object["container_id"] is NSNull)
            let retryID = try #require(reply.object["id"] as? Int)
            #expect(retryID > original)
            #expect(reply.header("Location") == "/jobs/\(retryID)")
            #expect(try await server.waitForJobObject(retryID)["status"] as? String == "success")
            let logs = try await server.get("/jobs/\(retryID)/logs").object
            #expect(logs["build"] as? String == "first\n")
            let environment = try await server.get("/jobs/\(retryID)/details").object["environments"] as? [[String: Any]] ?? []
            #expect(environment.map { $0["key"] as? String } == ["WORD", "EXTRA"])

            // A new trigger runs the edited config.
            let fresh = try await server.trigger(pipelineID)
            _ = try await server.waitForJobObject(fresh)
            #expect(try await server.get("/jobs/\(fresh)/logs").object["build"] as? String == "changed\n")
        }
    }

    @Test func retryOfARunningJobIsRefused() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - sleep 300\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForStatus(jobID, "running")
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
            let jobID = try await server.trigger(pipelineID, json: ["branch": "feature", "env": ["EXTRA": "added", "WHO": "trigger"]])
            let job = try await server.waitForJobObject(jobID)
            #expect(job["status"] as? String == "success")
            #expect(job["branch"] as? String == "feature")
            #expect(job["repo_name"] as? String == repository)
            let steps = try await server.get("/jobs/\(jobID)/logs").object["logs"] as? [[String: Any]] ?? []
            #expect(steps.map { $0["type"] as? String } == ["git", "bash"])
            #expect(steps[1]["output"] as? String == "on feature\ntrigger added\n")
        }
    }

    @Test func cloneOfAMissingBranchFailsTheJobWithGitsMessage() async throws {
        try await TestServer.with { server in
            let repository = try await GitFixture.repository(branches: ["main": "x"])
            let pipelineID = try await server.createPipeline(config: "repo: \(repository)\nbranch: nope\nsteps:\n  - echo never\n")
            let jobID = try await server.trigger(pipelineID)
            #expect(try await server.waitForJobObject(jobID)["status"] as? String == "failed")
            let steps = try await server.get("/jobs/\(jobID)/logs").object["logs"] as? [[String: Any]] ?? []
            #expect(steps.map { $0["status"] as? String } == ["failed", "skipped"])
            #expect((steps[0]["output"] as? String ?? "").contains("nope"))
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
