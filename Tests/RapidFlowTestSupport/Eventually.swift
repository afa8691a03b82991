/// Polls `condition` about every 20 ms until it holds, for what the service does in its own
/// time (a job reaching a status, a process ending, a file appearing); throws a `TestFailure`
/// naming `description` when `timeout` passes first. An error `condition` throws ends the wait.
public func eventually(
    timeout: Duration = .seconds(30), _ description: String, _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        // Asked once more after the deadline, so a slow last poll still counts.
        let late = ContinuousClock.now >= deadline
        if try await condition() { return }
        if late { throw TestFailure("not within \(timeout): \(description)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}
