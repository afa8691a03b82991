import Foundation
import NIOCore
import RapidFlowCore
import RapidFlowRunner
import Synchronization

/// An executor whose steps the test plays itself, in process: no bash, no process, no sleep.
///
/// A step's content says what it does:
/// - `exit N`: ends at once with exit code N;
/// - `hold`: runs until the test ends it (`ScriptedStep.finish`) or a signal does (SIGTERM or
///   SIGKILL end it as a shell would, with 128 + the signal);
/// - `hold ignoring SIGTERM`: as `hold`, but only SIGKILL or the test ends it.
///
/// Every step that starts is handed to the test through `steps`, and with `holdsBegin` every
/// job's `begin` waits for the test (`begins`) before any step runs.
final class ScriptedExecutor: JobExecutor {
    let name = "scripted"
    let holdsBegin: Bool
    let steps: AsyncStream<ScriptedStep>
    private let stepsContinuation: AsyncStream<ScriptedStep>.Continuation
    let begins: AsyncStream<ScriptedBegin>
    private let beginsContinuation: AsyncStream<ScriptedBegin>.Continuation
    /// How many steps were started, over every job.
    var startedSteps: Int { started.withLock { $0 } }
    private let started = Mutex(0)

    init(holdsBegin: Bool = false) {
        self.holdsBegin = holdsBegin
        (steps, stepsContinuation) = AsyncStream.makeStream()
        (begins, beginsContinuation) = AsyncStream.makeStream()
    }

    func begin(_ job: Job, control: JobControl) async throws -> any JobSession {
        if holdsBegin {
            let begin = ScriptedBegin(jobID: job.id, control: control)
            beginsContinuation.yield(begin)
            await begin.released()
        }
        return ScriptedSession(control: control, executor: self)
    }

    fileprivate func starting(_ step: ScriptedStep) {
        started.withLock { $0 += 1 }
        stepsContinuation.yield(step)
    }
}

/// A job's `begin`, held until the test releases it.
final class ScriptedBegin: Sendable {
    let jobID: Int
    /// The job's control, for the test to see a stop arrive before any step exists.
    let control: JobControl
    private let gate = Mutex<(open: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    init(jobID: Int, control: JobControl) {
        self.jobID = jobID
        self.control = control
    }

    func release() {
        gate.withLock { state in
            state.open = true
            defer { state.waiter = nil }
            return state.waiter
        }?.resume()
    }

    fileprivate func released() async {
        await withCheckedContinuation { continuation in
            let open = gate.withLock { state in
                if !state.open { state.waiter = continuation }
                return state.open
            }
            if open { continuation.resume() }
        }
    }
}

private struct ScriptedSession: JobSession {
    let control: JobControl
    let executor: ScriptedExecutor

    func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        let words = step.content.split(separator: " ")
        if words.first == "exit", words.count == 2, let code = Int(words[1]) { return code }
        let scripted = ScriptedStep(
            jobID: step.jobID, stepID: step.stepID, content: step.content, events: events,
            ignoresTerm: step.content == "hold ignoring SIGTERM")
        return await withCheckedContinuation { continuation in
            scripted.attach(continuation)
            step.control.onStop { signal in scripted.receive(signal) }
            executor.starting(scripted)
        }
    }

    func close() async {}
}

/// One running step of a `ScriptedExecutor`.
final class ScriptedStep: Sendable {
    let jobID: Int
    let stepID: Int
    let content: String
    let ignoresTerm: Bool
    private let events: any StepEvents
    private struct State {
        var exit: CheckedContinuation<Int, Never>?
        var signals: [Int32] = []
    }
    private let state = Mutex(State())

    fileprivate init(jobID: Int, stepID: Int, content: String, events: any StepEvents, ignoresTerm: Bool) {
        self.jobID = jobID
        self.stepID = stepID
        self.content = content
        self.events = events
        self.ignoresTerm = ignoresTerm
    }

    /// The signals the step received, in order.
    var signals: [Int32] { state.withLock { $0.signals } }

    /// Prints `text` as the step's output.
    func print(_ text: String) async throws {
        try await events.output(ByteBuffer(string: text))
    }

    /// Ends the step with `exitCode` (nothing happens when it has already ended).
    func finish(exitCode: Int) {
        state.withLock { state in
            defer { state.exit = nil }
            return state.exit
        }?.resume(returning: exitCode)
    }

    fileprivate func attach(_ exit: CheckedContinuation<Int, Never>) {
        state.withLock { $0.exit = exit }
    }

    fileprivate func receive(_ signal: Int32) {
        state.withLock { $0.signals.append(signal) }
        if signal == SIGKILL || (signal == SIGTERM && !ignoresTerm) { finish(exitCode: 128 + Int(signal)) }
    }
}
