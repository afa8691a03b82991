import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RapidFlowAPI
import RapidFlowCore

/// `/runner/jobs/:id/…`: what a job's `rapidflow runner` calls, with the job's own token
/// (`Authorization: Bearer <runner token>`) instead of the service's API token.
struct RunnerController<Context: RequestContext> {
    let hub: RunnerHub
    /// Longest a long poll is held; the runner asks again after.
    static var maxWait: Int { 60 }

    func addRoutes(to router: Router<Context>) {
        router.get("runner/jobs/:id/next", use: next)
        router.post("runner/jobs/:id/steps/:step/output", use: output)
        router.post("runner/jobs/:id/steps/:step/exit", use: exit)
        router.get("runner/jobs/:id/steps/:step/signal", use: signal)
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

/// The runner's step is written as JSONEncoder writes it, as it was before the API types:
/// the runner decodes it with JSONDecoder, and its bytes stay the same.
extension StepPayload: JSONValueRepresentable {
    func jsonValue() throws -> JSONValue {
        try .encoding(self)
    }
}
