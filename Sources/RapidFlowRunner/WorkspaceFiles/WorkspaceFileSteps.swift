import Crypto
import Foundation
import NIOCore
import RapidFlowCore

/// A file an `artifacts` step keeps.
public struct ArtifactFile: Sendable {
    /// As listed: relative to the workspace, or `~/…` in the job's home.
    public var path: String
    public var root: WorkspacePath.Root
    public var relative: String
    /// Where it is on this machine.
    public var source: String
}

/// A cache being saved: its archives are written into `directory`, then kept or discarded.
public struct CacheDraft: Sendable {
    public var name: String
    public var directory: String

    public init(name: String, directory: String) {
        self.name = name
        self.directory = directory
    }
}

/// Where a job's caches and artifacts are kept: the service's data directory, reached directly
/// when the workspace is on the service's machine, or over a runner's channel when it is not.
/// The keeper decides which cache a key finds (scoped to the job's owner and pipeline) and
/// makes a saved cache whole before anyone can find it.
public protocol WorkspaceFileKeeper: Sendable {
    /// The cache of `key`, else the newest whose key starts with one of `prefixes` (in order).
    /// A found cache counts as used.
    func findCache(key: String, prefixes: [String]) async throws -> FoundCache?
    /// The archive of `cache`'s `root` as a file here, nil when the cache has none for it, and
    /// whether it is a copy to remove once unpacked.
    func archive(of cache: FoundCache, root: WorkspacePath.Root) async throws -> (path: String, temporary: Bool)?
    /// A new, empty directory for a cache's archives.
    func draft() async throws -> CacheDraft
    /// Keeps the draft's archives (`<root>.tar.<format>`) under `key`.
    func keep(_ draft: CacheDraft, key: String, format: CacheArchiver.Compression) async throws -> SavedCache
    /// Removes a draft that is not kept.
    func discard(_ draft: CacheDraft) async
    /// Keeps `files` as the job's artifacts for `expireInDays`; all or none.
    func keepArtifacts(_ files: [ArtifactFile], expireInDays: Double) async throws -> [KeptArtifact]
}

/// A job's `cache-restore`, `cache-save` and `artifacts` steps, run where its workspace is:
/// keys filled in, paths confined, archives packed and unpacked here; what is found and kept
/// is the keeper's.
public struct WorkspaceFileSteps: Sendable {
    /// The workspace and home the paths are in, with what the keys' placeholders stand for.
    public struct Job: Sendable {
        public var context: WorkspaceFilesContext
        public var workspace: String
        public var home: String

        public init(context: WorkspaceFilesContext, workspace: String, home: String) {
            self.context = context
            self.workspace = workspace
            self.home = home
        }

        func root(_ root: WorkspacePath.Root) -> String { root == .workspace ? workspace : home }
    }

    /// What the restore step found, for the save step of the same job: the keys as filled in
    /// then (a checksum file may change while the job runs), and which were exact hits.
    public final class CacheKeys: @unchecked Sendable {
        private let lock = NSLock()
        private var keys: [Int: (key: String, exactHit: Bool)] = [:]

        public init() {}

        func set(_ index: Int, key: String, exactHit: Bool) { lock.withLock { keys[index] = (key, exactHit) } }
        func get(_ index: Int) -> (key: String, exactHit: Bool)? { lock.withLock { keys[index] } }
    }

    public let keeper: any WorkspaceFileKeeper
    public let archiver: CacheArchiver

    public init(keeper: any WorkspaceFileKeeper, identity: StepIdentity?) {
        self.keeper = keeper
        self.archiver = CacheArchiver(compression: .available(), identity: identity)
    }

    /// Runs a workspace step of `type` with its stored `content`; its exit code.
    public func run(_ type: StepType, content: String, job: Job, keys: CacheKeys, out: any StepEvents) async throws -> Int {
        try FileManager.default.createDirectory(atPath: job.workspace, withIntermediateDirectories: true)
        do {
            switch type {
            case .cacheRestore: return try await restore(WorkspaceStepContent.decode([CacheSpec].self, from: content), job: job, keys: keys, out: out)
            case .cacheSave: return try await save(WorkspaceStepContent.decode([CacheSpec].self, from: content), job: job, keys: keys, out: out)
            case .artifacts: return try await collect(WorkspaceStepContent.decode(ArtifactSpec.self, from: content), job: job, out: out)
            default: return 1
            }
        } catch let error as DecodingError {
            try await say(out, "the step's stored description could not be read: \(error)")
            return 1
        }
    }

    // MARK: - Caches

    /// The `cache-restore` step: for each cache, the exact key, else the newest cache whose
    /// key starts with one of `restore_keys` (in their order). A miss is not a failure; a
    /// refused or unreadable archive is.
    func restore(_ specs: [CacheSpec], job: Job, keys: CacheKeys, out: any StepEvents) async throws -> Int {
        guard job.context.pipelineID != nil else {
            try await say(out, "caches belong to a stored pipeline; this job has none, so nothing is restored")
            return 0
        }
        let limits = job.context.limits
        for (index, spec) in specs.enumerated() {
            let key: String
            let prefixes: [String]
            do {
                key = try renderKey(spec.key, job: job)
                prefixes = try spec.restoreKeys.map { try renderKey($0, job: job) }
            } catch {
                try await say(out, "cache \(index + 1): \(error)")
                return 1
            }
            let found = try await keeper.findCache(key: key, prefixes: prefixes)
            keys.set(index, key: key, exactHit: found?.exact ?? false)
            guard let cache = found else {
                try await say(out, "cache '\(key)': miss, nothing restored")
                continue
            }
            try await say(
                out,
                cache.exact ? "cache '\(key)': hit, restoring \(CacheArchiver.megabytes(cache.sizeBytes))"
                    : "cache '\(key)': miss; restoring '\(cache.key)' (a restore_keys match), \(CacheArchiver.megabytes(cache.sizeBytes))")
            let started = ContinuousClock.now
            var files = 0, bytes = 0
            do {
                for root in [WorkspacePath.Root.workspace, .home] {
                    guard let archive = try await keeper.archive(of: cache, root: root) else { continue }
                    defer { if archive.temporary { try? FileManager.default.removeItem(atPath: archive.path) } }
                    let target = job.root(root)
                    try createOwned(target)
                    let unpacked = try await archiver.unpack(
                        archive.path, format: CacheArchiver.Compression(rawValue: cache.format) ?? .gzip, into: target,
                        maxFiles: limits.cacheMaxFiles - files, maxBytes: limits.cacheEntryMaxBytes - bytes)
                    files += unpacked.files
                    bytes += unpacked.bytes
                }
            } catch {
                try await say(out, "cache '\(cache.key)': \(error)")
                return 1
            }
            try await say(out, "cache '\(cache.key)': restored \(files) entries, \(CacheArchiver.megabytes(bytes)) in \(Self.seconds(since: started))")
        }
        return 0
    }

    /// The `cache-save` step: each cache whose exact key was not restored is packed and kept.
    func save(_ specs: [CacheSpec], job: Job, keys: CacheKeys, out: any StepEvents) async throws -> Int {
        guard job.context.pipelineID != nil else {
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
                switch Self.confine(relative, in: job.root(root)) {
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
            var unpacked = 0
            let saved: SavedCache
            var draft: CacheDraft?
            do {
                let made = try await keeper.draft()
                draft = made
                for root in [WorkspacePath.Root.workspace, .home] {
                    guard let paths = byRoot[root] else { continue }
                    let archive = "\(made.directory)/\(root.rawValue).tar.\(archiver.compression.rawValue)"
                    unpacked += try await archiver.pack(
                        root: job.root(root), paths: paths, into: archive, maxBytes: job.context.limits.cacheEntryMaxBytes - unpacked)
                }
                saved = try await keeper.keep(made, key: key, format: archiver.compression)
            } catch {
                if let draft { await keeper.discard(draft) }
                let text = "\(error)"
                let full = RapidFlowError.isDiskFull(error)
                try await say(out, "cache '\(key)': " + (full ? "the disk is full: the cache was not saved (\(text))" : "not saved: \(text)"))
                return 1
            }
            try await say(
                out,
                "cache '\(key)': saved \(CacheArchiver.megabytes(unpacked)) as \(CacheArchiver.megabytes(saved.storedBytes)) (\(archiver.compression == .zstd ? "zstd" : "gzip")) in \(Self.seconds(since: started))")
            if !saved.evicted.isEmpty {
                try await say(
                    out,
                    "evicted \(saved.evicted.count) least recently used cache(s) to stay under the cache size limit: \(saved.evicted.map { "'\($0)'" }.joined(separator: ", "))")
            }
        }
        return 0
    }

    private func renderKey(_ template: String, job: Job) throws -> String {
        try CacheKeyTemplate.render(template, branch: job.context.branch, owner: job.context.owner, pipeline: job.context.pipelineName) { pattern in
            try Self.checksum(pattern, in: job.workspace)
        }
    }

    /// SHA-256 over the files `pattern` matches in the workspace (path and content of each, in
    /// path order); of nothing when none matches.
    private static func checksum(_ pattern: String, in workspace: String) throws -> String {
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
        return hex(Data(hasher.finalize()))
    }

    // MARK: - Artifacts

    /// The `artifacts` step: every file the paths name, kept with its SHA-256. A path leading
    /// out (a symlink) fails the step; so does going over the size limit.
    func collect(_ spec: ArtifactSpec, job: Job, out: any StepEvents) async throws -> Int {
        var chosen: [(file: ArtifactFile, size: Int)] = []
        var seen = Set<String>()
        for pattern in spec.paths {
            let (root, relative) = WorkspacePath.split(pattern)
            let base = job.root(root)
            let matches = try WorkspaceGlob.files(matching: relative, in: base)
            if matches.isEmpty { try await say(out, "artifacts: nothing matches '\(pattern)'") }
            for match in matches {
                let shown = root == .home ? "~/\(match)" : match
                guard seen.insert(shown).inserted else { continue }
                switch Self.confine(match, in: base) {
                case .outside:
                    try await say(out, "artifacts: '\(shown)' leads out of the \(root == .home ? "job's home" : "workspace") (a symlink): refused")
                    return 1
                case .missing: continue
                case .inside:
                    var info = stat()
                    guard stat("\(base)/\(match)", &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
                    chosen.append((ArtifactFile(path: shown, root: root, relative: match, source: "\(base)/\(match)"), Int(info.st_size)))
                }
            }
        }
        guard !chosen.isEmpty else {
            try await say(out, "artifacts: no file matched; nothing kept")
            return 0
        }
        let total = chosen.reduce(0) { $0 + $1.size }
        let limit = job.context.limits.artifactMaxBytes
        guard total <= limit else {
            try await say(
                out,
                "artifacts: \(chosen.count) files, \(CacheArchiver.megabytes(total)), over the limit of \(CacheArchiver.megabytes(limit)) a job may keep (--artifact-max-mb): none kept")
            return 1
        }
        let kept: [KeptArtifact]
        do {
            kept = try await keeper.keepArtifacts(chosen.map(\.file), expireInDays: spec.expireInDays)
        } catch {
            let text = "\(error)"
            let full = RapidFlowError.isDiskFull(error)
            try await say(out, "artifacts: " + (full ? "the disk is full: no artifact was kept (\(text))" : "not kept: \(text)"))
            return 1
        }
        for row in kept { try await say(out, "artifact \(row.path): \(row.sizeBytes) bytes, sha256 \(row.sha256)") }
        let expires = Date().addingTimeInterval(spec.expireInDays * 86_400)
        try await say(out, "artifacts: kept \(kept.count) files, \(CacheArchiver.megabytes(total)), until \(Timestamp.format(expires))")
        return 0
    }

    // MARK: - Paths and files

    public enum Confinement {
        case inside
        case outside
        case missing
    }

    /// Whether `relative` under `root` exists and, symlinks followed, stays inside `root`.
    public static func confine(_ relative: String, in root: String) -> Confinement {
        let full = relative == "." ? root : "\(root)/\(relative)"
        var info = stat()
        guard lstat(full, &info) == 0 else { return .missing }
        guard let resolvedRoot = realPath(root) else { return .missing }
        guard let resolved = realPath(full) else {
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
        archiver.identity?.own(path)
    }

    /// Copies `source` to `target` (its folders made, the file flushed), returning its size and SHA-256.
    public static func copy(_ source: String, to target: String) throws -> (size: Int, sha256: String) {
        guard let input = FileHandle(forReadingAtPath: source) else {
            throw CacheArchiver.Failure(description: "could not read '\(source)'")
        }
        defer { try? input.close() }
        return try write(to: target) { try input.read(upToCount: 1 << 20) }
    }

    /// Writes the chunks `next` gives (until nil or empty) to `target`, its folders made, and
    /// flushes it; its size and SHA-256.
    public static func write(to target: String, next: () throws -> Data?) throws -> (size: Int, sha256: String) {
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: target, contents: nil), let output = FileHandle(forWritingAtPath: target) else {
            throw CacheArchiver.Failure(description: "could not write \(target)")
        }
        defer { try? output.close() }
        var hasher = SHA256()
        var size = 0
        while let chunk = try next(), !chunk.isEmpty {
            hasher.update(data: chunk)
            try output.write(contentsOf: chunk)
            size += chunk.count
        }
        try output.synchronize()
        return (size, hex(Data(hasher.finalize())))
    }

    public static func hex(_ data: Data) -> String {
        data.map { String(format: "%02x", $0) }.joined()
    }

    public static func size(of path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    public static func syncDirectory(_ path: String) {
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
public enum WorkspaceGlob {
    public static func files(matching pattern: String, in root: String) throws -> [String] {
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
