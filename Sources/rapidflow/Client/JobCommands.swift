import ArgumentParser
import Foundation
import NIOCore

struct JobsCommand: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "List jobs, newest first.")
    @OptionGroup var options: ClientOptions
    @Option(help: "Only jobs with this status: pending, running, success, failed, cancelled.") var status: String?
    @Option(help: "Only jobs of this pipeline id.") var pipeline: Int?
    @Option(help: "How many jobs (1-500).") var limit = 50

    func run(client: ServiceClient) async throws {
        var query = ["limit=\(limit)"]
        if let status { query.append("status=\(queryValue(status))") }
        if let pipeline { query.append("pipeline_id=\(pipeline)") }
        let jobs = try await client.call(.GET, "/jobs?" + query.joined(separator: "&")) as? [[String: Any]] ?? []
        if options.json { return try Terminal.json(jobs) }
        if jobs.isEmpty { return Terminal.line("no jobs") }
        Terminal.table(
            ["ID", "KIND", "NAME", "STATUS", "CREATED", "DURATION"],
            jobs.map { job in
                [job.text("id"), job.text("kind"), jobName(job), Terminal.status(job.text("status")),
                 job.text("created_at"), formatDuration(jobDuration(job))]
            })
    }
}

/// A pipeline job's pipeline name, or an image job's repository.
func jobName(_ job: [String: Any]) -> String {
    if let name = job["pipeline_name"] as? String { return name }
    if let repo = job["repo_name"] as? String { return repo }
    return "-"
}

struct StatusCommand: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "A job's status, phase timings and steps.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job id.") var job: Int

    func run(client: ServiceClient) async throws {
        let status = try await client.call(.GET, "/jobs/\(job)/status") as? [String: Any] ?? [:]
        if options.json { return try Terminal.json(status) }
        let summary = try await client.call(.GET, "/jobs/\(job)") as? [String: Any] ?? [:]
        Terminal.line("job \(job)  \(Terminal.status(summary.text("status")))  \(summary.text("kind")) \(jobName(summary))  took \(formatDuration(jobDuration(summary)))")
        let metrics = status["metrics"] as? [String: Any] ?? [:]
        let timestamps = status["phase_timestamps"] as? [String: Any] ?? [:]
        Terminal.line()
        Terminal.table(
            ["PHASE", "START", "END", "DURATION"],
            ["build", "test", "publish"].map { phase in
                [phase, timestamps.text("\(phase)_start"), timestamps.text("\(phase)_end"),
                 formatDuration(metrics.number("\(phase)_duration_seconds"))]
            })
        Terminal.line()
        let steps = status["steps"] as? [[String: Any]] ?? []
        Terminal.table(
            ["STEP", "#", "TYPE", "PHASE", "STATUS", "EXIT", "DURATION"],
            steps.map { step in
                [step.text("step_id"), step.text("order_num"), step.text("type"), step.text("phase"),
                 Terminal.status(step.text("status")), step.text("exit_code"), formatDuration(step.number("duration_seconds"))]
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
            return try Terminal.json(try await client.call(.GET, "/jobs/\(job)/logs"))
        }
        var query = follow ? ["follow=true"] : []
        if let since { query.append("since=\(since)") }
        var painter = HeaderPainter(enabled: Terminal.colours)
        try await client.stream("/jobs/\(job)/logs/stream" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))) { chunk in
            FileHandle.standardOutput.write(painter.paint(chunk))
        }
        FileHandle.standardOutput.write(painter.finish())
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
        let reply = try await client.call(.POST, "/jobs/\(job)/\(Action.name)")
        if options.json { return try Terminal.json(reply) }
        Terminal.line(Action.describe(job: job, reply: reply as? [String: Any] ?? [:]))
    }
}

protocol JobAction {
    static var name: String { get }
    static var abstract: String { get }
    static func describe(job: Int, reply: [String: Any]) -> String
}

enum CancelAction: JobAction {
    static let name = "cancel"
    static let abstract = "Stop a job (SIGTERM, then SIGKILL after the grace period); answers once it has stopped."
    static func describe(job: Int, reply: [String: Any]) -> String { "job \(job) \(Terminal.status(reply.text("status")))" }
}

enum KillAction: JobAction {
    static let name = "kill"
    static let abstract = "Stop a job, as cancel does (the image-build API's name for it)."
    static func describe(job: Int, reply: [String: Any]) -> String { "job \(job) \(Terminal.status(reply.text("status")))" }
}

enum RetryAction: JobAction {
    static let name = "retry"
    static let abstract = "Run a finished job again, as a new job from its stored snapshot."
    static func describe(job: Int, reply: [String: Any]) -> String { "job \(reply.text("id")) created (retry of job \(job))" }
}

enum CleanupAction: JobAction {
    static let name = "cleanup"
    static let abstract = "Remove a finished job's workspace, containers and images."
    static func describe(job: Int, reply: [String: Any]) -> String {
        let removed = reply["removed"] as? [String: Any] ?? [:]
        var parts = [(removed["workspace"] as? Bool ?? false) ? "workspace removed" : "no workspace left"]
        if let containers = removed["containers"] { parts.append("\(containers) container(s)") }
        if let images = removed["images"] { parts.append("\(images) image(s)") }
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
        var status: [String: Any] = [:]
        while true {
            status = try await client.call(.GET, "/jobs/\(job)/status") as? [String: Any] ?? [:]
            let state = status.text("status")
            if ["success", "failed", "cancelled"].contains(state) { break }
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
            let metrics = status["metrics"] as? [String: Any] ?? [:]
            Terminal.line("job \(job) \(Terminal.status(status.text("status"))) after \(formatDuration(metrics.number("job_duration_seconds")))")
        }
        switch status.text("status") {
        case "success": return
        case "cancelled": throw ExitCode(2)
        default: throw ExitCode.failure
        }
    }

    private func progress(_ status: [String: Any]) -> String {
        let steps = status["steps"] as? [[String: Any]] ?? []
        let done = steps.filter { ["success", "failed", "cancelled", "skipped"].contains($0.text("status")) }.count
        let current = steps.first { $0.text("status") == "running" }.map { " · step \($0.text("order_num")) (\($0.text("type"))) running" } ?? ""
        return "job \(job) \(status.text("status")) · \(done)/\(steps.count) steps done\(current)"
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
    @Option(name: .customLong("test-command"), help: "A command run with sh -c in the built image (repeat for more).") var testCommands: [String] = []
    @Flag(name: .customLong("test-entry-point"), help: "Also run the image with its own entry point.") var testEntryPoint = false
    @Option(name: .customLong("timeout-seconds")) var timeoutSeconds: Double?
    @Option(name: .customLong("kill-timeout-seconds")) var killTimeoutSeconds: Double?

    func run(client: ServiceClient) async throws {
        var body: [String: Any] = [:]
        if let file {
            guard let object = try JSONSerialization.jsonObject(with: try readInput(file)) as? [String: Any] else {
                throw ValidationError("\(file) must hold a JSON object with the fields of POST /jobs")
            }
            body = object
        }
        let fields: [(String, Any?)] = [
            ("owner", owner), ("repo_url", repoURL), ("git_ref", gitRef), ("git_credentials_path", gitCredentialsPath),
            ("dockerfile_path", dockerfilePath), ("image_tags", tags.isEmpty ? nil : tags), ("registry_url", registryURL),
            ("registry_credentials_path", registryCredentialsPath), ("test_commands", testCommands.isEmpty ? nil : testCommands),
            ("test_entry_point", testEntryPoint ? true : nil), ("timeout_seconds", timeoutSeconds),
            ("kill_timeout_seconds", killTimeoutSeconds),
        ]
        for case let (key, value?) in fields { body[key] = value }
        let reply = try await client.call(.POST, "/jobs", body: body)
        if options.json { return try Terminal.json(reply) }
        let id = (reply as? [String: Any])?.text("job_id") ?? "?"
        Terminal.line("job \(id) submitted; follow it with: rapidflow logs \(id) --follow")
    }
}
