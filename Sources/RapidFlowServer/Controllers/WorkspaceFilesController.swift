import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RapidFlowAPI
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// `/caches` and a job's artifacts: listing, removing, downloading.
struct WorkspaceFilesController<Context: RequestContext> {
    let store: any JobStore
    let files: WorkspaceFiles

    func addRoutes(to router: Router<Context>) {
        router.get("caches", use: listCaches)
        router.delete("caches/:id", use: deleteCache)
        router.get("jobs/:id/artifacts", use: listArtifacts)
        router.get("jobs/:id/artifacts.tar.gz", use: archive)
        router.get("jobs/:id/artifacts/**", use: download)
    }

    /// `GET /caches?owner=&pipeline_id=&limit=`: most recently used first.
    @Sendable func listCaches(_ request: Request, context: Context) async throws -> APIResponse {
        let query = request.uri.queryParameters
        let owner = query.get("owner")
        if let owner { try JobOwner.check(owner, field: "owner") }
        var pipelineID: Int?
        if let raw = query.get("pipeline_id") {
            guard let id = Int(raw), id > 0 else { throw RapidFlowError(.invalidRequest, "'pipeline_id' must be a positive integer, not '\(raw)'") }
            pipelineID = id
        }
        var limit = 100
        if let raw = query.get("limit") {
            guard let value = Int(raw), (1...1000).contains(value) else {
                throw RapidFlowError(.invalidRequest, "'limit' must be an integer from 1 to 1000, not '\(raw)'")
            }
            limit = value
        }
        let caches = try await files.store.caches(owners: owner.map { [$0] }, pipelineID: pipelineID, limit: limit)
        return try APIResponse(caches.map(Self.cache))
    }

    /// `DELETE /caches/:id`: the next job of its pipeline starts without it.
    @Sendable func deleteCache(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "cache")
        guard try await files.deleteCache(id: id) != nil else {
            throw RapidFlowError(.cacheNotFound, "cache \(id) does not exist")
        }
        return try APIResponse(API.CacheDeleted(id: id))
    }

    /// `GET /jobs/:id/artifacts`.
    @Sendable func listArtifacts(_ request: Request, context: Context) async throws -> APIResponse {
        let job = try await store.requireJob(id: try RequestParsing.id(context, what: "job"))
        let artifacts = try await files.store.artifacts(jobID: job.id)
        return try APIResponse(
            API.ArtifactList(
                jobID: job.id,
                artifacts: artifacts.map {
                    API.Artifact(jobID: job.id, path: $0.path, sizeBytes: $0.sizeBytes, sha256: $0.sha256, createdAt: $0.createdAt, expiresAt: $0.expiresAt)
                }))
    }

    /// `GET /jobs/:id/artifacts/<path>`: the file, whole or a byte range.
    @Sendable func download(_ request: Request, context: Context) async throws -> Response {
        let job = try await store.requireJob(id: try RequestParsing.id(context, what: "job"))
        let path = context.parameters.getCatchAll().map { String($0).removingPercentEncoding ?? String($0) }.joined(separator: "/")
        guard let artifact = try await files.store.artifact(jobID: job.id, path: path) else {
            throw RapidFlowError(.artifactNotFound, "job \(job.id) kept no artifact '\(path)'; GET /jobs/\(job.id)/artifacts lists what it kept")
        }
        let file = files.file(of: artifact)
        guard let handle = FileHandle(forReadingAtPath: file) else {
            throw RapidFlowError(
                .artifactNotFound,
                artifact.instance == files.settings.instanceID
                    ? "the file of artifact '\(path)' is gone from the data directory"
                    : "artifact '\(path)' is kept by another replica (\(artifact.instance)); ask that one")
        }
        let size = artifact.sizeBytes
        var headers: HTTPFields = [
            .contentType: "application/octet-stream", .acceptRanges: "bytes",
            .contentDisposition: Self.disposition(filename: (path as NSString).lastPathComponent),
            .init("X-Content-SHA256")!: artifact.sha256,
        ]
        var status = HTTPResponse.Status.ok
        var range = 0..<size
        if let header = request.headers[.range] {
            switch Self.parseRange(header, size: size) {
            case .whole: break
            case .unsatisfiable:
                try? handle.close()
                var refused = APIResponse.failure(RapidFlowError(.rangeNotSatisfiable, "the range '\(header)' is outside the artifact's \(size) bytes"))
                refused.headers[.contentRange] = "bytes */\(size)"
                return refused
            case .range(let bytes):
                range = bytes
                status = .partialContent
                headers[.contentRange] = "bytes \(bytes.lowerBound)-\(bytes.upperBound - 1)/\(size)"
            }
        }
        headers[.contentLength] = String(range.count)
        let bytes = range
        let body = ResponseBody(contentLength: bytes.count) { writer in
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(bytes.lowerBound))
            var left = bytes.count
            while left > 0 {
                guard let chunk = try handle.read(upToCount: min(left, 256 << 10)), !chunk.isEmpty else { break }
                try await writer.write(ByteBuffer(bytes: chunk))
                left -= chunk.count
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// `GET /jobs/:id/artifacts.tar.gz`: every artifact of the job in one archive, made by
    /// `tar` as it is sent (nothing built in memory or on disk). Files of the job's home are
    /// under `~/`.
    @Sendable func archive(_ request: Request, context: Context) async throws -> Response {
        let job = try await store.requireJob(id: try RequestParsing.id(context, what: "job"))
        let artifacts = try await files.store.artifacts(jobID: job.id)
        guard !artifacts.isEmpty else {
            throw RapidFlowError(.artifactNotFound, "job \(job.id) kept no artifacts")
        }
        let directory = "\(files.artifactsDirectory)/job-\(job.id)"
        // The files only (their folders come with them), named as the list names them.
        let members = artifacts.map { artifact in
            let (root, relative) = WorkspacePath.split(artifact.path)
            return "\(root.rawValue)/\(relative)"
        }.filter { FileManager.default.fileExists(atPath: "\(directory)/\($0)") }
        guard !members.isEmpty else {
            throw RapidFlowError(.artifactNotFound, "job \(job.id)'s artifacts are kept by another replica (\(artifacts[0].instance))")
        }
        let headers: HTTPFields = [
            .contentType: "application/gzip", .contentDisposition: Self.disposition(filename: "job-\(job.id)-artifacts.tar.gz"),
        ]
        let body = ResponseBody { writer in
            try await ProcessOutput.stream(
                ["tar", "--create", "--gzip", "--file=-", "--no-recursion", "--directory", directory, "--transform", "s,^workspace/,,",
                 "--transform", "s,^home/,~/,", "--"] + members
            ) { chunk in try await writer.write(chunk) }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    enum RangeRequest: Equatable {
        case whole
        case range(Range<Int>)
        case unsatisfiable
    }

    /// One `bytes=` range (`a-b`, `a-`, `-n`); anything else is served whole, as RFC 9110 allows.
    static func parseRange(_ header: String, size: Int) -> RangeRequest {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst("bytes=".count).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int(last), suffix > 0 else { return first.isEmpty && last == "0" ? .unsatisfiable : .whole }
            return size == 0 ? .unsatisfiable : .range(max(0, size - suffix)..<size)
        }
        guard let start = Int(first), start >= 0 else { return .whole }
        guard start < size else { return .unsatisfiable }
        if last.isEmpty { return .range(start..<size) }
        guard let end = Int(last), end >= start else { return .whole }
        return .range(start..<min(end + 1, size))
    }

    static func disposition(filename: String) -> String {
        let plain = String(filename.unicodeScalars.map { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 0x20 ? Character($0) : "_" })
        let encoded = filename.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? plain
        return "attachment; filename=\"\(plain)\"; filename*=UTF-8''\(encoded)"
    }

    static func cache(_ cache: StoredCache) -> API.Cache {
        API.Cache(
            id: cache.id, owner: cache.owner, pipelineID: cache.pipelineID, key: cache.key, sizeBytes: cache.sizeBytes,
            compression: cache.format, jobID: cache.jobID, instance: cache.instance, createdAt: cache.createdAt, lastUsedAt: cache.lastUsedAt)
    }
}

/// A child process's standard output, read on a thread of its own and handed over a chunk at
/// a time, at most a few chunks ahead of the consumer: a slow client slows `tar`, and a gone
/// one stops it.
enum ProcessOutput {
    static func stream(_ arguments: [String], _ consume: (ByteBuffer) async throws -> Void) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "LC_ALL": "C"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try ProcessSpawning.run(process)
        let reader = pipe.fileHandleForReading
        let (chunks, continuation) = AsyncThrowingStream<Data, any Error>.makeStream()
        let slots = DispatchSemaphore(value: 4)
        let stopped = NSLock()
        nonisolated(unsafe) var isStopped = false
        Thread.detachNewThread {
            while true {
                slots.wait()
                if stopped.withLock({ isStopped }) { break }
                guard let data = try? reader.read(upToCount: 256 << 10), !data.isEmpty else { break }
                continuation.yield(data)
            }
            try? reader.close()
            continuation.finish()
        }
        defer {
            stopped.withLock { isStopped = true }
            slots.signal()
            if process.isRunning { process.terminate() }
        }
        for try await data in chunks {
            try await consume(ByteBuffer(bytes: data))
            slots.signal()
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RapidFlowError(.internalError, "tar failed (exit \(process.terminationStatus)) while packing the artifacts")
        }
    }
}
