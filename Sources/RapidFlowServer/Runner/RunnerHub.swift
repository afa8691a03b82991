import Foundation
import Hummingbird
import NIOCore
import RapidFlowCore
import RapidFlowRunner

/// Where the service meets the `rapidflow runner` processes that run its jobs' steps
/// elsewhere (a Nomad allocation, or a separate local process).
///
/// The service keeps owning every state change: `JobExecution` runs a job as usual, and its
/// executor hands each step to the hub (`handOff`) instead of starting a process. The job's
/// runner asks for the next step (a long poll), sends the output as it comes (into the
/// step's ordinary recorder: masking, the cap, the store and live followers), and its exit
/// code; a stop reaches it through another long poll. Each job has its own random token, so
/// a runner can speak for its job only.
actor RunnerHub {
    /// A step waiting for, or held by, the runner.
    private struct HandOff {
        let step: StepPayload
        let events: any StepEvents
        let exit: CheckedContinuation<Int, any Error>
        /// Raw bytes of output received so far: a resent chunk is not stored twice.
        var received = 0
        var taken = false
    }

    private struct JobState {
        let token: [UInt8]
        var current: HandOff?
        var done = false
        /// Runners waiting for the next step.
        var nextWaiters = LongPolls<NextAnswer>()
        /// The stop signal for the current step, and runners waiting for one.
        var signal: Int32?
        var signalWaiters = LongPolls<Int32?>()
        /// Set when the runner went away (its process or allocation ended).
        var failure: String?
    }

    /// What `GET /runner/jobs/:id/next` answers.
    enum NextAnswer: Sendable {
        case step(StepPayload)
        case none
        case done
    }

    private var jobs: [Int: JobState] = [:]

    // MARK: - The service's side

    /// Opens the job for its runner and returns the runner's token.
    func open(jobID: Int) -> String {
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
        jobs[jobID] = JobState(token: Array(token.utf8))
        return token
    }

    func isOpen(jobID: Int) -> Bool { jobs[jobID] != nil }

    /// Gives one step to the job's runner and returns its exit code once the runner reports it.
    func handOff(jobID: Int, step: StepPayload, events: any StepEvents) async throws -> Int {
        guard var state = jobs[jobID] else { throw RapidFlowError(.internalError, "job \(jobID) has no runner") }
        if let failure = state.failure { throw RapidFlowError(.internalError, failure) }
        return try await withCheckedThrowingContinuation { continuation in
            state.current = HandOff(step: step, events: events, exit: continuation)
            state.signal = nil
            let waiters = state.nextWaiters.takeAll()
            if !waiters.isEmpty { state.current?.taken = true }
            jobs[jobID] = state
            // One waiting runner takes it; any other poll answers "nothing yet".
            for (index, waiter) in waiters.enumerated() { waiter.resume(returning: index == 0 ? .step(step) : .none) }
        }
    }

    /// Tells the runner to stop the current step with `signal`. After SIGKILL the step is given
    /// up on if the runner has not reported its end within `abandonAfter` (it may never have
    /// started, or its node went away), so a stop always ends.
    func stop(jobID: Int, stepID: Int, signal: Int32, abandonAfter: Duration = .seconds(5)) {
        guard var state = jobs[jobID], state.current?.step.stepID == stepID else { return }
        state.signal = signal
        let waiters = state.signalWaiters.takeAll()
        jobs[jobID] = state
        waiters.forEach { $0.resume(returning: signal) }
        if signal == SIGKILL {
            Task {
                try? await Task.sleep(for: abandonAfter)
                self.abandon(jobID: jobID, stepID: stepID)
            }
        }
    }

    private func abandon(jobID: Int, stepID: Int) {
        guard var state = jobs[jobID], let current = state.current, current.step.stepID == stepID else { return }
        state.current = nil
        jobs[jobID] = state
        current.exit.resume(throwing: RapidFlowError(.internalError, "the runner did not report the step's end after it was killed"))
    }

    /// The runner went away: the step it held fails with `reason`, and so does every later one.
    func fail(jobID: Int, reason: String) {
        guard var state = jobs[jobID], state.failure == nil, !state.done else { return }
        state.failure = reason
        let current = state.current
        state.current = nil
        jobs[jobID] = state
        current?.exit.resume(throwing: RapidFlowError(.internalError, reason))
    }

    /// The job ended: its runner is told there is nothing more to run.
    func close(jobID: Int) {
        guard var state = jobs.removeValue(forKey: jobID) else { return }
        state.done = true
        state.nextWaiters.takeAll().forEach { $0.resume(returning: .done) }
        state.signalWaiters.takeAll().forEach { $0.resume(returning: nil) }
        state.current?.exit.resume(throwing: RapidFlowError(.internalError, "the job ended while its runner held a step"))
    }

    // MARK: - The runner's side

    /// Throws unless `token` is the job's.
    func authorize(jobID: Int, token: String) throws {
        guard let state = jobs[jobID] else {
            throw RapidFlowError(.unauthorized, "job \(jobID) is not waiting for a runner (it ended, or never ran on one)")
        }
        guard BearerTokenMiddleware<BasicRequestContext>.constantTimeEquals(Array(token.utf8), state.token) else {
            throw RapidFlowError(.unauthorized, "wrong runner token for job \(jobID)")
        }
    }

    /// The step to run now, waiting up to `wait` for one.
    func next(jobID: Int, wait: Duration) async -> NextAnswer {
        guard var state = jobs[jobID] else { return .done }
        if var current = state.current, !current.taken {
            current.taken = true
            state.current = current
            jobs[jobID] = state
            return .step(current.step)
        }
        return await hold(for: wait, answering: .none, in: \.nextWaiters, of: jobID)
    }

    /// Output of the current step from raw byte `offset`; what was already received is skipped.
    func output(jobID: Int, stepID: Int, offset: Int, data: ByteBuffer) async throws {
        guard var current = jobs[jobID]?.current, current.step.stepID == stepID else {
            throw RapidFlowError(.invalidRequest, "step \(stepID) is not the step job \(jobID)'s runner holds")
        }
        guard offset <= current.received else {
            throw RapidFlowError(.invalidRequest, "output of step \(stepID) at offset \(offset) leaves a gap: \(current.received) bytes were received")
        }
        let skip = current.received - offset
        guard data.readableBytes > skip else { return }
        current.received = offset + data.readableBytes
        jobs[jobID]?.current = current
        try await current.events.output(data.getSlice(at: data.readerIndex + skip, length: data.readableBytes - skip) ?? data)
    }

    /// The current step ended with `exitCode`, or could not run (`error`).
    func finish(jobID: Int, stepID: Int, exitCode: Int?, error: String?) throws {
        guard var state = jobs[jobID], let current = state.current, current.step.stepID == stepID else {
            throw RapidFlowError(.invalidRequest, "step \(stepID) is not the step job \(jobID)'s runner holds")
        }
        state.current = nil
        state.signal = nil
        let waiters = state.signalWaiters.takeAll()
        jobs[jobID] = state
        waiters.forEach { $0.resume(returning: nil) }
        if let exitCode {
            current.exit.resume(returning: exitCode)
        } else {
            current.exit.resume(throwing: RapidFlowError(.internalError, error ?? "the runner reported no exit code"))
        }
    }

    /// A stop signal for `stepID`, waiting up to `wait` for one (nil: none yet).
    func signal(jobID: Int, stepID: Int, wait: Duration) async -> Int32? {
        guard let state = jobs[jobID], state.current?.step.stepID == stepID else { return nil }
        if let signal = state.signal { return signal }
        return await hold(for: wait, answering: nil, in: \.signalWaiters, of: jobID)
    }

    /// Holds a long poll in the job's `polls` until something answers it or `wait` passes,
    /// when it answers `timeout`. The job exists (the caller checked, on this actor).
    private func hold<T: Sendable>(
        for wait: Duration, answering timeout: T, in polls: WritableKeyPath<JobState, LongPolls<T>>, of jobID: Int
    ) async -> T {
        let id = UUID()
        let timer = Task {
            try? await Task.sleep(for: wait)
            self.jobs[jobID]?[keyPath: polls].remove(id)?.resume(returning: timeout)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            jobs[jobID]?[keyPath: polls].add(id, continuation)
        }
    }
}

/// Long polls waiting for one kind of answer.
struct LongPolls<T: Sendable> {
    private var waiting: [UUID: CheckedContinuation<T, Never>] = [:]

    var isEmpty: Bool { waiting.isEmpty }

    mutating func add(_ id: UUID, _ continuation: CheckedContinuation<T, Never>) { waiting[id] = continuation }

    mutating func remove(_ id: UUID) -> CheckedContinuation<T, Never>? { waiting.removeValue(forKey: id) }

    /// Every waiting poll, for the caller to answer; none are left.
    mutating func takeAll() -> [CheckedContinuation<T, Never>] {
        defer { waiting = [:] }
        return Array(waiting.values)
    }
}
