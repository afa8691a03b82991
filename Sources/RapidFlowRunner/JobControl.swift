import Foundation
import RapidFlowCore
import Synchronization

/// The one object of a job while it runs here: why it is being stopped, the signal sent, the
/// step running now (its process group, its marker, what else a stop must reach) and who
/// waits for its end.
///
/// A stop may come at any moment: before the executor has begun the job, between two steps,
/// before a step's process exists, while it runs. It is recorded here once and reaches
/// whatever runs next: no further step starts, and a step that begins or attaches its
/// process after the stop receives the signal at once.
public final class JobControl: Sendable {
    private struct CurrentStep {
        let marker: String
        var processGroup: pid_t?
        var stopHandlers: [@Sendable (Int32) -> Void] = []
        /// The last signal this step was sent.
        var signal: Int32?
    }

    private struct State {
        var reason: StopReason?
        var signal: Int32?
        var step: CurrentStep?
        var finished = false
        var settling = false
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    }

    public let jobID: Int
    /// Time between SIGTERM and SIGKILL for this job (its `kill_timeout_seconds` or the service's).
    public let gracePeriod: Duration
    private let state = Mutex(State())

    public init(jobID: Int, gracePeriod: Duration = .seconds(10)) {
        self.jobID = jobID
        self.gracePeriod = gracePeriod
    }

    /// Its steps are over and its end is being written: from now on its lease ends with it.
    public func markSettling() { state.withLock { $0.settling = true } }

    public var isSettling: Bool { state.withLock { $0.settling } }

    // MARK: - Stopping

    /// Why the job is being stopped; nil while it runs on.
    public var stopReason: StopReason? { state.withLock { $0.reason } }

    /// Asks the job to stop gracefully: no further step starts, the running one gets SIGTERM.
    public func interrupt(_ reason: StopReason) { stop(reason, signal: SIGTERM) }

    /// Stops the job at once: the running step gets SIGKILL.
    public func terminate(_ reason: StopReason) { stop(reason, signal: SIGKILL) }

    /// Records the stop (the first reason stays) and sends `signal` to the running step.
    public func stop(_ reason: StopReason, signal: Int32) {
        let step = state.withLock { state -> CurrentStep? in
            if state.reason == nil { state.reason = reason }
            state.signal = signal
            state.step?.signal = signal
            return state.step
        }
        if let step { Self.deliver(signal, to: step) }
    }

    /// Sends `signal` to the running step only, recording no stop of the job: what a runner
    /// does when the service or its node tells it to stop the step it holds.
    public func signalCurrentStep(_ signal: Int32) {
        let step = state.withLock { state -> CurrentStep? in
            state.step?.signal = signal
            return state.step
        }
        if let step { Self.deliver(signal, to: step) }
    }

    /// One signal per process of the step: its group at once, then whatever left the group
    /// (found by marker or cgroup), then what else the step attached (a container, a runner).
    private static func deliver(_ signal: Int32, to step: CurrentStep) {
        if let group = step.processGroup { kill(-group, signal) }
        ProcessSweeper.signalProcesses(markedWith: step.marker, signal: signal, exceptGroup: step.processGroup)
        step.stopHandlers.forEach { $0(signal) }
    }

    // MARK: - Steps

    /// The step about to run, whose processes carry `marker`. When the job is already being
    /// stopped, the step receives the signal as soon as it has something to receive it.
    public func beginStep(marker: String) -> StepControl {
        state.withLock { state in
            state.step = CurrentStep(marker: marker, signal: state.signal)
        }
        return StepControl(job: self, marker: marker)
    }

    /// The step ended: a later stop no longer reaches its (gone) processes.
    public func endStep() {
        state.withLock { $0.step = nil }
    }

    fileprivate func attach(processGroup: pid_t, marker: String) {
        let pending = state.withLock { state -> Int32? in
            guard state.step?.marker == marker else { return nil }
            state.step?.processGroup = processGroup
            return state.step?.signal
        }
        if let pending { kill(-processGroup, pending) }
    }

    fileprivate func onStop(_ handler: @escaping @Sendable (Int32) -> Void, marker: String) {
        let pending = state.withLock { state -> Int32? in
            guard state.step?.marker == marker else { return nil }
            state.step?.stopHandlers.append(handler)
            return state.step?.signal
        }
        if let pending { handler(pending) }
    }

    // MARK: - The end

    /// The job has reached its final status (or nothing runs it any more): waiters return.
    public func markFinished() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.finished = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    public var isFinished: Bool { state.withLock { $0.finished } }

    /// Returns once the job has finished, or when the task is cancelled.
    public func waitUntilFinished() async {
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

    /// Waits up to `timeout`; true when the job finished in time.
    public func waitUntilFinished(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilFinished() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return isFinished
    }
}

/// One step's view of its job's control: the executor attaches the process group it started
/// and what else a stop must reach (a container, a runner); the stop itself is the job's.
public struct StepControl: Sendable {
    let job: JobControl
    /// The marker every process of the step inherits (see `ProcessSweeper`), for those that
    /// leave its group.
    public let marker: String

    /// Records the step's process group; a stop already asked for reaches it at once.
    public func attach(processGroup: pid_t) { job.attach(processGroup: processGroup, marker: marker) }

    /// Also called with each stop signal (to signal a container, or a runner); at once if a
    /// stop was already asked for.
    public func onStop(_ handler: @escaping @Sendable (Int32) -> Void) { job.onStop(handler, marker: marker) }
}
