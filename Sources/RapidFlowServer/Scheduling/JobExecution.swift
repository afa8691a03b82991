import Foundation
import NIOCore
import Logging
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// A write for a running job found its lease gone: another replica settled the job, and
/// nothing more is written for it here.
struct LeaseLost: Error, CustomStringConvertible {
    let jobID: Int
    var description: String { "job \(jobID): this replica no longer holds its lease" }
}

/// One claimed job on this service, from its claim to its final status: it prepares the
/// job's workspace and credentials, begins a session on the executor, runs the pending
/// steps in order through it, closes it, and settles the job.
struct JobExecution {
    /// The job as it was claimed.
    let job: Job
    let control: JobControl
    let store: any JobStore
    let executor: any JobExecutor
    let broadcaster: LogBroadcaster
    let settlement: JobSettlement
    let settings: JobScheduler.Settings
    let logger: Logger

    private var jobID: Int { job.id }
    /// What this replica holds the job by: every write for it is made under it.
    private var lease: JobLease { JobLease(owner: settings.instanceID, epoch: job.leaseEpoch) }

    /// Runs the job and settles it with its final status, which it returns. Throws when the
    /// store fails it; the caller then settles the job as abandoned.
    func run() async throws -> JobStatus {
        let steps = try await store.steps(jobID: jobID)
        let entries = try await store.environment(jobID: jobID)
        // Stored secrets: the job holds their names (its variables', and an image job's registry
        // credentials'); their values are opened now, and every secret the job can see goes to
        // its masker.
        let registrySecret = job.snapshot.imageJob?.registryCredentialsSecret
        let stored: SecretVault.Resolved
        do {
            stored = try await resolveSecrets(entries.compactMap(\.secret) + [registrySecret].compactMap { $0 })
        } catch let error as RapidFlowError where error.code == .unknownSecret {
            return try await failAtFirstStep(steps, reason: error.message)
        }
        let environment = entries.map { entry in (key: entry.key, value: entry.secret.flatMap { stored.values[$0]?.value } ?? entry.value) }
            + (job.kind == .pipeline ? Self.eventEnvironment(job) : [])
        let workspace = "\(settings.workspacesDirectory)/job-\(jobID)"
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
        // A pipeline job's own home: `~` in its steps, and in its cache and artifact paths.
        let home = job.kind == .pipeline ? Self.home(ofWorkspace: workspace) : nil
        if let home { try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true) }
        var credentials = JobCredentials()
        if let request = job.snapshot.imageJob {
            do {
                credentials = try settings.credentials.prepare(
                    for: request, registryHost: request.registryURL.flatMap { try? RegistryReference($0).host },
                    directory: "\(settings.credentialsDirectory)/job-\(jobID)",
                    storedRegistryCredentials: registrySecret.flatMap { stored.values[$0]?.value })
            } catch {
                credentials.remove()
                return try await failAtFirstStep(steps, reason: "credentials could not be read: \(error)")
            }
        }
        defer { credentials.remove() }
        // Secret values never reach stored or streamed output.
        let prepared = PreparedJob(
            workspace: workspace, workingDirectory: job.snapshot.folder.map { "\(workspace)/\($0)" } ?? workspace, home: home,
            environment: environment, credentials: credentials,
            secrets: credentials.secrets + stored.visibleValues
                + environment.filter { EnvironmentValidation.looksSecret($0.key) }.map(\.value))

        let session = try await executor.begin(job, control: control)
        let outcome: Result<JobStatus, any Error>
        do {
            outcome = .success(try await runSteps(steps, in: session, prepared))
        } catch {
            outcome = .failure(error)
        }
        await session.close()
        var status = try outcome.get()
        if control.stopReason == .leaseLost { throw LeaseLost(jobID: jobID) }
        if let reason = control.stopReason, status == .success { status = reason.jobStatus }
        control.markSettling()
        try await settlement.settle(.ran(jobID: jobID, status: status, lease: lease))
        return status
    }

    /// What started the job, for its steps: `CI_EVENT` always; `CI_COMMIT_SHA` and
    /// `CI_COMMIT_REF` when a forge event named the commit (or the branch is known).
    static func eventEnvironment(_ job: Job) -> [(key: String, value: String)] {
        let event = job.snapshot.event ?? (job.retryOf == nil ? .api : .retry)
        var result: [(key: String, value: String)] = [("CI_EVENT", event.rawValue)]
        if let commit = job.snapshot.commit {
            result += [("CI_COMMIT_SHA", commit.sha), ("CI_COMMIT_REF", commit.ref)]
        } else if let branch = job.snapshot.branch {
            result.append(("CI_COMMIT_REF", "refs/heads/\(branch)"))
        }
        return result
    }

    /// Opens the secrets the job names (the narrowest scope's) and every other one it can see,
    /// and records that the job used the named ones.
    private func resolveSecrets(_ names: [String]) async throws -> SecretVault.Resolved {
        guard let vault = settings.secrets else {
            if let name = names.first {
                throw RapidFlowError(.unknownSecret, "the job uses the stored secret '\(name)', but this service has no secrets store")
            }
            return SecretVault.Resolved()
        }
        let scopes = SecretScope.visible(pipelineID: job.pipelineID, owner: job.snapshot.owner ?? job.snapshot.imageJob?.owner)
        let resolved = try await vault.resolve(names, in: scopes)
        let now = Date()
        for name in Set(names) {
            guard let scope = resolved.values[name]?.scope else { continue }
            try await vault.store.recordSecretUse(name: name, scope: scope, jobID: jobID, at: now)
        }
        return resolved
    }

    /// A pipeline job's home folder, beside its workspace (`job-7` and `job-7-home`).
    static func home(ofWorkspace workspace: String) -> String { workspace + "-home" }

    /// What every step of the job shares.
    private struct PreparedJob: Sendable {
        let workspace: String
        /// Where a step's script runs: the workspace, or the config's `folder` inside it.
        let workingDirectory: String
        /// A pipeline job's own home (`HOME` of its steps); nil for an image job.
        let home: String?
        let environment: [(key: String, value: String)]
        let credentials: JobCredentials
        let secrets: [String]
    }

    /// The pending steps in order, until one does not succeed or the job is stopped; past
    /// its timeout the job is stopped like a cancel, and fails.
    private func runSteps(_ steps: [Step], in session: any JobSession, _ prepared: PreparedJob) async throws -> JobStatus {
        let timeout = job.snapshot.timeoutSeconds.map { Duration.clampedSeconds($0) } ?? settings.defaultJobTimeout
        let control = self.control
        return try await withThrowingTaskGroup(of: JobStatus?.self) { group in
            if let timeout {
                group.addTask {
                    try await Task.sleep(for: timeout)
                    control.interrupt(.timedOut(timeout.inSeconds))
                    try await Task.sleep(for: control.gracePeriod)
                    control.terminate(.timedOut(timeout.inSeconds))
                    return nil
                }
            }
            let keys = WorkspaceFileSteps.CacheKeys()
            group.addTask {
                var failed = false
                for step in steps where step.status == .pending {
                    if let reason = control.stopReason { return reason.jobStatus }
                    // After a failure only `artifacts` with `when: always` still runs.
                    if failed, !runsAfterFailure(step) { continue }
                    let status = try await runStep(step, in: session, prepared, keys: keys)
                    if status == .cancelled { return .cancelled }
                    if status != .success {
                        if !steps.contains(where: { $0.status == .pending && $0.orderNum > step.orderNum && runsAfterFailure($0) }) { return .failed }
                        failed = true
                    }
                }
                return failed ? .failed : .success
            }
            while let result = try await group.next() {
                if let result {
                    group.cancelAll()
                    return result
                }
            }
            return .failed
        }
    }

    /// An `artifacts` step with `when: always` runs also after a failed step.
    private func runsAfterFailure(_ step: Step) -> Bool {
        guard step.type == .artifacts else { return false }
        return (try? WorkspaceStepContent.decode(ArtifactSpec.self, from: step.content))?.when == .always
    }

    /// Fails the job at its first step with `reason` in that step's output.
    private func failAtFirstStep(_ steps: [Step], reason: String) async throws -> JobStatus {
        if let first = steps.first {
            let started = Date()
            guard try await store.startStep(id: first.id, at: started, processGroup: nil, lease: lease) else { throw LeaseLost(jobID: jobID) }
            let recorder = StepOutputRecorder(
                store: store, broadcaster: broadcaster, jobID: jobID, stepID: first.id, cap: settings.stepOutputCap, lease: lease, control: control)
            await recorder.note(reason)
            try await settlement.settleStep(first, status: .failed, exitCode: nil, startedAt: started, lease: lease)
        }
        try await settlement.settle(.ran(jobID: jobID, status: .failed, lease: lease))
        return .failed
    }

    private func runStep(
        _ step: Step, in session: any JobSession, _ prepared: PreparedJob, keys: WorkspaceFileSteps.CacheKeys
    ) async throws -> StepStatus {
        let started = Date()
        guard try await store.startStep(id: step.id, at: started, processGroup: nil, lease: lease) else { throw LeaseLost(jobID: jobID) }
        var running = step
        running.status = .running
        running.startedAt = started
        await broadcaster.publish(jobID: jobID, event: .stepStarted(running))

        let recorder = StepOutputRecorder(
            store: store, broadcaster: broadcaster, jobID: jobID, stepID: step.id, cap: settings.stepOutputCap,
            secrets: prepared.secrets, metrics: settings.metrics, lease: lease, control: control)
        var invocation = StepInvocation(
            jobID: jobID, stepID: step.id, type: step.type, content: step.content, workspace: prepared.workspace,
            workingDirectory: step.type == .git ? prepared.workspace : prepared.workingDirectory, environment: prepared.environment,
            snapshot: job.snapshot, control: control.beginStep(marker: "\(settings.instanceID):\(step.id):"))
        invocation.name = step.name
        invocation.home = prepared.home
        invocation.credentialEnvironment = prepared.credentials.environment
        invocation.credentials = prepared.credentials
        invocation.repositories = settings.repositories
        invocation.labels = ["rapidflow.job": String(jobID), "rapidflow.instance": settings.instanceID]

        var exitCode: Int?
        do {
            if step.type.isWorkspaceStep {
                exitCode = try await runWorkspaceStep(step, invocation, in: session, prepared, keys: keys, out: recorder)
            } else if step.type != .git, !FileManager.default.fileExists(atPath: prepared.workingDirectory) {
                await recorder.note("working directory '\(job.snapshot.folder ?? ".")' does not exist in the workspace")
            } else {
                exitCode = try await session.run(invocation, events: recorder)
            }
        } catch where RapidFlowError.isDiskFull(error) {
            await keepHeadOfFlood(step, recorder: recorder)
        } catch {
            await recorder.note("the step could not run: \(error)")
        }
        await recorder.finish()
        control.endStep()

        let status: StepStatus
        if exitCode != 0, let reason = control.stopReason {
            status = reason.stepStatus
            await recorder.note(reason.note)
        } else {
            status = exitCode == 0 ? .success : .failed
            if let exitCode, exitCode != 0 { await recorder.note("step failed with exit code \(exitCode)") }
        }
        // A lease lost while the step ran: the step was stopped, and nothing more is written.
        if control.stopReason == .leaseLost { throw LeaseLost(jobID: jobID) }
        try await settlement.settleStep(step, status: status, exitCode: exitCode, startedAt: started, lease: lease)
        return status
    }

    /// A cache restore or save, or the collection of artifacts: run where the workspace is.
    /// On this machine the service does them itself; a runner elsewhere does them on its own
    /// machine and moves the archives and files over its channel.
    private func runWorkspaceStep(
        _ step: Step, _ invocation: StepInvocation, in session: any JobSession, _ prepared: PreparedJob, keys: WorkspaceFileSteps.CacheKeys,
        out: any StepEvents
    ) async throws -> Int {
        guard let files = settings.workspaceFiles else {
            try await out.output(ByteBuffer(string: "caches and artifacts are not available on this service\n"))
            return 1
        }
        let context = WorkspaceFilesContext(
            owner: job.account, pipelineID: job.pipelineID, pipelineName: job.pipelineName ?? "job-\(jobID)", branch: job.snapshot.branch,
            limits: files.limits)
        let workspace: String
        switch executor.workspaceLocation {
        case .service: workspace = prepared.workspace
        case .directory(let root): workspace = "\(root)/job-\(jobID)"
        case .elsewhere:
            var remote = invocation
            remote.workspaceFiles = context
            return try await session.run(remote, events: out)
        }
        let steps = WorkspaceFileSteps(
            keeper: LocalWorkspaceKeeper(files: files, job: .init(jobID: jobID, owner: job.account, pipelineID: job.pipelineID)),
            identity: files.settings.identity)
        return try await steps.run(
            step.type, content: step.content, job: .init(context: context, workspace: workspace, home: Self.home(ofWorkspace: workspace)), keys: keys,
            out: out)
    }

    /// The step's own flood is the likeliest reason the disk is full: its head is kept, the
    /// rest given back to the disk, so the service and the next jobs can go on.
    private func keepHeadOfFlood(_ step: Step, recorder: StepOutputRecorder) async {
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
    }
}
