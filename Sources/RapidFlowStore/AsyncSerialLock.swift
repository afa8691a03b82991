import Synchronization

/// A FIFO lock for async code: one holder at a time, waiters resumed in order.
///
/// The store shares one database connection; holding this across a transaction keeps
/// other statements from landing inside it. Taking a free lock and releasing it are plain
/// mutex operations, with no hop to another executor: every store call pays them.
final class AsyncSerialLock: Sendable {
    private struct State {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []

        mutating func takeIfFree() -> Bool {
            if held { return false }
            held = true
            return true
        }
    }

    private let state = Mutex(State())

    func acquire() async {
        if state.withLock({ $0.takeIfFree() }) { return }
        await withCheckedContinuation { continuation in
            let taken = state.withLock { state in
                if state.takeIfFree() { return true }
                state.waiters.append(continuation)
                return false
            }
            if taken { continuation.resume() }
        }
    }

    /// Hands the lock to the longest waiter, or frees it.
    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.held = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }

    func withLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }
}
