import Foundation

/// One entry of a pipeline's `cache:` list: what to keep between its jobs, and under which key.
///
/// `key` and `restore_keys` are templates: `${branch}`, `${owner}`, `${pipeline}` and
/// `${checksum:FILE}` (the SHA-256 of a workspace file, or of every file a glob matches) are
/// filled in when the job runs. `paths` are inside the workspace, or the job's home for `~/`.
public struct CacheSpec: Codable, Sendable, Equatable {
    public var key: String
    public var paths: [String]
    public var restoreKeys: [String]

    enum CodingKeys: String, CodingKey {
        case key, paths
        case restoreKeys = "restore_keys"
    }

    public init(key: String, paths: [String], restoreKeys: [String] = []) {
        self.key = key
        self.paths = paths
        self.restoreKeys = restoreKeys
    }

    public static let maxPerConfig = 8
    public static let maxPaths = 32
    public static let maxKeyLength = 250
}

/// A pipeline's `artifacts:` entry: files kept from a job's workspace for download.
public struct ArtifactSpec: Codable, Sendable, Equatable {
    public enum When: String, Codable, Sendable, CaseIterable {
        /// Collected when every step before succeeded.
        case onSuccess = "on_success"
        /// Collected also when a step failed (not when the job was cancelled).
        case always
    }

    /// Paths or globs (`dist/*.tar.gz`), inside the workspace or the job's home for `~/`; a
    /// directory brings every file under it.
    public var paths: [String]
    /// Days the artifacts are kept; fractions allowed.
    public var expireInDays: Double
    public var when: When

    enum CodingKeys: String, CodingKey {
        case paths
        case expireInDays = "expire_in_days"
        case when
    }

    public init(paths: [String], expireInDays: Double = ArtifactSpec.defaultExpireInDays, when: When = .onSuccess) {
        self.paths = paths
        self.expireInDays = expireInDays
        self.when = when
    }

    public static let defaultExpireInDays = 30.0
    public static let maxExpireInDays = 3650.0
    public static let maxPaths = 64
}

/// Paths of caches and artifacts: relative to the workspace, or to the job's home with `~/`.
/// Checked when the config is stored (no absolute path, no `..`); resolved when the job runs,
/// where a symlink leading out of its root is refused too.
public enum WorkspacePath {
    /// Where a path is rooted.
    public enum Root: String, Sendable {
        case workspace
        case home
    }

    /// `path` split into its root and the part below it (never empty: `.` for the root).
    public static func split(_ path: String) -> (root: Root, relative: String) {
        if path == "~" { return (.home, ".") }
        if path.hasPrefix("~/") {
            let rest = String(path.dropFirst(2))
            return (.home, rest.isEmpty ? "." : rest)
        }
        return (.workspace, path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
    }

    /// Why `path` cannot name something inside the workspace or the job's home; nil when it can.
    public static func problem(_ path: String) -> String? {
        if path.isEmpty { return "is empty" }
        if path.contains("\0") || path.contains("\n") { return "holds a control character" }
        if path.utf8.count > 1024 { return "is longer than 1024 bytes" }
        if path.hasPrefix("/") { return "is absolute: give a path inside the workspace, or '~/' for the job's home" }
        if path.hasPrefix("~"), path != "~", !path.hasPrefix("~/") {
            return "names another user's home: only '~/' (the job's home) is allowed"
        }
        if split(path).relative.split(separator: "/").contains("..") { return "contains '..': it must stay inside the workspace" }
        return nil
    }
}

/// Key templates: `${branch}`, `${owner}`, `${pipeline}` and `${checksum:FILE}`.
public enum CacheKeyTemplate {
    public static let placeholders = ["${branch}", "${owner}", "${pipeline}", "${checksum:FILE}"]

    /// What a key may hold once filled in, besides letters and digits.
    static let allowed = Set("._-/:@+=,".unicodeScalars)

    /// Why `template` is not a usable key template; nil when it is.
    public static func problem(_ template: String) -> String? {
        guard !template.isEmpty, template.utf8.count <= CacheSpec.maxKeyLength else {
            return "must be 1 to \(CacheSpec.maxKeyLength) characters"
        }
        var rest = Substring(template)
        var literal = ""
        while let start = rest.range(of: "${") {
            literal += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { return "has a '${' without its '}'" }
            let name = String(rest[start.upperBound..<end])
            if name.hasPrefix("checksum:") {
                let file = String(name.dropFirst("checksum:".count))
                if let problem = WorkspacePath.problem(file) { return "checksum file '\(file)' \(problem)" }
                if file.hasPrefix("~") { return "checksum file '\(file)' must be in the workspace" }
            } else if !["branch", "owner", "pipeline"].contains(name) {
                return "has an unknown placeholder '${\(name)}'; known: \(placeholders.joined(separator: ", "))"
            }
            rest = rest[rest.index(after: end)...]
        }
        literal += rest
        guard literal.unicodeScalars.allSatisfy({ ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || allowed.contains($0) }) else {
            return "may hold only letters, digits and . _ - / : @ + = , besides its placeholders"
        }
        return nil
    }

    /// `template` filled in; `checksum` gives a file pattern's SHA-256 (hex).
    public static func render(
        _ template: String, branch: String?, owner: String, pipeline: String, checksum: (String) throws -> String
    ) rethrows -> String {
        var result = ""
        var rest = Substring(template)
        while let start = rest.range(of: "${"), let end = rest[start.upperBound...].firstIndex(of: "}") {
            result += rest[..<start.lowerBound]
            let name = String(rest[start.upperBound..<end])
            switch name {
            case "branch": result += sanitize(branch ?? "none")
            case "owner": result += sanitize(owner)
            case "pipeline": result += sanitize(pipeline)
            default: result += try checksum(String(name.dropFirst("checksum:".count)))
            }
            rest = rest[rest.index(after: end)...]
        }
        result += rest
        return String(result.prefix(CacheSpec.maxKeyLength * 2))
    }

    /// A value as a key may hold it: other characters become `_`.
    static func sanitize(_ value: String) -> String {
        String(String.UnicodeScalarView(value.unicodeScalars.map {
            ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || allowed.contains($0) ? $0 : "_"
        }))
    }
}

/// A job's `cache-restore` and `cache-save` steps carry the config's caches; its `artifacts`
/// step the config's artifacts entry: what ran is what the job's config said when it was made.
public enum WorkspaceStepContent {
    public static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).flatMap { String(data: $0, encoding: .utf8) } ?? "null"
    }

    public static func decode<T: Decodable>(_ type: T.Type, from content: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(content.utf8))
    }
}

/// What a runner on another machine needs to run a job's `cache-restore`, `cache-save` or
/// `artifacts` step itself: whose caches they are (the keys' placeholders) and the service's
/// limits. The service still decides which cache is found and keeps what is saved.
public struct WorkspaceFilesContext: Codable, Sendable, Equatable {
    public var owner: String
    /// The job's stored pipeline; caches belong to one (nil: nothing is restored or saved).
    public var pipelineID: Int?
    public var pipelineName: String
    public var branch: String?
    public var limits: Limits

    public struct Limits: Codable, Sendable, Equatable {
        /// What one cache may unpack to.
        public var cacheEntryMaxBytes: Int
        /// Entries one cache may hold.
        public var cacheMaxFiles: Int
        /// A job's artifacts, together.
        public var artifactMaxBytes: Int

        public init(cacheEntryMaxBytes: Int, cacheMaxFiles: Int, artifactMaxBytes: Int) {
            self.cacheEntryMaxBytes = cacheEntryMaxBytes
            self.cacheMaxFiles = cacheMaxFiles
            self.artifactMaxBytes = artifactMaxBytes
        }

        enum CodingKeys: String, CodingKey {
            case cacheEntryMaxBytes = "cache_entry_max_bytes", cacheMaxFiles = "cache_max_files", artifactMaxBytes = "artifact_max_bytes"
        }
    }

    public init(owner: String, pipelineID: Int?, pipelineName: String, branch: String?, limits: Limits) {
        self.owner = owner
        self.pipelineID = pipelineID
        self.pipelineName = pipelineName
        self.branch = branch
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey {
        case owner, branch, limits
        case pipelineID = "pipeline_id", pipelineName = "pipeline_name"
    }
}

/// A cache the keeper found for a restore.
public struct FoundCache: Codable, Sendable, Equatable {
    public var id: Int
    public var key: String
    /// Found by its exact key (not by a `restore_keys` prefix).
    public var exact: Bool
    public var sizeBytes: Int
    /// `zst` or `gz`.
    public var format: String

    public init(id: Int, key: String, exact: Bool, sizeBytes: Int, format: String) {
        self.id = id
        self.key = key
        self.exact = exact
        self.sizeBytes = sizeBytes
        self.format = format
    }

    enum CodingKeys: String, CodingKey {
        case id, key, exact, format
        case sizeBytes = "size_bytes"
    }
}

/// What keeping a saved cache did.
public struct SavedCache: Codable, Sendable, Equatable {
    /// The archives' size on disk.
    public var storedBytes: Int
    /// Keys of the least recently used caches removed to stay under the size limit.
    public var evicted: [String]

    public init(storedBytes: Int, evicted: [String]) {
        self.storedBytes = storedBytes
        self.evicted = evicted
    }

    enum CodingKeys: String, CodingKey {
        case evicted
        case storedBytes = "stored_bytes"
    }
}

/// One kept artifact.
public struct KeptArtifact: Codable, Sendable, Equatable {
    public var path: String
    public var sizeBytes: Int
    public var sha256: String

    public init(path: String, sizeBytes: Int, sha256: String) {
        self.path = path
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
    }

    enum CodingKeys: String, CodingKey {
        case path, sha256
        case sizeBytes = "size_bytes"
    }
}
