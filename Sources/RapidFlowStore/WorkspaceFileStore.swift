import Foundation
import RapidFlowCore
import SQLKit

/// A saved cache: its archives are in `directory` under the caches folder of the replica
/// `instance`.
public struct StoredCache: Sendable, Equatable {
    public var id: Int
    public var owner: String
    public var pipelineID: Int
    public var key: String
    public var directory: String
    public var instance: String
    public var sizeBytes: Int
    /// The archives' compression: `zst` or `gz`.
    public var format: String
    /// The job that saved it.
    public var jobID: Int?
    public var createdAt: Date
    public var lastUsedAt: Date

    public init(
        id: Int, owner: String, pipelineID: Int, key: String, directory: String, instance: String, sizeBytes: Int, format: String,
        jobID: Int?, createdAt: Date, lastUsedAt: Date
    ) {
        self.id = id
        self.owner = owner
        self.pipelineID = pipelineID
        self.key = key
        self.directory = directory
        self.instance = instance
        self.sizeBytes = sizeBytes
        self.format = format
        self.jobID = jobID
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
    }
}

/// One file a job kept for download.
public struct StoredArtifact: Sendable, Equatable {
    public var id: Int
    public var jobID: Int
    /// Relative to the workspace (`dist/app.tar.gz`), or to the job's home (`~/report.txt`).
    public var path: String
    public var sizeBytes: Int
    public var sha256: String
    public var instance: String
    public var createdAt: Date
    public var expiresAt: Date

    public init(id: Int, jobID: Int, path: String, sizeBytes: Int, sha256: String, instance: String, createdAt: Date, expiresAt: Date) {
        self.id = id
        self.jobID = jobID
        self.path = path
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
        self.instance = instance
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// The rows behind caches and artifacts; their files are the service's to keep.
public protocol WorkspaceFileStore: Sendable {
    /// The cache saved under exactly `key`, if any.
    func cache(owner: String, pipelineID: Int, key: String) async throws -> StoredCache?
    /// The newest cache whose key starts with `prefix`.
    func newestCache(owner: String, pipelineID: Int, keyPrefix: String) async throws -> StoredCache?
    /// Records a complete cache, replacing one of the same key; returns the replaced one.
    func saveCache(_ cache: StoredCache) async throws -> (saved: StoredCache, replaced: StoredCache?)
    func touchCache(id: Int, at date: Date) async throws
    func cache(id: Int) async throws -> StoredCache?
    func caches(owners: Set<String>?, pipelineID: Int?, limit: Int) async throws -> [StoredCache]
    /// Removes the row; the caller removes the files.
    func deleteCache(id: Int) async throws -> StoredCache?
    /// This replica's caches, least recently used first.
    func cachesByUse(instance: String) async throws -> [StoredCache]
    /// Every directory name this replica's rows point at.
    func cacheDirectories(instance: String) async throws -> Set<String>

    func addArtifacts(_ artifacts: [StoredArtifact]) async throws
    func artifacts(jobID: Int) async throws -> [StoredArtifact]
    func artifact(jobID: Int, path: String) async throws -> StoredArtifact?
    /// Removes a job's artifact rows and returns them.
    func deleteArtifacts(jobID: Int) async throws -> [StoredArtifact]
    /// Removes up to `limit` artifact rows that expired before `date` and returns them.
    func deleteExpiredArtifacts(before date: Date, limit: Int) async throws -> [StoredArtifact]
}

extension SQLJobStore: WorkspaceFileStore {
    public func cache(owner: String, pipelineID: Int, key: String) async throws -> StoredCache? {
        try await withDatabase { database in
            try await database.raw(
                """
                SELECT * FROM caches WHERE owner = \(bind: owner) AND pipeline_id = \(bind: pipelineID) AND cache_key = \(bind: key)
                """
            ).first().map(Self.cache(from:))
        }
    }

    public func newestCache(owner: String, pipelineID: Int, keyPrefix: String) async throws -> StoredCache? {
        // A range on the key rather than LIKE: a prefix may hold `%` or `_`.
        try await withDatabase { database in
            try await database.raw(
                """
                SELECT * FROM caches WHERE owner = \(bind: owner) AND pipeline_id = \(bind: pipelineID)
                AND cache_key >= \(bind: keyPrefix) AND substr(cache_key, 1, \(bind: keyPrefix.count)) = \(bind: keyPrefix)
                ORDER BY created_at DESC, id DESC LIMIT 1
                """
            ).first().map(Self.cache(from:))
        }
    }

    public func saveCache(_ cache: StoredCache) async throws -> (saved: StoredCache, replaced: StoredCache?) {
        try await withDatabase { database in
            try await self.transaction(on: database) {
                let replaced = try await database.raw(
                    """
                    DELETE FROM caches WHERE owner = \(bind: cache.owner) AND pipeline_id = \(bind: cache.pipelineID)
                    AND cache_key = \(bind: cache.key) RETURNING *
                    """
                ).first().map(Self.cache(from:))
                guard let row = try await database.raw(
                    """
                    INSERT INTO caches (owner, pipeline_id, cache_key, directory, instance, size_bytes, format, job_id, created_at, last_used_at)
                    VALUES (\(bind: cache.owner), \(bind: cache.pipelineID), \(bind: cache.key), \(bind: cache.directory),
                            \(bind: cache.instance), \(bind: cache.sizeBytes), \(bind: cache.format), \(bind: cache.jobID),
                            \(bind: Millis(cache.createdAt)), \(bind: Millis(cache.lastUsedAt)))
                    RETURNING *
                    """
                ).first() else { throw RapidFlowError(.internalError, "the store did not return the new cache") }
                return (try Self.cache(from: row), replaced)
            }
        }
    }

    public func touchCache(id: Int, at date: Date) async throws {
        try await withDatabase { database in
            try await database.raw("UPDATE caches SET last_used_at = \(bind: Millis(date)) WHERE id = \(bind: id)").run()
        }
    }

    public func cache(id: Int) async throws -> StoredCache? {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM caches WHERE id = \(bind: id)").first().map(Self.cache(from:))
        }
    }

    public func caches(owners: Set<String>?, pipelineID: Int?, limit: Int) async throws -> [StoredCache] {
        if let owners, owners.isEmpty { return [] }
        var query = SQLQueryString("SELECT * FROM caches WHERE 1 = 1")
        if let owners {
            query.appendInterpolation(unsafeRaw: " AND owner IN (")
            query.appendInterpolation(binds: owners.sorted())
            query.appendInterpolation(unsafeRaw: ")")
        }
        if let pipelineID {
            query.appendInterpolation(unsafeRaw: " AND pipeline_id = ")
            query.appendInterpolation(bind: pipelineID)
        }
        query.appendInterpolation(unsafeRaw: " ORDER BY last_used_at DESC, id DESC LIMIT ")
        query.appendInterpolation(bind: limit)
        let finalQuery = query
        return try await withDatabase { database in try await database.raw(finalQuery).all().map(Self.cache(from:)) }
    }

    public func deleteCache(id: Int) async throws -> StoredCache? {
        try await withDatabase { database in
            try await database.raw("DELETE FROM caches WHERE id = \(bind: id) RETURNING *").first().map(Self.cache(from:))
        }
    }

    public func cachesByUse(instance: String) async throws -> [StoredCache] {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM caches WHERE instance = \(bind: instance) ORDER BY last_used_at, id").all()
                .map(Self.cache(from:))
        }
    }

    public func cacheDirectories(instance: String) async throws -> Set<String> {
        try await withDatabase { database in
            Set(
                try await database.raw("SELECT directory FROM caches WHERE instance = \(bind: instance)").all()
                    .map { try $0.decode(column: "directory", as: String.self) })
        }
    }

    public func addArtifacts(_ artifacts: [StoredArtifact]) async throws {
        guard !artifacts.isEmpty else { return }
        try await withDatabase { database in
            try await self.transaction(on: database) {
                for artifact in artifacts {
                    try await database.raw(
                        """
                        INSERT INTO artifacts (job_id, path, size_bytes, sha256, instance, created_at, expires_at)
                        VALUES (\(bind: artifact.jobID), \(bind: artifact.path), \(bind: artifact.sizeBytes), \(bind: artifact.sha256),
                                \(bind: artifact.instance), \(bind: Millis(artifact.createdAt)), \(bind: Millis(artifact.expiresAt)))
                        """
                    ).run()
                }
            }
        }
    }

    public func artifacts(jobID: Int) async throws -> [StoredArtifact] {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM artifacts WHERE job_id = \(bind: jobID) ORDER BY path").all().map(Self.artifact(from:))
        }
    }

    public func artifact(jobID: Int, path: String) async throws -> StoredArtifact? {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM artifacts WHERE job_id = \(bind: jobID) AND path = \(bind: path)").first()
                .map(Self.artifact(from:))
        }
    }

    public func deleteArtifacts(jobID: Int) async throws -> [StoredArtifact] {
        try await withDatabase { database in
            try await database.raw("DELETE FROM artifacts WHERE job_id = \(bind: jobID) RETURNING *").all().map(Self.artifact(from:))
        }
    }

    public func deleteExpiredArtifacts(before date: Date, limit: Int) async throws -> [StoredArtifact] {
        try await withDatabase { database in
            try await database.raw(
                """
                DELETE FROM artifacts WHERE id IN (
                    SELECT id FROM artifacts WHERE expires_at < \(bind: Millis(date)) ORDER BY expires_at LIMIT \(bind: limit))
                RETURNING *
                """
            ).all().map(Self.artifact(from:))
        }
    }

    private static func cache(from row: any SQLRow) throws -> StoredCache {
        StoredCache(
            id: try row.decode(column: "id", as: Int.self), owner: try row.decode(column: "owner", as: String.self),
            pipelineID: try row.decode(column: "pipeline_id", as: Int.self), key: try row.decode(column: "cache_key", as: String.self),
            directory: try row.decode(column: "directory", as: String.self), instance: try row.decode(column: "instance", as: String.self),
            sizeBytes: try row.decode(column: "size_bytes", as: Int.self), format: try row.decode(column: "format", as: String.self),
            jobID: try row.decode(column: "job_id", as: Int?.self), createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            lastUsedAt: try row.decode(column: "last_used_at", as: Millis.self).date)
    }

    private static func artifact(from row: any SQLRow) throws -> StoredArtifact {
        StoredArtifact(
            id: try row.decode(column: "id", as: Int.self), jobID: try row.decode(column: "job_id", as: Int.self),
            path: try row.decode(column: "path", as: String.self), sizeBytes: try row.decode(column: "size_bytes", as: Int.self),
            sha256: try row.decode(column: "sha256", as: String.self), instance: try row.decode(column: "instance", as: String.self),
            createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            expiresAt: try row.decode(column: "expires_at", as: Millis.self).date)
    }
}
