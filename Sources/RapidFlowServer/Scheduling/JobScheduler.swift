import Foundation
import Logging
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore
import ServiceLifecycle

/// Runs pending jobs in FIFO order, at most `maxConcurrentJobs` at once, and stops them on request.
///
/// It is a `Service`: `run()` first settles jobs a previous process left `running`, then
/// claims and runs jobs until graceful shutdown, when it stops the running ones.
public actor JobScheduler: Service {
    public struct Settings: Sendable {
        public var maxConcurrentJobs: Int
        /// Where step, phase and log figures go (`GET /metrics`).
        public var metrics: ServiceMetrics
        /// Time between SIGTERM and SIGKILL when a job is stopped.
        public var killGracePeriod: Duration
        public var workspacesDirectory: String
        /// Identifies this service's processes across restarts (see `ProcessSweeper`).
        public var instanceID: String
        /// Bytes of output kept per step: the head and the tail, with a marker where the middle was cut.
        public var stepOutputCap: Int
        /// Resolves credential paths in the secrets directory.
        public var credentials = CredentialStore(secretsDirectory: nil)
        /// Where per-job credential files live while a job runs.
        public var credentialsDirectory = "/tmp"
        /// A job running longer fails ("timed out"), unless its config sets its own timeout.
        public var defaultJobTimeout: Duration?
        /// How long a claimed job stays this service's without a renewal: a replica that
        /// stops renewing (it died) has its jobs settled by another within about this time.
        public var leaseDuration: Duration = .seconds(30)
        /// Whether clones may read repositories on this machine (`--allow-local-repos`): git's
        /// transports are limited by it when a step runs, also for jobs stored before a change.
        public var repositories = RepositoryPolicy.remoteOnly

        public init(
            maxConcurrentJobs: Int, killGracePeriod: Duration, workspacesDirectory: String, instanceID: String,
            stepOutputCap: Int = 64 << 20, credentials: CredentialStore = .init(secretsDirectory: nil),
            credentialsDirectory: String = "/tmp", defaultJobTimeout: Duration? = nil, metrics: ServiceMetrics = ServiceMetrics(),
            leaseDuration: Duration = .seconds(30), repositories: RepositoryPolicy = .remoteOnly
        ) {
            self.repositories = repositories
            self.leaseDuration = leaseDuration
            self.metrics = metrics
            self.defaultJobTimeout = defaultJobTimeout
            self.credentials = credentials
            self.credentialsDirectory = credentialsDirectory
            self.stepOutputCap = stepOutputCap
            self.maxConcurrentJobs = maxConcurrentJobs
            self.killGracePeriod = killGracePeriod
            self.workspacesDirectory = workspacesDirectory
            self.instanceID = instanceID
        }
    }

    private let store: any JobStore
    private let executor: any StepExecutor
    private let broadcaster: LogBroadcaster
    private let settings: Settings
    private let logger: Logger
    private var runs: [Int: JobRun] = [:]
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    /// Messages to the other replicas on the same store; nil when none can share it.
    private let outbox: ClusterOutbox?

    init(
        store: any JobStore, executor: any StepExecutor, broadcaster: LogBroadcaster, settings: Settings, logger: Logger,
        outbox: ClusterOutbox? = nil
    ) {
        self.outbox = outbox
        self.store = store
        self.executor = executor
        self.broadcaster = broadcaster
        self.settings = settings
        self.logger = logger
        (wakeups, wakeupContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Jobs this service is running now.
    public var runningCount: Int { runs.count }

    /// Looks for pending jobs to start.
    nonisolated func wake() {
        wakeupContinuation.yield()
    }

    /// New pending jobs: this replica and the others look for work.
    nonisolated func jobsCreated() {
        wake()
        outbox?.send(.wake, job: 0)
    }

    public func run() async throws {
        wake()
        await withDiscardingTaskGroup { group in
            group.addTask { await self.keepLeases() }
            for await _ in wakeups.cancelOnGracefulShutdown() {
                for run in await claimJobs() {
                    group.addTask { await self.execute(run) }
                }
            }
            // Graceful shutdown: stop what runs; each job settles as failed with the reason.
            let current = Array(runs.values)
            for run in current { run.stop(.shutdown, signal: SIGTERM) }
            group.addTask {
                for run in current where !(await run.waitUntilFinished(timeout: run.gracePeriod)) {
                    run.stop(.shutdown, signal: SIGKILL)
                }
            }
        }
    }

    // MARK: - Claiming

    /// Claims in batches of at most this many: one statement holds SQLite's only connection,
    /// so a large batch would make the submits waiting behind it slow.
    static let claimBatch = 16

    private func claimJobs() async -> [JobRun] {
        let free = settings.maxConcurrentJobs - runs.count
        guard free > 0, !recoveryPending else { return [] }
        do {
            let now = Date()
            let jobs = try await store.claimPendingJobs(
                owner: settings.instanceID, limit: min(free, Self.claimBatch), at: now,
                leaseUntil: now.addingTimeInterval(settings.leaseDuration.inSeconds))
            // More may be waiting: look again once these have started.
            if jobs.count == Self.claimBatch { wake() }
            return jobs.map { job in
                let run = JobRun(jobID: job.id)
                // Clamped: a job stored before the bound was validated must not overflow.
                run.gracePeriod =
                    job.snapshot.killTimeoutSeconds.map { Duration.clampedSeconds($0) }
                    ?? settings.killGracePeriod
                runs[job.id] = run
                return run
            }
        } catch {
            logger.error("could not claim pending jobs", metadata: ["error": "\(error)"])
            return []
        }
    }

    // MARK: - Leases

    /// Renews this service's leases a few times per lease, stops the jobs another replica
    /// asked to cancel, and settles the jobs of replicas whose leases ran out.
    private func keepLeases() async {
        let interval = settings.leaseDuration / 3
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            await renewLeasesOnce()
        }
    }

    func renewLeasesOnce() async {
        if recoveryPending { await recoverInterruptedJobsOrDefer() }
        let now = Date()
        do {
            let renewal = try await store.renewLeases(
                owner: settings.instanceID, until: now.addingTimeInterval(settings.leaseDuration.inSeconds))
            for jobID in renewal.cancelRequested { await cancelRequested(jobID: jobID) }
            let settled = try await store.settleInterruptedJobs(
                reason: "the replica running this job stopped renewing its lease (it stopped or lost the database); the job was settled as failed by another replica",
                at: now, scope: .leaseEndedBefore(now, exceptOwner: settings.instanceID))
            for jobID in settled.jobIDs {
                logger.notice("settled a job whose replica's lease ran out", metadata: ["job": "\(jobID)"])
                await broadcaster.publish(jobID: jobID, event: .jobFinished(.failed))
            }
        } catch {
            logger.warning("could not renew job leases", metadata: ["error": "\(error)"])
        }
        // A wake-up notification may have been missed.
        wake()
    }

    private func finished(_ run: JobRun) {
        runs[run.jobID] = nil
        run.markFinished()
        wake()
    }

    // MARK: - Running

    private func execute(_ run: JobRun) async {
        let jobID = run.jobID
        var status = JobStatus.failed
        do {
            status = try await JobExecution(
                jobID: jobID, run: run, store: store, executor: executor, broadcaster: broadcaster,
                settings: settings, logger: logger
            ).run()
        } catch {
            logger.error("job failed to run", metadata: ["job": "\(jobID)", "error": "\(error)"])
            await executor.jobFinished(jobID: jobID)
            // Nothing runs any more: a cancel waiting for the run answers now, and the slot is
            // free. The store records the end as soon as it accepts writes again.
            finished(run)
            await settleUntilStored(jobID: jobID, reason: "the job could not be completed: \(error)")
            await broadcaster.publish(jobID: jobID, event: .jobFinished(.failed))
            return
        }
        await broadcaster.publish(jobID: jobID, event: .jobFinished(status))
        finished(run)
    }

    /// Settles a job that could not finish normally as `failed` with `reason` in its output.
    /// The store may refuse writes for a while (a full disk): the job is not left `running`,
    /// it is settled as soon as a write goes through, or by the next start of the service.
    private func settleUntilStored(jobID: Int, reason: String) async {
        var delay = Duration.milliseconds(100)
        while true {
            do {
                _ = try await store.settleInterruptedJobs(
                    reason: reason, at: Date(), scope: .zombie(jobID: jobID, ownedBy: settings.instanceID, orLeaseEndedBefore: Date()))
                if try await store.job(id: jobID)?.status.isFinal ?? true { return }
                // Not running (claimed but no step started): settle it plainly.
                try await store.skipPendingSteps(jobID: jobID, at: Date())
                _ = try await store.finishJob(id: jobID, status: .failed, cancelled: false, at: Date())
                return
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                logger.warning("could not settle a job yet; trying again", metadata: ["job": "\(jobID)", "error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    // MARK: - Stopping

    /// Cancels a pending or running job and returns once it has stopped.
    public func cancel(jobID: Int) async throws -> Job {
        let job = try await store.requireJob(id: jobID)
        if job.status.isFinal {
            throw RapidFlowError(
                .jobNotCancellable,
                "job \(jobID) already finished with status \(job.status.rawValue); only pending or running jobs can be cancelled")
        }
        if let run = runs[jobID] {
            await stop(run)
            let stopped = try await store.requireJob(id: jobID)
            guard stopped.status.isFinal else {
                throw RapidFlowError(
                    .insufficientStorage,
                    "job \(jobID) was stopped, but its final status cannot be stored yet (the store refuses writes: is the disk full?); it is stored as soon as it can be")
            }
            return stopped
        } else if try await store.cancelPendingJob(id: jobID, at: Date()) {
            try await store.skipPendingSteps(jobID: jobID, at: Date())
            await broadcaster.publish(jobID: jobID, event: .jobFinished(.cancelled))
        } else if let run = runs[jobID] {
            // Claimed between the two looks.
            await stop(run)
        } else {
            try await cancelElsewhere(jobID: jobID)
        }
        return try await store.requireJob(id: jobID)
    }

    /// The job runs on another replica (or is being claimed here): ask its owner through the
    /// store and a notification, and wait for it to end.
    private func cancelElsewhere(jobID: Int) async throws {
        guard try await store.requestCancel(jobID: jobID) else { return }
        outbox?.send(.cancel, job: jobID)
        let deadline = ContinuousClock.now + settings.killGracePeriod + settings.leaseDuration + .seconds(30)
        while ContinuousClock.now < deadline {
            if let run = runs[jobID] {
                await stop(run)
                return
            }
            if try await store.job(id: jobID)?.status.isFinal ?? true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        logger.warning("a cancelled job did not stop within its grace period", metadata: ["job": "\(jobID)"])
    }

    /// Another replica asked to cancel `jobID`: stop it if it runs here.
    func cancelRequested(jobID: Int) async {
        guard let run = runs[jobID], run.stopReason == nil else { return }
        logger.info("cancelling a job on another replica's request", metadata: ["job": "\(jobID)"])
        Task { await self.stop(run) }
    }

    private func stop(_ run: JobRun) async {
        run.stop(.cancelled, signal: SIGTERM)
        if await run.waitUntilFinished(timeout: run.gracePeriod) { return }
        logger.notice("job did not stop within the grace period; killing it", metadata: ["job": "\(run.jobID)"])
        run.stop(.cancelled, signal: SIGKILL)
        await run.waitUntilFinished()
    }

    // MARK: - Recovery

    /// A job the store shows `running` that no replica runs (a zombie: its process died and
    /// recovery has not seen it yet): settles it `failed` and kills what it left. False when
    /// the job runs here or on a replica that still renews its lease.
    func settleZombie(jobID: Int) async throws -> Bool {
        guard runs[jobID] == nil else { return false }
        let settled = try await store.settleInterruptedJobs(
            reason: "nothing was running this job any more; cleanup settled it as failed",
            at: Date(), scope: .zombie(jobID: jobID, ownedBy: settings.instanceID, orLeaseEndedBefore: Date()))
        guard settled.jobIDs == [jobID] else { return false }
        // By marker, not by the stored process group: after a crash that number may be another process's.
        for step in settled.steps {
            ProcessSweeper.signalProcesses(markedWith: "\(settings.instanceID):\(step.stepID):", signal: SIGKILL)
            await StepCgroups.remove(markedWith: "\(settings.instanceID):\(step.stepID):")
        }
        await broadcaster.publish(jobID: jobID, event: .jobFinished(.failed))
        return true
    }

    /// No job stays `running` across a crash or restart: what the previous process left
    /// running is settled `failed`, and its orphaned processes are killed.
    /// Set while start-up recovery could not be written (a full disk): no job is claimed until
    /// it has, so recovery never settles a job this run started.
    private var recoveryPending = false

    /// Recovery at start-up that never stops the service from starting: when the store refuses
    /// the writes, it is tried again with every lease round until it goes through.
    func recoverInterruptedJobsOrDefer() async {
        do {
            try await recoverInterruptedJobs()
            recoveryPending = false
        } catch {
            if !recoveryPending {
                logger.error("could not settle the jobs the previous run left; trying again until the store accepts it", metadata: ["error": "\(error)"])
            }
            recoveryPending = true
        }
    }

    func recoverInterruptedJobs() async throws {
        // Only this service's own jobs (and those of replicas whose leases ran out): other
        // replicas on the same store keep theirs.
        // Orphans first: they must die even when the store cannot be written yet.
        let killed = ProcessSweeper.signalProcesses(markedWith: "\(settings.instanceID):", signal: SIGKILL)
        await StepCgroups.remove(markedWith: "\(settings.instanceID):")
        let interrupted = try await store.settleInterruptedJobs(
            reason: "the service stopped while this step was running (crash or restart); the job was settled as failed",
            at: Date(), scope: .ownedBy(settings.instanceID, orLeaseEndedBefore: Date())
        ).steps
        if !interrupted.isEmpty || killed > 0 {
            logger.notice(
                "settled jobs interrupted by a restart",
                metadata: ["steps": "\(interrupted.map(\.stepID))", "orphaned_processes_killed": "\(killed)"])
        }
    }
}


