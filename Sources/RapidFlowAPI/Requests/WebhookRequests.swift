import Foundation
import RapidFlowCore

extension API {
    /// `POST /hooks`: an incoming hook a forge (or a git server's `post-receive`) delivers to at
    /// `POST /hooks/<forge>`, signed with `secret`.
    public struct HookRequest: Codable, Sendable, Equatable {
        public var name: String
        public var forge: Forge
        /// Only this owner's pipelines are started by the hook; absent: every owner's.
        public var owner: String?
        /// The signing secret (GitHub, Gitea), token (GitLab) or `whsec_…` key (git); absent:
        /// the service makes one and shows it once, in the answer.
        public var secret: String?
        /// A forge API token: with it, jobs the hook starts post commit statuses.
        public var statusToken: String?
        /// The forge's API base URL for commit statuses (default for GitHub: https://api.github.com).
        public var statusURL: String?

        public init(
            name: String, forge: Forge, owner: String? = nil, secret: String? = nil, statusToken: String? = nil, statusURL: String? = nil
        ) {
            self.name = name
            self.forge = forge
            self.owner = owner
            self.secret = secret
            self.statusToken = statusToken
            self.statusURL = statusURL
        }

        public static let fields = ["name", "forge", "owner", "secret", "status_token", "status_url"]

        enum CodingKeys: String, CodingKey {
            case name, forge, owner, secret, statusToken = "status_token", statusURL = "status_url"
        }

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            name = try fields.requiredString("name")
            try TokenName.check(name, field: "name")
            forge = try Forge.parse(try fields.requiredString("forge"), field: "forge")
            owner = try fields.string("owner")
            if let owner { try JobOwner.check(owner, field: "owner") }
            secret = try fields.string("secret")
            if let secret {
                guard secret.utf8.count >= 16, secret.utf8.count <= 512 else {
                    throw RapidFlowError(.invalidRequest, "'secret' must be 16 to 512 bytes; leave it out and the service makes one")
                }
                if forge == .git, !secret.hasPrefix("whsec_") {
                    throw RapidFlowError(
                        .invalidRequest, "'secret' of a git hook is a Standard Webhooks key: 'whsec_' and base64; leave it out and the service makes one")
                }
            }
            statusToken = try fields.string("status_token")
            if let statusToken, statusToken.isEmpty || statusToken.utf8.count > 1024 {
                throw RapidFlowError(.invalidRequest, "'status_token' must be 1 to 1024 bytes")
            }
            statusURL = try fields.string("status_url")
            if let statusURL { try WebhookURL.check(statusURL, field: "status_url") }
            if statusToken != nil, forge == .git {
                throw RapidFlowError(.invalidRequest, "a git hook has no commit status API: leave out 'status_token'")
            }
            if statusToken != nil, statusURL == nil, forge != .github {
                throw RapidFlowError(
                    .invalidRequest, "'status_token' needs 'status_url' for \(forge.rawValue): the forge's API base URL, e.g. https://gitea.example.com/api/v1")
            }
        }
    }

    /// `POST /webhooks`: a URL told of job and step changes, signed the Standard Webhooks way.
    public struct WebhookRequest: Codable, Sendable, Equatable {
        public var url: String
        /// Of `job.created`, `job.started`, `job.finished`, `step.finished`.
        public var events: [String]
        /// Only this owner's jobs; absent: every owner's.
        public var owner: String?
        /// Only this pipeline's jobs; absent: every job.
        public var pipelineID: Int?
        /// A `whsec_…` key; absent: the service makes one and shows it once, in the answer.
        public var secret: String?

        public static let events = ["job.created", "job.started", "job.finished", "step.finished"]
        public static let fields = ["url", "events", "owner", "pipeline_id", "secret"]

        enum CodingKeys: String, CodingKey {
            case url, events, owner, pipelineID = "pipeline_id", secret
        }

        public init(url: String, events: [String], owner: String? = nil, pipelineID: Int? = nil, secret: String? = nil) {
            self.url = url
            self.events = events
            self.owner = owner
            self.pipelineID = pipelineID
            self.secret = secret
        }

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            url = try fields.requiredString("url")
            try WebhookURL.check(url, field: "url")
            events = fields.has("events") ? try fields.strings("events") : ["job.finished"]
            guard !events.isEmpty else {
                throw RapidFlowError(.invalidRequest, "'events' is empty: list one or more of \(Self.events.joined(separator: ", "))")
            }
            for event in events where !Self.events.contains(event) {
                throw RapidFlowError(.invalidRequest, "'events' has '\(event)'; use \(Self.events.joined(separator: ", "))")
            }
            events = Self.events.filter(events.contains)
            owner = try fields.string("owner")
            if let owner { try JobOwner.check(owner, field: "owner") }
            pipelineID = try fields.integer("pipeline_id", range: 1...Int.max)
            secret = try fields.string("secret")
            if let secret, !secret.hasPrefix("whsec_") || Data(base64Encoded: String(secret.dropFirst(6))).map({ $0.count < 16 }) ?? true {
                throw RapidFlowError(
                    .invalidRequest, "'secret' must be a Standard Webhooks key: 'whsec_' and at least 16 bytes in base64; leave it out and the service makes one")
            }
        }
    }

    /// The generic body of `POST /hooks/git`, as a `post-receive` hook sends it.
    public struct GitPush: Codable, Sendable, Equatable {
        public var repo: String
        public var ref: String
        public var sha: String
        public var before: String?
        public var message: String?
        public var author: String?

        public init(repo: String, ref: String, sha: String, before: String? = nil, message: String? = nil, author: String? = nil) {
            self.repo = repo
            self.ref = ref
            self.sha = sha
            self.before = before
            self.message = message
            self.author = author
        }
    }
}

/// Where the service may send webhook deliveries and commit statuses.
public enum WebhookURL {
    public static func check(_ url: String, field: String) throws(RapidFlowError) {
        guard url.utf8.count <= 2048, let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            ["http", "https"].contains(scheme), let host = components.host, !host.isEmpty, components.user == nil, components.password == nil
        else {
            throw RapidFlowError(.invalidRequest, "'\(field)' must be an http:// or https:// URL with a host and no credentials in it")
        }
    }
}
