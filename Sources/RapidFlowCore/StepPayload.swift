/// One step as `GET /runner/jobs/:id/next` hands it to the job's runner: the fields of
/// `StepInvocation` that travel to the runner's machine.
public struct StepPayload: Codable, Sendable {
    public var jobID: Int
    public var stepID: Int
    public var type: StepType
    public var name: String?
    public var content: String
    public var environment: [EnvironmentPair]
    public var snapshot: JobSnapshot
    /// The service runs with `--allow-local-repos`: a `git` step may clone from the runner's disk.
    public var allowLocalRepos: Bool

    public struct EnvironmentPair: Codable, Sendable {
        public var key: String
        public var value: String

        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(
        jobID: Int, stepID: Int, type: StepType, name: String?, content: String, environment: [EnvironmentPair], snapshot: JobSnapshot,
        allowLocalRepos: Bool = false
    ) {
        self.jobID = jobID
        self.stepID = stepID
        self.type = type
        self.name = name
        self.content = content
        self.environment = environment
        self.snapshot = snapshot
        self.allowLocalRepos = allowLocalRepos
    }

    enum CodingKeys: String, CodingKey {
        case jobID = "job_id", stepID = "step_id", type, name, content, environment, snapshot
        case allowLocalRepos = "allow_local_repos"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        jobID = try container.decode(Int.self, forKey: .jobID)
        stepID = try container.decode(Int.self, forKey: .stepID)
        type = try container.decode(StepType.self, forKey: .type)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        content = try container.decode(String.self, forKey: .content)
        environment = try container.decode([EnvironmentPair].self, forKey: .environment)
        snapshot = try container.decode(JobSnapshot.self, forKey: .snapshot)
        // A service that does not send it never allowed local clones.
        allowLocalRepos = try container.decodeIfPresent(Bool.self, forKey: .allowLocalRepos) ?? false
    }
}
