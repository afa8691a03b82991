import CRapidFlowProcess
import Foundation

/// Finds processes by the marker variable every step runs with, so processes that left the
/// step's process group (a `setsid` grandchild, a daemon) are found too: they keep the
/// environment they were started with.
public enum ProcessSweeper {
    public static let markerVariable = "RAPIDFLOW_STEP_MARKER"

    /// Sends `signal` to every process whose marker starts with `prefix`; returns how many.
    @discardableResult
    public static func signalProcesses(markedWith prefix: String, signal: Int32) -> Int {
        // The step's cgroup holds even the processes that dropped the marker.
        let contained = StepCgroups.signal(markedWith: prefix, signal: signal)
        return max(contained, signalMarked(prefix, signal: signal))
    }

    private static func signalMarked(_ prefix: String, signal: Int32) -> Int {
        let needle = Array("\(markerVariable)=\(prefix)".utf8)
        let own = getpid()
        var count = 0
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return 0 }
        for entry in entries {
            guard let pid = Int32(entry), pid != own,
                let environ = FileManager.default.contents(atPath: "/proc/\(entry)/environ")
            else { continue }
            let matches = environ.split(separator: 0).contains { variable in
                variable.count >= needle.count && variable.prefix(needle.count).elementsEqual(needle)
            }
            if matches, kill(pid, signal) == 0 { count += 1 }
        }
        return count
    }

    /// True when some process still carries a marker starting with `prefix`.
    public static func hasProcesses(markedWith prefix: String) -> Bool {
        signalProcesses(markedWith: prefix, signal: 0) > 0
    }
}

/// Keeps what this process holds (tokens, credentials, the database URL) from the steps it starts.
public enum ProcessProtection {
    /// Steps run as the same user: without this they could read this process's memory and
    /// environment through /proc. Children are dumpable again after `exec`, so the sweep
    /// still reads their markers.
    public static func hideFromSameUser() {
        _ = rapidflow_set_undumpable()
    }
}
