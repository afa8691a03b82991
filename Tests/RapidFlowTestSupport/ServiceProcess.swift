import Foundation
import RapidFlowRunner

/// `rapidflow serve` as a child process of the test, on a free port.
public struct ServiceProcess {
    public let process: Process
    public let client: TestServer
    /// Where the service's standard output and error go.
    public let logPath: String

    /// The `rapidflow` executable: `RAPIDFLOW_BINARY`, or the one built beside the tests.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["RAPIDFLOW_BINARY"] { return path }
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rapidflow").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.appendingPathComponent(".build/debug/rapidflow").path
    }

    /// The service's log goes to `logDirectory` (default: the data directory; a test that fills
    /// the data disk keeps it elsewhere, or the "listening" line could not be written).
    public static func start(
        dataDirectory: String, arguments: [String] = [], environment: [String: String] = [:], allowLocalRepos: Bool = true,
        logDirectory: String? = nil, wrapper: [String] = []
    ) async throws -> ServiceProcess {
        let logPath = "\(logDirectory ?? dataDirectory)/service-\(UUID().uuidString.prefix(6)).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        // `wrapper` runs the service under another program (`strace -f -o FILE`).
        process.executableURL = URL(fileURLWithPath: wrapper.first ?? binary)
        // Tests clone repositories they create on this machine.
        process.arguments = (wrapper.isEmpty ? [] : Array(wrapper.dropFirst()) + [binary])
            + ["serve", "--port", "0", "--data-dir", dataDirectory, "--log-level", "warning"]
            + (allowLocalRepos ? ["--allow-local-repos"] : []) + arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try ProcessSpawning.run(process)
        var port: Int?
        var host = "127.0.0.1"
        do {
            try await eventually("rapidflow listens") {
                let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                if let range = text.range(of: "listening on http://") {
                    // The address only (the line may be inside a JSON log record).
                    let address = text[range.upperBound...].prefix { $0.isNumber || $0.isLetter || ".:-[]".contains($0) }
                    guard let colon = address.lastIndex(of: ":") else { return false }
                    host = String(address[..<colon])
                    port = Int(address[address.index(after: colon)...]) ?? 0
                    return true
                }
                if !process.isRunning { throw TestFailure("rapidflow exited early: \(text)") }
                return false
            }
        } catch {
            if process.isRunning { process.terminate() }
            throw error
        }
        var client = TestServer(port: port ?? 0, dataDirectory: dataDirectory)
        client.host = host
        return ServiceProcess(process: process, client: client, logPath: logPath)
    }

    /// Sends `signal` and returns at once (for cleanups in `defer`).
    public func kill(signal: Int32) {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, signal)
    }

    /// SIGKILL, then waits for the process to be gone, without holding a concurrency thread.
    public func killNow() async throws {
        kill(signal: SIGKILL)
        try await eventually(timeout: .seconds(60), "the killed rapidflow exits") { !process.isRunning }
    }

    /// Whether the process ended within `timeout` seconds.
    public func waitForExit(timeout: TimeInterval) async -> Bool {
        (try? await eventually(timeout: .seconds(timeout), "rapidflow exits") { !process.isRunning }) != nil
    }
}
