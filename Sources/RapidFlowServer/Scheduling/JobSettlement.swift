import Foundation
import Logging
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// The one place a job and a step reach their final status.
///
/// Every way a job ends comes through `settle`: its steps ran (success, failure, a cancel, a
/// timeout, a shutdown), it could not complete here (an error, a store that refused the
/// end), it was cancelled before it started, or whatever ran it is gone (this service's
/// previous run, a zombie that `cleanup` found, a replica whose lease ran out). `settle`
/// writes the final status once (the store's conditional updates make a second writer a
/// no-op), skips the remaining steps, kills what an interrupted step left, publishes the end
/// to followers and records the metrics. A step ends through `settleStep`.
struct JobSettlement: Sendable {
    let store: any JobStore
    let broadcaster: LogBroadcaster
    let metrics: ServiceMetrics
    let instanceID: String
    let logger: Logger
    var events = JobEventTap()

    /// How a job ended.
    enum Ending: Sendable {
        /// Its steps ran here, and it ended with `status`.
        /// Under `lease`, its end is written only while the lease holds.
        case ran(jobID: Int, status: JobStatus, lease: JobLease? = nil)
        /// It could not complete here: it fails with `reason` in its running step's output.
        case abandoned(jobID: Int, reason: String)
        /// It was cancelled while pending, before any step started.
        case cancelledWhilePending(jobID: Int)
        /// Whatever ran the jobs in `scope` is gone: each fails with `reason` in the output of
        /// the step that was running.
        case interrupted(InterruptedScope, reason: String)
    }

    /// Settles what `ending` names and returns the ids of the jobs this call settled (none
    /// when another writer got there first).
    @discardableResult
    func settle(_ ending: Ending) async throws -> [Int] {
        let now = Date()
        var settled: [Int] = []
        var status = JobStatus.failed
        switch ending {
        case .ran(let jobID, let ended, let lease):
            status = ended
            if try await store.finishRanJob(id: jobID, status: ended, at: now, lease: lease) { settled = [jobID] }
        case .abandoned(let jobID, let reason):
            // A running step gets the reason in its output; a job with none fails plainly.
            settled = try await settleInterrupted(.zombie(jobID: jobID, ownedBy: instanceID, orLeaseEndedBefore: now), reason: reason, at: now)
            if settled.isEmpty {
                try await store.skipPendingSteps(jobID: jobID, at: now)
                if try await store.finishJob(id: jobID, status: .failed, cancelled: false, at: now) { settled = [jobID] }
            }
        case .cancelledWhilePending(let jobID):
            status = .cancelled
            if try await store.cancelPendingJob(id: jobID, at: now) {
                try await store.skipPendingSteps(jobID: jobID, at: now)
                settled = [jobID]
            }
        case .interrupted(let scope, let reason):
            settled = try await settleInterrupted(scope, reason: reason, at: now)
        }
        for jobID in settled {
            let job = try? await store.job(id: jobID)
            metrics.recordJobFinished(kind: job?.kind ?? .pipeline, status: status)
            if let job { metrics.recordJobDuration(job) }
            if case .ran = ending { metrics.recordPhases(of: try await store.steps(jobID: jobID)) }
            await broadcaster.publish(jobID: jobID, event: .jobFinished(status))
            events.emit(.finished(jobID: jobID, postsStatus: job?.snapshot.statusTarget != nil))
            logEnd(of: jobID, job, status: status, ending)
        }
        return settled
    }

    /// One line per job end at `info`: the job, its status, how long it ran and, when it did
    /// not end by running its steps here, why.
    private func logEnd(of jobID: Int, _ job: Job?, status: JobStatus, _ ending: Ending) {
        guard logger.logLevel <= .info else { return }
        var metadata: Logger.Metadata = ["job": "\(jobID)", "status": "\(status.rawValue)"]
        if let job {
            metadata["kind"] = "\(job.kind.rawValue)"
            if let pipeline = job.pipelineName { metadata["pipeline"] = "\(pipeline)" }
            if let owner = job.snapshot.imageJob?.owner { metadata["owner"] = "\(owner)" }
        }
        if let job, let started = job.startedAt, let finished = job.finishedAt {
            metadata["duration_ms"] = "\(Int((finished.timeIntervalSince(started) * 1000).rounded()))"
        }
        switch ending {
        case .ran: break
        case .abandoned: metadata["settled"] = "could not complete here"
        case .cancelledWhilePending: metadata["settled"] = "cancelled before it started"
        case .interrupted: metadata["settled"] = "interrupted: what ran it is gone"
        }
        logger.info("job finished", metadata: metadata)
    }

    /// Settles an ending the store may refuse for a while (a full disk): it is tried again,
    /// backing off, until it is stored or the service stops (the next start settles it then).
    func settleUntilStored(_ ending: Ending) async {
        var delay = Duration.milliseconds(100)
        while true {
            do {
                try await settle(ending)
                return
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                logger.warning("could not settle a job yet; trying again", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Jobs left `running` by something gone: settled in the store, and every process and
    /// cgroup their running steps left behind is killed (by marker, not by the stored process
    /// group: after a crash that number may be another process's now).
    private func settleInterrupted(_ scope: InterruptedScope, reason: String, at now: Date) async throws -> [Int] {
        let settled = try await store.settleInterruptedJobs(reason: reason, at: now, scope: scope)
        for step in settled.steps {
            let marker = "\(instanceID):\(step.stepID):"
            ProcessSweeper.signalProcesses(markedWith: marker, signal: SIGKILL)
            await StepCgroups.remove(markedWith: marker)
        }
        return settled.jobIDs
    }

    // MARK: - Steps

    /// A step's end: its status and exit code stored once, its duration in the metrics, the
    /// end published to followers.
    /// Under `lease`, only while it holds (`LeaseLost` otherwise).
    func settleStep(_ step: Step, status: StepStatus, exitCode: Int?, startedAt: Date, lease: JobLease? = nil) async throws {
        let finished = Date()
        guard try await store.finishStep(id: step.id, status: status, exitCode: exitCode, at: finished, lease: lease) else {
            throw LeaseLost(jobID: step.jobID)
        }
        metrics.recordStep(type: step.type, status: status, duration: .milliseconds(Int(finished.timeIntervalSince(startedAt) * 1000)))
        await broadcaster.publish(jobID: step.jobID, event: .stepFinished(stepID: step.id, status: status, exitCode: exitCode))
        events.emit(.stepFinished(jobID: step.jobID))
    }
}
