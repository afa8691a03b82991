import Foundation
import NIOCore
import RapidFlowCore

/// Everything an executor needs to run one step.
public struct StepInvocation: Sendable {
    public var jobID: Int
    public var stepID: Int
    public var type: StepType
    public var content: String
    /// The job's workspace root.
    public var workspace: String
    /// Where the step's script runs: the workspace, or the config's `folder` inside it.
    public var workingDirectory: String
    /// The config's env, in order; it wins over the service's defaults.
    public var environment: [(key: String, value: String)]
    public var snapshot: JobSnapshot
    public var control: StepControl
    /// The step's name (`entrypoint` marks the image's own entry point).
    public var name: String? = nil
    /// Where git and docker find this job's credentials.
    public var credentialEnvironment: [String: String] = [:]
    /// The job's credentials as prepared for it (a runner elsewhere gets their files).
    public var credentials: JobCredentials? = nil
    /// Ties containers and images to their job and service.
    public var labels: [String: String] = [:]
    /// A pipeline job's own home folder: `HOME` of its steps (mounted in containers). Nil: the
    /// service's (or the step user's) home.
    public var home: String? = nil
    /// Whether a `git` step may clone from this machine: it decides git's allowed transports
    /// when the step runs, whatever was accepted when the job was created.
    public var repositories = RepositoryPolicy.remoteOnly
    /// A workspace step's job (its caches' owner and pipeline, the service's limits), for a
    /// runner elsewhere that runs it.
    public var workspaceFiles: WorkspaceFilesContext? = nil

    public init(
        jobID: Int, stepID: Int, type: StepType, content: String, workspace: String, workingDirectory: String,
        environment: [(key: String, value: String)], snapshot: JobSnapshot, control: StepControl
    ) {
        self.jobID = jobID
        self.stepID = stepID
        self.type = type
        self.content = content
        self.workspace = workspace
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.snapshot = snapshot
        self.control = control
    }
}

/// Where a step's output and start go while it runs.
public protocol StepEvents: Sendable {
    /// The step's process (group) started.
    func started(processGroup: pid_t?) async
    /// A chunk of output, in the order printed.
    func output(_ chunk: ByteBuffer) async throws
    /// The container that runs the step.
    func container(_ id: String) async
    /// Ports a step's container published, as `docker port` lists them.
    func ports(_ mappings: [String]) async
}

extension StepEvents {
    public func container(_ id: String) async {}
    public func ports(_ mappings: [String]) async {}
}

/// Runs one step on this machine: as a process (shell), in a container (docker), or against
/// the Docker engine (an image job's build, test and push). A `JobSession` uses these.
public protocol StepExecutor: Sendable {
    var name: String { get }
    /// Runs one step to its end and returns its exit code.
    func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int
}

/// Where jobs run: asked to `begin` a claimed job, it hands back the job's session.
///
/// The lifecycle is the same for every executor: `begin` (set up: e.g. start the job's
/// runner), `run` for each step in order, `close` once the job is over, whatever way it
/// ended. A stop can come at any time through the job's `JobControl`, which the session and
/// its steps observe; it is the only place stop state lives.
public protocol JobExecutor: Sendable {
    var name: String { get }
    /// Where its pipeline jobs' workspaces are: the service keeps caches and artifacts from
    /// there.
    var workspaceLocation: WorkspaceLocation { get }
    /// Prepares to run `job`. A stop on `control` may come while this runs.
    func begin(_ job: Job, control: JobControl) async throws -> any JobSession
}

/// Where an executor's pipeline jobs have their workspaces (`job-<id>`, with `job-<id>-home`).
public enum WorkspaceLocation: Sendable, Equatable {
    /// The service's own workspaces folder.
    case service
    /// Another folder on the service's machine (local runners).
    case directory(String)
    /// Another machine (a Nomad node).
    case elsewhere
}

extension JobExecutor {
    public var workspaceLocation: WorkspaceLocation { .service }
}

/// One job on one executor, from `begin` to `close`.
public protocol JobSession: Sendable {
    var control: JobControl { get }
    /// Runs one step to its end and returns its exit code.
    func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int
    /// The job is over: releases what the session holds (its runner, its files).
    func close() async
}

extension JobSession {
    /// Asks the job to stop gracefully (SIGTERM to its running step; no further step starts).
    public func interrupt(_ reason: StopReason) { control.interrupt(reason) }
    /// Stops the job's running step at once (SIGKILL).
    public func terminate(_ reason: StopReason) { control.terminate(reason) }
}

/// Jobs whose steps run on this machine, through `steps` (shell, containers, image steps).
public struct LocalExecutor: JobExecutor {
    public let steps: any StepExecutor

    public init(steps: any StepExecutor) {
        self.steps = steps
    }

    public var name: String { steps.name }

    public func begin(_ job: Job, control: JobControl) async throws -> any JobSession {
        LocalSession(control: control, steps: steps)
    }
}

/// A job running on this machine: each step is a process (or a container) of this service.
public struct LocalSession: JobSession {
    public let control: JobControl
    let steps: any StepExecutor

    public init(control: JobControl, steps: any StepExecutor) {
        self.control = control
        self.steps = steps
    }

    public func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        try await steps.run(step, events: events)
    }

    /// Nothing is held between steps: each step's processes, cgroup and container end with it.
    public func close() async {}
}
