/// One step as `GET /runner/jobs/:id/next` hands it to the job's runner: the fields of
/// `StepInvocation` that travel to the runner's machine.
public struct StepPayload: Codable, Sendable {
    public var jobID: Int
    public var stepID: Int
    public var type: String
    public var name: String?
    public var content: String
    public var environment: [EnvironmentPair]
    public var snapshot: JobSnapshot

    public struct EnvironmentPair: Codable, Sendable {
        public var key: String
        public var value: String

        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(
        jobID: Int, stepID: Int, type: String, name: String?, content: String, environment: [EnvironmentPair], snapshot: JobSnapshot
    ) {
        self.jobID = jobID
        self.stepID = stepID
        self.type = type
        self.name = name
        self.content = content
        self.environment = environment
        self.snapshot = snapshot
    }

    enum CodingKeys: String, CodingKey {
        case jobID = "job_id", stepID = "step_id", type, name, content, environment, snapshot
    }
}
