/// What a step runs. Pipeline configs write `bash` steps; the service plans the others (a
/// `git` clone first when a pipeline has a `repo`, the restore and save of its caches and the
/// collection of its artifacts, and an image job's build, test and push).
public enum StepType: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case bash
    case git
    case dockerBuild = "docker-build"
    case dockerRun = "docker-run"
    case dockerPush = "docker-push"
    /// Restores a pipeline's caches into the workspace (content: the caches, as JSON).
    case cacheRestore = "cache-restore"
    /// Saves a pipeline's caches whose exact key was not restored (content: as above).
    case cacheSave = "cache-save"
    /// Collects a pipeline's artifacts (content: the `artifacts` entry, as JSON).
    case artifacts

    /// As the API writes it (`docker-build`), also in messages.
    public var description: String { rawValue }

    /// The types a pipeline config may name.
    public static let pipelineTypes: [StepType] = [.bash]

    /// Steps an image job runs against the Docker engine.
    public var isDocker: Bool {
        switch self {
        case .dockerBuild, .dockerRun, .dockerPush: true
        case .bash, .git, .cacheRestore, .cacheSave, .artifacts: false
        }
    }

    /// Steps the service itself runs on the job's workspace, whichever executor runs the rest.
    public var isWorkspaceStep: Bool {
        switch self {
        case .cacheRestore, .cacheSave, .artifacts: true
        case .bash, .git, .dockerBuild, .dockerRun, .dockerPush: false
        }
    }
}

/// Why a running job was stopped before its steps ended.
public enum StopReason: Sendable, Equatable {
    /// `cancel` or `kill`, here or through another replica.
    case cancelled
    /// The service is shutting down.
    case shutdown
    /// The job ran longer than its timeout (seconds).
    case timedOut(Double)
    /// This replica lost the job's lease: another replica settled it (this one had stopped
    /// renewing it, paused or cut off from the store). Nothing more is written for it here.
    case leaseLost

    /// The final status of a job stopped for this reason.
    public var jobStatus: JobStatus { self == .cancelled ? .cancelled : .failed }
    /// The final status of the step that was running when it stopped.
    public var stepStatus: StepStatus { self == .cancelled ? .cancelled : .failed }

    /// The line appended to that step's output.
    public var note: String {
        switch self {
        case .cancelled: "step cancelled"
        case .shutdown: "the service was shut down while this step ran"
        case .timedOut(let seconds): "timed out after \(seconds.formatted()) s: the job's timeout_seconds was reached"
        case .leaseLost: "this replica lost the job's lease; another replica settled the job"
        }
    }
}
