import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RapidFlowAPI
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// `/runner/jobs/:id/…`: what a job's `rapidflow runner` calls, with the job's own token
/// (`Authorization: Bearer <runner token>`) instead of the service's API token.
struct RunnerController<Context: RequestContext> {
    let hub: RunnerHub
    /// Where caches and artifacts are kept (nil: not on this service).
    var files: WorkspaceFiles? = nil
    /// Longest a long poll is held; the runner asks again after.
    static var maxWait: Int { 60 }

    func addRoutes(to router: Router<Context>) {
        router.get("runner/jobs/:id/next", use: next)
        router.post("runner/jobs/:id/steps/:step/output", use: output)
        router.post("runner/jobs/:id/steps/:step/exit", use: exit)
        router.get("runner/jobs/:id/steps/:step/signal", use: signal)
        // A runner on another machine runs its job's cache and artifacts steps itself and
        // moves the archives and files here.
        router.post("runner/jobs/:id/steps/:step/caches/find", use: findCache)
        router.get("runner/jobs/:id/steps/:step/caches/:cache/:root", use: cacheArchive)
        router.put("runner/jobs/:id/steps/:step/caches/drafts/:name/:root", use: uploadDraft)
        router.post("runner/jobs/:id/steps/:step/caches/drafts/:name", use: keepDraft)
        router.delete("runner/jobs/:id/steps/:step/caches/drafts/:name", use: discardDraft)
        router.put("runner/jobs/:id/steps/:step/artifacts", use: uploadArtifact)
        router.post("runner/jobs/:id/steps/:step/artifacts", use: keepArtifacts)
        router.delete("runner/jobs/:id/steps/:step/artifacts", use: discardArtifacts)
    }

    /// Checks the runner's token and returns the job's session.
    private func authorize(_ request: Request, _ context: Context) async throws -> RunnerSession {
        let jobID = try RequestParsing.id(context, what: "job")
        let header = request.headers[.authorization] ?? ""
        guard header.hasPrefix("Bearer ") else {
            throw RapidFlowError(.unauthorized, "missing runner token: send 'Authorization: Bearer <the job's runner token>'")
        }
        return try hub.authorize(jobID: jobID, token: String(header.dropFirst("Bearer ".count)))
    }

    private func wait(_ request: Request) throws -> Duration {
        .seconds(try RequestParsing.queryInt(request, "wait", range: 0...Self.maxWait) ?? 25)
    }

    /// The next step to run: `{"step": {...}}`, `{"step": null}` when none came within `wait`
    /// seconds, or `{"done": true}` when the job is over.
    @Sendable func next(_ request: Request, context: Context) async throws -> APIResponse {
        let session = try await authorize(request, context)
        switch await session.next(wait: try wait(request)) {
        case .step(let step): return try APIResponse(API.RunnerNext(done: false, step: step))
        case .none: return try APIResponse(API.RunnerNext(done: false, step: nil))
        case .done: return try APIResponse(API.RunnerNext(done: true, step: nil))
        }
    }

    /// Raw output bytes of the step, from the byte offset in `RapidFlow-Offset` (default 0).
    @Sendable func output(_ request: Request, context: Context) async throws -> APIResponse {
        let session = try await authorize(request, context)
        let stepID = try RequestParsing.id(context, "step", what: "step")
        let rawOffset = request.headers[HTTPField.Name("RapidFlow-Offset")!] ?? "0"
        guard let offset = Int(rawOffset), (0...(1 << 48)).contains(offset) else {
            throw RapidFlowError(.invalidRequest, "header RapidFlow-Offset must be a byte offset (a whole number from 0), got '\(rawOffset)'")
        }
        let body = try await request.body.collect(upTo: 4 << 20)
        try await session.output(stepID: stepID, offset: offset, data: body)
        return try APIResponse(API.RunnerOutputReceived(received: offset + body.readableBytes))
    }

    /// The step's end: `{"exit_code": 0}`, or `{"error": "why it could not run"}`.
    @Sendable func exit(_ request: Request, context: Context) async throws -> APIResponse {
        let session = try await authorize(request, context)
        let stepID = try RequestParsing.id(context, "step", what: "step")
        // An exit code is 0–255, as a process can exit (128 + n for a signal n).
        let body = try await request.decodeJSON(as: API.StepExit.self, limits: .default) ?? API.StepExit()
        guard body.exitCode != nil || body.error != nil else {
            throw RapidFlowError(.invalidRequest, "send 'exit_code' (the step's exit code) or 'error' (why it could not run)")
        }
        try await session.finish(stepID: stepID, exitCode: body.exitCode, error: body.error)
        return try APIResponse(API.RunnerStepRecorded(stepID: stepID))
    }

    /// The signal to stop the step with: `{"signal": 15}`, or `{"signal": null}` when none came within `wait`.
    @Sendable func signal(_ request: Request, context: Context) async throws -> APIResponse {
        let session = try await authorize(request, context)
        let stepID = try RequestParsing.id(context, "step", what: "step")
        let signal = await session.signal(stepID: stepID, wait: try wait(request))
        return try APIResponse(API.RunnerSignal(signal: signal.map(Int.init)))
    }
}

// MARK: - Caches and artifacts of a runner elsewhere

extension RunnerController {
    /// The session, the job whose files its current step moves, and where they are kept.
    private func workspaceStep(_ request: Request, _ context: Context) async throws -> (RunnerSession, WorkspaceFiles.Owner, WorkspaceFiles) {
        let session = try await authorize(request, context)
        let stepID = try RequestParsing.id(context, "step", what: "step")
        guard let files else { throw RapidFlowError(.invalidRequest, "caches and artifacts are not available on this service") }
        return (session, try await session.workspaceJob(stepID: stepID), files)
    }

    private func root(_ context: Context) throws -> WorkspacePath.Root {
        let raw = context.parameters.get("root") ?? ""
        guard let root = WorkspacePath.Root(rawValue: raw) else {
            throw RapidFlowError(.invalidRequest, "the archive's root must be 'workspace' or 'home', got '\(raw)'")
        }
        return root
    }

    /// `{"key": …, "restore_keys": […]}` → the cache to restore (the exact key, else the newest
    /// with a prefix), of the job's owner and pipeline only; null when none.
    @Sendable func findCache(_ request: Request, context: Context) async throws -> APIResponse {
        let (_, job, files) = try await workspaceStep(request, context)
        let body = try await request.decodeJSON(as: API.RunnerCacheFind.self, limits: .default)
        guard let body else { throw RapidFlowError(.invalidRequest, "send the cache's 'key' (and its 'restore_keys')") }
        return try APIResponse(API.RunnerCacheFound(cache: try await files.findCache(for: job, key: body.key, prefixes: body.restoreKeys)))
    }

    /// The compressed archive of a found cache's `workspace` or `home`.
    @Sendable func cacheArchive(_ request: Request, context: Context) async throws -> Response {
        let (_, job, files) = try await workspaceStep(request, context)
        let id = try RequestParsing.id(context, "cache", what: "cache")
        guard let path = try await files.archive(of: id, root: try root(context), for: job), let handle = FileHandle(forReadingAtPath: path) else {
            throw RapidFlowError(.cacheNotFound, "cache \(id) has no such archive for this job's pipeline on this replica")
        }
        let size = WorkspaceFileSteps.size(of: path)
        let body = ResponseBody(contentLength: size) { writer in
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream", .contentLength: String(size)], body: body)
    }

    /// The body is one archive of a cache being saved (`:name`, a UUID the runner chose),
    /// written into the draft's folder; a draft never restores until it is kept.
    @Sendable func uploadDraft(_ request: Request, context: Context) async throws -> APIResponse {
        let (session, job, files) = try await workspaceStep(request, context)
        let name = context.parameters.get("name") ?? ""
        guard let draft = files.runnerDraft(named: name, jobID: job.jobID) else {
            throw RapidFlowError(.invalidRequest, "a draft's name is a lowercase UUID, got '\(name)'")
        }
        let root = try root(context)
        let format = request.uri.queryParameters.get("format") ?? ""
        guard CacheArchiver.Compression(rawValue: format) != nil else {
            throw RapidFlowError(.invalidRequest, "query parameter 'format' must be 'zst' or 'gz', got '\(format)'")
        }
        await session.useDraft(name, directory: draft.directory)
        try FileManager.default.createDirectory(atPath: draft.directory, withIntermediateDirectories: true)
        let stored = try await Self.receive(
            request.body, into: "\(draft.directory)/\(root.rawValue).tar.\(format)", maxBytes: files.settings.cacheEntryMaxBytes, what: "a cache archive")
        return try APIResponse(API.RunnerDraftReceived(storedBytes: stored.size))
    }

    /// Keeps an uploaded draft as the cache of `key`, as a save on this machine does.
    @Sendable func keepDraft(_ request: Request, context: Context) async throws -> APIResponse {
        let (session, job, files) = try await workspaceStep(request, context)
        let name = context.parameters.get("name") ?? ""
        guard let body = try await request.decodeJSON(as: API.RunnerCacheKeep.self, limits: .default) else {
            throw RapidFlowError(.invalidRequest, "send the cache's 'key' and its archives' 'format'")
        }
        guard await session.ownsDraft(name, release: true), let draft = files.runnerDraft(named: name, jobID: job.jobID) else {
            throw RapidFlowError(.invalidRequest, "draft '\(name)' is not one this job's runner uploaded")
        }
        do {
            return try APIResponse(try await files.keep(draft, key: body.key, format: CacheArchiver.Compression(rawValue: body.format) ?? .gzip, for: job))
        } catch {
            files.discard(draft)
            throw RapidFlowError(RapidFlowError.isDiskFull(error) ? .insufficientStorage : .invalidRequest, "the cache was not kept: \(error)")
        }
    }

    @Sendable func discardDraft(_ request: Request, context: Context) async throws -> APIResponse {
        let (session, job, files) = try await workspaceStep(request, context)
        let name = context.parameters.get("name") ?? ""
        guard await session.ownsDraft(name, release: true), let draft = files.runnerDraft(named: name, jobID: job.jobID) else {
            return try APIResponse(API.RunnerDiscarded(discarded: false))
        }
        files.discard(draft)
        return try APIResponse(API.RunnerDiscarded(discarded: true))
    }

    /// The body is the artifact `?path=` (as the job lists it: `~/…` for its home); the
    /// service writes it, sums it and counts it against the job's limit.
    @Sendable func uploadArtifact(_ request: Request, context: Context) async throws -> APIResponse {
        let (session, job, files) = try await workspaceStep(request, context)
        guard let path = request.uri.queryParameters.get("path") else { throw RapidFlowError(.invalidRequest, "query parameter 'path' is required") }
        if let problem = WorkspacePath.problem(path) ?? (WorkspacePath.split(path).relative == "." ? "names a folder" : nil) {
            throw RapidFlowError(.invalidRequest, "artifact path '\(path)' \(problem)")
        }
        let target = files.artifactFile(jobID: job.jobID, path: path)
        let limit = files.settings.artifactMaxBytes
        let (size, digest) = try await Self.receive(request.body, into: target, maxBytes: limit, what: "an artifact")
        let total = await session.uploadedArtifact(KeptArtifact(path: path, sizeBytes: size, sha256: digest))
        guard total <= limit else {
            await files.discardArtifacts(jobID: job.jobID)
            _ = await session.takeUploadedArtifacts()
            throw RapidFlowError(.bodyTooLarge, "the job's artifacts are over the limit of \(CacheArchiver.megabytes(limit)) (--artifact-max-mb)")
        }
        return try APIResponse(KeptArtifact(path: path, sizeBytes: size, sha256: digest))
    }

    /// Records the artifacts uploaded for this step, with their expiry.
    @Sendable func keepArtifacts(_ request: Request, context: Context) async throws -> APIResponse {
        let (session, job, files) = try await workspaceStep(request, context)
        guard let body = try await request.decodeJSON(as: API.RunnerArtifactsKeep.self, limits: .default) else {
            throw RapidFlowError(.invalidRequest, "send 'expire_in_days'")
        }
        let kept = await session.takeUploadedArtifacts()
        do {
            try await files.record(kept, jobID: job.jobID, expireInDays: body.expireInDays)
        } catch {
            await files.discardArtifacts(jobID: job.jobID)
            throw error
        }
        return try APIResponse(API.RunnerArtifactsKept(artifacts: kept))
    }

    @Sendable func discardArtifacts(_ request: Request, context: Context) async throws -> APIResponse {
        let (session, job, files) = try await workspaceStep(request, context)
        let uploaded = await session.takeUploadedArtifacts()
        await files.discardArtifacts(jobID: job.jobID)
        return try APIResponse(API.RunnerDiscarded(discarded: !uploaded.isEmpty))
    }

    /// Writes a request body to `path` (flushed), refusing past `maxBytes`; its size and SHA-256.
    private static func receive(_ body: RequestBody, into path: String, maxBytes: Int, what: String) async throws -> (size: Int, sha256: String) {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil), let output = FileHandle(forWritingAtPath: path) else {
            throw RapidFlowError(.internalError, "could not write \(what) into the data directory")
        }
        defer { try? output.close() }
        var size = 0
        var hasher = SHA256()
        do {
            for try await buffer in body {
                size += buffer.readableBytes
                guard size <= maxBytes else {
                    throw RapidFlowError(.bodyTooLarge, "\(what) over the limit of \(CacheArchiver.megabytes(maxBytes))")
                }
                hasher.update(data: buffer.readableBytesView)
                try output.write(contentsOf: buffer.readableBytesView)
            }
            try output.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            if let error = error as? RapidFlowError { throw error }
            if RapidFlowError.isDiskFull(error) { throw RapidFlowError.diskFull("\(what) could not be written") }
            throw error
        }
        return (size, WorkspaceFileSteps.hex(Data(hasher.finalize())))
    }
}

/// The runner's step is written as JSONEncoder writes it, as it was before the API types:
/// the runner decodes it with JSONDecoder, and its bytes stay the same.
extension StepPayload: JSONValueRepresentable {
    func jsonValue() throws -> JSONValue {
        try .encoding(self)
    }
}
