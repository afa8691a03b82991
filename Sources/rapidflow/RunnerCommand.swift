import ArgumentParser
import AsyncHTTPClient
import Foundation
import Synchronization
import NIOCore
import NIOHTTP1
import NIOPosix
import RapidFlowAPI
import RapidFlowCore
import RapidFlowRunner

/// `rapidflow runner`: runs one job's steps on this machine for a service elsewhere.
///
/// It asks the service for each step, runs it with the local shell (or Docker) executor,
/// sends the output as it is printed and the exit code when it ends, and stops the step when
/// the service says so. The service records every state change; the runner keeps nothing.
struct RunnerCommand: AsyncParsableCommand {
    /// When this runner's process started (from /proc: a service on this machine may write
    /// the workspace the moment after it starts the runner); its workspace's older contents
    /// are another job's.
    static var started: Date {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let close = stat.lastIndex(of: ")"),
            let uptime = (try? String(contentsOfFile: "/proc/uptime", encoding: .utf8))?.split(separator: " ").first.flatMap({ Double($0) })
        else { return Date() }
        // Fields after the command's name start at the state (field 3); the start time is field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return Date() }
        return Date(timeIntervalSinceNow: -(uptime - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))))
    }

    static let configuration = CommandConfiguration(
        commandName: "runner",
        abstract: "Run one job's steps on this machine for a RapidFlow service (started by --executor nomad or runner).")

    @Option(help: "The service's address, e.g. http://rapidflow.internal:3000.") var server: String
    @Option(help: "The job to run.") var job: Int
    @Option(
        name: .customLong("token-file"),
        help: "A file holding the job's runner token, removed once read; '-' reads it from standard input. Never put it in the environment or on the command line: the job's steps could read it there.")
    var tokenFile: String
    @Option(help: "Where job workspaces go (default: a directory under the system's temporary directory).") var workspace: String?
    @Option(help: "How steps run here: shell, docker or auto (containers when the engine answers and the config names an image).")
    var executor: String = "auto"
    @Option(name: .customLong("lease-seconds"), help: "Stop the running step and exit when no replica of the service has answered for this long (default 30; the service passes its own --lease-seconds).")
    var leaseSeconds: Double = 30
    @Option(name: .customLong("grace-seconds"), help: "Time between SIGTERM and SIGKILL when the runner stops a step on its own (default 10; the service passes the job's).")
    var graceSeconds: Double = 10
    @Option(name: .customLong("step-user"), help: "Run pipeline steps as this unprivileged user (a name or uid), in a workspace it owns.")
    var stepUser: String?

    func run() async throws {
        // Steps run as this user: they must not read the token from this process's memory
        // (/proc/<pid>/mem, environ) or find it in a file they can open.
        ProcessProtection.hideFromSameUser()
        let token = try Self.readToken(tokenFile)
        guard ["shell", "docker", "auto"].contains(executor) else { throw ValidationError("--executor must be shell, docker or auto") }
        let root = workspace ?? (NSTemporaryDirectory() + "rapidflow-runner")
        let workspacePath = URL(fileURLWithPath: root).standardizedFileURL.path + "/job-\(job)"
        // A fresh workspace: one left by an earlier job of the same number (another service's,
        // or a runner that crashed) must not leak into this one. What changed since this runner
        // started is this job's own (a local runner's service restores caches into it).
        if let modified = (try? FileManager.default.attributesOfItem(atPath: workspacePath))?[.modificationDate] as? Date,
            modified < Self.started
        {
            try? FileManager.default.removeItem(atPath: workspacePath)
        }
        try FileManager.default.createDirectory(atPath: workspacePath, withIntermediateDirectories: true)

        guard leaseSeconds > 0, graceSeconds >= 0 else { throw ValidationError("--lease-seconds must be above 0 and --grace-seconds 0 or more") }
        let api = RunnerAPI(baseURL: server.trimmingSuffix("/"), jobID: job, token: token, lease: .milliseconds(Int(leaseSeconds * 1000)))
        let launcher = ProcessLauncher()
        let docker = DockerEngine()
        let containers = executor == "shell" ? nil : ContainerStepExecutor(launcher: launcher, languageImages: ContainerStepExecutor.defaultLanguageImages)
        let engineAnswers = containers != nil ? await docker.isReachable() : false
        let identity = try stepUser.map { user in
            do { return try StepIdentity(user: user) } catch { throw ValidationError("\(error)") }
        }
        let routing = RoutingExecutor(
            shell: ShellExecutor(launcher: launcher, identity: identity), image: DockerImageExecutor(launcher: launcher, engine: docker),
            containers: engineAnswers ? containers : nil, containersRequired: executor == "docker")
        // Caches and artifacts: downloads and drafts wait beside the workspaces, removed at the end.
        let scratch = URL(fileURLWithPath: root).standardizedFileURL.path + "/files-\(job)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let local = RunnerStepExecutor(local: routing, api: api, scratch: scratch, identity: identity)

        // SIGTERM (Nomad's kill, a local stop) stops the running step, which is reported.
        signal(SIGTERM, SIG_IGN)
        // The job's control on this side: the service decides what runs, so a signal stops the
        // step being run and nothing else.
        let control = JobControl(jobID: job, gracePeriod: .milliseconds(Int(graceSeconds * 1000)))
        let terminate = DispatchSource.makeSignalSource(signal: SIGTERM)
        terminate.setEventHandler { control.signalCurrentStep(SIGTERM) }
        terminate.resume()

        // Marks this runner's step processes (and only these: several runners may share a machine).
        let instance = UUID().uuidString.lowercased().prefix(8)
        // An image job's credentials, from its first step that carries them until the runner ends.
        var credentials: JobCredentials?
        defer { credentials?.remove() }
        while true {
            guard let next = try await api.next() else { return }
            let stepControl = control.beginStep(marker: "rapidflow-runner-\(instance)-\(job):\(next.stepID):")
            let invocation = StepInvocation(
                jobID: job, stepID: next.stepID, type: next.type, content: next.content, workspace: workspacePath,
                workingDirectory: next.type == .git ? workspacePath : next.snapshot.folder.map { "\(workspacePath)/\($0)" } ?? workspacePath,
                environment: next.environment.map { (key: $0.key, value: $0.value) }, snapshot: next.snapshot, control: stepControl)
            var named = invocation
            named.name = next.name
            if next.snapshot.imageJob == nil {
                // The job's home, named as the service names it: beside the workspace.
                let home = workspacePath + "-home"
                try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
                named.home = home
            }
            // The service's --allow-local-repos decides what this machine's git may clone.
            named.repositories = RepositoryPolicy(allowsLocal: next.allowLocalRepos)
            named.workspaceFiles = next.workspaceFiles
            if credentials == nil, let bundle = next.credentials {
                // Beside the workspaces, not in one: the job's steps never see these files.
                credentials = try JobCredentials.unpack(bundle, into: URL(fileURLWithPath: root).standardizedFileURL.path + "/credentials-\(job)")
            }
            named.credentialEnvironment = credentials?.environment ?? [:]
            // An image job's build tag and containers are named and labelled after this runner:
            // several runners (of several services) share one engine, and their job numbers repeat.
            named.labels = ["rapidflow.job": String(job), "rapidflow.instance": String(instance), "rapidflow.layers": "runner"]
            let outcome = await runStep(named, control: control, executor: local, api: api)
            control.endStep()
            if let orphaned = api.orphaned.withLock({ $0 }) {
                // Nobody is there to report to: the step was stopped, and the runner ends.
                FileHandle.standardError.write(Data("rapidflow runner: job \(job): \(orphaned); stopped its step\n".utf8))
                return
            }
            try await api.finish(stepID: next.stepID, outcome: outcome)
        }
    }

    /// Runs the step while following the service's stop signals; the exit code or why it failed.
    private func runStep(_ step: StepInvocation, control: JobControl, executor: any StepExecutor, api: RunnerAPI) async -> Result<Int, any Error> {
        let events = RunnerOutput(api: api, stepID: step.stepID)
        return await withTaskGroup(of: Result<Int, any Error>?.self) { group in
            group.addTask {
                // The service's stop signals; and when the service says the job is over, or no
                // replica answers for a lease, the step is stopped here (SIGTERM, then SIGKILL
                // after the grace period): its owner is gone and nobody would stop it.
                var unanswered: ContinuousClock.Instant?
                while !Task.isCancelled {
                    let signal: Int?
                    let asked = ContinuousClock.now
                    do {
                        // After a failure, quick looks: a refused connection is retried by the
                        // HTTP client until the call's own deadline.
                        signal = try await unanswered == nil ? api.signal(stepID: step.stepID) : api.signal(stepID: step.stepID, probe: true)
                        unanswered = nil
                    } catch let failure as RunnerFailure where failure.jobIsOver {
                        stopOrphaned(because: "the service says the job is over (\(failure.status ?? 0))", control: control, api: api)
                        return nil
                    } catch {
                        let since = unanswered ?? asked
                        unanswered = since
                        if ContinuousClock.now - since >= api.lease {
                            stopOrphaned(because: "no replica of the service answered for \(api.lease)", control: control, api: api)
                            return nil
                        }
                        try? await Task.sleep(for: .milliseconds(500))
                        continue
                    }
                    if let signal { control.signalCurrentStep(Int32(signal)) }
                }
                return nil
            }
            group.addTask {
                if step.type != .git, !FileManager.default.fileExists(atPath: step.workingDirectory) {
                    return .failure(RunnerFailure(description: "working directory '\(step.snapshot.folder ?? ".")' does not exist in the workspace"))
                }
                do {
                    let code = try await executor.run(step, events: events)
                    return .success(code)
                } catch {
                    return .failure(error)
                }
            }
            // The step's own result; the watcher ends with nil (after an orphaned stop, the
            // step still ends by itself, as the signals make it).
            while let result = await group.next() {
                if let result {
                    group.cancelAll()
                    return result
                }
            }
            return .failure(RunnerFailure(description: "the step ended without a result"))
        }
    }

    /// The step's owner is gone: SIGTERM now, SIGKILL after the grace period.
    private func stopOrphaned(because reason: String, control: JobControl, api: RunnerAPI) {
        api.orphaned.withLock { $0 = $0 ?? reason }
        control.signalCurrentStep(SIGTERM)
        let grace = control.gracePeriod
        Task {
            try? await Task.sleep(for: grace)
            control.signalCurrentStep(SIGKILL)
        }
    }
}

struct RunnerFailure: Error, CustomStringConvertible {
    let description: String
    /// The HTTP status of the service's refusal, when there was one.
    var status: Int? = nil

    /// The service no longer knows the job here (it ended, was settled elsewhere, or the
    /// service restarted without it).
    var jobIsOver: Bool { [401, 404, 410].contains(status ?? 0) }
}

/// Sends a step's output to the service in order, at its byte offset.
actor RunnerOutput: StepEvents {
    let api: RunnerAPI
    let stepID: Int
    private var offset = 0

    init(api: RunnerAPI, stepID: Int) {
        self.api = api
        self.stepID = stepID
    }

    func started(processGroup: pid_t?) async {}

    func output(_ chunk: ByteBuffer) async throws {
        try await api.output(stepID: stepID, offset: offset, chunk: chunk)
        offset += chunk.readableBytes
    }
}

extension RunnerCommand {
    /// Reads the token from `path` (or standard input for `-`) and removes the file, so that
    /// nothing the steps can reach still holds it.
    static func readToken(_ path: String) throws -> String {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
            close(STDIN_FILENO)
        } else {
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read the runner token file \(path)")
            }
            data = contents
            try? FileManager.default.removeItem(atPath: path)
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ValidationError("the runner token file \(path) is empty") }
        return token
    }
}

/// A text the runner's tasks share (why it stopped its step, the replica it was sent to).
final class SharedText: Sendable {
    private let text = Mutex<String?>(nil)

    func withLock<T>(_ body: (inout String?) -> T) -> T { text.withLock { body(&$0) } }
}

/// The service's `/runner/jobs/:id/…` calls, with the job's token.
struct RunnerAPI: Sendable {
    let baseURL: String
    let jobID: Int
    let token: String
    /// How long the runner goes on without an answer from any replica.
    let lease: Duration
    /// Why the runner stopped its step on its own (the service is gone or done with the job).
    let orphaned = SharedText()

    /// The replica a load balancer's replica redirected to (the one running the job); calls
    /// go there until it stops answering, then to `baseURL` again.
    let owner = SharedText()
    /// Redirects are followed here, not by the HTTP client, which drops the token on the way
    /// to another address.
    static let client = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: HTTPClient.Configuration(redirectConfiguration: .disallow))

    init(baseURL: String, jobID: Int, token: String, lease: Duration) {
        self.baseURL = baseURL
        self.jobID = jobID
        self.token = token
        self.lease = lease
    }

    /// The next step, or nil when the job is over (the service says so, or no replica answered
    /// for a lease).
    func next() async throws -> StepPayload? {
        var unanswered: ContinuousClock.Instant?
        while true {
            let body: API.RunnerNext
            let asked = ContinuousClock.now
            do {
                body = try await unanswered == nil
                    ? call(.GET, "/next?wait=\(longPollSeconds)", timeout: longPollTimeout) : call(.GET, "/next?wait=0", timeout: probeTimeout)
                unanswered = nil
            } catch let failure as RunnerFailure {
                if failure.jobIsOver { return nil }
                throw failure
            } catch {
                let since = unanswered ?? asked
                unanswered = since
                if ContinuousClock.now - since >= lease { throw error }
                try await Task.sleep(for: .milliseconds(500))
                continue
            }
            if body.done { return nil }
            if let step = body.step { return step }
        }
    }

    func output(stepID: Int, offset: Int, chunk: ByteBuffer) async throws {
        let _: API.RunnerOutputReceived = try await call(
            .POST, "/steps/\(stepID)/output", body: chunk, headers: ["RapidFlow-Offset": String(offset)], timeout: .seconds(60))
    }

    func finish(stepID: Int, outcome: Result<Int, any Error>) async throws {
        let exit =
            switch outcome {
            case .success(let code): API.StepExit(exitCode: code)
            case .failure(let error): API.StepExit(error: "\(error)")
            }
        let body = ByteBuffer(data: try JSONEncoder().encode(exit))
        let _: API.RunnerStepRecorded = try await call(
            .POST, "/steps/\(stepID)/exit", body: body, headers: ["Content-Type": "application/json"], timeout: .seconds(60))
    }

    /// How long a long poll waits for an answer, and the whole call for the service: a third
    /// of the lease each (at most 25 s of waiting), so a call that goes unanswered, because the
    /// service is gone or cut off, fails well within the lease.
    var longPollSeconds: Int { max(1, min(25, Int(lease.inSeconds / 3))) }
    var longPollTimeout: TimeAmount { .milliseconds(Int64(longPollSeconds * 1000) + max(1000, Int64(lease.inSeconds * 1000 / 3))) }
    /// A call that must not wait: looking whether the service is back.
    var probeTimeout: TimeAmount { .milliseconds(max(500, min(5000, Int64(lease.inSeconds * 1000 / 3)))) }

    /// A stop signal for the step, waiting for one up to a long poll; nil when none came. A
    /// probe does not wait.
    func signal(stepID: Int, probe: Bool = false) async throws -> Int? {
        let body: API.RunnerSignal =
            try await probe
            ? call(.GET, "/steps/\(stepID)/signal?wait=0", timeout: probeTimeout)
            : call(.GET, "/steps/\(stepID)/signal?wait=\(longPollSeconds)", timeout: longPollTimeout)
        return body.signal
    }

    func call<T: Decodable>(
        _ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, headers: [String: String] = [:], timeout: TimeAmount
    ) async throws -> T {
        let response = try await send(method, path, body: body.map { bytes in { .bytes(bytes) } }, headers: headers, timeout: timeout)
        return try await Self.decode(response, method, path)
    }

    /// Sends the call to the replica running the job (following its redirect once); `body`
    /// makes the request's body, again for the redirect.
    func send(
        _ method: HTTPMethod, _ path: String, body: (() throws -> HTTPClientRequest.Body)? = nil, headers: [String: String] = [:],
        timeout: TimeAmount
    ) async throws -> HTTPClientResponse {
        let route = "/runner/jobs/\(jobID)\(path)"
        func send(to url: String) async throws -> HTTPClientResponse {
            var request = HTTPClientRequest(url: url)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body { request.body = try body() }
            return try await Self.client.execute(request, timeout: timeout)
        }
        let base = owner.withLock { $0 } ?? baseURL
        var response: HTTPClientResponse
        do {
            response = try await send(to: base + route)
        } catch {
            // The replica it was sent to is gone: the next call asks the load balancer again.
            owner.withLock { $0 = nil }
            throw error
        }
        // Another replica runs the job: it says where (307, the same method and body).
        let routePath = String(route.prefix { $0 != "?" })
        if response.status == .temporaryRedirect, let location = response.headers.first(name: "Location"),
            let at = location.range(of: routePath, options: .backwards),
            ["http", "https"].contains(URLComponents(string: location)?.scheme ?? "")
        {
            owner.withLock { $0 = String(location[..<at.lowerBound]) }
            response = try await send(to: location)
        }
        return response
    }

    /// The service's envelope of `response`, its data or its refusal.
    static func decode<T: Decodable>(_ response: HTTPClientResponse, _ method: HTTPMethod, _ path: String) async throws -> T {
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let status = Int(response.status.code)
        guard let envelope = try? JSONDecoder().decode(API.Envelope<T>.self, from: Data(buffer: bytes)) else {
            // Not the service's answer (a proxy's error page, say).
            throw RunnerFailure(description: "\(method) \(path) answered \(status) without the service's envelope", status: status)
        }
        if let error = envelope.error {
            throw RunnerFailure(description: "the service refused \(method) \(path): \(error.message) (\(error.code))", status: status)
        }
        guard let data = envelope.data else { throw RunnerFailure(description: "the service answered \(method) \(path) without data") }
        return data
    }
}
