import Foundation

/// What an API token may do. Each role includes the ones before it.
public enum TokenRole: String, Codable, Sendable, CaseIterable, Comparable {
    /// Read: every `GET`, the log streams included.
    case read
    /// Read, and run: trigger pipelines, submit image jobs, cancel, kill and retry jobs.
    case run
    /// Everything: pipelines, secrets, owners' limits, tokens, the audit log, cleanup.
    case admin

    var rank: Int {
        switch self {
        case .read: 0
        case .run: 1
        case .admin: 2
        }
    }

    public static func < (lhs: TokenRole, rhs: TokenRole) -> Bool { lhs.rank < rhs.rank }

    public static func parse(_ text: String, field: String) throws(RapidFlowError) -> TokenRole {
        guard let role = TokenRole(rawValue: text) else {
            throw RapidFlowError(.invalidRequest, "'\(field)' must be one of \(allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
        }
        return role
    }
}

/// Who makes a request: the name of the token it carries, that token's role, and the owners
/// it is limited to (nil: every owner).
public struct Principal: Sendable, Equatable {
    public var name: String
    public var role: TokenRole
    public var owners: Set<String>?

    public init(name: String, role: TokenRole, owners: Set<String>? = nil) {
        self.name = name
        self.role = role
        self.owners = owners
    }

    /// The service's own `--api-token` (or no token configured): everything.
    public static let admin = Principal(name: "api-token", role: .admin)

    /// Whether the jobs and pipelines of `owner` are within reach.
    public func reaches(owner: String) -> Bool { owners?.contains(owner) ?? true }
}

/// A token's name: 1 to 64 letters, digits, '.', '_' or '-'.
public enum TokenName {
    public static func check(_ name: String, field: String) throws(RapidFlowError) {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard (1...64).contains(name.unicodeScalars.count), name.unicodeScalars.allSatisfy(allowed.contains) else {
            throw RapidFlowError(.invalidRequest, "'\(field)' must be 1 to 64 letters, digits, '.', '_' or '-'")
        }
    }
}
