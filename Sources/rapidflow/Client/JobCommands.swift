import ArgumentParser
import Foundation
import NIOCore
import RapidFlowAPI
import RapidFlowCore

struct JobsCommand: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "List jobs, newest first.")
    @OptionGroup var options: ClientOptions
    @Option(help: "Only jobs with this status: pending, running, success, failed, cancelled.") var status: String?
    @Option(help: "Only jobs of this pipeline (id or name).") var pipeline: String?
    @Option(help: "Only jobs of this owner (team).") var owner: String?
    @Option(help: "How many jobs (1-500).") var limit = 50

    func run(client: ServiceClient) async throws {
        var query = ["limit=\(limit)"]
        if let status { query.append("status=\(queryValue(status))") }
        if let owner { query.append("owner=\(queryValue(owner))") }
        if let pipeline { query.append("pipeline_id=\(try await resolvePipeline(pipeline, client: client))") }
        let jobs: [API.Job] = try await client.call(.GET, "/jobs?" + query.joined(separator: "&"))
        if options.json { return try Terminal.json(jobs) }
        if jobs.isEmpty { return Terminal.line("no jobs") }
        Terminal.table(
            ["ID", "KIND", "NAME", "OWNER", "STATUS", "CREATED", "DURATION"],
            jobs.map { job in
                // A pending job says where it stands: "pending (#3, owner_limit)".
                let status = job.queuePosition.map { "\(job.status.rawValue) (#\($0), \(job.waitingFor ?? "slot"))" } ?? job.status.rawValue
                return [String(job.id), job.kind.rawValue, jobName(job), job.owner, Terminal.status(status),
                 job.createdAt, formatDuration(job.duration())]
            })
    }
}

/// A pipeline job's pipeline name, or an image job's repository.
func jobName(_ job: API.Job) -> String {
    job.pipelineName ?? job.repoName ?? "-"
}

struct StatusCommand: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "A job's status, phase timings and steps.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job id.") var job: Int

    func run(client: ServiceClient) async throws {
        let status: API.JobStatusReport = try await client.call(.GET, "/jobs/\(job)/status")
        if options.json { return try Terminal.json(status) }
        let summary: API.Job = try await client.call(.GET, "/jobs/\(job)")
        Terminal.line("job \(job)  \(Terminal.status(summary.status.rawValue))  \(summary.kind.rawValue) \(jobName(summary))  took \(formatDuration(summary.duration()))")
        Terminal.line()
        Terminal.table(
            ["PHASE", "START", "END", "DURATION"],
            Phase.allCases.map { phase in
                let times = status.phaseTimestamps[phase]
                return [phase.rawValue, cell(times.start), cell(times.end), formatDuration(status.metrics[phase])]
            })
        Terminal.line()
        Terminal.table(
            ["STEP", "#", "TYPE", "PHASE", "STATUS", "EXIT", "DURATION"],
            status.steps.map { step in
                [String(step.stepID), String(step.orderNum), step.type.rawValue, step.phase.rawValue,
                 Terminal.status(step.status.rawValue), cell(step.exitCode), formatDuration(step.durationSeconds)]
            })
    }
}

struct LogsCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print a job's output; --follow keeps printing until the job ends.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job id.") var job: Int
    @Flag(name: .shortAndLong, help: "Keep printing as the job runs, until it ends.") var follow = false
    @Option(help: "Start after this step id.") var since: Int?

    func run(client: ServiceClient) async throws {
        if options.json {
            return try Terminal.json(try await client.call(.GET, "/jobs/\(job)/logs", as: API.JobLogs.self))
        }
        var query = follow ? ["follow=true"] : []
        if let since { query.append("since=\(since)") }
        var painter = HeaderPainter(enabled: Terminal.colours)
        try await client.stream("/jobs/\(job)/logs/stream" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))) { chunk in
            Terminal.write(painter.paint(chunk))
        }
        Terminal.write(painter.finish())
    }
}

/// Colours the `=== … ===` header lines of the plain-text stream without holding back other
/// output: only a line start that may still become a header waits for the next chunk.
struct HeaderPainter {
    let enabled: Bool
    private var pending = Data()
    private var atLineStart = true
    private static let marker = Data("===".utf8)

    init(enabled: Bool) { self.enabled = enabled }

    mutating func paint(_ chunk: ByteBuffer) -> Data {
        let bytes = Data(buffer: chunk)
        guard enabled else { return bytes }
        var output = Data()
        var input = pending + bytes
        pending.removeAll()
        while !input.isEmpty {
            let newline = input.firstIndex(of: UInt8(ascii: "\n"))
            let line = newline.map { input[input.startIndex...$0] } ?? input[...]
            input = newline.map { Data(input[input.index(after: $0)...]) } ?? Data()
            let isStart = atLineStart
            atLineStart = newline != nil
            guard isStart else { output.append(line); continue }
            if line.starts(with: Self.marker) {
                if newline == nil { pending = Data(line); atLineStart = true; break }
                output.append(Data("\u{1B}[1;36m".utf8) + line.dropLast() + Data("\u{1B}[0m\n".utf8))
            } else if newline == nil && Self.marker.starts(with: line) {
                pending = Data(line); atLineStart = true
            } else {
                output.append(line)
            }
        }
        return output
    }

    mutating func finish() -> Data {
        defer { pending.removeAll() }
        return pending
    }
}

/// cancel, kill, retry and cleanup: one POST each.
struct JobActionCommand<Action: JobAction>: ClientCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Action.name, abstract: Action.abstract)
    }
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job id.") var job: Int

    func run(client: ServiceClient) async throws {
        let reply: Action.Reply = try await client.call(.POST, "/jobs/\(job)/\(Action.name)")
        if options.json { return try Terminal.json(reply) }
        Terminal.line(Action.describe(job: job, reply: reply))
    }
}

protocol JobAction {
    /// What the route answers.
    associatedtype Reply: Codable
    static var name: String { get }
    static var abstract: String { get }
    static func describe(job: Int, reply: Reply) -> String
}

enum CancelAction: JobAction {
    static let name = "cancel"
    static let abstract = "Stop a job (SIGTERM, then SIGKILL after the grace period); answers once it has stopped."
    static func describe(job: Int, reply: API.CancelResult) -> String { "job \(job) \(Terminal.status(reply.status.rawValue))" }
}

enum KillAction: JobAction {
    static let name = "kill"
    static let abstract = "Stop a job, as cancel does (the image-build API's name for it)."
    static func describe(job: Int, reply: API.KillResult) -> String { "job \(job) \(Terminal.status(reply.status.rawValue))" }
}

enum RetryAction: JobAction {
    static let name = "retry"
    static let abstract = "Run a finished job again, as a new job from its stored snapshot."
    static func describe(job: Int, reply: API.Job) -> String { "job \(reply.id) created (retry of job \(job))" }
}

enum CleanupAction: JobAction {
    static let name = "cleanup"
    static let abstract = "Remove a finished job's workspace, containers and images."
    static func describe(job: Int, reply: API.CleanupResult) -> String {
        let removed = reply.removed
        var parts = [removed.workspace ? "workspace removed" : "no workspace left"]
        if let containers = removed.containers { parts.append("\(containers) container(s)") }
        if let images = removed.images { parts.append("\(images) image(s)") }
        return "job \(job) cleaned up: \(parts.joined(separator: ", "))"
    }
}

struct WaitCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait for a job to end; exit 0 on success, 1 on failure, 2 when cancelled, 124 on --timeout.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job id.") var job: Int
    @Option(help: "Give up after this many seconds.") var timeout: Double?

    func run(client: ServiceClient) async throws {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        var status: API.JobStatusReport
        while true {
            status = try await client.call(.GET, "/jobs/\(job)/status")
            let state = status.status.rawValue
            if status.status.isFinal { break }
            if Terminal.isInteractive && !options.json { Terminal.write("\r\u{1B}[K" + progress(status)) }
            if let deadline, Date() >= deadline {
                if Terminal.isInteractive && !options.json { Terminal.line() }
                Terminal.error("job \(job) is still \(state) after \(formatDuration(timeout))")
                throw ExitCode(124)
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        if options.json {
            try Terminal.json(status)
        } else {
            if Terminal.isInteractive { Terminal.write("\r\u{1B}[K") }
            Terminal.line("job \(job) \(Terminal.status(status.status.rawValue)) after \(formatDuration(status.metrics.jobDurationSeconds))")
        }
        switch status.status {
        case .success: return
        case .cancelled: throw ExitCode(2)
        default: throw ExitCode.failure
        }
    }

    private func progress(_ status: API.JobStatusReport) -> String {
        let steps = status.steps
        let done = steps.filter(\.status.isFinal).count
        let current = steps.first { $0.status == .running }.map { " · step \($0.orderNum) (\($0.type)) running" } ?? ""
        return "job \(job) \(status.status.rawValue) · \(done)/\(steps.count) steps done\(current)"
    }
}

struct SubmitCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit an image job (clone, build, test, push), from flags and/or a JSON file.",
        discussion: "Flags override the fields of --file. Example:\n  rapidflow submit --owner team --repo-url https://git.example.com/team/app.git --tag 1.0 --registry-url 127.0.0.1:5000/team/app --test-command 'make test'")
    @OptionGroup var options: ClientOptions
    @Option(name: .shortAndLong, help: "A JSON file (or - for stdin) with the fields of POST /jobs.") var file: String?
    @Option var owner: String?
    @Option(name: .customLong("repo-url")) var repoURL: String?
    @Option(name: .customLong("git-ref"), help: "A branch, tag or commit sha.") var gitRef: String?
    @Option(name: .customLong("git-credentials-path"), help: "A file in the service's secrets directory.") var gitCredentialsPath: String?
    @Option(name: .customLong("dockerfile-path")) var dockerfilePath: String?
    @Option(name: .customLong("tag"), help: "An image tag to push (repeat for more).") var tags: [String] = []
    @Option(name: .customLong("registry-url")) var registryURL: String?
    @Option(name: .customLong("registry-credentials-path"), help: "A file in the service's secrets directory.") var registryCredentialsPath: String?
    @Option(name: .customLong("registry-credentials-secret"), help: "A stored secret holding the registry credentials (instead of a path).")
    var registryCredentialsSecret: String?
    @Option(name: .customLong("test-command"), help: "A command run with sh -c in the built image (repeat for more).") var testCommands: [String] = []
    @Flag(name: .customLong("test-entry-point"), help: "Also run the image with its own entry point.") var testEntryPoint = false
    @Option(name: .customLong("timeout-seconds")) var timeoutSeconds: Double?
    @Option(name: .customLong("kill-timeout-seconds")) var killTimeoutSeconds: Double?

    func run(client: ServiceClient) async throws {
        var body = API.ImageJobRequest()
        if let file {
            // Read as the service reads it, its refusals worded as the service words them;
            // the flags may still add the owner and repository.
            do {
                body = try RequestDecoding.decode(API.ImageJobRequest.self, from: try readInput(file), partial: true) ?? body
            } catch let error as RapidFlowError where error.code == .invalidJSON {
                throw ValidationError("\(file) must hold a JSON object with the fields of POST /jobs")
            } catch let error as RapidFlowError {
                throw ServiceClient.Failure(description: "\(error.message) (\(error.code))")
            }
        }
        if let owner { body.owner = owner }
        if let repoURL { body.repoURL = repoURL }
        if let gitRef { body.gitRef = gitRef }
        if let gitCredentialsPath { body.gitCredentialsPath = gitCredentialsPath }
        if let dockerfilePath { body.dockerfilePath = dockerfilePath }
        if !tags.isEmpty { body.imageTags = tags }
        if let registryURL { body.registryURL = registryURL }
        if let registryCredentialsPath { body.registryCredentialsPath = registryCredentialsPath }
        if let registryCredentialsSecret { body.registryCredentialsSecret = registryCredentialsSecret }
        if !testCommands.isEmpty { body.testCommands = testCommands }
        if testEntryPoint { body.testEntryPoint = true }
        if let timeoutSeconds { body.timeoutSeconds = timeoutSeconds }
        if let killTimeoutSeconds { body.killTimeoutSeconds = killTimeoutSeconds }
        let reply: API.SubmittedJob = try await client.call(.POST, "/jobs", body: body)
        if options.json { return try Terminal.json(reply) }
        Terminal.line("job \(reply.jobID) submitted; follow it with: rapidflow logs \(reply.jobID) --follow")
    }
}
