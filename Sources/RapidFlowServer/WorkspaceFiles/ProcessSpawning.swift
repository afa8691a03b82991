import Foundation

/// Foundation's `Process.run()` is not safe to call from several threads at once (a crash
/// inside it was seen with a runner launch beside cache archive processes): the service's own
/// spawns through `Process` take turns here. Each `run` only starts the child; waiting is
/// outside the lock.
enum ProcessSpawning {
    private static let lock = NSLock()

    static func run(_ process: Process) throws {
        try lock.withLock { try process.run() }
    }
}
