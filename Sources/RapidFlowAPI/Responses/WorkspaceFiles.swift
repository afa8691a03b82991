import Foundation
import RapidFlowCore

extension API {
    /// A saved pipeline cache.
    public struct Cache: Codable, Sendable, Equatable {
        public var id: Int
        public var owner: String
        public var pipelineID: Int
        public var key: String
        /// Compressed, on disk.
        public var sizeBytes: Int
        /// `zst` or `gz`.
        public var compression: String
        /// The job that saved it.
        @Nullable public var jobID: Int?
        /// The replica whose disk holds it.
        public var instance: String
        public var createdAt: String
        public var lastUsedAt: String

        enum CodingKeys: String, CodingKey {
            case id, owner, pipelineID = "pipeline_id", key, sizeBytes = "size_bytes", compression, jobID = "job_id", instance
            case createdAt = "created_at", lastUsedAt = "last_used_at"
        }

        public init(
            id: Int, owner: String, pipelineID: Int, key: String, sizeBytes: Int, compression: String, jobID: Int?, instance: String,
            createdAt: Date, lastUsedAt: Date
        ) {
            self.id = id
            self.owner = owner
            self.pipelineID = pipelineID
            self.key = key
            self.sizeBytes = sizeBytes
            self.compression = compression
            self.jobID = jobID
            self.instance = instance
            self.createdAt = Timestamp.format(createdAt)
            self.lastUsedAt = Timestamp.format(lastUsedAt)
        }
    }

    /// `DELETE /caches/:id`.
    public struct CacheDeleted: Codable, Sendable, Equatable {
        public var deleted: Bool
        public var id: Int

        public init(id: Int) {
            deleted = true
            self.id = id
        }
    }

    /// A file a job kept.
    public struct Artifact: Codable, Sendable, Equatable {
        /// In the workspace (`dist/app.tar.gz`), or in the job's home (`~/report.txt`).
        public var path: String
        public var sizeBytes: Int
        public var sha256: String
        /// Where to download it.
        public var url: String
        public var createdAt: String
        public var expiresAt: String

        enum CodingKeys: String, CodingKey {
            case path, sizeBytes = "size_bytes", sha256, url, createdAt = "created_at", expiresAt = "expires_at"
        }

        public init(jobID: Int, path: String, sizeBytes: Int, sha256: String, createdAt: Date, expiresAt: Date) {
            self.path = path
            self.sizeBytes = sizeBytes
            self.sha256 = sha256
            url = "/jobs/\(jobID)/artifacts/" + (path.addingPercentEncoding(withAllowedCharacters: Artifact.pathCharacters) ?? path)
            self.createdAt = Timestamp.format(createdAt)
            self.expiresAt = Timestamp.format(expiresAt)
        }

        /// What a path keeps unescaped in a URL: its `/` too.
        public static let pathCharacters: CharacterSet = {
            var set = CharacterSet.urlPathAllowed
            set.remove(charactersIn: "?#%;")
            return set
        }()
    }

    /// `GET /jobs/:id/artifacts`.
    public struct ArtifactList: Codable, Sendable, Equatable {
        public var jobID: Int
        public var artifacts: [Artifact]
        /// Where all of them download as one `.tar.gz`.
        public var archiveURL: String

        enum CodingKeys: String, CodingKey {
            case jobID = "job_id", artifacts, archiveURL = "archive_url"
        }

        public init(jobID: Int, artifacts: [Artifact]) {
            self.jobID = jobID
            self.artifacts = artifacts
            archiveURL = "/jobs/\(jobID)/artifacts.tar.gz"
        }
    }
}
