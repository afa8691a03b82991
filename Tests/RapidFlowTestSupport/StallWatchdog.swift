import Foundation

/// A diagnostic for a test process that stops making progress: with
/// `RAPIDFLOW_TEST_STALL_DUMPS=DIR` set, a thread of its own (outside Swift concurrency)
/// starts a task every half second, and when one has not run within 3 s it writes the stack
/// of every thread to `DIR` with gdb (at most 3 times per process). Off unless asked for.
public enum StallWatchdog {
    private static let started: Bool = {
        guard let directory = ProcessInfo.processInfo.environment["RAPIDFLOW_TEST_STALL_DUMPS"], !directory.isEmpty else { return false }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        Thread { watch(writingTo: directory) }.start()
        return true
    }()

    /// Starts the watchdog once per process, when the environment asks for it.
    public static func start() { _ = started }

    private static func watch(writingTo directory: String) {
        var dumps = 0
        while dumps < 3 {
            let ran = DispatchSemaphore(value: 0)
            let asked = Date()
            Task.detached { ran.signal() }
            if ran.wait(timeout: .now() + 3) == .timedOut {
                dumps += 1
                let path = "\(directory)/stall-\(getpid())-\(dumps).txt"
                FileManager.default.createFile(atPath: path, contents: Data("stalled since \(asked)\n".utf8))
                if let handle = FileHandle(forWritingAtPath: path) {
                    handle.seekToEndOfFile()
                    let gdb = Process()
                    gdb.executableURL = URL(fileURLWithPath: "/usr/bin/gdb")
                    gdb.arguments = ["-p", "\(getpid())", "-batch", "-ex", "thread apply all bt 25"]
                    gdb.standardOutput = handle
                    gdb.standardError = handle
                    try? gdb.run()
                    gdb.waitUntilExit()
                    try? handle.close()
                }
                ran.wait()
                let log = "\(directory)/stall-\(getpid())-\(dumps).txt"
                if let handle = FileHandle(forWritingAtPath: log) {
                    handle.seekToEndOfFile()
                    handle.write(Data("\nthe task ran \(Date().timeIntervalSince(asked)) s after it was started\n".utf8))
                    try? handle.close()
                }
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }
}
