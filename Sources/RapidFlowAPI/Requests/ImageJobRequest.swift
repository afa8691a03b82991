import RapidFlowCore

extension API {
    /// `POST /jobs`: an image job as a client sends it. `job` is the request the service
    /// validates, plans and stores (`RapidFlowCore.ImageJobRequest`).
    public struct ImageJobRequest: Codable, Sendable, Equatable {
        public var owner: String?
        public var repoURL: String?
        public var gitRef: String?
        public var gitCredentialsPath: String?
        public var dockerfilePath: String?
        public var imageTags: [String]?
        public var registryURL: String?
        public var registryCredentialsPath: String?
        /// The name of a stored secret holding the registry credentials (instead of a path).
        public var registryCredentialsSecret: String?
        public var testCommands: [String]?
        public var testEntryPoint: Bool?
        public var killTimeoutSeconds: Double?
        public var timeoutSeconds: Double?
        /// How soon the job is taken: `high`, `normal` (the default) or `low`.
        public var priority: JobPriority?
        /// Images pulled before the build for the engine to reuse their layers (`--cache-from`).
        public var cacheFrom: [String]?

        public init(
            owner: String? = nil, repoURL: String? = nil, gitRef: String? = nil, gitCredentialsPath: String? = nil,
            dockerfilePath: String? = nil, imageTags: [String]? = nil, registryURL: String? = nil,
            registryCredentialsPath: String? = nil, registryCredentialsSecret: String? = nil, testCommands: [String]? = nil,
            testEntryPoint: Bool? = nil,
            killTimeoutSeconds: Double? = nil, timeoutSeconds: Double? = nil, priority: JobPriority? = nil, cacheFrom: [String]? = nil
        ) {
            self.priority = priority
            self.cacheFrom = cacheFrom
            self.owner = owner
            self.repoURL = repoURL
            self.gitRef = gitRef
            self.gitCredentialsPath = gitCredentialsPath
            self.dockerfilePath = dockerfilePath
            self.imageTags = imageTags
            self.registryURL = registryURL
            self.registryCredentialsPath = registryCredentialsPath
            self.registryCredentialsSecret = registryCredentialsSecret
            self.testCommands = testCommands
            self.testEntryPoint = testEntryPoint
            self.killTimeoutSeconds = killTimeoutSeconds
            self.timeoutSeconds = timeoutSeconds
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case owner, repoURL = "repo_url", gitRef = "git_ref", gitCredentialsPath = "git_credentials_path"
            case dockerfilePath = "dockerfile_path", imageTags = "image_tags", registryURL = "registry_url"
            case registryCredentialsPath = "registry_credentials_path", registryCredentialsSecret = "registry_credentials_secret"
            case testCommands = "test_commands"
            case testEntryPoint = "test_entry_point", killTimeoutSeconds = "kill_timeout_seconds", timeoutSeconds = "timeout_seconds"
            case priority, cacheFrom = "cache_from"
        }

        public static let fields = CodingKeys.allCases.map(\.rawValue)

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            func required(_ name: String) throws(RapidFlowError) -> String? {
                fields.isPartial ? try fields.string(name) : try fields.requiredString(name)
            }
            owner = try required("owner")
            repoURL = try required("repo_url")
            gitRef = try fields.string("git_ref")
            gitCredentialsPath = try fields.string("git_credentials_path")
            dockerfilePath = try fields.string("dockerfile_path")
            imageTags = fields.has("image_tags") ? try fields.strings("image_tags") : nil
            registryURL = try fields.string("registry_url")
            registryCredentialsPath = try fields.string("registry_credentials_path")
            registryCredentialsSecret = try fields.string("registry_credentials_secret")
            testCommands = fields.has("test_commands") ? try fields.strings("test_commands") : nil
            testEntryPoint = try fields.bool("test_entry_point")
            killTimeoutSeconds = try fields.number("kill_timeout_seconds")
            timeoutSeconds = try fields.number("timeout_seconds")
            priority = try fields.string("priority").map { text throws(RapidFlowError) in try JobPriority.parse(text, field: "priority") }
            cacheFrom = fields.has("cache_from") ? try fields.strings("cache_from") : nil
        }

        /// The request the service checks and runs: an empty optional string is no value,
        /// the Dockerfile is `Dockerfile` unless named.
        public func job() throws(RapidFlowError) -> RapidFlowCore.ImageJobRequest {
            guard let owner else { throw RapidFlowError(.invalidRequest, "missing field 'owner'") }
            guard let repoURL else { throw RapidFlowError(.invalidRequest, "missing field 'repo_url'") }
            func value(_ text: String?) -> String? { text.flatMap { $0.isEmpty ? nil : $0 } }
            return RapidFlowCore.ImageJobRequest(
                owner: owner, repoURL: repoURL, gitRef: value(gitRef), gitCredentialsPath: value(gitCredentialsPath),
                dockerfilePath: value(dockerfilePath) ?? "Dockerfile", imageTags: imageTags ?? [], registryURL: value(registryURL),
                registryCredentialsPath: value(registryCredentialsPath), registryCredentialsSecret: value(registryCredentialsSecret),
                testCommands: testCommands ?? [],
                testEntryPoint: testEntryPoint ?? false, killTimeoutSeconds: killTimeoutSeconds, timeoutSeconds: timeoutSeconds,
                cacheFrom: cacheFrom ?? [])
        }
    }
}
