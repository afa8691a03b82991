import Foundation
import Synchronization
import NIOCore
import RapidFlowCore

/// Runs the docker steps of an image job through the Docker CLI: `docker-build`,
/// `docker-run` (a test command or the image's entry point) and `docker-push`.
///
/// The CLI (rather than the engine's HTTP API) because it tars the build context, reads
/// `.dockerignore`, and authenticates pushes from a per-job `DOCKER_CONFIG`; running it as
/// a child process also gives these steps the same output capture and stop path as any step.
public struct DockerImageExecutor: StepExecutor {
    public let name = "docker"
    private let launcher: ProcessLauncher
    private let baseEnvironment: [String: String]
    private let engine: DockerEngine

    public init(
        launcher: ProcessLauncher, engine: DockerEngine = DockerEngine(),
        baseEnvironment: [String: String] = ShellExecutor.defaultEnvironment()
    ) {
        self.launcher = launcher
        self.engine = engine
        self.baseEnvironment = baseEnvironment
    }

    /// The local tag of a job's built image; the service's instance id keeps two services
    /// on one engine (or one data directory reset) from sharing tags.
    public static func buildTag(_ step: StepInvocation) -> String {
        "rapidflow-\(step.labels["rapidflow.instance"]?.prefix(8) ?? "local")-job-\(step.jobID):build"
    }

    public func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        guard let request = step.snapshot.imageJob else {
            throw RapidFlowError(.internalError, "a docker step needs an image job")
        }
        switch step.type {
        case .dockerBuild:
            return try await build(step, request: request, events: events)
        case .dockerRun:
            return try await test(step, events: events)
        case .dockerPush:
            return try await push(step, events: events)
        case .bash, .git, .cacheRestore, .cacheSave, .artifacts:
            throw RapidFlowError(.internalError, "unknown docker step type \(step.type)")
        }
    }

    private func build(_ step: StepInvocation, request: ImageJobRequest, events: any StepEvents) async throws -> Int {
        // The Dockerfile must stay inside the repository, also through symlinks.
        let root = URL(fileURLWithPath: step.workspace).resolvingSymlinksInPath().path
        let dockerfile = URL(fileURLWithPath: "\(root)/\(request.dockerfilePath)").resolvingSymlinksInPath().path
        guard dockerfile.hasPrefix(root + "/") else {
            try await events.output(ByteBuffer(string: "[rapidflow] dockerfile_path '\(request.dockerfilePath)' leaves the repository\n"))
            return 1
        }
        guard FileManager.default.fileExists(atPath: dockerfile) else {
            try await events.output(ByteBuffer(string: "[rapidflow] no Dockerfile at '\(request.dockerfilePath)' in the repository\n"))
            return 1
        }
        var arguments = ["build", "--force-rm", "-f", dockerfile, "-t", Self.buildTag(step)]
        for (key, value) in step.labels.sorted(by: { $0.key < $1.key }) { arguments += ["--label", "\(key)=\(value)"] }
        let layers = Self.layerCacheTag(step, request: request)
        if !request.cacheFrom.isEmpty {
            for image in request.cacheFrom {
                try await events.output(ByteBuffer(string: "Pulling \(image) for its layers (cache_from)\n"))
                if try await docker(["pull", "-q", "--", image], step, events: events) != 0 {
                    try await events.output(ByteBuffer(string: "[rapidflow] could not pull \(image); building without its layers\n"))
                }
            }
            // With --cache-from the engine uses only the images named: the newest local build
            // of this repository is named too, so its layers still count.
            let local = (try? await engine.imageID(layers)) ?? nil
            for image in request.cacheFrom + (local != nil ? [layers] : []) { arguments += ["--cache-from", image] }
        }
        arguments.append(root)
        // The engine goes on with a build whose client went away, so a stop also kills the
        // container the build is running (the builder names it: " ---> Running in <id>").
        let watcher = BuildContainerWatcher(events: events)
        launcher.stopContainerOnStop(step, environment: dockerEnvironment(step)) { watcher.current }
        let status = try await docker(arguments, step, events: watcher)
        if status == 0 {
            // The next build of this owner's repository starts from these layers.
            let colon = layers.lastIndex(of: ":")!
            let previous = try? await engine.imageID(layers)
            try? await engine.tagImage(Self.buildTag(step), repository: String(layers[..<colon]), tag: String(layers[layers.index(after: colon)...]))
            // The build it replaces keeps nothing the new one needs that the new one does not hold.
            if let previous, previous != (try? await engine.imageID(layers)) { await engine.removeImageIfUnused(previous) }
        }
        return status
    }

    /// `rapidflow-layers/<instance>-<hash of owner and repository>:latest`: one per owner and
    /// repository on this engine, moved to each newer build.
    public static func layerCacheTag(_ step: StepInvocation, request: ImageJobRequest) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (request.owner + "\n" + request.repoURL).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        // Runners label their jobs with an instance of their own each, and share the layers of
        // their machine's engine under one name (`rapidflow.layers`).
        let instance = (step.labels["rapidflow.layers"] ?? step.labels["rapidflow.instance"])?.prefix(8) ?? "local"
        return "\(DockerEngine.layerCacheRepository)/\(instance)-\(String(hash, radix: 16)):latest"
    }

    /// Each test runs in a fresh container: created through the API first so its id is known
    /// (and stoppable), then started attached so its output is captured, then removed.
    private func test(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        let containerID: String
        do {
            containerID = try await engine.createContainer(
                image: Self.buildTag(step),
                entrypoint: step.name == "entrypoint" ? nil : ["/bin/sh"],
                // One stream keeps stdout and stderr in the order printed (Docker carries them apart).
                command: step.name == "entrypoint" ? nil : ["-c", "exec 2>&1\n" + step.content],
                labels: step.labels)
        } catch {
            try await events.output(ByteBuffer(string: "[rapidflow] could not create the test container: \(error)\n"))
            return 1
        }
        await events.container(containerID)
        // The attached CLI forwards signals, but a SIGKILL of the CLI would leave the container.
        launcher.stopContainerOnStop(step, environment: dockerEnvironment(step)) { containerID }
        let exitCode = try await docker(["start", "--attach", containerID], step, events: events)
        try? await engine.removeContainer(containerID)
        return exitCode
    }

    /// Tags the built image as the target (API), pushes it (CLI, for its auth and progress), and drops the tag.
    private func push(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        let reference = step.content
        guard let colon = reference.lastIndex(of: ":") else { return 1 }
        do {
            try await engine.tagImage(Self.buildTag(step), repository: String(reference[..<colon]), tag: String(reference[reference.index(after: colon)...]))
        } catch {
            try await events.output(ByteBuffer(string: "[rapidflow] could not tag the image as \(reference): \(error)\n"))
            return 1
        }
        try await events.output(ByteBuffer(string: "Pushing \(reference)\n"))
        let exitCode = try await docker(["push", reference], step, events: events)
        try? await engine.removeImage(reference)
        return exitCode
    }

    private func docker(_ arguments: [String], _ step: StepInvocation, events: any StepEvents) async throws -> Int {
        let spec = ProcessSpec(
            executable: "/usr/bin/env", arguments: ["docker"] + arguments, environment: dockerEnvironment(step),
            workingDirectory: step.workspace)
        return try await launcher.runStep(spec, step, events: events)
    }

    private func dockerEnvironment(_ step: StepInvocation) -> [String: String] {
        var environment = baseEnvironment
        // The legacy builder: no buildx plugin is needed, and a stopped client cancels the build.
        environment["DOCKER_BUILDKIT"] = "0"
        environment["DOCKER_CLI_HINTS"] = "false"
        if let config = step.credentialEnvironment["DOCKER_CONFIG"] {
            environment["DOCKER_CONFIG"] = config
        } else {
            // An empty per-job config: the service user's own logins are never used by a job.
            environment["DOCKER_CONFIG"] = "\(step.workspace)/../.docker-empty"
        }
        environment[ProcessSweeper.markerVariable] = step.control.marker
        return environment
    }
}

/// Passes build output on and remembers the container the builder is running.
final class BuildContainerWatcher: StepEvents {
    private let events: any StepEvents
    private let state = Mutex<(line: String, container: String?)>(("", nil))

    init(events: any StepEvents) {
        self.events = events
    }

    var current: String? { state.withLock { $0.container } }

    func started(processGroup: pid_t?) async { await events.started(processGroup: processGroup) }
    func container(_ id: String) async { await events.container(id) }

    func output(_ chunk: ByteBuffer) async throws {
        let text = String(buffer: chunk)
        state.withLock { state in
            let lines = (state.line + text).split(separator: "\n", omittingEmptySubsequences: false)
            for line in lines.dropLast() {
                if let range = line.range(of: "---> Running in ") {
                    state.container = String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
                }
            }
            state.line = String(lines.last?.suffix(200) ?? "")
        }
        try await events.output(chunk)
    }
}

/// Collects a short command's output.
actor OutputBuffer {
    private var bytes: [UInt8] = []
    func append(_ chunk: ByteBuffer) { bytes += chunk.readableBytesView }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// Sends each step to the executor for its type: image-job steps to Docker, clones to the
/// shell, pipeline steps to containers when configured (or when the config names an image
/// and the engine is there, in `auto` mode), else to the shell.
public struct RoutingExecutor: StepExecutor {
    public let shell: ShellExecutor
    public let image: DockerImageExecutor
    public let containers: ContainerStepExecutor?
    /// `--executor docker`: every pipeline step runs in a container.
    public let containersRequired: Bool
    public var name: String { containersRequired ? "docker" : containers == nil ? "shell" : "auto" }

    public init(shell: ShellExecutor, image: DockerImageExecutor, containers: ContainerStepExecutor?, containersRequired: Bool) {
        self.shell = shell
        self.image = image
        self.containers = containers
        self.containersRequired = containersRequired
    }

    public func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        if step.type.isDocker { return try await image.run(step, events: events) }
        if step.type != .git, let containers, containersRequired || containers.image(for: step.snapshot) != nil {
            return try await containers.run(step, events: events)
        }
        return try await shell.run(step, events: events)
    }
}
