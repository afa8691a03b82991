import Foundation
import RapidFlowRunner

/// Files, directories and processes a test sets up or looks at on this machine.
public enum TestFiles {
    /// A new, empty directory of its own under the system's temporary directory.
    public static func temporaryDirectory() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rapidflow-test-\(UUID().uuidString.prefix(8))").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs a shell command for test setup and returns its output; fails the test on a non-zero
    /// exit. It waits without holding a Swift concurrency thread (there are as few as there
    /// are cores, and every test shares them).
    @discardableResult
    public static func shell(_ command: String) async throws -> String {
        let output = temporaryDirectory() + "/shell-output"
        FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        let status = try await Command.run("/bin/bash", ["-eo", "pipefail", "-c", command], output: output, error: output)
        // Decoded leniently: a command may print bytes that are not UTF-8 (WebSocket frames).
        let text = String(decoding: FileManager.default.contents(atPath: output) ?? Data(), as: UTF8.self)
        guard status == 0 else { throw TestFailure("setup command failed: \(command)\n\(text)") }
        return text
    }

    /// For cleanups in `defer`: a short command, run to its end on the calling thread.
    public static func shellNow(_ command: String) {
        _ = try? Command.runNow("/bin/bash", ["-c", command], output: "/dev/null", error: "/dev/null")
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick).
    public static func freePort() -> Int {
        var address = ipv4("127.0.0.1", port: 0)
        return withSocket { socket in
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }

    /// Whether something accepts TCP connections on `host`:`port` (an IPv4 address).
    public static func listens(on port: Int, host: String = "127.0.0.1") -> Bool {
        var address = ipv4(host, port: port)
        return withSocket { socket in
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
    }

    private static func ipv4(_ host: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr(host)
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    /// A TCP socket for `body`, closed after.
    private static func withSocket<T>(_ body: (Int32) -> T) -> T {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        return body(socket)
    }

    /// Whether any process still carries `text` on its command line.
    public static func processExists(matching text: String) -> Bool {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return false }
        for entry in entries where Int(entry) != nil {
            guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let commandLine = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if commandLine.contains(text) { return true }
        }
        return false
    }
}
