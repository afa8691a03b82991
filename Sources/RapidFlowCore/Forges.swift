import Foundation

/// The git servers whose webhooks start builds (`POST /hooks/<forge>`).
public enum Forge: String, Sendable, Codable, CaseIterable {
    case github, gitlab
    /// Gitea and Forgejo: one payload format.
    case gitea
    /// A plain git server's `post-receive` hook: `{"repo", "ref", "sha", "before"}`, signed
    /// with the Standard Webhooks headers.
    case git

    public static func parse(_ text: String, field: String) throws(RapidFlowError) -> Forge {
        guard let forge = Forge(rawValue: text) else {
            throw RapidFlowError(
                .invalidRequest, "'\(field)' is '\(text)'; use one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return forge
    }
}

/// What started a job (`event` in its payload).
public enum TriggerEvent: String, Sendable, Codable, CaseIterable {
    case push, tag
    case pullRequest = "pull_request"
    case api, retry
}

/// The commit a forge event is about: where a job created from it clones, and what its
/// payload and step environment say about it.
public struct CommitInfo: Sendable, Codable, Equatable {
    /// The full ref: `refs/heads/main`, `refs/tags/v1.0`, `refs/pull/7/head`.
    public var ref: String
    public var sha: String
    public var message: String?
    public var author: String?

    public init(ref: String, sha: String, message: String? = nil, author: String? = nil) {
        self.ref = ref
        self.sha = sha
        self.message = message
        self.author = author
    }
}

/// One forge delivery, read: a push, a tag or a pull request, or something that starts nothing.
public struct ForgeEvent: Sendable, Equatable {
    public var kind: TriggerEvent
    /// Every URL the event gives for its repository (clone, web, SSH); a pipeline's `repo`
    /// matches when it names the same repository as any of them.
    public var repositoryURLs: [String]
    /// The repository's `owner/name` (GitHub, Gitea) or project id (GitLab): where commit
    /// statuses are posted.
    public var repositoryPath: String?
    public var commit: CommitInfo
    /// The branch (push, pull request head) or the tag's name.
    public var branch: String?
    /// A pull request's target branch.
    public var targetBranch: String?
    /// A push that deleted its branch or tag: nothing to build.
    public var deleted: Bool

    public init(
        kind: TriggerEvent, repositoryURLs: [String], repositoryPath: String? = nil, commit: CommitInfo, branch: String?,
        targetBranch: String? = nil, deleted: Bool = false
    ) {
        self.kind = kind
        self.repositoryURLs = repositoryURLs
        self.repositoryPath = repositoryPath
        self.commit = commit
        self.branch = branch
        self.targetBranch = targetBranch
        self.deleted = deleted
    }

    /// `[skip ci]` or `[ci skip]` in the head commit's message.
    public var asksToSkip: Bool {
        guard let message = commit.message?.lowercased() else { return false }
        return message.contains("[skip ci]") || message.contains("[ci skip]")
    }
}

/// What a delivery says: an event to build, or why it starts nothing.
public enum ForgeDelivery: Sendable, Equatable {
    case event(ForgeEvent)
    case ignored(String)
}

/// Reads forge webhook bodies. Each forge's field names are its documented ones (the fixtures
/// in `Tests/RapidFlowServerTests/Fixtures/forges` are recorded from that documentation).
public enum ForgePayload {
    static let zeroSHA = String(repeating: "0", count: 40)

    /// `eventName` is the forge's event header (`X-GitHub-Event`, `X-Gitlab-Event`,
    /// `X-Gitea-Event`); nil for `git`.
    public static func parse(_ forge: Forge, eventName: String?, body: Data) throws(RapidFlowError) -> ForgeDelivery {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw RapidFlowError(.invalidJSON, "the webhook body is not a JSON object")
        }
        let json = JSONPath(object)
        switch forge {
        case .github: return try github(eventName ?? "", json)
        case .gitea: return try gitea(eventName ?? "", json)
        case .gitlab: return try gitlab(eventName ?? "", json)
        case .git: return try git(json)
        }
    }

    private static func github(_ event: String, _ json: JSONPath) throws(RapidFlowError) -> ForgeDelivery {
        switch event {
        case "push":
            return .event(try push(json, deleted: json.bool("deleted") ?? false, urls: repositoryURLs(json), path: json.string("repository.full_name")))
        case "pull_request":
            let action = json.string("action") ?? ""
            guard ["opened", "synchronize", "reopened"].contains(action) else { return .ignored("pull request action '\(action)' builds nothing") }
            return .event(try pullRequest(json, urls: repositoryURLs(json), path: json.string("repository.full_name")))
        case "ping": return .ignored("ping: the hook reaches this service")
        case "": throw RapidFlowError(.invalidRequest, "the X-GitHub-Event header is missing")
        default: return .ignored("event '\(event)' builds nothing")
        }
    }

    private static func gitea(_ event: String, _ json: JSONPath) throws(RapidFlowError) -> ForgeDelivery {
        switch event {
        case "push":
            let after = json.string("after") ?? ""
            return .event(try push(json, deleted: after == zeroSHA, urls: repositoryURLs(json), path: json.string("repository.full_name")))
        case "pull_request":
            let action = json.string("action") ?? ""
            guard ["opened", "synchronized", "reopened"].contains(action) else { return .ignored("pull request action '\(action)' builds nothing") }
            return .event(try pullRequest(json, urls: repositoryURLs(json), path: json.string("repository.full_name")))
        case "": throw RapidFlowError(.invalidRequest, "the X-Gitea-Event (or X-Forgejo-Event) header is missing")
        default: return .ignored("event '\(event)' builds nothing")
        }
    }

    private static func repositoryURLs(_ json: JSONPath) -> [String] {
        ["clone_url", "html_url", "ssh_url", "git_url", "url"].compactMap { json.string("repository.\($0)") }
    }

    /// GitHub's and Gitea's push: `ref`, `before`, `after`, `head_commit` (or the commit in
    /// `commits` whose id is `after`).
    private static func push(_ json: JSONPath, deleted: Bool, urls: [String], path: String?) throws(RapidFlowError) -> ForgeEvent {
        let ref = try json.require("ref")
        let sha = try json.require("after")
        var head = json.object("head_commit")
        if head == nil, let commits = json.array("commits") {
            head = commits.compactMap { $0 as? [String: Any] }.first { ($0["id"] as? String) == sha }
        }
        let commit = head.map(JSONPath.init)
        return ForgeEvent(
            kind: ref.hasPrefix("refs/tags/") ? .tag : .push, repositoryURLs: urls, repositoryPath: path,
            commit: CommitInfo(
                ref: ref, sha: sha, message: commit?.string("message"),
                author: commit?.string("author.name") ?? commit?.string("author.username")),
            branch: shortName(ref), deleted: deleted || sha == zeroSHA)
    }

    private static func pullRequest(_ json: JSONPath, urls: [String], path: String?) throws(RapidFlowError) -> ForgeEvent {
        let sha = try json.require("pull_request.head.sha")
        let number = json.int("pull_request.number") ?? json.int("number") ?? 0
        return ForgeEvent(
            kind: .pullRequest, repositoryURLs: urls, repositoryPath: path,
            commit: CommitInfo(
                ref: "refs/pull/\(number)/head", sha: sha, message: json.string("pull_request.title"),
                author: json.string("pull_request.user.login")),
            branch: json.string("pull_request.head.ref"), targetBranch: json.string("pull_request.base.ref"))
    }

    private static func gitlab(_ event: String, _ json: JSONPath) throws(RapidFlowError) -> ForgeDelivery {
        let urls = ["project.git_http_url", "project.git_ssh_url", "project.web_url", "repository.git_http_url", "repository.homepage"]
            .compactMap { json.string($0) }
        let path = json.int("project.id").map(String.init) ?? json.int("project_id").map(String.init)
        switch event {
        case "Push Hook", "Tag Push Hook":
            let ref = try json.require("ref")
            let after = try json.require("after")
            let sha = json.string("checkout_sha") ?? after
            let commits = json.array("commits")?.compactMap { $0 as? [String: Any] } ?? []
            let head = commits.first { ($0["id"] as? String) == sha }.map(JSONPath.init)
            return .event(
                ForgeEvent(
                    kind: ref.hasPrefix("refs/tags/") ? .tag : .push, repositoryURLs: urls, repositoryPath: path,
                    commit: CommitInfo(ref: ref, sha: sha, message: head?.string("message"), author: head?.string("author.name")),
                    branch: shortName(ref), deleted: after == zeroSHA))
        case "Merge Request Hook":
            let action = json.string("object_attributes.action") ?? ""
            guard ["open", "reopen", "update"].contains(action) else { return .ignored("merge request action '\(action)' builds nothing") }
            // An update that changed no commits (a title, a label) builds nothing.
            if action == "update", json.string("object_attributes.oldrev") == nil {
                return .ignored("merge request update without new commits builds nothing")
            }
            let sha = try json.require("object_attributes.last_commit.id")
            let iid = json.int("object_attributes.iid") ?? 0
            let sourceURLs = ["object_attributes.source.git_http_url", "object_attributes.source.git_ssh_url"].compactMap { json.string($0) }
            return .event(
                ForgeEvent(
                    kind: .pullRequest, repositoryURLs: urls + sourceURLs, repositoryPath: path,
                    commit: CommitInfo(
                        ref: "refs/merge-requests/\(iid)/head", sha: sha, message: json.string("object_attributes.last_commit.message"),
                        author: json.string("object_attributes.last_commit.author.name")),
                    branch: json.string("object_attributes.source_branch"), targetBranch: json.string("object_attributes.target_branch")))
        case "": throw RapidFlowError(.invalidRequest, "the X-Gitlab-Event header is missing")
        default: return .ignored("event '\(event)' builds nothing")
        }
    }

    /// `{"repo", "ref", "sha", "before", "message"?, "author"?}`: what a `post-receive` hook knows.
    private static func git(_ json: JSONPath) throws(RapidFlowError) -> ForgeDelivery {
        let repo = try json.require("repo")
        let ref = try json.require("ref")
        let sha = try json.require("sha")
        guard ref.hasPrefix("refs/") else { throw RapidFlowError(.invalidRequest, "'ref' must be a full ref such as refs/heads/main") }
        return .event(
            ForgeEvent(
                kind: ref.hasPrefix("refs/tags/") ? .tag : .push, repositoryURLs: [repo],
                commit: CommitInfo(ref: ref, sha: sha, message: json.string("message"), author: json.string("author")),
                branch: shortName(ref), deleted: sha == zeroSHA))
    }

    /// `refs/heads/main` → `main`, `refs/tags/v1` → `v1`.
    static func shortName(_ ref: String) -> String? {
        for prefix in ["refs/heads/", "refs/tags/"] where ref.hasPrefix(prefix) { return String(ref.dropFirst(prefix.count)) }
        return nil
    }
}

/// Dotted paths into a decoded JSON object.
struct JSONPath {
    let root: [String: Any]

    init(_ root: [String: Any]) { self.root = root }

    func value(_ path: String) -> Any? {
        var current: Any? = root
        for key in path.split(separator: ".") { current = (current as? [String: Any])?[String(key)] }
        return current
    }

    func string(_ path: String) -> String? { value(path) as? String }
    func object(_ path: String) -> [String: Any]? { value(path) as? [String: Any] }
    func array(_ path: String) -> [Any]? { value(path) as? [Any] }
    func bool(_ path: String) -> Bool? { value(path) as? Bool }
    func int(_ path: String) -> Int? { (value(path) as? NSNumber)?.intValue }

    func require(_ path: String) throws(RapidFlowError) -> String {
        guard let text = string(path), !text.isEmpty else {
            throw RapidFlowError(.invalidRequest, "the webhook body has no '\(path)'")
        }
        return text
    }
}

/// A repository named by any of its URLs: `https://GitHub.com/o/r.git`, `git@github.com:o/r`,
/// `ssh://git@github.com/o/r` and `github.com/o/r` are one repository. Local paths and
/// `file://` URLs compare by their path.
public enum RepositoryIdentity {
    public static func normalize(_ url: String) -> String {
        var text = url.trimmingCharacters(in: .whitespacesAndNewlines)
        var host = ""
        if let scheme = text.range(of: "://") {
            let isFile = text[..<scheme.lowerBound].lowercased() == "file"
            text = String(text[scheme.upperBound...])
            if isFile { return trimmed(text.hasPrefix("/") ? text : "/" + text) }
            let end = text.firstIndex(of: "/") ?? text.endIndex
            host = String(text[..<end])
            text = String(text[end...])
        } else if text.hasPrefix("/") || text.hasPrefix(".") {
            return trimmed(text)
        } else if let colon = text.firstIndex(of: ":"), !text[..<colon].contains("/") {
            // scp-like: user@host:path
            host = String(text[..<colon])
            text = "/" + text[text.index(after: colon)...]
        } else if let slash = text.firstIndex(of: "/") {
            host = String(text[..<slash])
            text = String(text[slash...])
        }
        if let at = host.lastIndex(of: "@") { host = String(host[host.index(after: at)...]) }
        host = host.lowercased()
        for port in [":443", ":80", ":22"] where host.hasSuffix(port) { host = String(host.dropLast(port.count)) }
        return host + trimmed(text)
    }

    private static func trimmed(_ path: String) -> String {
        var path = path
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasSuffix(".git") { path.removeLast(4) }
        while path.hasSuffix("/") { path.removeLast() }
        return path
    }

    public static func same(_ a: String, _ b: String) -> Bool { normalize(a) == normalize(b) }
}

/// A pipeline config's `on:`: which forge events start its jobs. Without it a pipeline runs
/// only when triggered through the API.
public struct TriggerFilter: Sendable, Equatable {
    /// Branch patterns a push must match (nil: pushes start nothing; empty: every branch).
    public var pushBranches: [String]?
    /// Tag patterns (nil: tags start nothing; empty: every tag).
    public var tags: [String]?
    /// Target branch patterns of pull requests (nil: pull requests start nothing; empty: all).
    public var pullRequestBranches: [String]?

    public init(pushBranches: [String]? = nil, tags: [String]? = nil, pullRequestBranches: [String]? = nil) {
        self.pushBranches = pushBranches
        self.tags = tags
        self.pullRequestBranches = pullRequestBranches
    }

    public func matches(_ event: ForgeEvent) -> Bool {
        switch event.kind {
        case .push: Self.matches(event.branch, pushBranches)
        case .tag: Self.matches(event.branch, tags)
        case .pullRequest: Self.matches(event.targetBranch ?? event.branch, pullRequestBranches)
        case .api, .retry: false
        }
    }

    private static func matches(_ name: String?, _ patterns: [String]?) -> Bool {
        guard let patterns else { return false }
        if patterns.isEmpty { return true }
        guard let name else { return false }
        return patterns.contains { Glob.matches(name, pattern: $0) }
    }
}

/// Shell-style patterns: `*` any run of characters (`/` included), `?` one character.
public enum Glob {
    public static func matches(_ text: String, pattern: String) -> Bool {
        let t = Array(text.unicodeScalars), p = Array(pattern.unicodeScalars)
        var ti = 0, pi = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                ti += 1
                pi += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
