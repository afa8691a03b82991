import Foundation
import Hummingbird
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore

/// `/pipelines`: stored configs, and the jobs triggered from them.
struct PipelineController<Context: RequestContext> {
    let store: any JobStore
    let scheduler: JobScheduler
    let limits: Limits
    /// Whether `repo` may name a repository on this machine; checked when a pipeline is stored
    /// and again when a job is created from it (the service may have restarted without it).
    let repositories: RepositoryPolicy
    /// Where a config's `from_secret` references must be found, when it is stored and triggered.
    let secrets: SecretVault

    func addRoutes(to router: Router<Context>) {
        router.post("pipelines", use: create)
        router.get("pipelines", use: list)
        router.get("pipelines/:id", use: show)
        router.put("pipelines/:id", use: update)
        router.delete("pipelines/:id", use: delete)
        router.post("pipelines/:id/jobs", use: trigger)
    }

    /// Name and config from a body; the config must parse, and the stored secrets it names
    /// exist in a scope the pipeline (`id`, once it has one) sees, before anything is stored.
    private func definition(_ request: Request, pipelineID: Int?) async throws -> API.PipelineDefinition {
        guard let definition = try await request.decodeJSON(as: API.PipelineDefinition.self, limits: limits) else {
            throw RapidFlowError(.invalidRequest, "request body is empty: send {\"name\": ..., \"config\": \"<YAML>\"}")
        }
        let config = try PipelineConfig(yaml: definition.config, limits: limits, repositories: repositories)
        try await secrets.requireExisting(
            config.secretReferences.map(\.secret), in: SecretScope.visible(pipelineID: pipelineID, owner: definition.owner),
            for: "the config")
        return definition
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> APIResponse {
        let definition = try await definition(request, pipelineID: nil)
        let pipeline = try await store.createPipeline(name: definition.name, config: definition.config, owner: definition.owner)
        return try APIResponse(API.Pipeline(pipeline), headers: [.location: "/pipelines/\(pipeline.id)"])
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> APIResponse {
        let limit = try RequestParsing.queryInt(request, "limit", range: 1...500) ?? 50
        let before = try RequestParsing.queryInt(request, "before", range: 1...Int.max)
        let owner = try RequestParsing.queryOwner(request)
        return try APIResponse(try await store.pipelines(before: before, limit: limit, owner: owner).map(API.Pipeline.init))
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "pipeline")
        return try APIResponse(API.Pipeline(try await store.requirePipeline(id: id)))
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "pipeline")
        _ = try await store.requirePipeline(id: id)
        let definition = try await definition(request, pipelineID: id)
        guard let pipeline = try await store.updatePipeline(id: id, name: definition.name, config: definition.config, owner: definition.owner) else {
            throw RapidFlowError.pipelineNotFound(id)
        }
        return try APIResponse(API.Pipeline(pipeline))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "pipeline")
        guard try await store.deletePipeline(id: id) else { throw RapidFlowError.pipelineNotFound(id) }
        return try APIResponse(API.DeleteResult(id: id))
    }

    /// `POST /pipelines/:id/jobs`: optional `branch` override and extra `env`.
    @Sendable func trigger(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "pipeline")
        let pipeline = try await store.requirePipeline(id: id)
        // The branch is a valid ref and the env names are variable names (`API.TriggerRequest`).
        let body = try await request.decodeJSON(as: API.TriggerRequest.self, limits: limits) ?? API.TriggerRequest()
        let job = try await PipelineTrigger(store: store, scheduler: scheduler, limits: limits, repositories: repositories, secrets: secrets)
            .trigger(
                pipeline,
                .init(
                    branch: body.branch, environment: body.environment, priority: body.priority, concurrencyGroup: body.concurrencyGroup,
                    onConflict: body.onConflict))
        return try APIResponse(API.Job(job), headers: [.location: "/jobs/\(job.id)"])
    }
}
