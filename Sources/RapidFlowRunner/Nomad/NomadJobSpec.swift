import Foundation

/// The Nomad batch job that runs `rapidflow runner` for one RapidFlow job: one group, one task.
///
/// - The ID is new for every run: Nomad schedules nothing when an identical batch job that
///   already finished is submitted again (hashicorp/nomad#2149).
/// - Restart and reschedule attempts are 0: batch jobs otherwise retry (3 restarts, 1 reschedule),
///   and a build must run once; a failure is reported, not repeated.
/// - `KillTimeout` is the job's grace period (Nomad caps it at the client's `max_kill_timeout`,
///   30 s by default) and `KillSignal` is SIGTERM, for the runner to stop its step as a local
///   stop does.
/// - The runner's token reaches the task as a file in its secrets directory, rendered by a
///   template (`Perms` 0400); the runner reads it and removes it before any step runs. It is
///   never in the task's environment or on its command line, where the job's steps could read
///   it (`/proc/<runner>/environ`, `cmdline`). The spec's `description` never shows it.
public struct NomadJobSpec: Sendable {
    /// The Nomad job ID, e.g. `rapidflow-1a2b3c4d-job-42-9f8e7d6c`.
    public let id: String
    public let jobID: Int
    public let instanceID: String
    public let serverURL: String
    public let gracePeriod: Duration
    public let configuration: NomadConfiguration
    private let runnerToken: String

    public static let groupName = "build"
    public static let taskName = "runner"
    /// The file in the task's secrets directory that the template writes the runner's token to.
    public static let tokenFile = "rapidflow-runner-token"

    /// The job's steps talk to the node's Docker engine (an image job): with the `docker` driver
    /// the engine's socket is mounted into the runner's container (the node's docker plugin
    /// needs `volumes { enabled = true }`); `raw_exec` reaches it as it is.
    public let usesDockerEngine: Bool

    public init(
        jobID: Int, instanceID: String, serverURL: String, runnerToken: String, gracePeriod: Duration,
        configuration: NomadConfiguration, uniqueSuffix: String = NomadJobSpec.randomSuffix(), usesDockerEngine: Bool = false
    ) {
        self.usesDockerEngine = usesDockerEngine
        let instance = String(instanceID.lowercased().filter { $0.isASCII && ($0.isLetter || $0.isNumber) }.prefix(8))
        self.id = "rapidflow-\(instance)-job-\(jobID)-\(uniqueSuffix)"
        self.jobID = jobID
        self.instanceID = instanceID
        self.serverURL = serverURL
        self.runnerToken = runnerToken
        self.gracePeriod = gracePeriod
        self.configuration = configuration
    }

    /// Eight random hex digits.
    public static func randomSuffix() -> String {
        String(UInt32.random(in: .min ... .max), radix: 16).leftPadded(to: 8)
    }

    /// The runner's command line after the binary.
    public var runnerArguments: [String] {
        [
            "runner", "--server", serverURL, "--job", String(jobID), "--token-file", "${NOMAD_SECRETS_DIR}/\(Self.tokenFile)",
            "--lease-seconds", String(format: "%g", configuration.leaseSeconds), "--grace-seconds", String(format: "%g", gracePeriod.inSeconds),
        ]
    }

    /// Ties the Nomad job to its RapidFlow job and service instance.
    public var meta: [String: String] {
        ["rapidflow_job": String(jobID), "rapidflow_instance": instanceID]
    }

    /// `{"Job": {...}}`, the body of `POST /v1/jobs`.
    public func requestBody() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(Request(job: job))
    }

    private var job: Job {
        let config =
            switch configuration.driver {
            case .rawExec: DriverConfig(image: nil, command: configuration.runnerCommand, args: runnerArguments)
            case .docker:
                DriverConfig(
                    image: configuration.dockerImage, command: configuration.runnerCommand, args: runnerArguments,
                    volumes: usesDockerEngine ? ["/var/run/docker.sock:/var/run/docker.sock"] : nil)
            }
        let task = TaskBody(
            name: Self.taskName, driver: configuration.driver.rawValue, config: config,
            templates: [Template(embedded: runnerToken, destination: "secrets/\(Self.tokenFile)", permissions: "0400", changeMode: "noop")],
            resources: configuration.resources.map { Resources(cpu: $0.cpu, memoryMB: $0.memoryMB) },
            killTimeout: gracePeriod.nanoseconds, killSignal: "SIGTERM"
        )
        let group = TaskGroup(
            name: Self.groupName, count: 1, restartPolicy: RestartPolicy(attempts: 0, mode: "fail"),
            reschedulePolicy: ReschedulePolicy(attempts: 0, unlimited: false), tasks: [task]
        )
        return Job(
            id: id, name: id, type: "batch", namespace: configuration.namespace, region: configuration.region,
            datacenters: configuration.datacenters, meta: meta, taskGroups: [group]
        )
    }
}

extension NomadJobSpec: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "NomadJobSpec(id: \(id), job: \(jobID), driver: \(configuration.driver.rawValue), token: <redacted>)"
    }

    public var customMirror: Mirror {
        Mirror(self, children: ["id": id, "jobID": jobID, "instanceID": instanceID, "serverURL": serverURL, "gracePeriod": gracePeriod])
    }
}

// The request's shape, with Nomad's field names (api/jobs.go, api/tasks.go).
extension NomadJobSpec {
    private struct Request: Encodable {
        var job: Job
        enum CodingKeys: String, CodingKey { case job = "Job" }
    }

    private struct Job: Encodable {
        var id: String
        var name: String
        var type: String
        var namespace: String?
        var region: String?
        var datacenters: [String]
        var meta: [String: String]
        var taskGroups: [TaskGroup]
        enum CodingKeys: String, CodingKey {
            case id = "ID", name = "Name", type = "Type", namespace = "Namespace", region = "Region"
            case datacenters = "Datacenters", meta = "Meta", taskGroups = "TaskGroups"
        }
    }

    private struct TaskGroup: Encodable {
        var name: String
        var count: Int
        var restartPolicy: RestartPolicy
        var reschedulePolicy: ReschedulePolicy
        var tasks: [TaskBody]
        enum CodingKeys: String, CodingKey {
            case name = "Name", count = "Count", restartPolicy = "RestartPolicy", reschedulePolicy = "ReschedulePolicy", tasks = "Tasks"
        }
    }

    private struct RestartPolicy: Encodable {
        var attempts: Int
        var mode: String
        enum CodingKeys: String, CodingKey { case attempts = "Attempts", mode = "Mode" }
    }

    private struct ReschedulePolicy: Encodable {
        var attempts: Int
        var unlimited: Bool
        enum CodingKeys: String, CodingKey { case attempts = "Attempts", unlimited = "Unlimited" }
    }

    private struct TaskBody: Encodable {
        var name: String
        var driver: String
        var config: DriverConfig
        var templates: [Template]
        var resources: Resources?
        var killTimeout: Int64
        var killSignal: String
        enum CodingKeys: String, CodingKey {
            case name = "Name", driver = "Driver", config = "Config", templates = "Templates", resources = "Resources"
            case killTimeout = "KillTimeout", killSignal = "KillSignal"
        }
    }

    /// A file Nomad renders into the task directory (api/tasks.go `Template`).
    private struct Template: Encodable {
        var embedded: String
        var destination: String
        var permissions: String
        var changeMode: String
        enum CodingKeys: String, CodingKey {
            case embedded = "EmbeddedTmpl", destination = "DestPath", permissions = "Perms", changeMode = "ChangeMode"
        }
    }

    /// Driver options keep the drivers' lower-case names.
    private struct DriverConfig: Encodable {
        var image: String?
        var command: String
        var args: [String]
        var volumes: [String]? = nil
    }

    private struct Resources: Encodable {
        var cpu: Int
        var memoryMB: Int
        enum CodingKeys: String, CodingKey { case cpu = "CPU", memoryMB = "MemoryMB" }
    }
}

extension Duration {
    /// Whole nanoseconds: Nomad's durations are integers in ns.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
