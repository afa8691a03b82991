import Foundation
import Hummingbird
import RapidFlowCore

/// Reading ids, queries and JSON bodies, each refusal a 400 that names the problem.
enum RequestParsing {
    static func id(_ context: some RequestContext, _ name: String = "id", what: String) throws -> Int {
        let raw = context.parameters.get(name) ?? ""
        guard let value = Int(raw), value > 0 else {
            throw RapidFlowError(.invalidID, "\(what) id '\(raw)' is not a positive integer")
        }
        return value
    }

    static func queryInt(_ request: Request, _ name: String, range: ClosedRange<Int>) throws -> Int? {
        guard let raw = request.uri.queryParameters.get(name) else { return nil }
        guard let value = Int(raw), range.contains(value) else {
            throw RapidFlowError(.invalidRequest, "query parameter '\(name)' must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    static func queryBool(_ request: Request, _ name: String) throws -> Bool {
        guard let raw = request.uri.queryParameters.get(name) else { return false }
        switch raw.lowercased() {
        case "true", "1", "yes", "": return true
        case "false", "0", "no": return false
        default: throw RapidFlowError(.invalidRequest, "query parameter '\(name)' must be true or false")
        }
    }

    /// Collects the body (413 past the limit) and parses it as a JSON object; an empty body is `nil`.
    static func jsonObject(_ request: Request, limits: Limits, allowedKeys: Set<String>) async throws -> [String: Any]? {
        var request = request
        let buffer = try await request.collectBody(upTo: limits.maxBodyBytes)
        guard buffer.readableBytes > 0 else { return nil }
        let data = Data(buffer.readableBytesView)
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw RapidFlowError(.invalidJSON, "request body is not valid JSON")
        }
        guard let object = parsed as? [String: Any] else {
            throw RapidFlowError(.invalidJSON, "request body must be a JSON object")
        }
        if let unknown = object.keys.sorted().first(where: { !allowedKeys.contains($0) }) {
            throw RapidFlowError(.invalidRequest, "unknown field '\(unknown)'; known fields: \(allowedKeys.sorted().joined(separator: ", "))")
        }
        return object
    }

    static func string(_ object: [String: Any], _ key: String, required: Bool) throws -> String? {
        guard let value = object[key], !(value is NSNull) else {
            if required { throw RapidFlowError(.invalidRequest, "missing field '\(key)'") }
            return nil
        }
        guard let string = value as? String, !Self.isBoolOrNumber(value) else {
            throw RapidFlowError(.invalidRequest, "field '\(key)' must be a string")
        }
        return string
    }

    static func stringMap(_ object: [String: Any], _ key: String) throws -> [(key: String, value: String)] {
        guard let value = object[key], !(value is NSNull) else { return [] }
        guard let map = value as? [String: Any] else {
            throw RapidFlowError(.invalidRequest, "field '\(key)' must be an object of string values")
        }
        return try map.keys.sorted().map { name in
            guard let text = map[name] as? String, !Self.isBoolOrNumber(map[name]!) else {
                throw RapidFlowError(.invalidRequest, "\(key) value of '\(name)' must be a string")
            }
            return (name, text)
        }
    }

    static func stringArray(_ object: [String: Any], _ key: String) throws -> [String] {
        guard let value = object[key], !(value is NSNull) else { return [] }
        guard let array = value as? [Any] else { throw RapidFlowError(.invalidRequest, "field '\(key)' must be a list of strings") }
        return try array.enumerated().map { index, item in
            guard let text = item as? String, !Self.isBoolOrNumber(item) else {
                throw RapidFlowError(.invalidRequest, "\(key)[\(index)] must be a string")
            }
            return text
        }
    }

    static func bool(_ object: [String: Any], _ key: String) throws -> Bool? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, !(value is String), String(cString: number.objCType) == "c" else {
            throw RapidFlowError(.invalidRequest, "field '\(key)' must be true or false")
        }
        return number.boolValue
    }

    static func number(_ object: [String: Any], _ key: String) throws -> Double? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, !(value is String), String(cString: number.objCType) != "c" else {
            throw RapidFlowError(.invalidRequest, "field '\(key)' must be a number")
        }
        return number.doubleValue
    }

    /// A whole number in `range`: anything else (a fraction, 1e300, a value past `Int`) is a 400,
    /// never a conversion that traps.
    static func integer(_ object: [String: Any], _ key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let number = try number(object, key) else { return nil }
        guard number.isFinite, number.rounded() == number, abs(number) <= 9_007_199_254_740_992, number >= Double(range.lowerBound), number <= Double(range.upperBound)
        else {
            throw RapidFlowError(.invalidRequest, "field '\(key)' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return Int(number)
    }

    /// Foundation bridges JSON numbers and booleans to NSNumber, which can also cast to String on some platforms.
    private static func isBoolOrNumber(_ value: Any) -> Bool {
        value is NSNumber && !(value is String)
    }
}
