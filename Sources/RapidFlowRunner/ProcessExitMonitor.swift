import CRapidFlowProcess
import Foundation
import Synchronization

/// Waits for child processes to exit without holding a thread per process.
///
/// Each child is watched through a pidfd (a descriptor that becomes readable when the process
/// exits) in one epoll set, and one thread for the whole service waits on that set: it reaps
/// each process as it exits and resumes whoever awaits it. Where the kernel has no pidfds
/// (before Linux 5.3), an exit is polled from a task instead: still no thread is held.
public final class ProcessExitMonitor: Sendable {
    /// The monitor every launcher shares: one thread for the life of the process.
    public static let shared = ProcessExitMonitor()

    private struct Watched {
        let pid: pid_t
        let continuation: CheckedContinuation<Termination, any Error>
    }

    private let epollFD: Int32
    /// Processes being watched, by their pidfd.
    private let watched = Mutex<[Int32: Watched]>([:])

    private init() {
        epollFD = rapidflow_epoll_create()
        guard epollFD >= 0 else { return }
        let thread = Thread { [self] in self.waitForExits() }
        thread.name = "rapidflow-exits"
        thread.start()
    }

    /// Returns how `pid`, a child of this process, ended, once it has; the child is reaped.
    public func termination(of pid: pid_t) async throws -> Termination {
        let pidfd = epollFD >= 0 ? rapidflow_pidfd_open(pid) : -1
        guard pidfd >= 0 else { return try await poll(pid) }
        return try await withCheckedThrowingContinuation { continuation in
            // Filed before the descriptor joins the set, so the thread always finds it.
            watched.withLock { $0[pidfd] = Watched(pid: pid, continuation: continuation) }
            let status = rapidflow_epoll_add(epollFD, pidfd)
            if status != 0, let entry = watched.withLock({ $0.removeValue(forKey: pidfd) }) {
                close(pidfd)
                entry.continuation.resume(throwing: ProcessError.waitFailed(pid, errno: status))
            }
        }
    }

    /// The monitor's one thread: reaps each process whose pidfd turns readable.
    private func waitForExits() {
        var ready = [Int32](repeating: -1, count: 64)
        while true {
            let count = ready.withUnsafeMutableBufferPointer { rapidflow_epoll_wait_ready(epollFD, $0.baseAddress, Int32($0.count)) }
            guard count >= 0 else { continue }
            for pidfd in ready.prefix(Int(count)) {
                guard let entry = watched.withLock({ $0.removeValue(forKey: pidfd) }) else { continue }
                // Closing the descriptor also takes it out of the epoll set.
                close(pidfd)
                // The process has exited, so this finds it at once. Never a blocking wait here:
                // should the readiness not be this process's exit after all (a hang was seen with
                // the thread blocked in a wait for a live child), the one thread that reports
                // every exit would stop; such a child is polled from a task instead.
                do {
                    if let termination = try Self.reap(entry.pid, options: WNOHANG) {
                        entry.continuation.resume(returning: termination)
                    } else {
                        Task { [self] in
                            do {
                                entry.continuation.resume(returning: try await self.poll(entry.pid))
                            } catch {
                                entry.continuation.resume(throwing: error)
                            }
                        }
                    }
                } catch {
                    entry.continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Without pidfds: looks for the exit every 20 ms from a task.
    private func poll(_ pid: pid_t) async throws -> Termination {
        while true {
            if let termination = try Self.reap(pid, options: WNOHANG) { return termination }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// `waitpid` for `pid`; nil when `WNOHANG` finds it still running.
    private static func reap(_ pid: pid_t, options: Int32) throws -> Termination? {
        var status: Int32 = 0
        var result: pid_t
        repeat {
            result = waitpid(pid, &status, options)
        } while result == -1 && errno == EINTR
        guard result != -1 else { throw ProcessError.waitFailed(pid, errno: errno) }
        guard result == pid else { return nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG as the C macros compute them.
        if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
        return .signalled(status & 0x7f)
    }
}
