import Foundation
import Logging
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore
import ServiceLifecycle
import Synchronization

/// Runs pending jobs in the fair queue's order (priority, then owners in turn, FIFO within an
/// owner), at most `maxConcurrentJobs` at once, and stops them on request.
///
/// It is a `Service`: `run()` first settles jobs a previous process left `running`, then
/// claims and runs jobs until graceful shutdown, when it stops the running ones.
public actor JobScheduler: Service {
    public struct Settings: Sendable {
        public var maxConcurrentJobs: Int
        /// Jobs one owner may run at once when it has no limit of its own; nil: no limit.
        public var maxJobsPerOwner: Int?
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
        /// Opens the stored secrets a job uses and sees; nil: jobs cannot use stored secrets.
        public var secrets: SecretVault?
        /// Who hears of job changes in this process (the webhook dispatcher, commit statuses).
        var events = JobEventTap()
        /// Restores and saves caches and keeps artifacts; nil: a store without their tables.
        var workspaceFiles: WorkspaceFiles?

        public init(
            maxConcurrentJobs: Int, killGracePeriod: Duration, workspacesDirectory: String, instanceID: String,
            stepOutputCap: Int = 64 << 20, credentials: CredentialStore = .init(secretsDirectory: nil),
            credentialsDirectory: String = "/tmp", defaultJobTimeout: Duration? = nil, metrics: ServiceMetrics = ServiceMetrics(),
            leaseDuration: Duration = .seconds(30), repositories: RepositoryPolicy = .remoteOnly, secrets: SecretVault? = nil,
            maxJobsPerOwner: Int? = nil
        ) {
            self.maxJobsPerOwner = maxJobsPerOwner
            self.secrets = secrets
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
    private let executor: any JobExecutor
    private let broadcaster: LogBroadcaster
    private let settings: Settings
    private let logger: Logger
    /// Where every job's end is written.
    private let settlement: JobSettlement
    /// The jobs this service runs now, each with its one control (see `JobControl`).
    private var runs: [Int: JobControl] = [:] {
        didSet { running.store(runs.count, ordering: .relaxed) }
    }
    /// `runs.count`, readable without a hop onto the actor (every status answer shows it).
    private let running = Atomic<Int>(0)
    /// Set by `drain`: no job is claimed any more.
    private let draining = Atomic<Bool>(false)
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    /// Messages to the other replicas on the same store; nil when none can share it.
    private let outbox: ClusterOutbox?

    init(
        store: any JobStore, executor: any JobExecutor, broadcaster: LogBroadcaster, settings: Settings, logger: Logger,
        outbox: ClusterOutbox? = nil
    ) {
        settlement = JobSettlement(
            store: store, broadcaster: broadcaster, metrics: settings.metrics, instanceID: settings.instanceID, logger: logger,
            events: settings.events)
        self.outbox = outbox
        self.store = store
        self.executor = executor
        self.broadcaster = broadcaster
        self.settings = settings
        self.logger = logger
        (wakeups, wakeupContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Jobs this service is running now.
    public nonisolated var runningCount: Int { running.load(ordering: .relaxed) }

    /// Looks for pending jobs to start.
    nonisolated func wake() {
        wakeupContinuation.yield()
    }

    /// New pending jobs: this replica and the others look for work.
    nonisolated func jobsCreated() {
        wake()
        settings.events.emit(.created(jobIDs: []))
        outbox?.sendWake()
    }

    public func run() async throws {
        wake()
        await withDiscardingTaskGroup { group in
            group.addTask { await self.keepLeases() }
            for await _ in wakeups.cancelOnGracefulShutdown() {
                for (job, control) in await claimJobs() {
                    group.addTask { await self.execute(job, control) }
                }
            }
            // Graceful shutdown: stop what runs; each job settles as failed with the reason.
            let current = Array(runs.values)
            logger.info("shutting down: stopping the running jobs", metadata: ["running": "\(current.count)"])
            for control in current { control.interrupt(.shutdown) }
            group.addTask {
                for control in current where !(await control.waitUntilFinished(timeout: control.gracePeriod)) {
                    control.terminate(.shutdown)
                }
            }
        }
    }

    // MARK: - Claiming

    /// Claims in batches of at most this many: one statement holds SQLite's only connection,
    /// so a large batch would make the submits waiting behind it slow.
    static let claimBatch = 16

    private func claimJobs() async -> [(Job, JobControl)] {
        let free = settings.maxConcurrentJobs - runs.count
        guard free > 0, !recoveryPending, !isDraining else { return [] }
        do {
            let now = Date()
            let jobs = try await store.claimPendingJobs(
                owner: settings.instanceID, limit: min(free, Self.claimBatch), at: now,
                leaseUntil: now.addingTimeInterval(settings.leaseDuration.inSeconds), maxJobsPerOwner: settings.maxJobsPerOwner)
            // More may be waiting: look again once these have started.
            if jobs.count == Self.claimBatch { wake() }
            if !jobs.isEmpty { settings.events.emit(.started(jobIDs: jobs.map(\.id))) }
            return jobs.map { job in
                settings.metrics.recordQueueWait(job)
                // Clamped: a job stored before the bound was validated must not overflow.
                let control = JobControl(
                    jobID: job.id, gracePeriod: job.snapshot.killTimeoutSeconds.map { Duration.clampedSeconds($0) } ?? settings.killGracePeriod)
                runs[job.id] = control
                return (job, control)
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
            // Running here, yet no longer this replica's: another replica settled it while this one
            // did not renew (paused, or cut off from the store). Its processes stop at once.
            // (`execute` logs it when the job's run gives up.)
            for (jobID, control) in runs where !renewal.renewed.contains(jobID) && !control.isSettling {
                control.terminate(.leaseLost)
            }
            let settled = try await settlement.settle(
                .interrupted(
                    .leaseEndedBefore(now, exceptOwner: settings.instanceID),
                    reason: "the replica running this job stopped renewing its lease (it stopped or lost the database); the job was settled as failed by another replica"))
            for jobID in settled {
                logger.notice("settled a job whose replica's lease ran out", metadata: ["job": "\(jobID)"])
            }
        } catch {
            logger.warning("could not renew job leases", metadata: ["error": "\(error)"])
        }
        // A wake-up notification may have been missed.
        wake()
    }

    private func finished(_ control: JobControl) {
        runs[control.jobID] = nil
        control.markFinished()
        wake()
    }

    // MARK: - Running

    private func execute(_ job: Job, _ control: JobControl) async {
        var started: Logger.Metadata = ["job": "\(job.id)", "kind": "\(job.kind.rawValue)"]
        if let pipeline = job.pipelineName { started["pipeline"] = "\(pipeline)" }
        if let owner = job.snapshot.imageJob?.owner { started["owner"] = "\(owner)" }
        logger.info("job started", metadata: started)
        do {
            _ = try await JobExecution(
                job: job, control: control, store: store, executor: executor, broadcaster: broadcaster,
                settlement: settlement, settings: settings, logger: logger
            ).run()
            finished(control)
        } catch is LeaseLost {
            // Settled by another replica: the store refused this replica's writes for it.
            control.terminate(.leaseLost)
            logger.warning(
                "lost the lease of a running job: another replica settled it while this one did not renew the lease; its processes here were stopped and nothing more is written for it",
                metadata: ["job": "\(job.id)"])
            finished(control)
        } catch {
            logger.error("job failed to run", metadata: ["job": "\(job.id)", "error": "\(error)"])
            // Nothing runs any more: a cancel waiting for the job answers now, and the slot is
            // free. The store records the end as soon as it accepts writes again.
            finished(control)
            await settlement.settleUntilStored(.abandoned(jobID: job.id, reason: "the job could not be completed: \(error)"))
        }
    }

    // MARK: - Stopping

    /// Cancels a pending or running job and returns once it has stopped.
    public func cancel(jobID: Int) async throws -> Job {
        let job = try await store.requireJob(id: jobID)
        logger.info("job cancel requested", metadata: ["job": "\(jobID)", "status": "\(job.status.rawValue)"])
        if job.status.isFinal {
            throw RapidFlowError(
                .jobNotCancellable,
                "job \(jobID) already finished with status \(job.status.rawValue); only pending or running jobs can be cancelled")
        }
        if let control = runs[jobID] {
            await stop(control)
            let stopped = try await store.requireJob(id: jobID)
            guard stopped.status.isFinal else {
                throw RapidFlowError(
                    .insufficientStorage,
                    "job \(jobID) was stopped, but its final status cannot be stored yet (the store refuses writes: is the disk full?); it is stored as soon as it can be")
            }
            return stopped
        } else if try await !settlement.settle(.cancelledWhilePending(jobID: jobID)).isEmpty {
            // It never started.
        } else if let control = runs[jobID] {
            // Claimed between the two looks.
            await stop(control)
        } else {
            try await cancelElsewhere(jobID: jobID)
        }
        return try await store.requireJob(id: jobID)
    }

    /// What a new job `newJobID` of concurrency group `group` does to the group's older jobs:
    /// with `cancel_pending` the pending ones are cancelled before this returns; with
    /// `cancel_running` the running ones too, which are asked to stop here and end on their own
    /// (the new job starts once they have).
    func replaceOlderJobs(of group: String, than newJobID: Int, as mode: ConcurrencyGroup.OnConflict) async {
        let statuses: [JobStatus] =
            switch mode {
            case .queue: []
            case .cancelPending: [.pending]
            case .cancelRunning: [.pending, .running]
            }
        let older: [Int]
        do {
            older = try await store.jobIDs(inGroup: group, before: newJobID, statuses: statuses)
        } catch {
            logger.error("could not read a concurrency group's jobs", metadata: ["group": "\(group)", "error": "\(error)"])
            return
        }
        for jobID in older {
            logger.info(
                "job replaced by a newer one of its concurrency group",
                metadata: ["job": "\(jobID)", "by": "\(newJobID)", "group": "\(group)", "on_conflict": "\(mode.rawValue)"])
            let settled = (try? await settlement.settle(.cancelledWhilePending(jobID: jobID))) ?? []
            // Running (here or on another replica), or claimed since it was read.
            if settled.isEmpty, mode == .cancelRunning { Task { _ = try? await self.cancel(jobID: jobID) } }
        }
    }

    /// The job runs on another replica (or is being claimed here): ask its owner through the
    /// store and a notification, and wait for it to end.
    private func cancelElsewhere(jobID: Int) async throws {
        guard try await store.requestCancel(jobID: jobID) else { return }
        outbox?.send(.cancel, job: jobID)
        let deadline = ContinuousClock.now + settings.killGracePeriod + settings.leaseDuration + .seconds(30)
        while ContinuousClock.now < deadline {
            if let control = runs[jobID] {
                await stop(control)
                return
            }
            if try await store.job(id: jobID)?.status.isFinal ?? true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        logger.warning("a cancelled job did not stop within its grace period", metadata: ["job": "\(jobID)"])
    }

    /// Another replica asked to cancel `jobID`: stop it if it runs here.
    func cancelRequested(jobID: Int) async {
        guard let control = runs[jobID], control.stopReason == nil else { return }
        logger.info("cancelling a job on another replica's request", metadata: ["job": "\(jobID)"])
        Task { await self.stop(control) }
    }

    /// SIGTERM, then SIGKILL after the job's grace period; returns once the job has ended.
    private func stop(_ control: JobControl) async {
        control.interrupt(.cancelled)
        if await control.waitUntilFinished(timeout: control.gracePeriod) { return }
        logger.notice("job did not stop within the grace period; killing it", metadata: ["job": "\(control.jobID)"])
        control.terminate(.cancelled)
        await control.waitUntilFinished()
    }

    // MARK: - Draining

    /// Whether the service is draining (see `drain`); `/ready` answers 503 meanwhile.
    public nonisolated var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Starts no job any more and waits until the running ones have ended, or `timeout` has
    /// passed; true when none runs any more. The shutdown that follows stops what still runs.
    @discardableResult
    public func drain(timeout: Duration) async -> Bool {
        draining.store(true, ordering: .relaxed)
        logger.info("draining: finishing the running jobs, starting no new one", metadata: [
            "running": "\(runs.count)", "timeout_seconds": "\(timeout.inSeconds.formatted())",
        ])
        let deadline = ContinuousClock.now + timeout
        for control in Array(runs.values) {
            let left = deadline - .now
            guard left > .zero, await control.waitUntilFinished(timeout: left) else { break }
        }
        let drained = runs.isEmpty
        if !drained { logger.notice("the drain's timeout passed; stopping the jobs still running", metadata: ["running": "\(runs.count)"]) }
        return drained
    }

    // MARK: - Recovery

    /// A job the store shows `running` that no replica runs (a zombie: its process died and
    /// recovery has not seen it yet): settles it `failed` and kills what it left. False when
    /// the job runs here or on a replica that still renews its lease.
    func settleZombie(jobID: Int) async throws -> Bool {
        guard runs[jobID] == nil else { return false }
        let settled = try await settlement.settle(
            .interrupted(
                .zombie(jobID: jobID, ownedBy: settings.instanceID, orLeaseEndedBefore: Date()),
                reason: "nothing was running this job any more; cleanup settled it as failed"))
        return settled == [jobID]
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
        let interrupted = try await settlement.settle(
            .interrupted(
                .ownedBy(settings.instanceID, orLeaseEndedBefore: Date()),
                reason: "the service stopped while this step was running (crash or restart); the job was settled as failed"))
        if !interrupted.isEmpty || killed > 0 {
            logger.notice(
                "settled jobs interrupted by a restart", metadata: ["jobs": "\(interrupted)", "orphaned_processes_killed": "\(killed)"])
        }
    }
}


