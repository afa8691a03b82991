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
        let extraEnvironment = body.environment

        let config = try PipelineConfig(yaml: pipeline.config, limits: limits, repositories: repositories)
        var plan = config.plan(configText: pipeline.config, branchOverride: body.branch)
        plan.snapshot.owner = pipeline.owner
        if let priority = body.priority { plan.snapshot.priority = priority }
        // The trigger's group and mode win over the config's.
        var concurrency = config.concurrency
        if let template = body.concurrencyGroup { concurrency = ConcurrencyGroup(template: template, onConflict: concurrency?.onConflict ?? .queue) }
        if let mode = body.onConflict {
            guard concurrency != nil else {
                throw RapidFlowError(
                    .invalidRequest, "'on_conflict' needs a concurrency group: give 'concurrency_group' here or in the pipeline's config")
            }
            concurrency?.onConflict = mode
        }
        plan.snapshot.concurrencyGroup = concurrency?.name(branch: plan.snapshot.branch, owner: plan.snapshot.account)
        // A trigger's env wins over the config's for the same key.
        let overridden = Set(extraEnvironment.map(\.key))
        let environment = config.env.filter { !overridden.contains($0.key) } + extraEnvironment
        let references = config.secretReferences.filter { !overridden.contains($0.key) }
        guard environment.count + references.count <= limits.maxEnvironmentEntries else {
            throw RapidFlowError(
                .invalidRequest, "env has \(environment.count + references.count) entries; at most \(limits.maxEnvironmentEntries) are allowed")
        }
        // The values are not read here: the job stores the secrets' names, resolved when it runs.
        try await secrets.requireExisting(
            references.map(\.secret), in: SecretScope.visible(pipelineID: pipeline.id, owner: pipeline.owner),
            for: "pipeline \(pipeline.id)'s config")
        let job = try await store.createJob(
            NewJob(
                kind: .pipeline, pipelineID: pipeline.id, pipelineName: pipeline.name, snapshot: plan.snapshot,
                steps: plan.steps, environment: environment, secretEnvironment: references))
        if let concurrency, let group = job.snapshot.concurrencyGroup {
            await scheduler.replaceOlderJobs(of: group, than: job.id, as: concurrency.onConflict)
        }
        scheduler.jobsCreated()
        return try APIResponse(API.Job(job), headers: [.location: "/jobs/\(job.id)"])
    }
}
