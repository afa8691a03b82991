import Foundation
import RapidFlowCore

/// Decodes a request body into an API request type; every refusal is a `RapidFlowError`.
///
/// Bytes that are not JSON, or JSON that is not an object, are `invalid_json`; what the type
/// refuses (an unknown field, a wrong type, a value out of range) is the type's own error,
/// which names the field.
public enum RequestDecoding {
    /// The decoded body, or nil when it is empty (each route says what an empty body means).
    ///
    /// With `partial`, fields the route requires may be missing: the command-line client
    /// checks a `--file` this way before its flags add the rest.
    public static func decode<Body: Decodable>(_ type: Body.Type, from data: Data, partial: Bool = false) throws(RapidFlowError) -> Body? {
        guard !data.isEmpty else { return nil }
        var data = data
        // JSONSerialization, which read the bodies before these types, read UTF-32 with a
        // byte order mark; JSONDecoder reads UTF-8 and UTF-16 only.
        if data.starts(with: [0x00, 0x00, 0xFE, 0xFF]) || data.starts(with: [0xFF, 0xFE, 0x00, 0x00]),
            let text = String(data: data, encoding: .utf32)
        {
            data = Data(text.utf8)
        }
        let decoder = JSONDecoder()
        if partial { decoder.userInfo[RequestFields.partialKey] = true }
        do {
            return try decoder.decode(Body.self, from: data)
        } catch let error as RapidFlowError {
            throw error
        } catch {
            // The types read every field through `RequestFields`, which throws only
            // `RapidFlowError`: what is left is the JSON itself.
            throw RapidFlowError(.invalidJSON, "request body is not valid JSON")
        }
    }
}

/// The members of a request's JSON object, read by name, each refusal naming the field.
///
/// A request type's `init(from:)` opens the object with the fields it knows (any other key is
/// refused) and reads them in the order the route checks them, so that of several problems
/// the same one is reported every time.
public struct RequestFields {
    struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static let partialKey = CodingUserInfoKey(rawValue: "rapidflow.request.partial")!

    private let container: KeyedDecodingContainer<Key>
    /// Required fields may be missing (see `RequestDecoding.decode(_:from:partial:)`).
    public let isPartial: Bool

    /// Opens the body's object; a key outside `known` is refused, naming it and the known ones.
    public init(_ decoder: any Decoder, known: [String]) throws(RapidFlowError) {
        do {
            container = try decoder.container(keyedBy: Key.self)
        } catch DecodingError.typeMismatch, DecodingError.valueNotFound {
            throw RapidFlowError(.invalidJSON, "request body must be a JSON object")
        } catch {
            // An object whose keys are malformed strings.
            throw RapidFlowError(.invalidJSON, "request body is not valid JSON")
        }
        isPartial = decoder.userInfo[Self.partialKey] as? Bool ?? false
        try Self.checkSyntax(container)
        let knownSet = Set(known)
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !knownSet.contains($0) }) {
            throw RapidFlowError(.invalidRequest, "unknown field '\(unknown)'; known fields: \(known.sorted().joined(separator: ", "))")
        }
    }

    /// A nested object's fields (any key outside `known` refused, naming the object); nil when
    /// the field is missing or null.
    public func object(_ name: String, known: [String]) throws(RapidFlowError) -> RequestFields? {
        guard has(name) else { return nil }
        let nested: KeyedDecodingContainer<Key>
        do {
            nested = try container.nestedContainer(keyedBy: Key.self, forKey: Key(name))
        } catch {
            throw RapidFlowError(.invalidRequest, "field '\(name)' must be an object")
        }
        let knownSet = Set(known)
        if let unknown = nested.allKeys.map(\.stringValue).sorted().first(where: { !knownSet.contains($0) }) {
            throw RapidFlowError(
                .invalidRequest, "unknown field '\(unknown)' in '\(name)'; known fields: \(known.sorted().joined(separator: ", "))")
        }
        return RequestFields(container: nested, isPartial: isPartial)
    }

    private init(container: KeyedDecodingContainer<Key>, isPartial: Bool) {
        self.container = container
        self.isPartial = isPartial
    }

    /// Whether the field is there with a value other than null.
    public func has(_ name: String) -> Bool {
        let key = Key(name)
        guard container.contains(key) else { return false }
        return !((try? container.decodeNil(forKey: key)) ?? false)
    }

    /// The error for a required field that is missing (or null).
    public func missing(_ name: String) -> RapidFlowError {
        RapidFlowError(.invalidRequest, "missing field '\(name)'")
    }

    /// A string; nil when the field is missing or null.
    public func string(_ name: String) throws(RapidFlowError) -> String? {
        guard has(name) else { return nil }
        do {
            return try container.decode(String.self, forKey: Key(name))
        } catch {
            throw RapidFlowError(.invalidRequest, "field '\(name)' must be a string")
        }
    }

    /// A string that must be there (a partial request reads its required fields with `string`).
    public func requiredString(_ name: String) throws(RapidFlowError) -> String {
        guard let value = try string(name) else { throw missing(name) }
        return value
    }

    /// A list of strings; empty when the field is missing or null.
    public func strings(_ name: String) throws(RapidFlowError) -> [String] {
        guard has(name) else { return [] }
        var list: UnkeyedDecodingContainer
        do {
            list = try container.nestedUnkeyedContainer(forKey: Key(name))
        } catch {
            throw RapidFlowError(.invalidRequest, "field '\(name)' must be a list of strings")
        }
        var values: [String] = []
        while !list.isAtEnd {
            do {
                values.append(try list.decode(String.self))
            } catch {
                throw RapidFlowError(.invalidRequest, "\(name)[\(values.count)] must be a string")
            }
        }
        return values
    }

    /// An object of string values, by name in sorted order; empty when the field is missing or null.
    public func stringMap(_ name: String) throws(RapidFlowError) -> [(key: String, value: String)] {
        guard has(name) else { return [] }
        let object: KeyedDecodingContainer<Key>
        do {
            object = try container.nestedContainer(keyedBy: Key.self, forKey: Key(name))
        } catch {
            throw RapidFlowError(.invalidRequest, "field '\(name)' must be an object of string values")
        }
        return try Set(object.allKeys.map(\.stringValue)).sorted().map { (entry: String) throws(RapidFlowError) in
            do {
                return (entry, try object.decode(String.self, forKey: Key(entry)))
            } catch {
                throw RapidFlowError(.invalidRequest, "\(name) value of '\(entry)' must be a string")
            }
        }
    }

    /// `true` or `false`; nil when the field is missing or null. JSON's booleans are not numbers.
    public func bool(_ name: String) throws(RapidFlowError) -> Bool? {
        guard has(name) else { return nil }
        do {
            return try container.decode(Bool.self, forKey: Key(name))
        } catch {
            throw RapidFlowError(.invalidRequest, "field '\(name)' must be true or false")
        }
    }

    /// A number; nil when the field is missing or null.
    public func number(_ name: String) throws(RapidFlowError) -> Double? {
        guard has(name) else { return nil }
        do {
            return try container.decode(Double.self, forKey: Key(name))
        } catch {
            // A number too small for a Double (1e-400) is 0, as JSONSerialization read it.
            if let zero = try? container.decode(Int.self, forKey: Key(name)) { return Double(zero) }
            throw RapidFlowError(.invalidRequest, "field '\(name)' must be a number")
        }
    }

    /// A whole number in `range`: anything else (a fraction, 1e300, a value past `Int`) is
    /// refused, never a conversion that traps.
    public func integer(_ name: String, range: ClosedRange<Int>) throws(RapidFlowError) -> Int? {
        guard let number = try number(name) else { return nil }
        guard number.isFinite, number.rounded() == number, abs(number) <= 9_007_199_254_740_992,
            number >= Double(range.lowerBound), number <= Double(range.upperBound)
        else {
            throw RapidFlowError(.invalidRequest, "field '\(name)' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return Int(number)
    }

    /// Reads every value in the body once, however deep, so that malformed text is
    /// `invalid_json` wherever it is: JSONDecoder checks a number or a string only when a type
    /// reads it, and a field no type reads (or reads as something else) would pass unseen.
    /// A loop over a stack of containers rather than recursion: the body may nest 512 deep.
    private static func checkSyntax(_ root: KeyedDecodingContainer<Key>) throws(RapidFlowError) {
        enum Level {
            case object(KeyedDecodingContainer<Key>, keys: [Key])
            case array(UnkeyedDecodingContainer)
        }
        let invalid = RapidFlowError(.invalidJSON, "request body is not valid JSON")
        var stack: [Level] = [.object(root, keys: root.allKeys)]
        while let level = stack.popLast() {
            switch level {
            case .object(let object, var keys):
                guard let key = keys.popLast() else { continue }
                stack.append(.object(object, keys: keys))
                if let nested = try? object.nestedContainer(keyedBy: Key.self, forKey: key) {
                    stack.append(.object(nested, keys: nested.allKeys))
                } else if let nested = try? object.nestedUnkeyedContainer(forKey: key) {
                    stack.append(.array(nested))
                } else if (try? object.decodeNil(forKey: key)) == true || (try? object.decode(Bool.self, forKey: key)) != nil
                    || (try? object.decode(String.self, forKey: key)) != nil || (try? object.decode(Double.self, forKey: key)) != nil
                    || (try? object.decode(Int.self, forKey: key)) != nil
                {
                    continue
                } else {
                    throw invalid
                }
            case .array(var array):
                guard !array.isAtEnd else { continue }
                // Each read below moves past the element only when it succeeds.
                if let nested = try? array.nestedContainer(keyedBy: Key.self) {
                    stack.append(.array(array))
                    stack.append(.object(nested, keys: nested.allKeys))
                } else if let nested = try? array.nestedUnkeyedContainer() {
                    stack.append(.array(array))
                    stack.append(.array(nested))
                } else if (try? array.decodeNil()) == true || (try? array.decode(Bool.self)) != nil
                    || (try? array.decode(String.self)) != nil || (try? array.decode(Double.self)) != nil
                    || (try? array.decode(Int.self)) != nil
                {
                    stack.append(.array(array))
                } else {
                    throw invalid
                }
            }
        }
    }
}
