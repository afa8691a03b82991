import Foundation
import NIOCore
import RapidFlowCore
import RapidFlowRunner

/// A job whose steps run in a `rapidflow runner` (a local process, or a Nomad allocation):
/// the service's side of the runner protocol, for one job.
///
/// The service keeps owning every state change: `JobExecution` runs the job as usual, and
/// `run` hands each step to the runner instead of starting a process. The runner asks for
/// the next step (a long poll), sends the output as it comes (into the step's ordinary
/// recorder: masking, the cap, the store and live followers) and its exit code; a stop
/// reaches it through another long poll. Each job has its own random token, so a runner can
/// speak for its job only.
actor RunnerSession: JobSession {
    /// A step waiting for, or held by, the runner.
    private struct HandOff {
        let step: StepPayload
        let events: any StepEvents
        let exit: CheckedContinuation<Int, any Error>
        /// Raw bytes of output received so far: a resent chunk is not stored twice.
        var received = 0
        var taken = false
    }

    /// What `GET /runner/jobs/:id/next` answers.
    enum NextAnswer: Sendable {
        case step(StepPayload)
        case none
        case done
    }

    nonisolated let control: JobControl
    nonisolated let jobID: Int
    nonisolated let token: [UInt8]
    /// The job's runner once launched, and how long it has to stop.
    private var runner: (handle: any RunnerHandle, grace: Duration)?
    private var current: HandOff?
    private var done = false
    /// Runners waiting for the next step.
    private var nextWaiters = LongPolls<NextAnswer>()
    /// The stop signal for the current step, and runners waiting for one.
    private var signal: Int32?
    private var signalWaiters = LongPolls<Int32?>()
    /// Set when the runner went away (its process or allocation ended), or never started.
    private var failure: String?
    private let onClose: @Sendable () -> Void
    /// Cache drafts the runner is uploading (name → folder), removed if the job ends first.
    private var drafts: [String: String] = [:]
    /// Artifacts the runner uploaded for the current step, not yet recorded, and their bytes.
    private var uploadedArtifacts: [String: KeptArtifact] = [:]

    /// The runner's token as it is given to the runner.
    nonisolated var tokenText: String { String(decoding: token, as: UTF8.self) }

    init(control: JobControl, onClose: @escaping @Sendable () -> Void) {
        self.control = control
        self.jobID = control.jobID
        self.token = Array((0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined().utf8)
        self.onClose = onClose
    }

    // MARK: - The job's side

    /// The runner was launched; it is stopped when the session closes.
    func attach(_ handle: any RunnerHandle, grace: Duration) {
        runner = (handle, grace)
    }

    /// Gives one step to the runner and returns its exit code once the runner reports it.
    func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        if let failure { throw RapidFlowError(.internalError, failure) }
        let stepID = step.stepID
        step.control.onStop { signal in
            Task { await self.stop(stepID: stepID, signal: signal) }
        }
        var payload = StepPayload(
            jobID: step.jobID, stepID: step.stepID, type: step.type, name: step.name, content: step.content,
            environment: step.environment.map { .init(key: $0.key, value: $0.value) }, snapshot: step.snapshot,
            allowLocalRepos: step.repositories.allowsLocal)
        // An image job's git and registry logins: on this channel only, never in the runner's
        // start (a Nomad job spec, its environment or arguments).
        if step.snapshot.imageJob != nil { payload.credentials = try step.credentials?.bundle() }
        payload.workspaceFiles = step.workspaceFiles
        return try await withCheckedThrowingContinuation { continuation in
            current = HandOff(step: payload, events: events, exit: continuation)
            signal = nil
            let waiters = nextWaiters.takeAll()
            if !waiters.isEmpty { current?.taken = true }
            // One waiting runner takes it; any other poll answers "nothing yet".
            for (index, waiter) in waiters.enumerated() { waiter.resume(returning: index == 0 ? .step(payload) : .none) }
        }
    }

    /// Tells the runner to stop the current step with `signal`. After SIGKILL the step is given
    /// up on if the runner has not reported its end within `abandonAfter` (it may never have
    /// started, or its node went away), so a stop always ends.
    func stop(stepID: Int, signal: Int32, abandonAfter: Duration = .seconds(5)) {
        guard current?.step.stepID == stepID else { return }
        self.signal = signal
        signalWaiters.takeAll().forEach { $0.resume(returning: signal) }
        if signal == SIGKILL {
            Task {
                try? await Task.sleep(for: abandonAfter)
                self.abandon(stepID: stepID)
            }
        }
    }

    private func abandon(stepID: Int) {
        guard let current, current.step.stepID == stepID else { return }
        self.current = nil
        current.exit.resume(throwing: RapidFlowError(.internalError, "the runner did not report the step's end after it was killed"))
    }

    /// The runner went away: the step it held fails with `reason`, and so does every later one.
    func fail(reason: String) {
        guard failure == nil, !done else { return }
        failure = reason
        let held = current
        current = nil
        held?.exit.resume(throwing: RapidFlowError(.internalError, reason))
    }

    /// The job ended: its runner is told there is nothing more to run, and is stopped.
    func close() async {
        guard !done else { return }
        done = true
        onClose()
        nextWaiters.takeAll().forEach { $0.resume(returning: .done) }
        signalWaiters.takeAll().forEach { $0.resume(returning: nil) }
        current?.exit.resume(throwing: RapidFlowError(.internalError, "the job ended while its runner held a step"))
        current = nil
        for directory in drafts.values { try? FileManager.default.removeItem(atPath: directory) }
        drafts = [:]
        if let runner {
            self.runner = nil
            await runner.handle.stop(grace: runner.grace)
        }
    }

    // MARK: - The runner's side

    /// The step to run now, waiting up to `wait` for one.
    func next(wait: Duration) async -> NextAnswer {
        if done { return .done }
        if var held = current, !held.taken {
            held.taken = true
            current = held
            return .step(held.step)
        }
        return await hold(for: wait, add: { nextWaiters.add($0, $1) }, timeOut: { $0.nextWaiters.remove($1)?.resume(returning: .none) })
    }

    /// Output of the current step from raw byte `offset`; what was already received is skipped.
    func output(stepID: Int, offset: Int, data: ByteBuffer) async throws {
        guard var held = current, held.step.stepID == stepID else {
            throw RapidFlowError(.invalidRequest, "step \(stepID) is not the step job \(jobID)'s runner holds")
        }
        guard offset <= held.received else {
            throw RapidFlowError(.invalidRequest, "output of step \(stepID) at offset \(offset) leaves a gap: \(held.received) bytes were received")
        }
        let skip = held.received - offset
        guard data.readableBytes > skip else { return }
        held.received = offset + data.readableBytes
        current = held
        try await held.events.output(data.getSlice(at: data.readerIndex + skip, length: data.readableBytes - skip) ?? data)
    }

    /// The current step ended with `exitCode`, or could not run (`error`).
    func finish(stepID: Int, exitCode: Int?, error: String?) throws {
        guard let held = current, held.step.stepID == stepID else {
            throw RapidFlowError(.invalidRequest, "step \(stepID) is not the step job \(jobID)'s runner holds")
        }
        current = nil
        signal = nil
        signalWaiters.takeAll().forEach { $0.resume(returning: nil) }
        if let exitCode {
            held.exit.resume(returning: exitCode)
        } else {
            held.exit.resume(throwing: RapidFlowError(.internalError, error ?? "the runner reported no exit code"))
        }
    }

    // MARK: - Caches and artifacts moved by the runner

    /// The job whose caches and artifacts the runner's current step moves: it must hold
    /// `stepID`, a `cache-restore`, `cache-save` or `artifacts` step.
    func workspaceJob(stepID: Int) throws -> WorkspaceFiles.Owner {
        guard let held = current, held.step.stepID == stepID, let context = held.step.workspaceFiles else {
            throw RapidFlowError(.invalidRequest, "step \(stepID) is not a cache or artifacts step job \(jobID)'s runner holds")
        }
        return WorkspaceFiles.Owner(jobID: jobID, owner: context.owner, pipelineID: context.pipelineID)
    }

    /// Notes a cache draft the runner uploads into (its folder names this job).
    func useDraft(_ name: String, directory: String) {
        drafts[name] = directory
    }

    /// Whether `name` is a draft of this job's runner; it is forgotten when `release`.
    func ownsDraft(_ name: String, release: Bool = false) -> Bool {
        guard drafts[name] != nil else { return false }
        if release { drafts[name] = nil }
        return true
    }

    /// An artifact file the runner uploaded; the step's total so far.
    func uploadedArtifact(_ artifact: KeptArtifact) -> Int {
        uploadedArtifacts[artifact.path] = artifact
        return uploadedArtifacts.values.reduce(0) { $0 + $1.sizeBytes }
    }

    /// The uploaded artifacts, in path order, forgotten here.
    func takeUploadedArtifacts() -> [KeptArtifact] {
        defer { uploadedArtifacts = [:] }
        return uploadedArtifacts.values.sorted { $0.path < $1.path }
    }

    /// A stop signal for `stepID`, waiting up to `wait` for one (nil: none yet).
    func signal(stepID: Int, wait: Duration) async -> Int32? {
        guard current?.step.stepID == stepID else { return nil }
        if let signal { return signal }
        return await hold(for: wait, add: { signalWaiters.add($0, $1) }, timeOut: { $0.signalWaiters.remove($1)?.resume(returning: nil) })
    }

    /// Holds a long poll (`add` files it) until something answers it or `wait` passes, when
    /// `timeOut` answers it.
    private func hold<T: Sendable>(
        for wait: Duration, add: (UUID, CheckedContinuation<T, Never>) -> Void,
        timeOut: @escaping @Sendable (isolated RunnerSession, UUID) -> Void
    ) async -> T {
        let id = UUID()
        let timer = Task {
            try? await Task.sleep(for: wait)
            await timeOut(self, id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { add(id, $0) }
    }
}
