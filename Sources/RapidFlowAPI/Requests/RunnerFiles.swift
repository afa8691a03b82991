import RapidFlowCore

extension API {
    /// `POST /runner/jobs/:id/steps/:step/caches/find`: the keys a runner's `cache-restore`
    /// step filled in.
    public struct RunnerCacheFind: Codable, Sendable, Equatable {
        public var key: String
        /// Prefixes tried in order when no cache has `key`.
        public var restoreKeys: [String]

        public init(key: String, restoreKeys: [String]) {
            self.key = key
            self.restoreKeys = restoreKeys
        }

        enum CodingKeys: String, CodingKey {
            case key
            case restoreKeys = "restore_keys"
        }

        public static let fields = ["key", "restore_keys"]

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            key = try fields.requiredString("key")
            restoreKeys = try fields.strings("restore_keys")
            for value in [key] + restoreKeys { try checkFilledKey(value) }
        }
    }

    /// `POST /runner/jobs/:id/steps/:step/caches/drafts/:name`: keep the uploaded draft.
    public struct RunnerCacheKeep: Codable, Sendable, Equatable {
        public var key: String
        /// `zst` or `gz`: how the draft's archives are compressed.
        public var format: String

        public init(key: String, format: String) {
            self.key = key
            self.format = format
        }

        public static let fields = ["key", "format"]

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            key = try fields.requiredString("key")
            format = try fields.requiredString("format")
            try checkFilledKey(key)
            guard ["zst", "gz"].contains(format) else { throw RapidFlowError(.invalidRequest, "'format' must be 'zst' or 'gz', got '\(format)'") }
        }
    }

    /// `POST /runner/jobs/:id/steps/:step/artifacts`: record the uploaded artifacts.
    public struct RunnerArtifactsKeep: Codable, Sendable, Equatable {
        public var expireInDays: Double

        public init(expireInDays: Double) {
            self.expireInDays = expireInDays
        }

        enum CodingKeys: String, CodingKey {
            case expireInDays = "expire_in_days"
        }

        public static let fields = ["expire_in_days"]

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            guard fields.has("expire_in_days") else { throw fields.missing("expire_in_days") }
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard let days = try? container.decode(Double.self, forKey: .expireInDays), days > 0, days <= ArtifactSpec.maxExpireInDays else {
                throw RapidFlowError(.invalidRequest, "'expire_in_days' must be a number above 0 and at most \(Int(ArtifactSpec.maxExpireInDays))")
            }
            expireInDays = days
        }
    }

    /// `POST /runner/jobs/:id/steps/:step/caches/find`: the cache to restore, or null.
    public struct RunnerCacheFound: Codable, Sendable, Equatable {
        @Nullable public var cache: FoundCache?

        public init(cache: FoundCache?) {
            self.cache = cache
        }
    }

    /// `PUT …/caches/drafts/:name/:root`: bytes of the archive received.
    public struct RunnerDraftReceived: Codable, Sendable, Equatable {
        public var storedBytes: Int

        public init(storedBytes: Int) {
            self.storedBytes = storedBytes
        }

        enum CodingKeys: String, CodingKey {
            case storedBytes = "stored_bytes"
        }
    }

    /// `POST …/artifacts`: the artifacts recorded.
    public struct RunnerArtifactsKept: Codable, Sendable, Equatable {
        public var artifacts: [KeptArtifact]

        public init(artifacts: [KeptArtifact]) {
            self.artifacts = artifacts
        }
    }

    /// `DELETE …/caches/drafts/:name` and `DELETE …/artifacts`: what was discarded.
    public struct RunnerDiscarded: Codable, Sendable, Equatable {
        public var discarded: Bool

        public init(discarded: Bool) {
            self.discarded = discarded
        }
    }
}

/// A cache key as a runner filled it in: 1 to twice a template's length in bytes (placeholders
/// grow as they are filled).
private func checkFilledKey(_ key: String) throws(RapidFlowError) {
    guard !key.isEmpty, key.utf8.count <= CacheSpec.maxKeyLength * 2 else {
        throw RapidFlowError(.invalidRequest, "a cache key must be 1 to \(CacheSpec.maxKeyLength * 2) bytes")
    }
}
