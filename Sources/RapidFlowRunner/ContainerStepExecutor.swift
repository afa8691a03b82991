import Foundation
import NIOCore
import RapidFlowCore

/// Runs pipeline steps in containers on the local Docker engine (`--executor docker`): each
/// step in a fresh container of the config's `image`, or of `language:version` through
/// `languageImages`, with the workspace mounted at `/workspace` and the config's env.
public struct ContainerStepExecutor: StepExecutor {
    public let name = "docker"
    private let launcher: ProcessLauncher
    /// `language` → image template, where `{version}` is replaced; a language not listed
    /// runs `<language>:<version>`.
    public let languageImages: [String: String]

    public static let defaultLanguageImages: [String: String] = [
        "golang": "golang:{version}", "go": "golang:{version}", "python": "python:{version}", "node": "node:{version}",
        "nodejs": "node:{version}", "ruby": "ruby:{version}", "rust": "rust:{version}", "java": "eclipse-temurin:{version}",
        "swift": "swift:{version}",
    ]

    public init(launcher: ProcessLauncher, languageImages: [String: String] = ContainerStepExecutor.defaultLanguageImages) {
        self.launcher = launcher
        self.languageImages = languageImages
    }

    /// The image a pipeline's steps run in, or nil when the config names none.
    public func image(for snapshot: JobSnapshot) -> String? {
        if let image = snapshot.image, !image.isEmpty { return image }
        guard let language = snapshot.language, !language.isEmpty else { return nil }
        let version = snapshot.version ?? "latest"
        let template = languageImages[language.lowercased()] ?? "\(language.lowercased()):{version}"
        return template.replacingOccurrences(of: "{version}", with: version)
    }

    /// Runs the script with bash when the image has it, else with the image's POSIX sh.
    /// stderr joins stdout first: Docker carries the two as separate streams, which would
    /// lose the order they were printed in.
    /// Where a job's home is mounted in its step containers.
    public static let containerHome = "/rapidflow-home"

    static let wrapper = #"exec 2>&1; if command -v bash >/dev/null 2>&1; then exec bash -eo pipefail -c "$1"; fi; exec sh -e -c "set -o pipefail 2>/dev/null; $1""#

    public func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        guard let image = image(for: step.snapshot) else {
            try await events.output(ByteBuffer(string: "[rapidflow] the docker executor needs 'image' or 'language' (and 'version') in the pipeline config\n"))
            return 1
        }
        let relative = step.workingDirectory.hasPrefix(step.workspace)
            ? String(step.workingDirectory.dropFirst(step.workspace.count)) : ""
        var create = ["create", "--init", "-v", "\(step.workspace):/workspace", "-w", "/workspace\(relative)"]
        if let home = step.home {
            // The job's home, kept across its steps' containers (and what `~/` caches hold).
            create += ["-v", "\(home):\(Self.containerHome)", "-e", "HOME=\(Self.containerHome)"]
        }
        for (key, value) in step.labels.sorted(by: { $0.key < $1.key }) { create += ["--label", "\(key)=\(value)"] }
        create += ["-e", "CI=true", "-e", "RAPIDFLOW=true", "-e", "RAPIDFLOW_JOB_ID=\(step.jobID)", "-e", "RAPIDFLOW_STEP_ID=\(step.stepID)",
                   "-e", "RAPIDFLOW_WORKSPACE=/workspace"]
        for (key, value) in step.environment { create += ["-e", "\(key)=\(value)"] }
        var published: [String] = []
        if step.snapshot.exposePorts {
            // Host ports are picked here (free loopback ports) so they are known before the step starts.
            for port in try await exposedPorts(of: image, step) {
                let hostPort = try Self.freeLoopbackPort()
                create += ["-p", "127.0.0.1:\(hostPort):\(port)"]
                published.append("\(port) -> 127.0.0.1:\(hostPort)")
            }
        }
        create += ["--entrypoint", "/bin/sh", image, "-c", Self.wrapper, "rapidflow", step.content]

        let (status, output) = try await run(create, step)
        let containerID = output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last.map(String.init) ?? ""
        guard status == 0, !containerID.isEmpty else {
            try await events.output(ByteBuffer(string: output))
            return status == 0 ? 1 : status
        }
        await events.container(containerID)
        if !published.isEmpty { await events.ports(published) }
        launcher.stopContainerOnStop(step, environment: ShellExecutor.defaultEnvironment()) { containerID }
        let exitCode = try await launcher.runStep(
            ProcessSpec(executable: "/usr/bin/env", arguments: ["docker", "start", "--attach", containerID],
                environment: environment(step), workingDirectory: nil),
            step, events: events)
        _ = try? await run(["rm", "--force", containerID], step)
        return exitCode
    }

    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProcessError.spawnFailed("socket", errno: errno) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ProcessError.spawnFailed("bind", errno: errno) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private func exposedPorts(of image: String, _ step: StepInvocation) async throws -> [String] {
        let (status, output) = try await run(["image", "inspect", "--format", "{{range $port, $_ := .Config.ExposedPorts}}{{$port}} {{end}}", image], step)
        guard status == 0 else { return [] }
        return output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    private func run(_ arguments: [String], _ step: StepInvocation) async throws -> (Int, String) {
        let output = OutputBuffer()
        let termination = try await launcher.run(
            ProcessSpec(executable: "/usr/bin/env", arguments: ["docker"] + arguments, environment: environment(step), workingDirectory: nil),
            started: { _ in }, output: { await output.append($0) })
        return (termination.exitCode, await output.text)
    }

    private func environment(_ step: StepInvocation) -> [String: String] {
        var environment = ShellExecutor.defaultEnvironment()
        environment["DOCKER_CONFIG"] = "\(step.workspace)/../.docker-empty"
        environment[ProcessSweeper.markerVariable] = step.control.marker
        return environment
    }
}
