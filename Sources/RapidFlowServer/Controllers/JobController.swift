import Foundation
import Hummingbird
import RapidFlowAPI
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// `/jobs` and `/steps`: reading jobs, their steps and output, and stopping or retrying them.
struct JobController<Context: RequestContext> {
    let store: any JobStore
    let scheduler: JobScheduler
    let workspacesDirectory: String
    let limits: Limits
    /// Whether `repo_url` may name a repository on this machine.
    let repositories: RepositoryPolicy
    let credentials: CredentialStore
    /// Where `registry_credentials_secret` is looked up when a job is submitted.
    let secrets: SecretVault
    let instanceID: String
    /// The engine on the configured socket (`ServerConfiguration.dockerSocket`), as the executors use it.
    let docker: DockerEngine
    /// With `--executor nomad`, cleanup also asks Nomad to collect finished jobs.
    var nomad: NomadExecutor? = nil
    /// Jobs an owner without a limit of its own may run at once (`--max-jobs-per-owner`).
    var maxJobsPerOwner: Int? = nil
    /// Artifacts, which cleanup removes with `?artifacts=true`.
    var files: WorkspaceFiles? = nil

    func addRoutes(to router: Router<Context>) {
        router.post("jobs", use: submit)
        router.get("jobs", use: list)
        router.get("jobs/:id", use: show)
        router.get("jobs/:id/details", use: details)
        router.get("jobs/:id/status", use: status)
        router.get("jobs/:id/logs", use: logs)
        router.get("steps/:id/logs", use: stepLogs)
        router.post("jobs/:id/cancel", use: cancel)
        router.post("jobs/:id/kill", use: kill)
        router.post("jobs/:id/retry", use: retry)
        router.post("jobs/:id/cleanup", use: cleanup)
    }

    /// The image-build API's submitJob: an image job. Every field is checked before anything is stored.
    @Sendable func submit(_ request: Request, context: Context) async throws -> APIResponse {
        guard let body = try await request.decodeJSON(as: API.ImageJobRequest.self, limits: limits) else {
            throw RapidFlowError(.invalidRequest, "request body is empty: send the image job as JSON (owner, repo_url, ...)")
        }
        let job = try body.job()
        try job.validate(limits: limits, repositories: repositories)
        if let path = job.gitCredentialsPath { _ = try credentials.resolve(path, field: "git_credentials_path") }
        if let path = job.registryCredentialsPath { _ = try credentials.resolve(path, field: "registry_credentials_path") }
        if let name = job.registryCredentialsSecret {
            let scopes = SecretScope.visible(pipelineID: nil, owner: job.owner)
            guard try await secrets.missing([name], in: scopes).isEmpty else {
                throw RapidFlowError(
                    .unknownSecret,
                    "field 'registry_credentials_secret' names the stored secret '\(name)', which neither \(scopes[0]) nor \(scopes[1]) holds; "
                        + "store it with PUT /secrets/\(name)")
            }
        }
        var plan = job.plan()
        plan.snapshot.priority = body.priority
        let created = try await store.createJob(
            NewJob(kind: .image, pipelineID: nil, pipelineName: nil, snapshot: plan.snapshot, steps: plan.steps, environment: []))
        scheduler.jobsCreated()
        return try APIResponse(API.SubmittedJob(id: created.id), headers: [.location: "/jobs/\(created.id)"])
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> APIResponse {
        var filter = JobFilter()
        filter.limit = try RequestParsing.queryInt(request, "limit", range: 1...500) ?? 50
        filter.before = try RequestParsing.queryInt(request, "before", range: 1...Int.max)
        filter.pipelineID = try RequestParsing.queryInt(request, "pipeline_id", range: 1...Int.max)
        filter.branch = try RequestParsing.queryText(request, "branch", maxLength: 255)
        filter.search = try RequestParsing.queryText(request, "q", maxLength: 255)
        filter.owner = try RequestParsing.queryOwner(request)
        if let raw = request.uri.queryParameters.get("status") {
            guard let status = JobStatus(rawValue: String(raw)) else {
                throw RapidFlowError(
                    .invalidRequest,
                    "query parameter 'status' must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.status = status
        }
        let jobs = try await store.jobs(filter)
        let places = try await queuePlaces(for: jobs)
        return try APIResponse(jobs.map { API.Job($0, place: places[$0.id]) })
    }

    @Sendable func show(_ request: Request, context: Context) async throws -> APIResponse {
        let job = try await store.requireJob(id: try RequestParsing.id(context, what: "job"))
        return try APIResponse(API.Job(job, place: try await queuePlaces(for: [job])[job.id]))
    }

    /// Where the pending ones of `jobs` stand in the queue; nothing is read when none is pending.
    private func queuePlaces(for jobs: [Job]) async throws -> [Int: QueuePlace] {
        guard jobs.contains(where: { $0.status == .pending }) else { return [:] }
        return try await store.queueState().places(defaultLimit: maxJobsPerOwner)
    }

    @Sendable func details(_ request: Request, context: Context) async throws -> APIResponse {
        let job = try await store.requireJob(id: try RequestParsing.id(context, what: "job"))
        let steps = try await store.steps(jobID: job.id)
        let outputs = try await store.outputs(jobID: job.id)
        let environment = try await store.environment(jobID: job.id)
        return try APIResponse(API.JobDetails(job: job, steps: steps, outputs: outputs, environment: environment))
    }

    @Sendable func status(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "job")
        guard let (job, steps) = try await store.jobStatus(id: id) else { throw RapidFlowError.jobNotFound(id) }
        return try APIResponse(API.JobStatusReport(job: job, steps: steps, concurrentJobs: scheduler.runningCount))
    }

    @Sendable func logs(_ request: Request, context: Context) async throws -> APIResponse {
        let job = try await store.requireJob(id: try RequestParsing.id(context, what: "job"))
        let steps = try await store.steps(jobID: job.id)
        let outputs = try await store.outputs(jobID: job.id)
        return try APIResponse(API.JobLogs(job: job, steps: steps, outputs: outputs))
    }

    @Sendable func stepLogs(_ request: Request, context: Context) async throws -> APIResponse {
        let id = try RequestParsing.id(context, what: "step")
        guard let step = try await store.step(id: id) else { throw RapidFlowError.stepNotFound(id) }
        return try APIResponse(API.StepLog(step, output: try await store.output(stepID: id)))
    }

    /// The pipeline API's cancel: answers once the job has stopped.
    @Sendable func cancel(_ request: Request, context: Context) async throws -> APIResponse {
        let job = try await scheduler.cancel(jobID: try RequestParsing.id(context, what: "job"))
        return try APIResponse(API.CancelResult(jobID: job.id, status: job.status))
    }

    /// The image-build API's kill: the same action as cancel.
    @Sendable func kill(_ request: Request, context: Context) async throws -> APIResponse {
        let job = try await scheduler.cancel(jobID: try RequestParsing.id(context, what: "job"))
        return try APIResponse(API.KillResult(jobID: job.id, status: job.status))
    }

    @Sendable func retry(_ request: Request, context: Context) async throws -> APIResponse {
        let original = try await store.requireJob(id: try RequestParsing.id(context, what: "job"))
        guard original.status.isFinal else {
            throw RapidFlowError(
                .jobNotRetryable,
                "job \(original.id) is \(original.status.rawValue); wait for it to finish or cancel it before retrying")
        }
        // The original was accepted under the rules of its day; a retry is a new job under today's.
        if let request = original.snapshot.imageJob {
            try request.validate(limits: limits, repositories: repositories)
        } else if let repo = original.snapshot.repo {
            try PipelineConfig.checkRepository(repo, repositories: repositories)
        }
        let steps = try await store.steps(jobID: original.id)
        let environment = try await store.environment(jobID: original.id)
        // The same commit as the original, when a forge event named one.
        var snapshot = original.snapshot
        snapshot.event = .retry
        let job = try await store.createJob(
            NewJob(
                kind: original.kind, pipelineID: original.pipelineID, pipelineName: original.pipelineName,
                snapshot: snapshot,
                steps: steps.map { StepPlan(type: $0.type, name: $0.name, content: $0.content, phase: $0.phase) },
                environment: environment.filter { $0.secret == nil }.map { (key: $0.key, value: $0.value) },
                secretEnvironment: environment.compactMap { entry in entry.secret.map { SecretReference(key: entry.key, secret: $0) } },
                retryOf: original.id))
        scheduler.jobsCreated()
        return try APIResponse(API.Job(job), headers: [.location: "/jobs/\(job.id)"])
    }

    /// The image-build API's cleanup: removes what a finished job left behind.
    @Sendable func cleanup(_ request: Request, context: Context) async throws -> APIResponse {
        var job = try await store.requireJob(id: try RequestParsing.id(context, what: "job"))
        // A zombie (running in the store, run by nobody) is settled first, like recovery does.
        if job.status == .running, try await scheduler.settleZombie(jobID: job.id) {
            job = try await store.requireJob(id: job.id)
        }
        guard job.status.isFinal else {
            throw RapidFlowError(
                .jobNotFinished, "job \(job.id) is \(job.status.rawValue); cancel it before cleaning up")
        }
        let workspace = "\(workspacesDirectory)/job-\(job.id)"
        var removed = API.CleanupResult.Removed(workspace: false)
        for folder in [workspace, JobExecution.home(ofWorkspace: workspace)] where FileManager.default.fileExists(atPath: folder) {
            try FileManager.default.removeItem(atPath: folder)
            removed.workspace = true
        }
        // Artifacts outlive cleanup: they are what the job was for. `?artifacts=true` removes them.
        switch request.uri.queryParameters.get("artifacts") {
        case nil, "false": break
        case "true":
            if let files { removed.artifacts = try await files.removeArtifacts(jobID: job.id) }
        case let other?:
            throw RapidFlowError(.invalidRequest, "'artifacts' must be true or false, not '\(other)'")
        }
        if await docker.isReachable() {
            do {
                let artifacts = try await docker.removeArtifacts(jobID: job.id, instanceID: instanceID)
                removed.containers = artifacts.containers
                removed.images = artifacts.images
            } catch {
                context.logger.error("cleanup could not remove docker artifacts", metadata: ["job": "\(job.id)", "error": "\(error)"])
                throw RapidFlowError(.internalError, "the Docker engine refused to remove job \(job.id)'s containers or images; see the service log")
            }
        }
        if let nomad {
            do {
                try await nomad.cleanup()
                removed.nomadGC = true
            } catch {
                context.logger.warning("Nomad refused the garbage collection", metadata: ["error": "\(error)"])
                removed.nomadGC = false
            }
        }
        return try APIResponse(API.CleanupResult(jobID: job.id, removed: removed))
    }
}
