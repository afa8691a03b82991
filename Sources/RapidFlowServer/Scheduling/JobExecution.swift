import Foundation
import Logging
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// Runs one claimed job's steps in order in its workspace and records every state change.
struct JobExecution {
    let jobID: Int
    let run: JobRun
    let store: any JobStore
    let executor: any StepExecutor
    let broadcaster: LogBroadcaster
    let settings: JobScheduler.Settings
    let logger: Logger

    /// Returns the job's final status.
    func run() async throws -> JobStatus {
        let job = try await store.requireJob(id: jobID)
        let steps = try await store.steps(jobID: jobID)
        let environment = try await store.environment(jobID: jobID).map { (key: $0.key, value: $0.value) }
        let workspace = "\(settings.workspacesDirectory)/job-\(jobID)"
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
        let workingDirectory = job.snapshot.folder.map { "\(workspace)/\($0)" } ?? workspace
        var credentials = JobCredentials()
        if let request = job.snapshot.imageJob {
            do {
                credentials = try settings.credentials.prepare(
                    for: request, registryHost: request.registryURL.flatMap { try? RegistryReference($0).host },
                    directory: "\(settings.credentialsDirectory)/job-\(jobID)")
            } catch {
                credentials.remove()
                return try await failBeforeSteps(steps, reason: "credentials could not be read: \(error)")
            }
        }
        defer { credentials.remove() }
        // Secret values never reach stored or streamed output.
        let secrets = credentials.secrets + environment.filter { EnvironmentValidation.looksSecret($0.key) }.map(\.value)

        let credentialsForSteps = credentials
        let timeout =
            job.snapshot.timeoutSeconds.map { Duration.clampedSeconds($0) }
            ?? settings.defaultJobTimeout
        let run = self.run
        var status = try await withThrowingTaskGroup(of: JobStatus?.self) { group in
            if let timeout {
                // The watchdog: past the timeout the job is stopped like a cancel, and fails.
                group.addTask {
                    try await Task.sleep(for: timeout)
                    let seconds = timeout.inSeconds
                    run.stop(.timedOut(seconds), signal: SIGTERM)
                    try await Task.sleep(for: run.gracePeriod)
                    run.stop(.timedOut(seconds), signal: SIGKILL)
                    return nil
                }
            }
            group.addTask {
                var status = JobStatus.success
                for step in steps where step.status == .pending {
                    if let reason = run.stopReason {
                        status = reason.jobStatus
                        break
                    }
                    let stepStatus = try await runStep(
                        step, job: job, workspace: workspace, workingDirectory: workingDirectory, environment: environment,
                        credentials: credentialsForSteps, secrets: secrets)
                    if stepStatus != .success {
                        status = stepStatus == .cancelled ? .cancelled : .failed
                        break
                    }
                }
                return status
            }
            while let result = try await group.next() {
                if let result {
                    group.cancelAll()
                    return result
                }
            }
            return JobStatus.failed
        }
        if let reason = run.stopReason, status == .success {
            status = reason.jobStatus
        }
        await executor.jobFinished(jobID: jobID)
        try await store.skipPendingSteps(jobID: jobID, at: Date())
        _ = try await store.finishJob(id: jobID, status: status, cancelled: status == .cancelled, at: Date())
        settings.metrics.recordPhases(of: try await store.steps(jobID: jobID))
        return status
    }

    /// Fails the job at its first step with `reason` in that step's output.
    private func failBeforeSteps(_ steps: [Step], reason: String) async throws -> JobStatus {
        if let first = steps.first {
            try await store.startStep(id: first.id, at: Date(), processGroup: nil)
            let recorder = StepOutputRecorder(store: store, broadcaster: broadcaster, jobID: jobID, stepID: first.id, cap: settings.stepOutputCap)
            await recorder.note(reason)
            try await store.finishStep(id: first.id, status: .failed, exitCode: nil, at: Date())
        }
        try await store.skipPendingSteps(jobID: jobID, at: Date())
        _ = try await store.finishJob(id: jobID, status: .failed, cancelled: false, at: Date())
        return .failed
    }

    private func runStep(
        _ step: Step, job: Job, workspace: String, workingDirectory: String, environment: [(key: String, value: String)],
        credentials: JobCredentials, secrets: [String]
    ) async throws -> StepStatus {
        let started = Date()
        try await store.startStep(id: step.id, at: started, processGroup: nil)
        var running = step
        running.status = .running
        running.startedAt = started
        await broadcaster.publish(jobID: jobID, event: .stepStarted(running))

        let control = StepControl(marker: "\(settings.instanceID):\(step.id):")
        run.begin(control)
        let recorder = StepOutputRecorder(
            store: store, broadcaster: broadcaster, jobID: jobID, stepID: step.id, cap: settings.stepOutputCap,
            secrets: secrets, metrics: settings.metrics)
        var invocation = StepInvocation(
            jobID: jobID, stepID: step.id, type: step.type, content: step.content, workspace: workspace,
            workingDirectory: step.type == "git" ? workspace : workingDirectory, environment: environment,
            snapshot: job.snapshot, control: control)
        invocation.name = step.name
        invocation.credentialEnvironment = credentials.environment
        invocation.repositories = settings.repositories
        invocation.labels = ["rapidflow.job": String(jobID), "rapidflow.instance": settings.instanceID]

        var exitCode: Int?
        do {
            if step.type != "git", !FileManager.default.fileExists(atPath: workingDirectory) {
                await recorder.note("working directory '\(job.snapshot.folder ?? ".")' does not exist in the workspace")
            } else {
                exitCode = try await executor.run(invocation, events: recorder)
            }
        } catch where RapidFlowError.isDiskFull(error) {
            // The step's own flood is the likeliest culprit: keep its head, give the rest back
            // to the disk, so the service and the next jobs can go on.
            let kept = 64 << 10
            var removed = 0
            do {
                removed = try await store.trimOutput(stepID: step.id, keepingFirst: kept)
            } catch {
                logger.warning("could not remove a flooding step's output from a full disk", metadata: ["step": "\(step.id)", "error": "\(error)"])
            }
            await recorder.note(
                "the step's output could not be stored: the data directory's disk is full; the step was stopped"
                    + (removed > 0 ? " (its output past the first \(kept >> 10) KiB, \(removed) bytes, was removed to free the disk)" : ""))
        } catch {
            await recorder.note("the step could not run: \(error)")
        }
        await recorder.finish()

        let status: StepStatus
        switch exitCode == 0 ? nil : run.stopReason {
        case .cancelled?:
            status = .cancelled
            await recorder.note("step cancelled")
        case .shutdown?:
            status = .failed
            await recorder.note("the service was shut down while this step ran")
        case .timedOut(let seconds)?:
            status = .failed
            await recorder.note("timed out after \(seconds.formatted()) s: the job's timeout_seconds was reached")
        case nil:
            status = exitCode == 0 ? .success : .failed
            if let exitCode, exitCode != 0 { await recorder.note("step failed with exit code \(exitCode)") }
        }
        let finished = Date()
        try await store.finishStep(id: step.id, status: status, exitCode: exitCode, at: finished)
        settings.metrics.recordStep(type: step.type, status: status, duration: .milliseconds(Int(finished.timeIntervalSince(started) * 1000)))
        await broadcaster.publish(jobID: jobID, event: .stepFinished(stepID: step.id, status: status, exitCode: exitCode))
        return status
    }
}
