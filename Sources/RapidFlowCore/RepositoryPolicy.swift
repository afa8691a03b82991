import Foundation

/// Which clone sources the service takes: remote repositories always, repositories on its own
/// disk only when the operator allows them (`--allow-local-repos`). Otherwise any API user
/// could build whatever repository the service's user can read.
///
/// Sources are classified as git itself reads them (git's "GIT URLS"; `url.c`'s `is_url`,
/// `connect.c`'s `url_is_local_not_ssh`, `transport.c`'s remote helpers), so what is checked
/// here is what git will clone.
public struct RepositoryPolicy: Sendable, Equatable {
    public var allowsLocal: Bool

    public init(allowsLocal: Bool = false) {
        self.allowsLocal = allowsLocal
    }

    public static let remoteOnly = RepositoryPolicy(allowsLocal: false)

    /// The transports git may use (`protocol.<name>.allow`); local paths and `file://` are "file".
    public var gitProtocols: [String] { allowsLocal ? ["https", "ssh", "git", "file"] : ["https", "ssh", "git"] }

    /// How git would reach a clone source.
    public enum Kind: Equatable, Sendable {
        /// `scheme://…`, the scheme as written (git matches it case-sensitively).
        case url(scheme: String)
        /// `[user@]host:path`: ssh.
        case scpLike
        /// A path on this machine (no colon, or a '/' before the first colon).
        case localPath
        /// `name::address`: a remote helper (`ext::` runs a command).
        case remoteHelper(String)
    }

    public static func kind(of source: String) -> Kind {
        let scalars = Array(source.unicodeScalars)
        func schemeCharacter(_ scalar: Unicode.Scalar, first: Bool) -> Bool {
            (scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar))) || (!first && "+-.".unicodeScalars.contains(scalar))
        }
        // A scheme-like prefix, as git's is_url and its remote-helper check scan it.
        var end = 0
        while end < scalars.count, schemeCharacter(scalars[end], first: end == 0) { end += 1 }
        let rest = String(String.UnicodeScalarView(scalars[end...]))
        let name = String(String.UnicodeScalarView(scalars[..<end]))
        if end > 0, rest.hasPrefix("::") { return .remoteHelper(name) }
        if end > 0, rest.hasPrefix("://") { return .url(scheme: name) }
        guard let colon = source.firstIndex(of: ":") else { return .localPath }
        return source[..<colon].contains("/") ? .localPath : .scpLike
    }

    /// Refuses a clone source git would not reach as intended: not a git URL, a local one that
    /// is not allowed, or one carrying credentials. `field` names the key in every message;
    /// `credentialsAdvice` says where credentials go instead.
    public func check(_ source: String, field: String, code: RapidFlowError.Code, credentialsAdvice: String) throws(RapidFlowError) {
        let forms = allowsLocal
            ? "https://, ssh://, git://, user@host:path, file:// or an absolute path" : "https://, ssh://, git:// or user@host:path"
        let shown = Self.redacted(source)
        let bad = RapidFlowError(code, "'\(field)' '\(shown)' is not a git URL (\(forms))")
        let local = RapidFlowError(
            code, "'\(field)' '\(shown)' is a repository on the service's machine; local repositories are refused unless the service runs with --allow-local-repos")
        let credentials = RapidFlowError(code, "'\(field)' must not carry credentials (user:password@ in the URL); \(credentialsAdvice)")
        guard !source.isEmpty, source.count <= 2048, !source.hasPrefix("-"),
            !source.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f })
        else { throw bad }

        switch Self.kind(of: source) {
        case .remoteHelper(let helper):
            throw RapidFlowError(code, "'\(field)' names git's remote helper '\(helper)::'; only \(forms) are cloned")
        case .localPath:
            guard allowsLocal else { throw local }
            guard source.hasPrefix("/") else { throw RapidFlowError(code, "'\(field)' '\(shown)' must be an absolute path") }
        case .scpLike:
            // user@host:path; a password would sit before the first ':' and make it no scp-like form.
            let parts = source.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let at = parts[0].lastIndex(of: "@"), !parts[1].isEmpty else { throw bad }
            let host = parts[0][parts[0].index(after: at)...]
            guard !host.isEmpty, !host.hasPrefix("-") else { throw bad }
        case .url(let scheme):
            guard let parsed = URLComponents(string: source) else { throw bad }
            switch scheme {
            case "file":
                guard allowsLocal else { throw local }
                guard !parsed.path.isEmpty, ["", "localhost"].contains(parsed.host?.lowercased() ?? "") else { throw bad }
                return
            case "http":
                throw RapidFlowError(code, "'\(field)' uses http://; use https:// (git runs with only the https, ssh and git transports)")
            case "https", "ssh", "git":
                break
            default:
                throw bad
            }
            // ssh needs its user; any other user part is a credential (a token as the user name).
            if parsed.password != nil || (scheme != "ssh" && parsed.user != nil) { throw credentials }
            guard let host = parsed.host, !host.isEmpty, !host.hasPrefix("-") else { throw bad }
        }
    }

    /// The source with the user part of a URL hidden, for messages.
    static func redacted(_ source: String) -> String {
        guard let schemeEnd = source.range(of: "://") else { return source }
        let authorityEnd = source[schemeEnd.upperBound...].firstIndex(of: "/") ?? source.endIndex
        guard let at = source[schemeEnd.upperBound..<authorityEnd].lastIndex(of: "@") else { return source }
        return source.replacingCharacters(in: schemeEnd.upperBound..<at, with: "***")
    }
}
