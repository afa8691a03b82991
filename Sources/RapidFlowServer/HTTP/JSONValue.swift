import Foundation
import NIOCore
import RapidFlowCore

/// A JSON value with ordered object keys and explicit nulls, as the payloads are documented.
///
/// The API's response types (`RapidFlowAPI`) become values through `JSONValueEncoder`, which
/// keeps their fields in declaration order, and are written here inside the envelope: key
/// order reads as documented and `null` fields are present (the pipeline API shows
/// `"container_id": null`).
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])
    /// JSON text already encoded (by an `Encodable`), written as it is.
    case encoded(Data)

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
        case (.encoded(let a), .encoded(let b)): a == b
        default: false
        }
    }

    public static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
    public static func optional(_ value: Int?) -> JSONValue { value.map(JSONValue.int) ?? .null }
    public static func optional(_ value: Double?) -> JSONValue { value.map(JSONValue.double) ?? .null }
    public static func time(_ value: Date?) -> JSONValue { value.map { .string(Timestamp.format($0)) } ?? .null }

    /// Writes the serialized value into `buffer`.
    public func write(into buffer: inout ByteBuffer) {
        switch self {
        case .null: buffer.writeStaticString("null")
        case .bool(let value): value ? buffer.writeStaticString("true") : buffer.writeStaticString("false")
        case .int(let value): buffer.writeString(String(value))
        case .double(let value):
            if value.isFinite {
                buffer.writeString(value == value.rounded() && abs(value) < 1e15 ? String(format: "%.1f", value) : String(value))
            } else {
                buffer.writeStaticString("null")
            }
        case .string(let value): Self.writeString(value, into: &buffer)
        case .array(let values):
            buffer.writeStaticString("[")
            for (index, value) in values.enumerated() {
                if index > 0 { buffer.writeStaticString(",") }
                value.write(into: &buffer)
            }
            buffer.writeStaticString("]")
        case .object(let members):
            buffer.writeStaticString("{")
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { buffer.writeStaticString(",") }
                Self.writeString(key, into: &buffer)
                buffer.writeStaticString(":")
                value.write(into: &buffer)
            }
            buffer.writeStaticString("}")
        case .encoded(let data): buffer.writeBytes(data)
        }
    }

    /// An `Encodable` value as JSON.
    static func encoding(_ value: some Encodable) throws -> JSONValue {
        .encoded(try JSONEncoder().encode(value))
    }

    public var serialized: String {
        var buffer = ByteBuffer()
        write(into: &buffer)
        return String(buffer: buffer)
    }

    private static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        var string = string
        // Over the contiguous UTF-8 bytes (a native string's own): runs that need no escape,
        // most strings whole, are copied at once.
        string.withUTF8 { bytes in
            buffer.writeStaticString("\"")
            var pending = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F else { continue }
                buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[pending..<index])))
                switch byte {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    buffer.writeStaticString("\\u00")
                    buffer.writeInteger(hex[Int(byte >> 4)])
                    buffer.writeInteger(hex[Int(byte & 0x0F)])
                }
                pending = index + 1
            }
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[pending..<bytes.count])))
            buffer.writeStaticString("\"")
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
}
