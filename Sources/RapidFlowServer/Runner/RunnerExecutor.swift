import Foundation
import Logging
import RapidFlowCore
import RapidFlowRunner

/// Starts and stops the `rapidflow runner` of one job somewhere.
protocol RunnerLauncher: Sendable {
    var name: String { get }
    /// Starts the runner of `jobID`, which reaches the service at `serverURL` with `token`;
    /// `usesDockerEngine` for an image job, whose steps talk to the engine of the runner's machine.
    func launch(jobID: Int, serverURL: String, token: String, gracePeriod: Duration, usesDockerEngine: Bool) async throws -> any RunnerHandle
}

/// One launched runner.
protocol RunnerHandle: Sendable {
    /// Returns when the runner has ended, with why when it ended badly (nil: it exited cleanly).
    func ended() async -> String?
    /// Stops it (SIGTERM, SIGKILL after `grace`) and removes what it left (a Nomad job).
    func stop(grace: Duration) async
}

/// Runs every job through a runner of its own: a pipeline job's steps, and an image job's
/// clone, build, test and push against the runner's machine's Docker engine (its credentials
/// travel with its steps over the runner's channel).
///
/// `begin` opens the job's `RunnerSession` and launches its runner; the session stops the
/// runner when it closes. If the runner ends first (crash, lost node, placement failure), the
/// step it held fails with the reason, and so does the job.
final class RunnerExecutor: JobExecutor {
    let hub: RunnerHub
    let launcher: any RunnerLauncher
    let local: LocalExecutor
    /// How the runner reaches this service (known once the server listens).
    let serverURL: @Sendable () -> String
    let gracePeriod: Duration
    let logger: Logger

    var name: String { launcher.name }

    var workspaceLocation: WorkspaceLocation {
        if let local = launcher as? LocalRunnerLauncher, local.sharesWorkspaces { return .directory(local.workspaces) }
        return .elsewhere
    }

    init(
        hub: RunnerHub, launcher: any RunnerLauncher, local: LocalExecutor, serverURL: @escaping @Sendable () -> String,
        gracePeriod: Duration, logger: Logger
    ) {
        self.hub = hub
        self.launcher = launcher
        self.local = local
        self.serverURL = serverURL
        self.gracePeriod = gracePeriod
        self.logger = logger
    }

    func begin(_ job: Job, control: JobControl) async throws -> any JobSession {
        let hub = hub
        let session = RunnerSession(control: control, onClose: { hub.remove(jobID: job.id) })
        hub.register(session)
        // The job's own kill_timeout_seconds wins, as for a local stop (clamped the same way).
        let grace = job.snapshot.killTimeoutSeconds.map { Duration.clampedSeconds($0) } ?? gracePeriod
        let handle: any RunnerHandle
        do {
            handle = try await launcher.launch(
                jobID: job.id, serverURL: serverURL(), token: session.tokenText, gracePeriod: grace, usesDockerEngine: job.snapshot.imageJob != nil)
        } catch {
            await session.fail(reason: "the runner could not be started on \(launcher.name): \(error)")
            return session
        }
        await session.attach(handle, grace: grace)
        let logger = logger
        Task {
            let reason = await handle.ended()
            // Ending cleanly before the job is over is a failure too: nobody runs the step.
            await session.fail(reason: reason ?? "the runner ended before the job did")
            if let reason { logger.warning("a job's runner ended", metadata: ["job": "\(job.id)", "reason": "\(reason)"]) }
        }
        return session
    }
}

/// `--executor runner`: each job's runner is a `rapidflow runner` child process on this machine.
struct LocalRunnerLauncher: RunnerLauncher {
    /// The `rapidflow` binary.
    let binary: String
    /// Where the runners' workspaces go.
    let workspaces: String
    /// `shell`, `docker` or `auto` for the runner's own executor.
    let executor: String
    /// The user the runner runs pipeline steps as (`--step-user`).
    var stepUser: String?
    /// The service's `--lease-seconds`: a runner that hears from no replica this long stops its step.
    var leaseSeconds: Double = 30
    /// The service reads and writes the runners' workspaces for caches and artifacts (false:
    /// they go over the runner's channel).
    var sharesWorkspaces = true

    var name: String { "runner" }

    func launch(jobID: Int, serverURL: String, token: String, gracePeriod: Duration, usesDockerEngine: Bool) async throws -> any RunnerHandle {
        // This service's own runner workspaces: whatever an earlier job of this number left goes.
        try? FileManager.default.removeItem(atPath: "\(workspaces)/job-\(jobID)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "runner", "--server", serverURL, "--job", String(jobID), "--workspace", workspaces, "--executor", executor, "--token-file", "-",
            "--lease-seconds", String(format: "%g", leaseSeconds), "--grace-seconds", String(format: "%g", gracePeriod.inSeconds),
        ] + (stepUser.map { ["--step-user", $0] } ?? [])
        // The token goes through a pipe the runner reads once: neither its environment nor its
        // command line holds it, and its steps inherit neither end.
        process.environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/",
        ]
        let tokenPipe = Pipe()
        process.standardInput = tokenPipe
        let (ends, continuation) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))
        process.terminationHandler = { continuation.yield($0.terminationStatus); continuation.finish() }
        try ProcessSpawning.run(process)
        tokenPipe.fileHandleForWriting.write(Data(token.utf8))
        try? tokenPipe.fileHandleForWriting.close()
        try? tokenPipe.fileHandleForReading.close()
        return LocalRunnerHandle(process: process, ends: ends)
    }
}

final class LocalRunnerHandle: RunnerHandle, @unchecked Sendable {
    // Process is used from the handle's methods only; its own state is thread-safe for these calls.
    private let process: Process
    private let ends: AsyncStream<Int32>

    init(process: Process, ends: AsyncStream<Int32>) {
        self.process = process
        self.ends = ends
    }

    func ended() async -> String? {
        var code: Int32 = 0
        for await value in ends { code = value }
        return code == 0 ? nil : "the runner process exited with status \(code)"
    }

    func stop(grace: Duration) async {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + grace + .seconds(1)
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// `--executor nomad`: each job's runner is one Nomad batch job.
struct NomadRunnerLauncher: RunnerLauncher {
    let nomad: NomadExecutor

    var name: String { "nomad" }

    func launch(jobID: Int, serverURL: String, token: String, gracePeriod: Duration, usesDockerEngine: Bool) async throws -> any RunnerHandle {
        NomadRunnerHandle(
            watcher: try await nomad.submit(
                jobID: jobID, serverURL: serverURL, runnerToken: token, gracePeriod: gracePeriod, usesDockerEngine: usesDockerEngine))
    }
}

struct NomadRunnerHandle: RunnerHandle {
    let watcher: NomadJobWatcher

    func ended() async -> String? {
        do {
            return try await watcher.outcome().failureReason.map { "Nomad: \($0)" }
        } catch {
            return "Nomad: could not follow the job's allocation: \(error)"
        }
    }

    /// DELETE (Nomad sends the kill signal, then SIGKILL after the kill timeout), then purge.
    func stop(grace: Duration) async {
        try? await watcher.stop(grace: grace)
    }
}
