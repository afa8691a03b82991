import Foundation
import HTTPTypes
import Hummingbird
import RapidFlowStore

/// A runner's call (`/runner/jobs/:id/…`) that reached a replica which does not run the job
/// (through a load balancer, `--runner-url`) is redirected to the replica that does, at its
/// advertise URL (307: the method and body stay). The runner follows it itself, with its
/// token, and keeps calling that replica; the token is checked there. A job no replica runs
/// falls through to the usual answer (401: the job is over).
struct RunnerRedirectMiddleware<Context: RequestContext>: RouterMiddleware {
    let hub: RunnerHub
    let store: any JobStore
    let instanceID: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let jobID = Self.jobID(in: request.uri.path), !hub.holds(jobID: jobID),
            let owner = try? await store.ownerURL(jobID: jobID), owner.instanceID != instanceID
        else { return try await next(request, context) }
        var location = owner.url + request.uri.path
        if let query = request.uri.query, !query.isEmpty { location += "?" + query }
        return Response(status: .temporaryRedirect, headers: [.location: location])
    }

    /// The job id of a runner route's path, `/runner/jobs/<id>/…`.
    static func jobID(in path: String) -> Int? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count >= 3, parts[0] == "runner", parts[1] == "jobs" else { return nil }
        return Int(parts[2])
    }
}
