import Foundation

/// A named, stored pipeline config.
public struct Pipeline: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var config: String
    /// The owner whose secrets its jobs see (nil: the pipeline belongs to no owner).
    public var owner: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: Int, name: String, config: String, owner: String? = nil, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.config = config
        self.owner = owner
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One run: of a pipeline or of an image build.
public struct Job: Sendable, Equatable {
    public var id: Int
    public var kind: JobKind
    public var pipelineID: Int?
    /// The pipeline's name when the job was created (the pipeline may be renamed or deleted later).
    public var pipelineName: String?
    public var status: JobStatus
    public var snapshot: JobSnapshot
    public var cancelled: Bool
    public var containerID: String?
    /// The job this one retries, if any.
    public var retryOf: Int?
    /// Host ports published for its containers, as `docker port` lists them.
    public var ports: [String]
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The number of the claim this replica holds the job by (0 for a job never claimed, or
    /// when read back rather than claimed): see `JobLease`.
    public var leaseEpoch: Int = 0

    /// The team the job belongs to (`owner` in the API).
    public var account: String { snapshot.account }
    public var priority: JobPriority { snapshot.priority ?? .normal }

    public init(
        id: Int, kind: JobKind, pipelineID: Int?, pipelineName: String?, status: JobStatus,
        snapshot: JobSnapshot, cancelled: Bool, containerID: String?, retryOf: Int?, ports: [String] = [],
        createdAt: Date, startedAt: Date?, finishedAt: Date?, leaseEpoch: Int = 0
    ) {
        self.leaseEpoch = leaseEpoch
        self.id = id
        self.kind = kind
        self.pipelineID = pipelineID
        self.pipelineName = pipelineName
        self.status = status
        self.snapshot = snapshot
        self.cancelled = cancelled
        self.containerID = containerID
        self.retryOf = retryOf
        self.ports = ports
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// What a job copies from its pipeline config (or image request) when it is created,
/// so editing a pipeline never changes past jobs and a retry re-runs exactly the same.
public struct JobSnapshot: Codable, Sendable, Equatable {
    public var language: String?
    public var version: String?
    public var image: String?
    public var repo: String?
    public var branch: String?
    public var folder: String?
    public var exposePorts: Bool
    /// The pipeline config text the job was created from (pipeline jobs).
    public var config: String?
    public var killTimeoutSeconds: Double?
    public var timeoutSeconds: Double?
    /// The request of an image job (`POST /jobs`).
    public var imageJob: ImageJobRequest?
    /// The pipeline's owner when the job was created: whose stored secrets the job sees.
    public var owner: String?
    /// How soon the job is taken (nil: normal): from the image job, the trigger or the config.
    public var priority: JobPriority?
    /// The concurrency group the job belongs to, its placeholders filled in (nil: none).
    public var concurrencyGroup: String?
    /// What started the job: a forge event, an API call or a retry (nil: a job stored before
    /// events were recorded, an API call).
    public var event: TriggerEvent?
    /// The commit a forge event named: the job clones exactly this commit.
    public var commit: CommitInfo?
    /// Where the job's commit statuses go, when the hook that started it has a forge token.
    public var statusTarget: CommitStatusTarget?

    /// The team the job belongs to: the image job's owner, else its pipeline's, else `default`.
    public var account: String { imageJob?.owner ?? owner ?? JobOwner.fallback }

    public init(
        language: String? = nil, version: String? = nil, image: String? = nil, repo: String? = nil,
        branch: String? = nil, folder: String? = nil, exposePorts: Bool = false, config: String? = nil,
        killTimeoutSeconds: Double? = nil, timeoutSeconds: Double? = nil, imageJob: ImageJobRequest? = nil
    ) {
        self.imageJob = imageJob
        self.language = language
        self.version = version
        self.image = image
        self.repo = repo
        self.branch = branch
        self.folder = folder
        self.exposePorts = exposePorts
        self.config = config
        self.killTimeoutSeconds = killTimeoutSeconds
        self.timeoutSeconds = timeoutSeconds
    }
}

/// A forge repository's commit status API, for a job a hook started.
public struct CommitStatusTarget: Sendable, Codable, Equatable {
    /// The hook whose token posts the statuses.
    public var hookID: Int
    /// `owner/name` (GitHub, Gitea) or the project id (GitLab).
    public var repository: String

    public init(hookID: Int, repository: String) {
        self.hookID = hookID
        self.repository = repository
    }
}

/// One unit of execution with its own status, output, exit code and timing.
public struct Step: Sendable, Equatable {
    public var id: Int
    public var jobID: Int
    public var orderNum: Int
    public var type: StepType
    public var name: String?
    public var content: String
    public var phase: Phase
    public var status: StepStatus
    public var exitCode: Int?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?

    public init(
        id: Int, jobID: Int, orderNum: Int, type: StepType, name: String?, content: String, phase: Phase,
        status: StepStatus, exitCode: Int?, createdAt: Date, startedAt: Date?, finishedAt: Date?
    ) {
        self.id = id
        self.jobID = jobID
        self.orderNum = orderNum
        self.type = type
        self.name = name
        self.content = content
        self.phase = phase
        self.status = status
        self.exitCode = exitCode
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// One environment variable of a job.
public struct EnvironmentEntry: Sendable, Equatable {
    public var id: Int
    public var jobID: Int
    public var key: String
    /// Empty for a secret's entry: its value is never stored with the job.
    public var value: String
    /// The stored secret whose value the variable gets when the job runs.
    public var secret: String?

    public init(id: Int, jobID: Int, key: String, value: String, secret: String? = nil) {
        self.id = id
        self.jobID = jobID
        self.key = key
        self.value = value
        self.secret = secret
    }
}

/// A step as it is planned, before the store gives it an id.
public struct StepPlan: Sendable, Equatable {
    public var type: StepType
    public var name: String?
    public var content: String
    public var phase: Phase

    public init(type: StepType, name: String? = nil, content: String, phase: Phase) {
        self.type = type
        self.name = name
        self.content = content
        self.phase = phase
    }
}

/// Everything needed to create a job: the store assigns ids and timestamps.
public struct NewJob: Sendable, Equatable {
    public var kind: JobKind
    public var pipelineID: Int?
    public var pipelineName: String?
    public var snapshot: JobSnapshot
    public var steps: [StepPlan]
    /// Ordered key/value pairs: order is kept so a step sees them as the config lists them.
    public var environment: [(key: String, value: String)]
    /// Variables whose values are stored secrets: only the secret's name is stored.
    public var secretEnvironment: [SecretReference]
    public var retryOf: Int?

    public init(
        kind: JobKind, pipelineID: Int?, pipelineName: String?, snapshot: JobSnapshot, steps: [StepPlan],
        environment: [(key: String, value: String)], secretEnvironment: [SecretReference] = [], retryOf: Int? = nil
    ) {
        self.secretEnvironment = secretEnvironment
        self.kind = kind
        self.pipelineID = pipelineID
        self.pipelineName = pipelineName
        self.snapshot = snapshot
        self.steps = steps
        self.environment = environment
        self.retryOf = retryOf
    }

    public static func == (lhs: NewJob, rhs: NewJob) -> Bool {
        lhs.kind == rhs.kind && lhs.pipelineID == rhs.pipelineID && lhs.pipelineName == rhs.pipelineName
            && lhs.snapshot == rhs.snapshot && lhs.steps == rhs.steps && lhs.retryOf == rhs.retryOf
            && lhs.secretEnvironment == rhs.secretEnvironment
            && lhs.environment.map(\.key) == rhs.environment.map(\.key)
            && lhs.environment.map(\.value) == rhs.environment.map(\.value)
    }
}
