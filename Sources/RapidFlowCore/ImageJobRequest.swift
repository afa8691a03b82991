import Foundation

/// `POST /jobs` (the image-build API): clone, build, test and push one container image.
///
/// Everything that reaches a command line is checked here, before anything runs.
public struct ImageJobRequest: Sendable, Equatable, Codable {
    public var owner: String
    public var repoURL: String
    public var gitRef: String?
    public var gitCredentialsPath: String?
    public var dockerfilePath: String
    public var imageTags: [String]
    public var registryURL: String?
    public var registryCredentialsPath: String?
    /// A stored secret (by name) holding what a `registry_credentials_path` file would: opened
    /// when the job starts, from the owner's scope or else the global one.
    public var registryCredentialsSecret: String?
    public var testCommands: [String]
    public var testEntryPoint: Bool
    public var killTimeoutSeconds: Double?
    public var timeoutSeconds: Double?
    /// Images (`host[:port]/path/name:tag`) pulled before the build, whose layers the engine
    /// may reuse (`docker build --cache-from`).
    public var cacheFrom: [String] {
        get { cacheFromImages ?? [] }
        set { cacheFromImages = newValue.isEmpty ? nil : newValue }
    }
    /// Stored optional: snapshots written before `cache_from` existed have none.
    private var cacheFromImages: [String]?

    public static let maxTags = 20
    public static let maxCacheFrom = 10
    public static let maxTestCommands = 50

    public init(
        owner: String, repoURL: String, gitRef: String? = nil, gitCredentialsPath: String? = nil,
        dockerfilePath: String = "Dockerfile", imageTags: [String] = [], registryURL: String? = nil,
        registryCredentialsPath: String? = nil, registryCredentialsSecret: String? = nil, testCommands: [String] = [], testEntryPoint: Bool = false,
        killTimeoutSeconds: Double? = nil, timeoutSeconds: Double? = nil, cacheFrom: [String] = []
    ) {
        self.cacheFromImages = cacheFrom.isEmpty ? nil : cacheFrom
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

    /// Checks every field; each refusal names the field. `repositories` says whether a
    /// repository on the service's own machine may be cloned.
    public func validate(limits: Limits = .default, repositories: RepositoryPolicy = .remoteOnly) throws(RapidFlowError) {
        func bad(_ message: String) -> RapidFlowError { RapidFlowError(.invalidRequest, message) }
        guard !owner.isEmpty, owner.count <= 100,
            owner.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }),
            !owner.hasPrefix("-"), !owner.hasPrefix(".")
        else { throw bad("'owner' must be 1 to 100 letters, digits, '.', '_' or '-'") }
        try Self.checkRepositoryURL(repoURL, repositories: repositories)
        if let gitRef { try RefValidation.checkRef(gitRef, field: "git_ref") }
        try Self.checkRelativePath(dockerfilePath, field: "dockerfile_path")
        guard imageTags.count <= Self.maxTags else { throw bad("'image_tags' has \(imageTags.count) tags; at most \(Self.maxTags) are allowed") }
        for tag in imageTags { try Self.checkTag(tag) }
        guard Set(imageTags).count == imageTags.count else { throw bad("'image_tags' lists a tag twice") }
        if let registryURL {
            _ = try RegistryReference(registryURL)
        } else if !imageTags.isEmpty {
            throw bad("'registry_url' is required when 'image_tags' is not empty")
        }
        guard cacheFrom.count <= Self.maxCacheFrom else {
            throw bad("'cache_from' has \(cacheFrom.count) images; at most \(Self.maxCacheFrom) are allowed")
        }
        for (index, image) in cacheFrom.enumerated() where !Self.isImageReference(image) {
            throw bad("cache_from[\(index)] '\(image)' is not an image reference such as registry.example.com/team/app:latest")
        }
        if let registryCredentialsSecret {
            guard registryCredentialsPath == nil else {
                throw bad("give 'registry_credentials_path' or 'registry_credentials_secret', not both")
            }
            do {
                try SecretValidation.checkName(registryCredentialsSecret, code: .invalidRequest)
            } catch {
                throw bad("'registry_credentials_secret': \(error.message)")
            }
        }
        guard testCommands.count <= Self.maxTestCommands else {
            throw bad("'test_commands' has \(testCommands.count) commands; at most \(Self.maxTestCommands) are allowed")
        }
        for (index, command) in testCommands.enumerated() {
            guard !command.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw bad("test_commands[\(index)] is empty") }
            guard command.utf8.count <= limits.maxScriptBytes else {
                throw bad("test_commands[\(index)] is \(command.utf8.count) bytes; at most \(limits.maxScriptBytes) are allowed")
            }
        }
        for (name, value) in [("kill_timeout_seconds", killTimeoutSeconds), ("timeout_seconds", timeoutSeconds)] {
            if let value, !(value > 0 && value <= limits.maxTimeoutSeconds) {
                throw bad("'\(name)' must be a positive number of seconds, at most \(Int(limits.maxTimeoutSeconds))")
            }
        }
    }

    /// `name[:tag]` or `host[:port]/path/name[:tag]` (or `@sha256:...`): lowercase path parts,
    /// no scheme, nothing an option parser could take for a flag.
    public static func isImageReference(_ text: String) -> Bool {
        guard (1...255).contains(text.utf8.count), !text.hasPrefix("-"), !text.contains("://") else { return false }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            let digest = rest[rest.index(after: at)...]
            guard digest.hasPrefix("sha256:"), digest.dropFirst(7).count == 64,
                digest.dropFirst(7).allSatisfy({ $0.isHexDigit && !$0.isUppercase })
            else { return false }
            rest = rest[..<at]
        }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard let last = parts.last, !parts.contains(where: \.isEmpty) else { return false }
        let nameAndTag = last.split(separator: ":", omittingEmptySubsequences: false)
        guard nameAndTag.count <= 2 else { return false }
        if nameAndTag.count == 2 {
            let tag = nameAndTag[1]
            guard (1...128).contains(tag.count), tag.first != ".", tag.first != "-",
                tag.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
            else { return false }
        }
        let pathParts = parts.dropLast().dropFirst().map(String.init) + [String(nameAndTag[0])]
        let component = { (part: String) -> Bool in
            guard let first = part.first, first.isLetter || first.isNumber else { return false }
            return part.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || "._-".contains($0)) }
        }
        guard pathParts.allSatisfy(component) else { return false }
        if parts.count > 1 {
            // The first part: a host (with a dot, a port or `localhost`) or a path component.
            let host = String(parts[0])
            guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:".contains($0)) }) else { return false }
        }
        return true
    }

    /// The image repository every tag is pushed to: `host[:port]/path/name`.
    public var imageRepository: String? {
        guard let registryURL, let reference = try? RegistryReference(registryURL) else { return nil }
        if let path = reference.path { return "\(reference.host)/\(path)" }
        return "\(reference.host)/\(owner.lowercased())/\(Self.repositoryName(of: repoURL))"
    }

    /// `app` for `https://host/team/app.git`, lowercased as image names must be.
    public static func repositoryName(of url: String) -> String {
        var name = url.split(whereSeparator: { $0 == "/" || $0 == ":" }).last.map(String.init) ?? "repository"
        if name.hasSuffix(".git") { name.removeLast(4) }
        let allowed = name.lowercased().unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)) || "._-".unicodeScalars.contains(scalar)
                ? Character(scalar) : "-"
        }
        let cleaned = String(allowed).trimmingCharacters(in: CharacterSet(charactersIn: "._-"))
        return cleaned.isEmpty ? "repository" : cleaned
    }

    /// A clone source as `repo_url`: see `RepositoryPolicy.check`.
    static func checkRepositoryURL(_ url: String, repositories: RepositoryPolicy) throws(RapidFlowError) {
        try repositories.check(
            url, field: "repo_url", code: .invalidRequest,
            credentialsAdvice: "put them in a file in the secrets directory and name it in git_credentials_path")
    }

    static func checkRelativePath(_ path: String, field: String) throws(RapidFlowError) {
        guard !path.isEmpty, !path.hasPrefix("/"), !path.hasPrefix("-"), !path.contains("\0"),
            !path.split(separator: "/").contains("..")
        else {
            throw RapidFlowError(.invalidRequest, "'\(field)' '\(path)' must be a path inside the repository (relative, no '..')")
        }
    }

    static func checkTag(_ tag: String) throws(RapidFlowError) {
        let scalars = Array(tag.unicodeScalars)
        func word(_ scalar: Unicode.Scalar) -> Bool {
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_")
        }
        guard !scalars.isEmpty, scalars.count <= 128, word(scalars[0]),
            scalars.allSatisfy({ word($0) || $0 == "." || $0 == "-" })
        else {
            throw RapidFlowError(.invalidRequest, "image tag '\(tag)' is not valid: letters, digits, '_', '.', '-', not starting with '.' or '-', at most 128")
        }
    }
}

/// A registry URL split into host and optional repository path: `[scheme://]host[:port][/path]`.
public struct RegistryReference: Sendable, Equatable {
    public var host: String
    public var path: String?

    public init(_ url: String) throws(RapidFlowError) {
        let bad = RapidFlowError(.invalidRequest, "'registry_url' '\(url)' is not [scheme://]host[:port]/path/name")
        var rest = Substring(url)
        if let range = rest.range(of: "://") {
            guard ["http", "https"].contains(rest[..<range.lowerBound].lowercased()) else { throw bad }
            rest = rest[range.upperBound...]
        }
        while rest.hasSuffix("/") { rest.removeLast() }
        let components = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard let hostPart = components.first, !hostPart.isEmpty else { throw bad }
        let hostAndPort = hostPart.split(separator: ":", omittingEmptySubsequences: false)
        guard hostAndPort.count <= 2, let hostName = hostAndPort.first, !hostName.isEmpty, !hostName.hasPrefix("-"),
            hostName.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-".unicodeScalars.contains($0)) })
        else { throw bad }
        if hostAndPort.count == 2 {
            guard let port = Int(hostAndPort[1]), (1...65535).contains(port) else { throw bad }
        }
        let pathComponents = components.dropFirst()
        for component in pathComponents {
            let scalars = Array(component.unicodeScalars)
            let lowerAlnum: (Unicode.Scalar) -> Bool = { $0.isASCII && (("a"..."z").contains($0) || ("0"..."9").contains($0)) }
            guard let first = scalars.first, let last = scalars.last, lowerAlnum(first), lowerAlnum(last),
                scalars.allSatisfy({ lowerAlnum($0) || "._-".unicodeScalars.contains($0) })
            else { throw bad }
        }
        host = String(hostPart).lowercased()
        path = pathComponents.isEmpty ? nil : pathComponents.joined(separator: "/")
    }
}

extension ImageJobRequest {
    /// The steps of an image job: clone and build (build), one container per test command and
    /// one for the entry point (test), one push per tag (publish).
    public func plan() -> (snapshot: JobSnapshot, steps: [StepPlan]) {
        let snapshot = JobSnapshot(
            repo: repoURL, branch: gitRef, killTimeoutSeconds: killTimeoutSeconds, timeoutSeconds: timeoutSeconds,
            imageJob: self)
        var steps = [
            StepPlan(type: .git, name: "clone", content: GitClonePlan(url: repoURL, ref: gitRef).description, phase: .build),
            StepPlan(type: .dockerBuild, name: "build", content: "docker build -f \(dockerfilePath) .", phase: .build),
        ]
        for command in testCommands {
            steps.append(StepPlan(type: .dockerRun, name: "test", content: command, phase: .test))
        }
        if testEntryPoint {
            steps.append(StepPlan(type: .dockerRun, name: "entrypoint", content: "(the image's entry point and command)", phase: .test))
        }
        if let repository = imageRepository {
            for tag in imageTags {
                steps.append(StepPlan(type: .dockerPush, name: "push", content: "\(repository):\(tag)", phase: .publish))
            }
        }
        return (snapshot, steps)
    }
}
