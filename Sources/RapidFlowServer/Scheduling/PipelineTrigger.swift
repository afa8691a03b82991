import Foundation
import RapidFlowCore
import RapidFlowStore

/// Creates a pipeline's job: from an API trigger (`POST /pipelines/:id/jobs`) or a forge
/// event (`POST /hooks/<forge>`). The config is parsed and checked again (the service may run
/// under other rules than when it was stored), the job's secrets must exist, and a
/// concurrency group's older jobs are replaced as its `on_conflict` says.
struct PipelineTrigger {
    let store: any JobStore
    let scheduler: JobScheduler
    let limits: Limits
    let repositories: RepositoryPolicy
    let secrets: SecretVault

    struct Options {
        var branch: String?
        var environment: [(key: String, value: String)] = []
        var priority: JobPriority?
        var concurrencyGroup: String?
        var onConflict: ConcurrencyGroup.OnConflict?
        var event: TriggerEvent = .api
        /// The commit a forge event named: the job clones exactly it.
        var commit: CommitInfo?
        var statusTarget: CommitStatusTarget?
    }

    /// The new job, pending; the scheduler has been told.
    func trigger(_ pipeline: Pipeline, _ options: Options) async throws -> Job {
        let config = try PipelineConfig(yaml: pipeline.config, limits: limits, repositories: repositories)
        var plan = config.plan(configText: pipeline.config, branchOverride: options.branch, commit: options.commit)
        plan.snapshot.owner = pipeline.owner
        plan.snapshot.event = options.event
        plan.snapshot.statusTarget = options.statusTarget
        if let priority = options.priority { plan.snapshot.priority = priority }
        // The trigger's group and mode win over the config's.
        var concurrency = config.concurrency
        if let template = options.concurrencyGroup {
            concurrency = ConcurrencyGroup(template: template, onConflict: concurrency?.onConflict ?? .queue)
        }
        if let mode = options.onConflict {
            guard concurrency != nil else {
                throw RapidFlowError(
                    .invalidRequest, "'on_conflict' needs a concurrency group: give 'concurrency_group' here or in the pipeline's config")
            }
            concurrency?.onConflict = mode
        }
        plan.snapshot.concurrencyGroup = concurrency?.name(branch: plan.snapshot.branch, owner: plan.snapshot.account)
        // A trigger's env wins over the config's for the same key.
        let overridden = Set(options.environment.map(\.key))
        let environment = config.env.filter { !overridden.contains($0.key) } + options.environment
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
        return job
    }
}
