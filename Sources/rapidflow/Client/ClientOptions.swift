import ArgumentParser
import Glibc
import Foundation

/// `--server` and `--token`, shared by every client command.
struct ClientOptions: ParsableArguments {
    @Option(help: "The service's URL (RAPIDFLOW_SERVER; default http://127.0.0.1:3000).")
    var server: String?
    @Option(help: "The bearer token, when the service has one (RAPIDFLOW_API_TOKEN).")
    var token: String?
    @Flag(help: "Print the service's JSON payload instead of text, for scripts.")
    var json = false

    var client: ServiceClient {
        let environment = ProcessInfo.processInfo.environment
        let server = server ?? environment["RAPIDFLOW_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:3000"
        return ServiceClient(baseURL: server, token: token ?? environment["RAPIDFLOW_API_TOKEN"])
    }
}

/// A client command: its work, with service failures shown as the service's message.
protocol ClientCommand: AsyncParsableCommand {
    var options: ClientOptions { get }
    func run(client: ServiceClient) async throws
}

extension ClientCommand {
    func run() async throws {
        // A closed output is then a write error (see `Terminal.write`), not a signal.
        signal(SIGPIPE, SIG_IGN)
        do {
            let client = options.client
            try await client.checkReachable()
            try await run(client: client)
        } catch let failure as ServiceClient.Failure {
            Terminal.error(failure.description)
            throw ExitCode.failure
        }
    }
}

/// Writing to the terminal: colour only when stdout is one (and NO_COLOR is unset).
enum Terminal {
    static let isInteractive = isatty(STDOUT_FILENO) == 1
    static let colours = isInteractive && ProcessInfo.processInfo.environment["NO_COLOR"] == nil

    static func write(_ text: String) { write(Data(text.utf8)) }

    /// Writes to standard output. When the reader has gone (`rapidflow status 1 | head -3`),
    /// the command ends quietly with status 0, as a filter's producer should: no crash, no
    /// backtrace, no error line.
    static func write(_ data: Data) {
        if !writeAll(data, to: STDOUT_FILENO) { exit(0) }
    }

    static func line(_ text: String = "") { write(text + "\n") }

    static func error(_ text: String) {
        _ = writeAll(Data("error: \(text)\n".utf8), to: STDERR_FILENO)
    }

    /// Writes every byte (retrying short writes and EINTR); false when the descriptor is
    /// closed at the other end (EPIPE) or fails otherwise. SIGPIPE is ignored by the client
    /// commands, so a closed pipe is this answer rather than a signal.
    private static func writeAll(_ data: Data, to descriptor: Int32) -> Bool {
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }

    static func paint(_ text: String, _ code: String) -> String {
        colours ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    static func status(_ status: String) -> String {
        switch status {
        case "success": paint(status, "32")
        case "failed": paint(status, "31")
        case "cancelled", "skipped": paint(status, "33")
        case "running": paint(status, "36")
        default: status
        }
    }

    /// The payload as indented JSON with sorted keys. The API types write every field the
    /// service wrote, nulls included, so this is the service's payload, laid out.
    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        write(String(decoding: try encoder.encode(value), as: UTF8.self) + "\n")
    }

    /// Columns padded to their widest cell (ANSI codes excluded from the width).
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { visibleWidth($0[column]) }.max() ?? 0 }
        for (index, row) in all.enumerated() {
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - visibleWidth(cell))
            }
            let text = cells.joined(separator: "  ")
            line(index == 0 ? paint(text, "1") : text)
        }
    }

    private static func visibleWidth(_ text: String) -> Int {
        var width = 0
        var inEscape = false
        for character in text {
            if character == "\u{1B}" { inEscape = true } else if inEscape { if character == "m" { inEscape = false } } else { width += 1 }
        }
        return width
    }
}

/// A field for a table cell: `-` when it is null.
func cell(_ value: (some CustomStringConvertible)?) -> String {
    value.map(\.description) ?? "-"
}

func formatDuration(_ seconds: Double?) -> String {
    guard let seconds else { return "-" }
    if seconds < 60 { return String(format: "%.1fs", seconds) }
    let whole = Int(seconds)
    return whole < 3600 ? "\(whole / 60)m\(whole % 60)s" : "\(whole / 3600)h\(whole % 3600 / 60)m"
}

/// Reads a file argument, `-` being standard input.
func readInput(_ path: String) throws -> Data {
    if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read '\(path)'")
    }
    return data
}
