import Foundation

/// Contains each step in a cgroup of its own (cgroup v2), when this process may create them.
///
/// A process can leave its session, its process group and even its marker variable
/// (`env -u RAPIDFLOW_STEP_MARKER setsid sleep 1000 &`), but it cannot leave its cgroup, and
/// `cgroup.kill` ends everything inside at once. Where no writable cgroup v2 hierarchy is
/// mounted (an unprivileged service, cgroup v1 only), steps are found by their marker alone.
///
/// A step's cgroup is named after its marker, `<instance>:<step>:` → `rapidflow-<instance>/step-<step>`
/// under this process's own cgroup, so every sweep by marker prefix also sweeps the cgroups.
public enum StepCgroups {
    /// The cgroup directory step cgroups are made under, or nil when there is none to use.
    public static let root: String? = findRoot()

    /// What contains steps here, for logs and the README's wording.
    public static var containment: String {
        root.map { "a cgroup per step (cgroup v2 under \($0))" } ?? "the marker variable (no writable cgroup v2 hierarchy)"
    }

    /// Makes the cgroup of the step with `marker`; nil when cgroups are not in use or it cannot be made.
    public static func create(marker: String) -> String? {
        guard let path = path(for: marker) else { return nil }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            return path
        } catch {
            return nil
        }
    }

    /// Sends `signal` to every process in the cgroups whose marker starts with `prefix`
    /// (`<instance>:` for all of an instance's steps), except those `skip` names; SIGKILL
    /// through `cgroup.kill`. Returns the processes that were there.
    @discardableResult
    public static func signal(markedWith prefix: String, signal: Int32, skipping skip: (pid_t) -> Bool = { _ in false }) -> Set<pid_t> {
        var found = Set<pid_t>()
        for cgroup in cgroups(markedWith: prefix) {
            let pids = processes(in: cgroup)
            found.formUnion(pids)
            if signal == SIGKILL, FileManager.default.fileExists(atPath: "\(cgroup)/cgroup.kill") {
                write("1", to: "\(cgroup)/cgroup.kill")
            } else {
                for pid in pids where signal != 0 && !skip(pid) { kill(pid, signal) }
            }
        }
        return found
    }

    /// Kills what is left in the cgroups under `prefix` and removes them, waiting up to about
    /// a second for the kernel to empty each.
    public static func remove(markedWith prefix: String) async {
        for cgroup in cgroups(markedWith: prefix) {
            for attempt in 0..<50 {
                if rmdir(cgroup) == 0 || errno == ENOENT { break }
                if attempt == 0 || !processes(in: cgroup).isEmpty { write("1", to: "\(cgroup)/cgroup.kill") }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        // The instance's directory goes once its last step's has.
        if let instance = instanceDirectory(for: prefix) { _ = rmdir(instance) }
    }

    // MARK: - Paths

    private static func path(for marker: String) -> String? {
        let parts = marker.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 2, let instance = instanceDirectory(for: marker), !parts[1].isEmpty else { return nil }
        return "\(instance)/step-\(safe(parts[1]))"
    }

    private static func instanceDirectory(for marker: String) -> String? {
        guard let root, let instance = marker.split(separator: ":", omittingEmptySubsequences: false).first, !instance.isEmpty else {
            return nil
        }
        return "\(root)/rapidflow-\(safe(instance))"
    }

    /// The step cgroups a marker prefix covers: one step's, or all of an instance's.
    private static func cgroups(markedWith prefix: String) -> [String] {
        let parts = prefix.split(separator: ":", omittingEmptySubsequences: false)
        guard let instance = instanceDirectory(for: prefix) else { return [] }
        if parts.count >= 2, !parts[1].isEmpty { return ["\(instance)/step-\(safe(parts[1]))"] }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: instance)) ?? []
        return entries.filter { $0.hasPrefix("step-") }.map { "\(instance)/\($0)" }
    }

    private static func safe(_ text: Substring) -> String {
        String(text.filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
    }

    private static func processes(in cgroup: String) -> [pid_t] {
        guard let text = try? String(contentsOfFile: "\(cgroup)/cgroup.procs", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    private static func write(_ text: String, to path: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// This process's own cgroup in the mounted cgroup v2 hierarchy, if children can be made there.
    private static func findRoot() -> String? {
        if ProcessInfo.processInfo.environment["RAPIDFLOW_NO_CGROUPS"] == "1" { return nil }
        guard let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
            let own = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        else { return nil }
        // "0::/path" is this process's place in the v2 hierarchy.
        guard let line = own.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        let ownPath = String(line.dropFirst(3))
        for entry in mountinfo.split(separator: "\n") {
            // ... mount-point ... - fstype source options
            let halves = entry.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            guard fields.count >= 5 else { continue }
            let mountRoot = String(fields[3])
            let mountPoint = String(fields[4])
            // The mount shows the hierarchy from `mountRoot`; our cgroup must lie under it.
            guard ownPath.hasPrefix(mountRoot) else { continue }
            let relative = String(ownPath.dropFirst(mountRoot == "/" ? 0 : mountRoot.count))
            let candidate = (mountPoint + (relative == "/" ? "" : relative)).replacingOccurrences(of: "//", with: "/")
            let probe = "\(candidate)/rapidflow-probe-\(getpid())"
            guard mkdir(probe, 0o755) == 0 else { continue }
            let joinable = FileManager.default.fileExists(atPath: "\(probe)/cgroup.kill")
            rmdir(probe)
            if joinable { return candidate }
        }
        return nil
    }
}
