import Foundation
import Hummingbird
import NIOCore
import RapidFlowCore
import RapidFlowRunner
import Synchronization

/// Where the service meets the `rapidflow runner` processes that run its jobs' steps
/// elsewhere (a Nomad allocation, or a separate local process).
///
/// The hub only finds a job's `RunnerSession` for the runner's requests (`/runner/jobs/…`),
/// checking the job's token; the state of each job (its token, the step handed off, the
/// runner's long polls) is that session's.
final class RunnerHub: Sendable {
    private let sessions = Mutex<[Int: RunnerSession]>([:])

    /// Makes `session` reachable by its runner.
    func register(_ session: RunnerSession) {
        sessions.withLock { $0[session.jobID] = session }
    }

    /// The job ended: its runner is no longer answered.
    func remove(jobID: Int) {
        sessions.withLock { $0[jobID] = nil }
    }

    /// The job's session, when `token` is the job's.
    /// Whether a runner session of `jobID` lives here.
    func holds(jobID: Int) -> Bool { sessions.withLock { $0[jobID] != nil } }

    func authorize(jobID: Int, token: String) throws -> RunnerSession {
        guard let session = sessions.withLock({ $0[jobID] }) else {
            throw RapidFlowError(.unauthorized, "job \(jobID) is not waiting for a runner (it ended, or never ran on one)")
        }
        guard BearerTokenMiddleware<BasicRequestContext>.constantTimeEquals(Array(token.utf8), session.token) else {
            throw RapidFlowError(.unauthorized, "wrong runner token for job \(jobID)")
        }
        return session
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
