import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowRunner

/// A runner's side of its job's caches and artifacts: the service finds and keeps them; the
/// archives and files travel over the runner's channel, with the job's token. Downloads and
/// drafts wait in `scratch`, beside the workspaces (never in one: the steps do not see them).
struct RunnerWorkspaceKeeper: WorkspaceFileKeeper {
    let api: RunnerAPI
    let stepID: Int
    let scratch: String

    /// Moving an archive may take a while; a stalled transfer still ends.
    static let transferTimeout = TimeAmount.minutes(30)

    private var step: String { "/steps/\(stepID)" }

    func findCache(key: String, prefixes: [String]) async throws -> FoundCache? {
        let found: API.RunnerCacheFound = try await api.call(.POST, "\(step)/caches/find", json: API.RunnerCacheFind(key: key, restoreKeys: prefixes))
        return found.cache
    }

    func archive(of cache: FoundCache, root: WorkspacePath.Root) async throws -> (path: String, temporary: Bool)? {
        let path = "\(step)/caches/\(cache.id)/\(root.rawValue)"
        let response = try await api.send(.GET, path, timeout: Self.transferTimeout)
        guard response.status == .ok else {
            // 404: the cache has nothing under this root (a cache of the workspace only, say).
            if response.status == .notFound { return nil }
            // The service's refusal, thrown.
            let _: API.RunnerDiscarded = try await RunnerAPI.decode(response, .GET, path)
            throw RunnerFailure(description: "GET \(path) answered \(response.status.code)", status: Int(response.status.code))
        }
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let file = "\(scratch)/download-\(UUID().uuidString.lowercased()).tar.\(cache.format)"
        guard FileManager.default.createFile(atPath: file, contents: nil), let output = FileHandle(forWritingAtPath: file) else {
            throw CacheArchiver.Failure(description: "could not write \(file)")
        }
        defer { try? output.close() }
        do {
            for try await buffer in response.body { try output.write(contentsOf: buffer.readableBytesView) }
        } catch {
            try? FileManager.default.removeItem(atPath: file)
            throw error
        }
        return (file, true)
    }

    func draft() async throws -> CacheDraft {
        let name = UUID().uuidString.lowercased()
        let draft = CacheDraft(name: name, directory: "\(scratch)/draft-\(name)")
        try FileManager.default.createDirectory(atPath: draft.directory, withIntermediateDirectories: true)
        return draft
    }

    func keep(_ draft: CacheDraft, key: String, format: CacheArchiver.Compression) async throws -> SavedCache {
        defer { try? FileManager.default.removeItem(atPath: draft.directory) }
        for root in [WorkspacePath.Root.workspace, .home] {
            let file = "\(draft.directory)/\(root.rawValue).tar.\(format.rawValue)"
            guard FileManager.default.fileExists(atPath: file) else { continue }
            let _: API.RunnerDraftReceived = try await upload(file, to: "\(step)/caches/drafts/\(draft.name)/\(root.rawValue)?format=\(format.rawValue)")
        }
        return try await api.call(.POST, "\(step)/caches/drafts/\(draft.name)", json: API.RunnerCacheKeep(key: key, format: format.rawValue))
    }

    func discard(_ draft: CacheDraft) async {
        try? FileManager.default.removeItem(atPath: draft.directory)
        let _: API.RunnerDiscarded? = try? await api.call(.DELETE, "\(step)/caches/drafts/\(draft.name)", timeout: .seconds(60))
    }

    func keepArtifacts(_ files: [ArtifactFile], expireInDays: Double) async throws -> [KeptArtifact] {
        do {
            for file in files {
                var query = URLComponents()
                query.queryItems = [URLQueryItem(name: "path", value: file.path)]
                let _: KeptArtifact = try await upload(file.source, to: "\(step)/artifacts?\(query.percentEncodedQuery ?? "")")
            }
            let kept: API.RunnerArtifactsKept = try await api.call(.POST, "\(step)/artifacts", json: API.RunnerArtifactsKeep(expireInDays: expireInDays))
            return kept.artifacts
        } catch {
            let _: API.RunnerDiscarded? = try? await api.call(.DELETE, "\(step)/artifacts", timeout: .seconds(60))
            throw error
        }
    }

    /// PUTs the file at `source` as the body, read as it is sent.
    private func upload<T: Decodable>(_ source: String, to path: String) async throws -> T {
        let size = WorkspaceFileSteps.size(of: source)
        let response = try await api.send(
            .PUT, path, body: { .stream(try FileChunks(path: source), length: .known(Int64(size))) },
            headers: ["Content-Type": "application/octet-stream"], timeout: Self.transferTimeout)
        return try await RunnerAPI.decode(response, .PUT, path)
    }
}

/// A file's bytes, 1 MiB at a time.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String

    init(path: String) throws {
        guard FileManager.default.isReadableFile(atPath: path) else { throw CacheArchiver.Failure(description: "could not read '\(path)'") }
        self.path = path
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle?

        mutating func next() async throws -> ByteBuffer? {
            guard let handle, let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty else {
                try? handle?.close()
                return nil
            }
            return ByteBuffer(data: chunk)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: FileHandle(forReadingAtPath: path)) }
}

/// The runner's executor: a job's cache and artifacts steps run here with the channel as
/// their keeper; every other step goes to the local executor.
struct RunnerStepExecutor: StepExecutor {
    let local: any StepExecutor
    let api: RunnerAPI
    let scratch: String
    let identity: StepIdentity?
    /// What the job's restore step found, for its save step.
    let keys = WorkspaceFileSteps.CacheKeys()

    var name: String { local.name }

    func run(_ step: StepInvocation, events: any StepEvents) async throws -> Int {
        guard step.type.isWorkspaceStep else { return try await local.run(step, events: events) }
        guard let context = step.workspaceFiles else {
            try await events.output(ByteBuffer(string: "the service sent no cache or artifacts settings with this step\n"))
            return 1
        }
        let steps = WorkspaceFileSteps(keeper: RunnerWorkspaceKeeper(api: api, stepID: step.stepID, scratch: scratch), identity: identity)
        return try await steps.run(
            step.type, content: step.content, job: .init(context: context, workspace: step.workspace, home: step.home ?? step.workspace + "-home"),
            keys: keys, out: events)
    }
}

extension RunnerAPI {
    /// A call whose body is `json` encoded.
    func call<T: Decodable>(_ method: HTTPMethod, _ path: String, json: some Encodable) async throws -> T {
        try await call(method, path, body: ByteBuffer(data: try JSONEncoder().encode(json)), headers: ["Content-Type": "application/json"], timeout: .seconds(120))
    }
}
