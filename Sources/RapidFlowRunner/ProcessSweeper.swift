import CRapidFlowProcess
import Foundation

/// Finds processes by the marker variable every step runs with, so processes that left the
/// step's process group (a `setsid` grandchild, a daemon) are found too: they keep the
/// environment they were started with.
public enum ProcessSweeper {
    public static let markerVariable = "RAPIDFLOW_STEP_MARKER"

    /// Sends `signal` to every process whose marker starts with `prefix`, or that is in the
    /// cgroup of such a step, once each; returns how many there were.
    ///
    /// Processes in `exceptGroup` are left out: the caller signalled that process group
    /// itself, and a process that traps the signal must see it once per stop, not once per
    /// way it was found.
    @discardableResult
    public static func signalProcesses(markedWith prefix: String, signal: Int32, exceptGroup group: pid_t? = nil) -> Int {
        let inGroup: (pid_t) -> Bool = { pid in group.map { getpgid(pid) == $0 } ?? false }
        // The step's cgroup holds even the processes that dropped the marker.
        let contained = StepCgroups.signal(markedWith: prefix, signal: signal, skipping: inGroup)
        let marked = signalMarked(prefix, signal: signal) { contained.contains($0) || inGroup($0) }
        return contained.count + marked
    }

    /// Signals the marked processes that `skip` does not name; returns how many it found
    /// (skipped ones not counted).
    private static func signalMarked(_ prefix: String, signal: Int32, skipping skip: (pid_t) -> Bool) -> Int {
        // The scan of /proc is in C: it runs after every step, and reading each environment
        // into `Data` and splitting it cost more than the step's own spawn.
        var pids = [pid_t](repeating: 0, count: 4096)
        let found = pids.withUnsafeMutableBufferPointer { buffer in
            Int(rapidflow_marked_processes("\(markerVariable)=\(prefix)", getpid(), buffer.baseAddress, Int32(buffer.count)))
        }
        var count = 0
        for pid in pids.prefix(found) where !skip(pid) {
            if kill(pid, signal) == 0 { count += 1 }
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
