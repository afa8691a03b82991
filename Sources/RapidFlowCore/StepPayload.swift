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
    /// An image job's git and registry credentials, for its `git` and `docker-*` steps: they
    /// travel only over the runner's own authenticated channel, and the runner keeps them in a
    /// directory of its own (mode 0700) until the job ends.
    public var credentials: CredentialBundle?
    /// A `cache-restore`, `cache-save` or `artifacts` step's job: the runner runs these itself
    /// and moves the archives and files over this channel.
    public var workspaceFiles: WorkspaceFilesContext?

    /// Credential files and the variables that point git and docker at them.
    public struct CredentialBundle: Codable, Sendable, Equatable {
        /// Where the files' directory goes in `environment`'s values.
        public static let directoryPlaceholder = "@RAPIDFLOW_CREDENTIALS_DIR@"
        /// Path relative to the directory → content.
        public var files: [String: String]
        public var environment: [String: String]

        public init(files: [String: String], environment: [String: String]) {
            self.files = files
            self.environment = environment
        }
    }

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
        case allowLocalRepos = "allow_local_repos", credentials
        case workspaceFiles = "workspace_files"
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
        credentials = try container.decodeIfPresent(CredentialBundle.self, forKey: .credentials)
        workspaceFiles = try container.decodeIfPresent(WorkspaceFilesContext.self, forKey: .workspaceFiles)
    }
}
