import Foundation
import Hummingbird
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

    func addRoutes(to router: Router<Context>) {
        router.post("pipelines", use: create)
        router.get("pipelines", use: list)
        router.get("pipelines/:id", use: show)
        router.put("pipelines/:id", use: update)
        router.delete("pipelines/:id", use: delete)
        router.post("pipelines/:id/jobs", use: trigger)
    }

    /// Name and config from a body; the config must parse before anything is stored.
    private func definition(_ request: Request) async throws -> (name: String, config: String) {
        guard let body = try await RequestParsing.jsonObject(request, limits: limits, allowedKeys: ["name", "config"]) else {
            throw RapidFlowError(.invalidRequest, "request body is empty: send {\"name\": ..., \"config\": \"<YAML>\"}")
        }
        let name = try RequestParsing.string(body, "name", required: true)!.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 200 else {
            throw RapidFlowError(.invalidRequest, "field 'name' must be 1 to 200 characters")
        }
        guard let config = try RequestParsing.string(body, "config", required: true), !config.isEmpty else {
            throw RapidFlowError(.invalidConfig, "field 'config' is empty: give the pipeline's YAML")
        }
        _ = try PipelineConfig(yaml: config, limits: limits, repositories: repositories)
        return (name, config)
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> APIResponse {
        let definition = try await definition(request)
        let pipeline = try await store.createPipeline(name: definition.name, config: definition.config)
        return APIResponse(Payloads.pipeline(pipeline), headers: [.location: "/pipelines/\(pipeline.id)"])
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> APIResponse {
        let limit = try RequestParsing.queryInt(request, "limit", range: 1...500) ?? 50
        let before = try RequestParsing.queryInt(request, "before", range: 1...Int.max)
        return APIResponse(.array(try await store.pipelines(before: before, limit: limit).map(Payloads.pipeline)))
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "pipeline")
        return APIResponse(Payloads.pipeline(try await store.requirePipeline(id: id)))
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "pipeline")
        _ = try await store.requirePipeline(id: id)
        let definition = try await definition(request)
        guard let pipeline = try await store.updatePipeline(id: id, name: definition.name, config: definition.config) else {
            throw RapidFlowError.pipelineNotFound(id)
        }
        return APIResponse(Payloads.pipeline(pipeline))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "pipeline")
        guard try await store.deletePipeline(id: id) else { throw RapidFlowError.pipelineNotFound(id) }
        return APIResponse(.object([("deleted", true), ("id", .int(id))]))
    }

    /// `POST /pipelines/:id/jobs`: optional `branch` override and extra `env`.
    @Sendable func trigger(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "pipeline")
        let pipeline = try await store.requirePipeline(id: id)
        let body = try await RequestParsing.jsonObject(request, limits: limits, allowedKeys: ["branch", "env"]) ?? [:]
        let branch = try RequestParsing.string(body, "branch", required: false)
        if let branch { try RefValidation.checkRef(branch, field: "branch") }
        let extraEnvironment = try RequestParsing.stringMap(body, "env")
        for entry in extraEnvironment { try EnvironmentValidation.checkName(entry.key, field: "env") }

        let config = try PipelineConfig(yaml: pipeline.config, limits: limits, repositories: repositories)
        let plan = config.plan(configText: pipeline.config, branchOverride: branch)
        // A trigger's env wins over the config's for the same key.
        let overridden = Set(extraEnvironment.map(\.key))
        let environment = config.env.filter { !overridden.contains($0.key) } + extraEnvironment
        guard environment.count <= limits.maxEnvironmentEntries else {
            throw RapidFlowError(.invalidRequest, "env has \(environment.count) entries; at most \(limits.maxEnvironmentEntries) are allowed")
        }
        let job = try await store.createJob(
            NewJob(
                kind: .pipeline, pipelineID: pipeline.id, pipelineName: pipeline.name, snapshot: plan.snapshot,
                steps: plan.steps, environment: environment))
        scheduler.jobsCreated()
        return APIResponse(Payloads.job(job), headers: [.location: "/jobs/\(job.id)"])
    }
}
