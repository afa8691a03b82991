import Foundation
import Logging
import Synchronization

extension Logger {
    /// The service's logger at its configured level, in its configured format. Made per
    /// service (no process-wide bootstrap), so services in one process keep their settings.
    static func service(_ configuration: ServerConfiguration, label: String = "rapidflow") -> Logger {
        var logger: Logger
        switch configuration.logFormat {
        case .text: logger = Logger(label: label)
        case .json: logger = Logger(label: label) { JSONLogHandler(label: $0) }
        }
        logger.logLevel = configuration.logLevel
        return logger
    }
}

/// One JSON object a line on standard error, with stable keys: `time` (ISO 8601, UTC, with
/// milliseconds), `level`, `message`, `logger` (the label), `source` (the module), then the
/// metadata's keys (one named like those five is written with a `meta_` prefix). Values are
/// strings, or arrays and objects of strings for nested metadata.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) {
        let merged = explicit.map { metadata.merging($0) { $1 } } ?? metadata
        JSONLogHandler.write(Self.line(level: level, message: "\(message)", label: label, source: source, metadata: merged))
    }

    static let reserved: Set<String> = ["time", "level", "message", "logger", "source"]

    /// The line for one event, without its newline.
    public static func line(
        level: Logger.Level, message: String, label: String, source: String, metadata: Logger.Metadata, at date: Date = Date()
    ) -> String {
        var text = "{\"time\":" + quoted(timestamp(date)) + ",\"level\":" + quoted(level.rawValue) + ",\"message\":" + quoted(message)
        text += ",\"logger\":" + quoted(label) + ",\"source\":" + quoted(source)
        for key in metadata.keys.sorted() {
            let name = reserved.contains(key) ? "meta_" + key : key
            text += "," + quoted(name) + ":" + json(metadata[key]!)
        }
        return text + "}"
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): quoted(text)
        case .stringConvertible(let convertible): quoted(convertible.description)
        case .array(let values): "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let values): "{" + values.keys.sorted().map { quoted($0) + ":" + json(values[$0]!) }.joined(separator: ",") + "}"
        }
    }

    /// A JSON string literal, escaped as every answer of the service is (`JSONValue`).
    public static func quoted(_ text: String) -> String {
        JSONValue.string(text).serialized
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    private static let output = Mutex(())

    /// Whole lines, one writer at a time, so lines from concurrent tasks never interleave.
    public static func write(_ line: String) {
        output.withLock { _ in
            var bytes = Array(line.utf8)
            bytes.append(0x0A)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}
