import Synchronization

/// Who in this process hears that a job changed: the webhook dispatcher (so a delivery the
/// store's triggers just wrote goes out now rather than at its next poll) and the commit
/// status reporter. What is announced is in the store; this only says "look now".
final class JobEventTap: Sendable {
    enum Change: Sendable, Equatable {
        case created(jobIDs: [Int])
        case started(jobIDs: [Int])
        case stepFinished(jobID: Int)
        /// `postsStatus`: a hook with a forge token started it.
        case finished(jobID: Int, postsStatus: Bool)
    }

    private let listeners = Mutex<[@Sendable (Change) -> Void]>([])

    init() {}

    func listen(_ listener: @escaping @Sendable (Change) -> Void) {
        listeners.withLock { $0.append(listener) }
    }

    func emit(_ change: Change) {
        for listener in listeners.withLock({ $0 }) { listener(change) }
    }
}

/// A wake-up that is never lost: a signal with nobody waiting is kept for the next wait.
final class WakeSignal: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    init() {}

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns on a signal (or one kept from before), or after `timeout`.
    func wait(timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.pending {
                    state.pending = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if ready { return continuation.resume() }
            Task {
                try? await Task.sleep(for: timeout)
                // At worst this wakes a later wait early: the caller looks and waits again.
                self.signal()
            }
        }
    }
}
