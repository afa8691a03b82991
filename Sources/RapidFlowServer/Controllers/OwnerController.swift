import Foundation
import Hummingbird
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore

/// `/owners`: the teams sharing the queue, their jobs now and their limits.
struct OwnerController<Context: RequestContext> {
    let store: any JobStore
    let scheduler: JobScheduler
    let limits: Limits
    /// Jobs an owner without a limit of its own may run at once (`--max-jobs-per-owner`).
    let maxJobsPerOwner: Int?

    func addRoutes(to router: Router<Context>) {
        router.get("owners", use: list)
        router.get("owners/:owner", use: show)
        router.put("owners/:owner", use: put)
    }

    /// Owners with a limit of their own or with jobs pending or running, by name.
    @Sendable func list(_ request: Request, context: Context) async throws -> APIResponse {
        let state = try await store.queueState()
        let pending = state.pendingByOwner
        let names = Set(state.limits.keys).union(state.running.keys).union(pending.keys)
        return try APIResponse(names.sorted().map { owner(named: $0, in: state, pending: pending) })
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> APIResponse {
        let name = try Self.name(context)
        return try APIResponse(owner(named: name, in: try await store.queueState()))
    }

    @Sendable func put(_ request: Request, context: Context) async throws -> APIResponse {
        let name = try Self.name(context)
        guard let settings = try await request.decodeJSON(as: API.OwnerSettings.self, limits: limits) else {
            throw RapidFlowError(.invalidRequest, "request body is empty: send {\"max_concurrent_jobs\": N} (or null to remove the limit)")
        }
        try await store.setOwnerLimit(owner: name, maxConcurrentJobs: settings.maxConcurrentJobs)
        // A higher limit may let waiting jobs start now.
        scheduler.jobsCreated()
        return try APIResponse(owner(named: name, in: try await store.queueState()))
    }

    private func owner(named name: String, in state: QueueState, pending: [String: Int]? = nil) -> API.Owner {
        let own = state.limits[name]
        return API.Owner(
            owner: name, maxConcurrentJobs: own, effectiveLimit: own ?? maxJobsPerOwner, running: state.running[name, default: 0],
            pending: (pending ?? state.pendingByOwner)[name, default: 0])
    }

    private static func name(_ context: Context) throws -> String {
        let name = context.parameters.get("owner") ?? ""
        try JobOwner.check(name, field: "owner")
        return name
    }
}
