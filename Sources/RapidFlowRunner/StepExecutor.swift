import Foundation
import NIOCore
import RapidFlowCore

/// Everything an executor needs to run one step.
public struct StepInvocation: Sendable {
    public var jobID: Int
    public var stepID: Int
    public var type: String
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
    /// Ties containers and images to their job and service.
    public var labels: [String: String] = [:]
    /// Whether a `git` step may clone from this machine: it decides git's allowed transports
    /// when the step runs, whatever was accepted when the job was created.
    public var repositories = RepositoryPolicy.remoteOnly

    public init(
        jobID: Int, stepID: Int, type: String, content: String, workspace: String, workingDirectory: String,
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

/// Runs steps: locally (shell), in containers (docker), or elsewhere.
public protocol StepExecutor: Sendable {
    var name: String { get }
    /// Runs one step to its end and returns its exit code.
    func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int
    /// The job's last step has ended: release what the executor holds for it.
    func jobFinished(jobID: Int) async
}

extension StepExecutor {
    public func jobFinished(jobID: Int) async {}
}
