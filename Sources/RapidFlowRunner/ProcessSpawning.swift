import Foundation

/// Foundation's `Process.run()` is not safe to call from several threads at once (crashes
/// inside it were seen with a runner launch beside cache archive processes, and with tests
/// running commands side by side): every spawn through `Process`, the service's and the
/// tests', takes turns here. Each `run` only starts the child; waiting is outside the lock.
public enum ProcessSpawning {
    private static let lock = NSLock()

    public static func run(_ process: Process) throws {
        // The environment handed over as a value, so `run` does not read the process's own.
        if process.environment == nil { process.environment = ProcessInfo.processInfo.environment }
        try lock.withLock { try process.run() }
    }
}
