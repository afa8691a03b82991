import Foundation
import RapidFlowCore

/// Filters of `GET /jobs`.
public struct JobFilter: Sendable, Equatable {
    public var status: JobStatus?
    public var pipelineID: Int?
    public var before: Int?
    public var limit: Int

    public init(status: JobStatus? = nil, pipelineID: Int? = nil, before: Int? = nil, limit: Int = 50) {
        self.status = status
        self.pipelineID = pipelineID
        self.before = before
        self.limit = limit
    }
}

/// A step that was running when the service stopped: what recovery must settle and clean up.
public struct InterruptedStep: Sendable, Equatable {
    public var stepID: Int
    public var jobID: Int
    public var processGroup: Int32?
}

/// Where RapidFlow keeps pipelines, jobs, steps and their output.
///
/// Every state change of a job goes through here; the conditional updates (`claim`,
/// `finishJob`) make a final status final even when two callers race.
public protocol JobStore: Sendable {
    /// Brings the schema to the newest version.
    func migrate() async throws
    /// Answers when the store is usable.
    func ping() async throws
    func close() async

    // MARK: Pipelines
    func createPipeline(name: String, config: String) async throws -> Pipeline
    func pipeline(id: Int) async throws -> Pipeline?
    func pipelines(before: Int?, limit: Int) async throws -> [Pipeline]
    func updatePipeline(id: Int, name: String, config: String) async throws -> Pipeline?
    func deletePipeline(id: Int) async throws -> Bool

    // MARK: Jobs
    func createJob(_ job: NewJob) async throws -> Job
    func job(id: Int) async throws -> Job?
    func jobs(_ filter: JobFilter) async throws -> [Job]
    func steps(jobID: Int) async throws -> [Step]
    func step(id: Int) async throws -> Step?
    func environment(jobID: Int) async throws -> [EnvironmentEntry]
    /// Ids of jobs that reached a final status before `date`, oldest first.
    func finishedJobIDs(before date: Date, limit: Int) async throws -> [Int]
    /// Oldest pending jobs first.
    func pendingJobs(limit: Int) async throws -> [Job]
    /// How many jobs have each status (statuses with none are absent).
    func jobCounts() async throws -> [JobStatus: Int]
    /// `pending` → `running`; false when the job was no longer pending.
    func claimJob(id: Int, at: Date) async throws -> Bool
    /// Sets a final status unless the job already has one; false when it had.
    func finishJob(id: Int, status: JobStatus, cancelled: Bool, at: Date) async throws -> Bool
    func setContainer(jobID: Int, containerID: String?) async throws
    /// Host ports published for the job's containers (`expose_ports`).
    func setPorts(jobID: Int, ports: [String]) async throws
    /// `pending` → `cancelled`; false when the job was no longer pending.
    func cancelPendingJob(id: Int, at: Date) async throws -> Bool

    // MARK: Steps
    func startStep(id: Int, at: Date, processGroup: Int32?) async throws
    func recordProcessGroup(stepID: Int, processGroup: Int32) async throws
    func finishStep(id: Int, status: StepStatus, exitCode: Int?, at: Date) async throws
    /// Every step not yet final becomes `skipped`.
    func skipPendingSteps(jobID: Int, at: Date) async throws
    /// Appends a chunk of a step's output at its byte offset.
    func appendOutput(stepID: Int, offset: Int, data: Data) async throws
    func output(stepID: Int) async throws -> Data
    /// Each step's output of one job, by step id.
    func outputs(jobID: Int) async throws -> [Int: Data]

    // MARK: Recovery
    /// Settles every job left `running` (the process that ran it is gone) as `failed`, with
    /// `reason` appended to the output of its running step; returns the steps that were running.
    func settleInterruptedJobs(reason: String, at: Date) async throws -> [InterruptedStep]
}

extension JobStore {
    public func requireJob(id: Int) async throws -> Job {
        guard let job = try await job(id: id) else { throw RapidFlowError.jobNotFound(id) }
        return job
    }

    public func requirePipeline(id: Int) async throws -> Pipeline {
        guard let pipeline = try await pipeline(id: id) else { throw RapidFlowError.pipelineNotFound(id) }
        return pipeline
    }
}
