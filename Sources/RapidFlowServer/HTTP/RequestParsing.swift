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

    /// A text parameter (percent-decoded); nil when absent or empty.
    static func queryText(_ request: Request, _ name: String, maxLength: Int) throws -> String? {
        guard let raw = request.uri.queryParameters.get(name), !raw.isEmpty else { return nil }
        guard raw.count <= maxLength else {
            throw RapidFlowError(.invalidRequest, "query parameter '\(name)' must be at most \(maxLength) characters")
        }
        return raw
    }

    /// `?owner=`: an owner as pipelines and image jobs name them.
    static func queryOwner(_ request: Request) throws -> String? {
        guard let owner = try queryText(request, "owner", maxLength: 100) else { return nil }
        do {
            try SecretValidation.checkOwner(owner, field: "owner")
        } catch {
            throw RapidFlowError(.invalidRequest, "query parameter 'owner' must be 1 to 100 letters, digits, '.', '_' or '-'")
        }
        return owner
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
