import Foundation

/// Where a stored secret applies. A job sees the secrets of every scope it belongs to; for one
/// name, the narrowest wins: its pipeline's, then its owner's, then the global one.
public enum SecretScope: Sendable, Hashable, CustomStringConvertible {
    case global
    case pipeline(Int)
    case owner(String)

    /// The scopes a job of `pipelineID` (if any) and `owner` (if any) sees, narrowest first.
    public static func visible(pipelineID: Int?, owner: String?) -> [SecretScope] {
        var scopes: [SecretScope] = []
        if let pipelineID { scopes.append(.pipeline(pipelineID)) }
        if let owner { scopes.append(.owner(owner)) }
        scopes.append(.global)
        return scopes
    }

    /// The scope as stored: a kind and a value (empty for global).
    public var kind: String {
        switch self {
        case .global: "global"
        case .pipeline: "pipeline"
        case .owner: "owner"
        }
    }

    public var value: String {
        switch self {
        case .global: ""
        case .pipeline(let id): String(id)
        case .owner(let name): name
        }
    }

    public init?(kind: String, value: String) {
        switch kind {
        case "global": self = .global
        case "pipeline":
            guard let id = Int(value) else { return nil }
            self = .pipeline(id)
        case "owner": self = .owner(value)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .global: "the global scope"
        case .pipeline(let id): "pipeline \(id)'s scope"
        case .owner(let name): "owner '\(name)''s scope"
        }
    }
}

/// A stored secret as it may be shown: never its value.
public struct SecretMetadata: Sendable, Equatable {
    public var name: String
    public var scope: SecretScope
    public var createdAt: Date
    public var updatedAt: Date
    public var lastUsedAt: Date?
    public var lastUsedJobID: Int?

    public init(name: String, scope: SecretScope, createdAt: Date, updatedAt: Date, lastUsedAt: Date? = nil, lastUsedJobID: Int? = nil) {
        self.name = name
        self.scope = scope
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.lastUsedAt = lastUsedAt
        self.lastUsedJobID = lastUsedJobID
    }
}

/// An environment variable of a job whose value is a stored secret, resolved when the job runs.
public struct SecretReference: Sendable, Equatable, Codable {
    /// The variable the step sees.
    public var key: String
    /// The stored secret's name.
    public var secret: String

    public init(key: String, secret: String) {
        self.key = key
        self.secret = secret
    }
}

/// The rules for a stored secret's name, value and owner scope.
public enum SecretValidation {
    public static let maxNameLength = 128
    public static let maxValueBytes = 64 << 10

    /// `[A-Z_][A-Z0-9_]*`, at most 128 characters, and not a variable the service sets itself.
    public static func checkName(_ name: String, code: RapidFlowError.Code = .invalidSecret) throws(RapidFlowError) {
        let scalars = Array(name.unicodeScalars)
        let valid = !scalars.isEmpty && scalars.count <= maxNameLength
            && scalars.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
            && !("0"..."9").contains(scalars[0])
        guard valid else {
            throw RapidFlowError(
                code, "secret name '\(name.prefix(maxNameLength))' must be 1 to \(maxNameLength) of A-Z, 0-9 and '_', not starting with a digit")
        }
        if isReserved(name) {
            throw RapidFlowError(code, "secret name '\(name)' is reserved: CI, PATH, HOME and RAPIDFLOW_* are set by the service")
        }
    }

    public static func isReserved(_ name: String) -> Bool {
        ["CI", "PATH", "HOME"].contains(name) || name.hasPrefix("RAPIDFLOW_")
    }

    /// Not empty, at most 64 KiB of UTF-8. The value itself never appears in a message.
    public static func checkValue(_ value: String) throws(RapidFlowError) {
        guard !value.isEmpty else { throw RapidFlowError(.invalidSecret, "field 'value' is empty: a secret needs a value") }
        guard value.utf8.count <= maxValueBytes else {
            throw RapidFlowError(.invalidSecret, "field 'value' is \(value.utf8.count) bytes; at most \(maxValueBytes) (64 KiB) are allowed")
        }
        guard !value.unicodeScalars.contains("\0") else {
            throw RapidFlowError(.invalidSecret, "field 'value' contains a NUL character, which no environment variable can hold")
        }
    }

    /// An owner as image jobs name it: 1 to 100 letters, digits, '.', '_' or '-'.
    public static func checkOwner(_ owner: String, field: String) throws(RapidFlowError) {
        guard !owner.isEmpty, owner.count <= 100,
            owner.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }),
            !owner.hasPrefix("-"), !owner.hasPrefix(".")
        else { throw RapidFlowError(.invalidRequest, "'\(field)' must be 1 to 100 letters, digits, '.', '_' or '-'") }
    }
}

extension RapidFlowError {
    public static func secretNotFound(_ name: String, scope: SecretScope) -> RapidFlowError {
        RapidFlowError(.secretNotFound, "secret '\(name)' does not exist in \(scope)")
    }
}
