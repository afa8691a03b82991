import Foundation
import NIOCore
import RapidFlowCore

/// Runs each step as `bash -eo pipefail -c <content>` on this machine, in its own session.
public struct ShellExecutor: StepExecutor {
    public let name = "shell"
    private let launcher: ProcessLauncher
    private let baseEnvironment: [String: String]
    /// The user pipeline steps run as (`--step-user`); nil: the service's own.
    private let identity: StepIdentity?

    public init(
        launcher: ProcessLauncher, baseEnvironment: [String: String] = ShellExecutor.defaultEnvironment(), identity: StepIdentity? = nil
    ) {
        self.launcher = launcher
        self.baseEnvironment = baseEnvironment
        self.identity = identity
    }

    /// A clean environment: the service's own variables (its token among them) never reach a step.
    public static func defaultEnvironment() -> [String: String] {
        let inherited = ProcessInfo.processInfo.environment
        var environment: [String: String] = [
            "PATH": inherited["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "CI": "true",
            "RAPIDFLOW": "true",
        ]
        for key in ["HOME", "USER", "TZ"] {
            if let value = inherited[key] { environment[key] = value }
        }
        return environment
    }

    public func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        let spec = ProcessSpec(
            executable: "/bin/bash",
            arguments: Self.arguments(for: step),
            environment: environment(for: step),
            workingDirectory: step.type == .git ? step.workspace : step.workingDirectory)
        return try await launcher.runStep(asStepUser(spec, step), step, events: events)
    }

    /// Pipeline steps (and their clone) run as the step user, in a workspace it owns. An image
    /// job's clone stays with the service: it reads the job's credential files.
    private func asStepUser(_ spec: ProcessSpec, _ step: StepInvocation) -> ProcessSpec {
        guard let identity, step.snapshot.imageJob == nil else { return spec }
        var spec = spec
        spec.identity = identity
        if step.type == .git || step.home == nil { spec.environment["HOME"] = identity.home }
        spec.environment["USER"] = identity.name
        identity.own(step.workspace)
        if let home = step.home { identity.own(home) }
        return spec
    }

    func environment(for step: StepInvocation) -> [String: String] {
        var environment = baseEnvironment
        environment["RAPIDFLOW_JOB_ID"] = String(step.jobID)
        environment["RAPIDFLOW_STEP_ID"] = String(step.stepID)
        environment["RAPIDFLOW_WORKSPACE"] = step.workspace
        if step.type == .git {
            // The clone runs on this machine whichever executor runs the other steps: a config's
            // env (PATH, BASH_ENV, GIT_ALLOW_PROTOCOL, GIT_CONFIG_*) must not reconfigure it.
            for (key, value) in step.credentialEnvironment { environment[key] = value }
            GitEnvironment.restrict(&environment, to: step.repositories)
            environment["GIT_TERMINAL_PROMPT"] = "0"
        } else {
            if let home = step.home { environment["HOME"] = home }
            for (key, value) in step.environment { environment[key] = value }
        }
        environment[ProcessSweeper.markerVariable] = step.control.marker
        return environment
    }

    static func arguments(for step: StepInvocation) -> [String] {
        guard step.type == .git else { return ["-eo", "pipefail", "-c", step.content] }
        // Values reach git as positional arguments, never spliced into the script.
        return ["-eo", "pipefail", "-c", GitCheckout.script, "rapidflow-git", step.snapshot.repo ?? "", step.snapshot.commit?.sha ?? step.snapshot.branch ?? ""]
    }
}

/// The clone of a pipeline's `repo` into the workspace: only what the ref needs. The URL and
/// the ref come after `--` (or `--end-of-options`) wherever git takes them, so neither can
/// be read as an option even if validation missed one.
enum GitCheckout {
    static let script = """
        url="$1"; ref="$2"
        echo "Cloning $url${ref:+ at $ref}"
        git init -q .
        git remote add origin -- "$url"
        if [ -z "$ref" ]; then
          git fetch -q --depth 1 origin HEAD
        elif ! git fetch -q --depth 1 origin -- "$ref"; then
          # Servers that refuse a bare commit id in a shallow fetch: fetch all, then the commit.
          case "$ref" in
            *[!0-9a-f]*) exit 1 ;;
          esac
          echo "Fetching full history to find commit $ref"
          git fetch -q origin
          git rev-parse -q --verify --end-of-options "$ref^{commit}" >/dev/null || { echo "commit $ref not found in $url"; exit 1; }
          git update-ref -- FETCH_HEAD "$ref" 2>/dev/null || echo "$ref" > .git/FETCH_HEAD
        fi
        git checkout -q FETCH_HEAD
        git log -1 --format='Checked out %H (%s)'
        """
}
