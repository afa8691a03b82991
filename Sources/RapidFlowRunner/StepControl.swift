import Foundation
import Synchronization

/// The handle through which a running step is stopped: the executor attaches the process
/// group it started, the scheduler asks for a stop. Either may come first.
public final class StepControl: Sendable {
    private struct State {
        var processGroup: pid_t?
        var stopHandler: (@Sendable (Int32) -> Void)?
        var stopSignal: Int32?
    }

    private let state = Mutex(State())
    /// The marker prefix of the step's processes, for those that left its group.
    public let marker: String

    public init(marker: String) {
        self.marker = marker
    }

    /// Records the step's process group. When a stop was already asked for, the group
    /// receives that signal at once.
    public func attach(processGroup: pid_t) {
        let pending = state.withLock { state -> Int32? in
            state.processGroup = processGroup
            return state.stopSignal
        }
        if let pending { kill(-processGroup, pending) }
    }

    /// Also called with each stop signal (e.g. to signal a container); at once if a stop was already asked for.
    public func onStop(_ handler: @escaping @Sendable (Int32) -> Void) {
        let pending = state.withLock { state -> Int32? in
            state.stopHandler = handler
            return state.stopSignal
        }
        if let pending { handler(pending) }
    }

    /// True once a stop was asked for.
    public var isStopRequested: Bool {
        state.withLock { $0.stopSignal != nil }
    }

    /// Sends `signal` to the step's process group and to every process carrying its marker.
    public func signal(_ signal: Int32) {
        let (group, handler) = state.withLock { state -> (pid_t?, (@Sendable (Int32) -> Void)?) in
            state.stopSignal = signal
            return (state.processGroup, state.stopHandler)
        }
        if let group { kill(-group, signal) }
        handler?(signal)
        ProcessSweeper.signalProcesses(markedWith: marker, signal: signal)
    }
}
