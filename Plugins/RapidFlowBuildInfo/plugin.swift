import Foundation
import PackagePlugin

/// Records the commit `rapidflow` is built from, for `rapidflow --version` and the service's
/// start line and build-info metric. Runs before every build, with the system's shell and git
/// (nothing built from source); the generated file is rewritten only when the commit changes,
/// so an unchanged checkout rebuilds nothing. Outside a git checkout the commit is "unknown".
@main
struct RapidFlowBuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "Generated")
        let script = """
            commit=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
            if [ "$commit" != unknown ] && [ -n "$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null | head -c 1)" ]; then
              commit="$commit-modified"
            fi
            mkdir -p "$2"
            text="enum BuildInfo { static let commit = \\"$commit\\" }"
            [ "$(cat "$2/BuildInfo.swift" 2>/dev/null)" = "$text" ] || printf '%s\\n' "$text" > "$2/BuildInfo.swift"
            """
        return [
            .prebuildCommand(
                displayName: "Recording the commit rapidflow is built from",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "sh", context.package.directoryURL.path, output.path],
                outputFilesDirectory: output)
        ]
    }
}
