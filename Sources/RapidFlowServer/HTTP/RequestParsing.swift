import Hummingbird
import RapidFlowCore

/// Reading ids and query parameters, each refusal a 400 that names the problem. Bodies are
/// decoded into the API types (`Request.decodeJSON(as:limits:)`).
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
}
