import Crypto
import Foundation
import Logging
import NIOCore
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

    /// The job a workspace step belongs to.
    struct JobContext: Sendable {
        var jobID: Int
        var owner: String
        var pipelineID: Int?
        var pipelineName: String
        var branch: String?
        var workspace: String
        var home: String

        func root(_ root: WorkspacePath.Root) -> String { root == .workspace ? workspace : home }
    }

    /// What the restore step found, for the save step of the same job: the keys as filled in
    /// then (a checksum file may change while the job runs), and which were exact hits.
    final class CacheKeys: @unchecked Sendable {
        private let lock = NSLock()
        private var keys: [Int: (key: String, exactHit: Bool)] = [:]

        func set(_ index: Int, key: String, exactHit: Bool) { lock.withLock { keys[index] = (key, exactHit) } }
        func get(_ index: Int) -> (key: String, exactHit: Bool)? { lock.withLock { keys[index] } }
    }

    let store: any WorkspaceFileStore
    let settings: Settings
    let archiver: CacheArchiver
    let logger: Logger

    init(store: any WorkspaceFileStore, settings: Settings, logger: Logger) {
        self.store = store
        self.settings = settings
        self.archiver = CacheArchiver(compression: .available(), identity: settings.identity)
        self.logger = logger
    }

    var cachesDirectory: String { "\(settings.directory)/caches" }
    var artifactsDirectory: String { "\(settings.directory)/artifacts" }

    // MARK: - Caches

    /// The `cache-restore` step: for each cache, the exact key, else the newest cache whose
    /// key starts with one of `restore_keys` (in their order). A miss is not a failure; a
    /// refused or unreadable archive is.
    func restore(_ specs: [CacheSpec], job: JobContext, keys: CacheKeys, out: any StepEvents) async throws -> Int {
        guard let pipelineID = job.pipelineID else {
            try await say(out, "caches belong to a stored pipeline; this job has none, so nothing is restored")
            return 0
        }
        for (index, spec) in specs.enumerated() {
            let key: String
            do {
                key = try renderKey(spec.key, job: job)
            } catch {
                try await say(out, "cache \(index + 1): \(error)")
                return 1
            }
            var found: (cache: StoredCache, exact: Bool)?
            if let exact = try await store.cache(owner: job.owner, pipelineID: pipelineID, key: key), isHere(exact) {
                found = (exact, true)
            } else {
                for template in spec.restoreKeys {
                    let prefix = try renderKey(template, job: job)
                    if let newest = try await store.newestCache(owner: job.owner, pipelineID: pipelineID, keyPrefix: prefix), isHere(newest) {
                        found = (newest, false)
                        break
                    }
                }
            }
            keys.set(index, key: key, exactHit: found?.exact ?? false)
            guard let (cache, exact) = found else {
                try await say(out, "cache '\(key)': miss, nothing restored")
                continue
            }
            try await say(
                out,
                exact ? "cache '\(key)': hit, restoring \(CacheArchiver.megabytes(cache.sizeBytes))"
                    : "cache '\(key)': miss; restoring '\(cache.key)' (a restore_keys match), \(CacheArchiver.megabytes(cache.sizeBytes))")
            let started = ContinuousClock.now
            var files = 0, bytes = 0
            do {
                for root in [WorkspacePath.Root.workspace, .home] {
                    let archive = "\(cachesDirectory)/\(cache.directory)/\(root.rawValue).tar.\(cache.format)"
                    guard FileManager.default.fileExists(atPath: archive) else { continue }
                    let target = job.root(root)
                    try createOwned(target)
                    let unpacked = try await archiver.unpack(
                        archive, into: target, maxFiles: settings.cacheMaxFiles - files, maxBytes: settings.cacheEntryMaxBytes - bytes)
                    files += unpacked.files
                    bytes += unpacked.bytes
                }
            } catch {
                try await say(out, "cache '\(cache.key)': \(error)")
                return 1
            }
            try await store.touchCache(id: cache.id, at: Date())
            try await say(out, "cache '\(cache.key)': restored \(files) entries, \(CacheArchiver.megabytes(bytes)) in \(Self.seconds(since: started))")
        }
        return 0
    }

    /// The `cache-save` step: each cache whose exact key was not restored is packed and kept.
    func save(_ specs: [CacheSpec], job: JobContext, keys: CacheKeys, out: any StepEvents) async throws -> Int {
        guard let pipelineID = job.pipelineID else {
            try await say(out, "caches belong to a stored pipeline; this job has none, so nothing is saved")
            return 0
        }
        for (index, spec) in specs.enumerated() {
            let key: String
            if let restored = keys.get(index) {
                if restored.exactHit {
                    try await say(out, "cache '\(restored.key)': restored by exact key at the start, not saved again")
                    continue
                }
                key = restored.key
            } else {
                do { key = try renderKey(spec.key, job: job) } catch {
                    try await say(out, "cache \(index + 1): \(error)")
                    return 1
                }
            }
            var byRoot: [WorkspacePath.Root: [String]] = [:]
            for path in spec.paths {
                let (root, relative) = WorkspacePath.split(path)
                switch confine(relative, in: job.root(root)) {
                case .missing:
                    try await say(out, "cache '\(key)': '\(path)' does not exist, skipped")
                case .outside:
                    try await say(out, "cache '\(key)': '\(path)' leads out of the \(root == .home ? "job's home" : "workspace") (a symlink): refused")
                    return 1
                case .inside:
                    byRoot[root, default: []].append(relative)
                }
            }
            guard !byRoot.isEmpty else {
                try await say(out, "cache '\(key)': none of its paths exist, nothing saved")
                continue
            }
            let started = ContinuousClock.now
            let name = UUID().uuidString.lowercased()
            let partial = "\(cachesDirectory)/.partial-\(name)"
            var unpacked = 0
            var stored = 0
            do {
                try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
                for root in [WorkspacePath.Root.workspace, .home] {
                    guard let paths = byRoot[root] else { continue }
                    let archive = "\(partial)/\(root.rawValue).tar.\(archiver.compression.rawValue)"
                    unpacked += try await archiver.pack(
                        root: job.root(root), paths: paths, into: archive, maxBytes: settings.cacheEntryMaxBytes - unpacked)
                    stored += Self.size(of: archive)
                }
                try Self.syncDirectory(partial)
                // Complete: only now does it get its real name, then its row.
                guard rename(partial, "\(cachesDirectory)/\(name)") == 0 else {
                    throw CacheArchiver.Failure(description: "could not move the finished cache into place: \(String(cString: strerror(errno)))")
                }
                try Self.syncDirectory(cachesDirectory)
            } catch {
                try? FileManager.default.removeItem(atPath: partial)
                let text = "\(error)"
                let full = text.contains("No space left") || RapidFlowError.isDiskFull(error)
                try await say(out, "cache '\(key)': " + (full ? "the disk is full: the cache was not saved (\(text))" : "not saved: \(text)"))
                return 1
            }
            let now = Date()
            let (_, replaced) = try await store.saveCache(
                StoredCache(
                    id: 0, owner: job.owner, pipelineID: pipelineID, key: key, directory: name, instance: settings.instanceID,
                    sizeBytes: stored, format: archiver.compression.rawValue, jobID: job.jobID, createdAt: now, lastUsedAt: now))
            if let replaced, replaced.instance == settings.instanceID, replaced.directory != name {
                try? FileManager.default.removeItem(atPath: "\(cachesDirectory)/\(replaced.directory)")
            }
            try await say(
                out,
                "cache '\(key)': saved \(CacheArchiver.megabytes(unpacked)) as \(CacheArchiver.megabytes(stored)) (\(archiver.compression == .zstd ? "zstd" : "gzip")) in \(Self.seconds(since: started))")
            let evicted = await evict()
            if !evicted.isEmpty {
                try await say(out, "evicted \(evicted.count) least recently used cache(s) to stay under the cache size limit: \(evicted.map { "'\($0.key)'" }.joined(separator: ", "))")
            }
        }
        return 0
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

    private func renderKey(_ template: String, job: JobContext) throws -> String {
        try CacheKeyTemplate.render(template, branch: job.branch, owner: job.owner, pipeline: job.pipelineName) { pattern in
            try checksum(pattern, in: job.workspace)
        }
    }

    /// SHA-256 over the files `pattern` matches in the workspace (path and content of each, in
    /// path order); of nothing when none matches.
    private func checksum(_ pattern: String, in workspace: String) throws -> String {
        var hasher = SHA256()
        for relative in try WorkspaceGlob.files(matching: WorkspacePath.split(pattern).relative, in: workspace) {
            let full = "\(workspace)/\(relative)"
            guard case .inside = confine(relative, in: workspace) else {
                throw CacheArchiver.Failure(description: "checksum file '\(relative)' leads out of the workspace (a symlink)")
            }
            hasher.update(data: Data(relative.utf8))
            guard let handle = FileHandle(forReadingAtPath: full) else { continue }
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        }
        return WebhookSignature.hex(Data(hasher.finalize()))
    }

    // MARK: - Artifacts

    /// The `artifacts` step: every file the paths name, copied out of the workspace with its
    /// SHA-256. A path leading out (a symlink) fails the step; so does going over the size limit.
    func collect(_ spec: ArtifactSpec, job: JobContext, out: any StepEvents) async throws -> Int {
        var chosen: [(path: String, root: WorkspacePath.Root, relative: String, size: Int)] = []
        var seen = Set<String>()
        for pattern in spec.paths {
            let (root, relative) = WorkspacePath.split(pattern)
            let base = job.root(root)
            let matches = try WorkspaceGlob.files(matching: relative, in: base)
            if matches.isEmpty { try await say(out, "artifacts: nothing matches '\(pattern)'") }
            for match in matches {
                let shown = root == .home ? "~/\(match)" : match
                guard seen.insert(shown).inserted else { continue }
                switch confine(match, in: base) {
                case .outside:
                    try await say(out, "artifacts: '\(shown)' leads out of the \(root == .home ? "job's home" : "workspace") (a symlink): refused")
                    return 1
                case .missing: continue
                case .inside:
                    var info = stat()
                    guard stat("\(base)/\(match)", &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
                    chosen.append((shown, root, match, Int(info.st_size)))
                }
            }
        }
        guard !chosen.isEmpty else {
            try await say(out, "artifacts: no file matched; nothing kept")
            return 0
        }
        let total = chosen.reduce(0) { $0 + $1.size }
        guard total <= settings.artifactMaxBytes else {
            try await say(
                out,
                "artifacts: \(chosen.count) files, \(CacheArchiver.megabytes(total)), over the limit of \(CacheArchiver.megabytes(settings.artifactMaxBytes)) a job may keep (--artifact-max-mb): none kept")
            return 1
        }
        let directory = "\(artifactsDirectory)/job-\(job.jobID)"
        let now = Date()
        let expires = now.addingTimeInterval(spec.expireInDays * 86_400)
        var rows: [StoredArtifact] = []
        do {
            for file in chosen {
                let target = "\(directory)/\(file.root.rawValue)/\(file.relative)"
                let digest = try await CacheArchiver.blocking { try Self.copy("\(job.root(file.root))/\(file.relative)", to: target) }
                rows.append(
                    StoredArtifact(
                        id: 0, jobID: job.jobID, path: file.path, sizeBytes: digest.size, sha256: digest.sha256, instance: settings.instanceID,
                        createdAt: now, expiresAt: expires))
            }
            try await store.addArtifacts(rows)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            let text = "\(error)"
            let full = text.contains("No space left") || RapidFlowError.isDiskFull(error) || (error as NSError).code == Int(ENOSPC)
            try await say(out, "artifacts: " + (full ? "the disk is full: no artifact was kept (\(text))" : "not kept: \(text)"))
            return 1
        }
        for row in rows { try await say(out, "artifact \(row.path): \(row.sizeBytes) bytes, sha256 \(row.sha256)") }
        try await say(out, "artifacts: kept \(rows.count) files, \(CacheArchiver.megabytes(total)), until \(Timestamp.format(expires))")
        return 0
    }

    /// Where an artifact's file is on this replica.
    func file(of artifact: StoredArtifact) -> String {
        let (root, relative) = WorkspacePath.split(artifact.path)
        return "\(artifactsDirectory)/job-\(artifact.jobID)/\(root.rawValue)/\(relative)"
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

    // MARK: - Paths

    enum Confinement {
        case inside
        case outside
        case missing
    }

    /// Whether `relative` under `root` exists and, symlinks followed, stays inside `root`.
    func confine(_ relative: String, in root: String) -> Confinement {
        let full = relative == "." ? root : "\(root)/\(relative)"
        var info = stat()
        guard lstat(full, &info) == 0 else { return .missing }
        guard let resolvedRoot = Self.realPath(root) else { return .missing }
        guard let resolved = Self.realPath(full) else {
            // A dangling symlink: where it points decides.
            return .outside
        }
        return resolved == resolvedRoot || resolved.hasPrefix(resolvedRoot + "/") ? .inside : .outside
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Creates `path` (the job's home, say) for the step user when there is one.
    private func createOwned(_ path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        settings.identity?.own(path)
    }

    /// Copies `source` to `target` (its folders made), returning its size and SHA-256.
    private static func copy(_ source: String, to target: String) throws -> (size: Int, sha256: String) {
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard let input = FileHandle(forReadingAtPath: source) else {
            throw CacheArchiver.Failure(description: "could not read '\(source)'")
        }
        defer { try? input.close() }
        guard FileManager.default.createFile(atPath: target, contents: nil), let output = FileHandle(forWritingAtPath: target) else {
            throw CacheArchiver.Failure(description: "could not write \(target)")
        }
        defer { try? output.close() }
        var hasher = SHA256()
        var size = 0
        while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            try output.write(contentsOf: chunk)
            size += chunk.count
        }
        try output.synchronize()
        return (size, WebhookSignature.hex(Data(hasher.finalize())))
    }

    private static func size(of path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    private static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = fsync(fd)
    }

    private static func seconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = ContinuousClock.now - start
        return String(format: "%.2f s", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    private func say(_ out: any StepEvents, _ line: String) async throws {
        try await out.output(ByteBuffer(string: line + "\n"))
    }
}

/// Files a path or glob names under a root: `*`, `?` and `[...]` match within one path
/// component; a directory brings every file under it. Symlinks are listed, never followed.
enum WorkspaceGlob {
    static func files(matching pattern: String, in root: String) throws -> [String] {
        let components = pattern.split(separator: "/").map(String.init).filter { $0 != "." }
        var results: [String] = []
        walk(components[...], from: "", root: root, into: &results)
        return Array(Set(results)).sorted()
    }

    private static func walk(_ components: ArraySlice<String>, from prefix: String, root: String, into results: inout [String]) {
        let here = prefix.isEmpty ? root : "\(root)/\(prefix)"
        guard let first = components.first else {
            addAll(prefix, root: root, into: &results)
            return
        }
        let rest = components.dropFirst()
        if !first.contains(where: { "*?[".contains($0) }) {
            var info = stat()
            let path = prefix.isEmpty ? first : "\(prefix)/\(first)"
            guard lstat("\(root)/\(path)", &info) == 0 else { return }
            walk(rest, from: path, root: root, into: &results)
            return
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: here) else { return }
        for name in names.sorted() where fnmatch(first, name, FNM_PERIOD) == 0 {
            walk(rest, from: prefix.isEmpty ? name : "\(prefix)/\(name)", root: root, into: &results)
        }
    }

    /// `path` itself when it is not a directory; otherwise every non-directory under it.
    private static func addAll(_ path: String, root: String, into results: inout [String]) {
        let full = path.isEmpty ? root : "\(root)/\(path)"
        var info = stat()
        guard lstat(full, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            results.append(path.isEmpty ? "." : path)
            return
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: full) else { return }
        for name in names { addAll(path.isEmpty ? name : "\(path)/\(name)", root: root, into: &results) }
    }
}
