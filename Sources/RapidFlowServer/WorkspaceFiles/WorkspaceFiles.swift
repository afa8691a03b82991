import Foundation
import Logging
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// Caches and artifacts: what the service keeps from a job's workspace, under its data
/// directory. Caches are archives in `caches/<directory>/` (`workspace.tar.<zst|gz>` and
/// `home.tar.<zst|gz>`), written under a `.partial-` name and renamed when complete, and only
/// then recorded in the store: a cache that is found is whole. Artifacts are plain files in
/// `artifacts/job-<id>/{workspace,home}/<path>`.
struct WorkspaceFiles: Sendable {
    struct Settings: Sendable {
        /// The data directory: `caches/` and `artifacts/` go under it.
        var directory: String
        var instanceID: String
        /// Disk all caches of this replica may take (`--cache-max-gb`); least recently used go first.
        var cacheMaxBytes: Int = 10 << 30
        /// What one cache may unpack to; a restore also stops there.
        var cacheEntryMaxBytes: Int = 4 << 30
        /// Entries one cache may hold; a restore stops there.
        var cacheMaxFiles: Int = 1_000_000
        /// A job's artifacts, together (`--artifact-max-mb`).
        var artifactMaxBytes: Int = 1 << 30
        /// The user steps run as; caches are packed and unpacked as it.
        var identity: StepIdentity?

        init(directory: String, instanceID: String) {
            self.directory = directory
            self.instanceID = instanceID
        }
    }

    /// The job whose caches and artifacts these are.
    struct Owner: Sendable {
        var jobID: Int
        var owner: String
        var pipelineID: Int?
    }

    let store: any WorkspaceFileStore
    let settings: Settings
    let logger: Logger

    init(store: any WorkspaceFileStore, settings: Settings, logger: Logger) {
        self.store = store
        self.settings = settings
        self.logger = logger
    }

    var cachesDirectory: String { "\(settings.directory)/caches" }
    var artifactsDirectory: String { "\(settings.directory)/artifacts" }

    var limits: WorkspaceFilesContext.Limits {
        .init(cacheEntryMaxBytes: settings.cacheEntryMaxBytes, cacheMaxFiles: settings.cacheMaxFiles, artifactMaxBytes: settings.artifactMaxBytes)
    }

    // MARK: - Caches

    /// The cache of `key` for the job's owner and pipeline, else the newest whose key starts
    /// with one of `prefixes`; only caches kept on this replica are found. Marked as used.
    func findCache(for job: Owner, key: String, prefixes: [String]) async throws -> FoundCache? {
        guard let pipelineID = job.pipelineID else { return nil }
        var found: (cache: StoredCache, exact: Bool)?
        if let exact = try await store.cache(owner: job.owner, pipelineID: pipelineID, key: key), isHere(exact) {
            found = (exact, true)
        } else {
            for prefix in prefixes {
                if let newest = try await store.newestCache(owner: job.owner, pipelineID: pipelineID, keyPrefix: prefix), isHere(newest) {
                    found = (newest, false)
                    break
                }
            }
        }
        guard let (cache, exact) = found else { return nil }
        try await store.touchCache(id: cache.id, at: Date())
        return FoundCache(id: cache.id, key: cache.key, exact: exact, sizeBytes: cache.sizeBytes, format: cache.format)
    }

    /// The archive of `root` of cache `id`, when the cache is the job's owner's and pipeline's,
    /// is kept here, and has one for that root.
    func archive(of id: Int, root: WorkspacePath.Root, for job: Owner) async throws -> String? {
        guard let cache = try await store.cache(id: id), cache.owner == job.owner, cache.pipelineID == job.pipelineID, isHere(cache) else {
            return nil
        }
        let archive = "\(cachesDirectory)/\(cache.directory)/\(root.rawValue).tar.\(cache.format)"
        return FileManager.default.fileExists(atPath: archive) ? archive : nil
    }

    /// A new folder for a cache's archives, under a `.partial-` name nothing restores from.
    func draft() throws -> CacheDraft {
        let name = UUID().uuidString.lowercased()
        let draft = CacheDraft(name: name, directory: "\(cachesDirectory)/.partial-\(name)")
        try FileManager.default.createDirectory(atPath: draft.directory, withIntermediateDirectories: true)
        return draft
    }

    /// The draft a job's runner uploads as `name` (a lowercase UUID it chose): its folder names
    /// the job too, so one job's runner never writes into another's draft. Nil for a bad name.
    func runnerDraft(named name: String, jobID: Int) -> CacheDraft? {
        guard UUID(uuidString: name) != nil, name == name.lowercased() else { return nil }
        return CacheDraft(name: name, directory: "\(cachesDirectory)/.partial-job-\(jobID)-\(name)")
    }

    /// Makes the draft's archives the cache of `key`: flushed, renamed to the real name, then
    /// recorded, so a cache that is found is whole. The one it replaces goes; so do least
    /// recently used caches over the size limit.
    func keep(_ draft: CacheDraft, key: String, format: CacheArchiver.Compression, for job: Owner) async throws -> SavedCache {
        guard let pipelineID = job.pipelineID else { throw CacheArchiver.Failure(description: "caches belong to a stored pipeline") }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: draft.directory)) ?? []
        let expected = Set([WorkspacePath.Root.workspace, .home].map { "\($0.rawValue).tar.\(format.rawValue)" })
        guard !names.isEmpty, Set(names).isSubset(of: expected) else {
            throw CacheArchiver.Failure(description: "the cache's archives are not complete (found: \(names.sorted().joined(separator: ", ")))")
        }
        let stored = names.reduce(0) { $0 + WorkspaceFileSteps.size(of: "\(draft.directory)/\($1)") }
        WorkspaceFileSteps.syncDirectory(draft.directory)
        // Complete: only now does it get its real name, then its row.
        guard rename(draft.directory, "\(cachesDirectory)/\(draft.name)") == 0 else {
            throw CacheArchiver.Failure(description: "could not move the finished cache into place: \(String(cString: strerror(errno)))")
        }
        WorkspaceFileSteps.syncDirectory(cachesDirectory)
        let now = Date()
        let (_, replaced) = try await store.saveCache(
            StoredCache(
                id: 0, owner: job.owner, pipelineID: pipelineID, key: key, directory: draft.name, instance: settings.instanceID,
                sizeBytes: stored, format: format.rawValue, jobID: job.jobID, createdAt: now, lastUsedAt: now))
        if let replaced, replaced.instance == settings.instanceID, replaced.directory != draft.name {
            try? FileManager.default.removeItem(atPath: "\(cachesDirectory)/\(replaced.directory)")
        }
        return SavedCache(storedBytes: stored, evicted: await evict().map(\.key))
    }

    func discard(_ draft: CacheDraft) {
        try? FileManager.default.removeItem(atPath: draft.directory)
    }

    /// Removes least recently used caches of this replica until they fit `cacheMaxBytes`.
    @discardableResult
    func evict() async -> [StoredCache] {
        do {
            let caches = try await store.cachesByUse(instance: settings.instanceID)
            var total = caches.reduce(0) { $0 + $1.sizeBytes }
            var evicted: [StoredCache] = []
            for cache in caches where total > settings.cacheMaxBytes {
                if try await store.deleteCache(id: cache.id) != nil {
                    try? FileManager.default.removeItem(atPath: "\(cachesDirectory)/\(cache.directory)")
                    evicted.append(cache)
                }
                total -= cache.sizeBytes
            }
            if !evicted.isEmpty { logger.info("evicted caches over the size limit", metadata: ["caches": "\(evicted.count)"]) }
            return evicted
        } catch {
            logger.warning("could not evict caches", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// Removes a cache's row and files.
    func deleteCache(id: Int) async throws -> StoredCache? {
        guard let cache = try await store.deleteCache(id: id) else { return nil }
        if cache.instance == settings.instanceID {
            try? FileManager.default.removeItem(atPath: "\(cachesDirectory)/\(cache.directory)")
        }
        return cache
    }

    /// At start: half-written caches (a crash during a save) and folders no row points at go.
    func sweepCaches() async {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: cachesDirectory) else { return }
        let known = (try? await store.cacheDirectories(instance: settings.instanceID)) ?? Set(names)
        for name in names where name.hasPrefix(".partial-") || !known.contains(name) {
            try? FileManager.default.removeItem(atPath: "\(cachesDirectory)/\(name)")
            logger.info("removed an unfinished or unrecorded cache folder", metadata: ["folder": "\(name)"])
        }
    }

    private func isHere(_ cache: StoredCache) -> Bool {
        cache.instance == settings.instanceID && FileManager.default.fileExists(atPath: "\(cachesDirectory)/\(cache.directory)")
    }

    // MARK: - Artifacts

    /// Where artifact `path` (`~/…` for the job's home) of a job goes on this replica.
    func artifactFile(jobID: Int, path: String) -> String {
        let (root, relative) = WorkspacePath.split(path)
        return "\(artifactsDirectory)/job-\(jobID)/\(root.rawValue)/\(relative)"
    }

    /// Records the job's artifacts whose files are in place; all or none.
    func record(_ kept: [KeptArtifact], jobID: Int, expireInDays: Double) async throws {
        let now = Date()
        let expires = now.addingTimeInterval(expireInDays * 86_400)
        try await store.addArtifacts(
            kept.map {
                StoredArtifact(
                    id: 0, jobID: jobID, path: $0.path, sizeBytes: $0.sizeBytes, sha256: $0.sha256, instance: settings.instanceID,
                    createdAt: now, expiresAt: expires)
            })
    }

    /// Removes the files of a job's artifacts that were not recorded (a collection that failed).
    func discardArtifacts(jobID: Int) async {
        if (try? await store.artifacts(jobID: jobID))?.isEmpty ?? true {
            try? FileManager.default.removeItem(atPath: "\(artifactsDirectory)/job-\(jobID)")
        }
    }

    /// Where an artifact's file is on this replica.
    func file(of artifact: StoredArtifact) -> String {
        artifactFile(jobID: artifact.jobID, path: artifact.path)
    }

    /// Removes a job's artifacts, rows and files; returns how many there were.
    func removeArtifacts(jobID: Int) async throws -> Int {
        let removed = try await store.deleteArtifacts(jobID: jobID)
        try? FileManager.default.removeItem(atPath: "\(artifactsDirectory)/job-\(jobID)")
        return removed.count
    }

    /// Removes expired artifacts, a batch at a time.
    func pruneExpiredArtifacts() async {
        do {
            while true {
                let expired = try await store.deleteExpiredArtifacts(before: Date(), limit: 500)
                for artifact in expired where artifact.instance == settings.instanceID {
                    try? FileManager.default.removeItem(atPath: file(of: artifact))
                }
                for jobID in Set(expired.map(\.jobID)) where try await store.artifacts(jobID: jobID).isEmpty {
                    try? FileManager.default.removeItem(atPath: "\(artifactsDirectory)/job-\(jobID)")
                }
                if !expired.isEmpty { logger.debug("removed expired artifacts", metadata: ["artifacts": "\(expired.count)"]) }
                if expired.count < 500 { break }
            }
        } catch {
            logger.warning("could not remove expired artifacts", metadata: ["error": "\(error)"])
        }
    }
}

/// The service's side of a job's caches and artifacts when its workspace is on this machine.
struct LocalWorkspaceKeeper: WorkspaceFileKeeper {
    let files: WorkspaceFiles
    let job: WorkspaceFiles.Owner

    func findCache(key: String, prefixes: [String]) async throws -> FoundCache? {
        try await files.findCache(for: job, key: key, prefixes: prefixes)
    }

    func archive(of cache: FoundCache, root: WorkspacePath.Root) async throws -> (path: String, temporary: Bool)? {
        try await files.archive(of: cache.id, root: root, for: job).map { ($0, false) }
    }

    func draft() async throws -> CacheDraft { try files.draft() }

    func keep(_ draft: CacheDraft, key: String, format: CacheArchiver.Compression) async throws -> SavedCache {
        try await files.keep(draft, key: key, format: format, for: job)
    }

    func discard(_ draft: CacheDraft) async { files.discard(draft) }

    func keepArtifacts(_ chosen: [ArtifactFile], expireInDays: Double) async throws -> [KeptArtifact] {
        var kept: [KeptArtifact] = []
        do {
            for file in chosen {
                let target = files.artifactFile(jobID: job.jobID, path: file.path)
                let digest = try await CacheArchiver.blocking { try WorkspaceFileSteps.copy(file.source, to: target) }
                kept.append(KeptArtifact(path: file.path, sizeBytes: digest.size, sha256: digest.sha256))
            }
            try await files.record(kept, jobID: job.jobID, expireInDays: expireInDays)
        } catch {
            await files.discardArtifacts(jobID: job.jobID)
            throw error
        }
        return kept
    }
}
