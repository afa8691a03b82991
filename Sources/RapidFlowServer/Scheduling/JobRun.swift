import Foundation
import RapidFlowCore
import RapidFlowRunner
import Synchronization

/// One job while this service runs it: how to stop it, and who waits for its end.
final class JobRun: Sendable {
    enum StopReason: Sendable, Equatable {
        case cancelled
        case shutdown
        /// The job ran longer than its timeout (seconds).
        case timedOut(Double)

        /// The final status of a job stopped for this reason.
        var jobStatus: JobStatus { self == .cancelled ? .cancelled : .failed }
    }

    private struct State {
        var stopReason: StopReason?
        var control: StepControl?
        var finished = false
        var gracePeriod: Duration = .seconds(10)
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    }

    let jobID: Int
    private let state = Mutex(State())

    init(jobID: Int) {
        self.jobID = jobID
    }

    var stopReason: StopReason? { state.withLock { $0.stopReason } }

    /// Time between SIGTERM and SIGKILL for this job (the job's `kill_timeout_seconds` or the service's).
    var gracePeriod: Duration {
        get { state.withLock { $0.gracePeriod } }
        set { state.withLock { $0.gracePeriod = newValue } }
    }

    /// The control of the step now running; a stop asked for earlier reaches it at once.
    func begin(_ control: StepControl) {
        let reason = state.withLock { state -> StopReason? in
            state.control = control
            return state.stopReason
        }
        if reason != nil { control.signal(SIGTERM) }
    }

    /// Asks the job to stop: no further step starts, the running one receives `signal`.
    func stop(_ reason: StopReason, signal: Int32) {
        let control = state.withLock { state -> StepControl? in
            if state.stopReason == nil { state.stopReason = reason }
            return state.control
        }
        control?.signal(signal)
    }

    func markFinished() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.finished = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// Returns once the job has reached its final status, or when the task is cancelled.
    func waitUntilFinished() async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.finished || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    /// Waits up to `timeout`; true when the job finished in time.
    func waitUntilFinished(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilFinished() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return isFinished
    }
}
