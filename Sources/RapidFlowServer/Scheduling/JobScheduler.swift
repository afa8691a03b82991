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

        public init(
            maxConcurrentJobs: Int, killGracePeriod: Duration, workspacesDirectory: String, instanceID: String,
            stepOutputCap: Int = 64 << 20, credentials: CredentialStore = .init(secretsDirectory: nil),
            credentialsDirectory: String = "/tmp", defaultJobTimeout: Duration? = nil, metrics: ServiceMetrics = ServiceMetrics()
        ) {
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

    init(store: any JobStore, executor: any StepExecutor, broadcaster: LogBroadcaster, settings: Settings, logger: Logger) {
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

    public func run() async throws {
        wake()
        await withDiscardingTaskGroup { group in
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

    private func claimJobs() async -> [JobRun] {
        var claimed: [JobRun] = []
        do {
            let free = settings.maxConcurrentJobs - runs.count
            guard free > 0 else { return [] }
            for job in try await store.pendingJobs(limit: free) where runs[job.id] == nil {
                // Registered before the claim, so a cancel racing with it finds the run.
                let run = JobRun(jobID: job.id)
                // Clamped: a job stored before the bound was validated must not overflow.
                run.gracePeriod =
                    job.snapshot.killTimeoutSeconds.map { .milliseconds(Int(min($0, Limits.default.maxTimeoutSeconds) * 1000)) }
                    ?? settings.killGracePeriod
                runs[job.id] = run
                if try await store.claimJob(id: job.id, at: Date()) {
                    claimed.append(run)
                } else {
                    runs[job.id] = nil
                    run.markFinished()
                }
            }
        } catch {
            logger.error("could not claim pending jobs", metadata: ["error": "\(error)"])
        }
        return claimed
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
            _ = try? await store.skipPendingSteps(jobID: jobID, at: Date())
            _ = try? await store.finishJob(id: jobID, status: .failed, cancelled: false, at: Date())
        }
        await broadcaster.publish(jobID: jobID, event: .jobFinished(status))
        finished(run)
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
        } else if try await store.cancelPendingJob(id: jobID, at: Date()) {
            try await store.skipPendingSteps(jobID: jobID, at: Date())
            await broadcaster.publish(jobID: jobID, event: .jobFinished(.cancelled))
        } else if let run = runs[jobID] {
            // Claimed between the two looks.
            await stop(run)
        }
        return try await store.requireJob(id: jobID)
    }

    private func stop(_ run: JobRun) async {
        run.stop(.cancelled, signal: SIGTERM)
        if await run.waitUntilFinished(timeout: run.gracePeriod) { return }
        logger.notice("job did not stop within the grace period; killing it", metadata: ["job": "\(run.jobID)"])
        run.stop(.cancelled, signal: SIGKILL)
        await run.waitUntilFinished()
    }

    // MARK: - Recovery

    /// No job stays `running` across a crash or restart: what the previous process left
    /// running is settled `failed`, and its orphaned processes are killed.
    func recoverInterruptedJobs() async throws {
        let interrupted = try await store.settleInterruptedJobs(
            reason: "the service stopped while this step was running (crash or restart); the job was settled as failed",
            at: Date())
        let killed = ProcessSweeper.signalProcesses(markedWith: "\(settings.instanceID):", signal: SIGKILL)
        if !interrupted.isEmpty || killed > 0 {
            logger.notice(
                "settled jobs interrupted by a restart",
                metadata: ["steps": "\(interrupted.map(\.stepID))", "orphaned_processes_killed": "\(killed)"])
        }
    }
}
