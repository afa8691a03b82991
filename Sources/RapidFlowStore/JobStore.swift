import Foundation
import RapidFlowCore

/// Filters of `GET /jobs`.
public struct JobFilter: Sendable, Equatable {
    public var status: JobStatus?
    public var pipelineID: Int?
    public var before: Int?
    public var limit: Int
    /// Jobs of exactly this branch.
    public var branch: String?
    /// A job id, or text found in the pipeline's name or the branch (case-insensitive).
    public var search: String?
    /// Jobs of this owner (team) only.
    public var owner: String?

    public init(
        status: JobStatus? = nil, pipelineID: Int? = nil, before: Int? = nil, limit: Int = 50, branch: String? = nil, search: String? = nil
    ) {
        self.status = status
        self.pipelineID = pipelineID
        self.before = before
        self.limit = limit
        self.branch = branch
        self.search = search
    }
}

/// A step that was running when the service stopped: what recovery must settle and clean up.
public struct InterruptedStep: Sendable, Equatable {
    public var stepID: Int
    public var jobID: Int
    public var processGroup: Int32?
}

/// Which jobs left `running` recovery settles.
public enum InterruptedScope: Sendable, Equatable {
    /// Jobs run by `owner` (an earlier run of this service), by no recorded owner, or whose
    /// lease ended before the date: what a starting service settles.
    case ownedBy(String, orLeaseEndedBefore: Date)
    /// Jobs whose owner stopped renewing its lease before the date (a replica died), other
    /// than `exceptOwner`'s.
    case leaseEndedBefore(Date, exceptOwner: String?)
    /// One job, on the terms of `ownedBy`: a zombie that `cleanup` settles.
    case zombie(jobID: Int, ownedBy: String, orLeaseEndedBefore: Date)
}

/// What settling interrupted jobs changed.
public struct SettledJobs: Sendable, Equatable {
    public var jobIDs: [Int]
    /// The steps that were running in them.
    public var steps: [InterruptedStep]
}

/// A running job's lease as its owner renewed it.
/// What a replica holds a running job by: its id and the claim's epoch. A write made under a
/// lease counts only while the job is running, owned by `owner`, at `epoch`; once another
/// replica has settled the job (the owner stopped renewing its lease), or claimed it again,
/// the write changes nothing and says so (`false`), and the writer stops the job here.
public struct JobLease: Sendable, Equatable {
    public var owner: String
    public var epoch: Int

    public init(owner: String, epoch: Int) {
        self.owner = owner
        self.epoch = epoch
    }
}

public struct LeaseRenewal: Sendable, Equatable {
    /// Jobs of the owner whose lease now runs to the new date.
    public var renewed: Set<Int>
    /// Of those, the ones another replica asked to cancel.
    public var cancelRequested: Set<Int>
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
    /// Makes every write committed so far survive a power loss (what an acknowledged API
    /// write waits for); a store that flushes at each commit does nothing here.
    func syncCommittedWrites() throws
    func close() async

    // MARK: Pipelines
    func createPipeline(name: String, config: String, owner: String?) async throws -> Pipeline
    func pipeline(id: Int) async throws -> Pipeline?
    /// Newest first; with `owner`, that owner's only (`default` also takes pipelines without one).
    func pipelines(before: Int?, limit: Int, owner: String?) async throws -> [Pipeline]
    func updatePipeline(id: Int, name: String, config: String, owner: String?) async throws -> Pipeline?
    func deletePipeline(id: Int) async throws -> Bool

    // MARK: Jobs
    func createJob(_ job: NewJob) async throws -> Job
    func job(id: Int) async throws -> Job?
    func jobs(_ filter: JobFilter) async throws -> [Job]
    func steps(jobID: Int) async throws -> [Step]
    /// A job as a list shows it and its steps, read together: what `GET /jobs/:id/status` needs.
    func jobStatus(id: Int) async throws -> (job: Job, steps: [Step])?
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
    /// Claims up to `limit` pending jobs for the replica `owner`, with a lease to `leaseUntil`,
    /// in the order `FairQueue` states (priority, then owners round-robin, FIFO within an
    /// owner; an owner at its limit — its own, else `maxJobsPerOwner` — is passed over). Each
    /// job goes to exactly one caller, also across replicas (on PostgreSQL claims take turns
    /// under an advisory lock). Oldest first in the answer.
    func claimPendingJobs(owner: String, limit: Int, at: Date, leaseUntil: Date, maxJobsPerOwner: Int?) async throws -> [Job]
    /// What the queue's order is computed from: every pending job, running jobs per owner,
    /// owners' own limits.
    func queueState() async throws -> QueueState
    /// Jobs of concurrency group `group` older than job `before`, with one of `statuses`.
    func jobIDs(inGroup group: String, before: Int, statuses: [JobStatus]) async throws -> [Int]
    /// Owners' own limits on the jobs they run at once.
    func ownerLimits() async throws -> [String: Int]
    /// Sets (or with nil removes) an owner's own limit.
    func setOwnerLimit(owner: String, maxConcurrentJobs: Int?) async throws
    /// Extends the lease of every running job `owner` holds.
    func renewLeases(owner: String, until: Date) async throws -> LeaseRenewal
    /// Asks the replica running the job to cancel it; false when the job is not running.
    func requestCancel(jobID: Int) async throws -> Bool
    /// Who runs the job (the owner's instance id) while it is running or after.
    func owner(jobID: Int) async throws -> String?
    /// Records where replica `instanceID` is reached.
    func recordReplica(instanceID: String, url: String, at: Date) async throws
    /// Where the replica running `jobID` is reached; nil when the job is not running or its
    /// replica never said.
    func ownerURL(jobID: Int) async throws -> (instanceID: String, url: String)?
    /// Sets a final status unless the job already has one; false when it had.
    func finishJob(id: Int, status: JobStatus, cancelled: Bool, at: Date) async throws -> Bool
    /// A job that ran its steps here ends: its steps still pending are skipped and it takes
    /// `status` (cancelled when that is `cancelled`); false when it was final already.
    func finishRanJob(id: Int, status: JobStatus, at: Date, lease: JobLease?) async throws -> Bool
    func setContainer(jobID: Int, containerID: String?) async throws
    /// Host ports published for the job's containers (`expose_ports`).
    func setPorts(jobID: Int, ports: [String]) async throws
    /// `pending` → `cancelled`; false when the job was no longer pending.
    func cancelPendingJob(id: Int, at: Date) async throws -> Bool

    // MARK: Steps
    /// False when `lease` no longer holds (nothing was written); so for every write below that takes one.
    func startStep(id: Int, at: Date, processGroup: Int32?, lease: JobLease?) async throws -> Bool
    func recordProcessGroup(stepID: Int, processGroup: Int32, lease: JobLease?) async throws -> Bool
    func finishStep(id: Int, status: StepStatus, exitCode: Int?, at: Date, lease: JobLease?) async throws -> Bool
    /// Every step not yet final becomes `skipped`.
    func skipPendingSteps(jobID: Int, at: Date) async throws
    /// Appends a chunk of a step's output at its byte offset.
    func appendOutput(stepID: Int, offset: Int, data: Data, lease: JobLease?) async throws -> Bool
    /// Throws `insufficient_storage` when a step's own output would take the room kept for the
    /// service's records (the service's notes about a step are still written).
    func checkRoomForOutput() throws
    /// Removes a step's stored output past its first `bytes` (a flood that filled the disk) and
    /// gives the space back where the store can; returns how many bytes went.
    func trimOutput(stepID: Int, keepingFirst bytes: Int) async throws -> Int
    func output(stepID: Int) async throws -> Data
    /// The piece of output stored at exactly `offset` (what one append wrote), if any.
    func outputChunk(stepID: Int, offset: Int) async throws -> Data?
    /// Each step's output of one job, by step id.
    func outputs(jobID: Int) async throws -> [Int: Data]

    // MARK: Recovery
    /// Settles the jobs in `scope` left `running` (whatever ran them is gone) as `failed`,
    /// with `reason` appended to the output of each running step.
    func settleInterruptedJobs(reason: String, at: Date, scope: InterruptedScope) async throws -> SettledJobs
}

/// The inputs of the queue's order.
public struct QueueState: Sendable, Equatable {
    public var pending: [FairQueue.Entry]
    public var running: [String: Int]
    public var limits: [String: Int]
    /// Concurrency groups with a running job.
    public var runningGroups: Set<String> = []

    /// How many jobs each owner has pending.
    public var pendingByOwner: [String: Int] { pending.reduce(into: [:]) { $0[$1.owner, default: 0] += 1 } }

    /// Each pending job's place when owners without a limit of their own may run `defaultLimit`.
    public func places(defaultLimit: Int?) -> [Int: QueuePlace] {
        FairQueue(running: running, limits: limits, defaultLimit: defaultLimit, runningGroups: runningGroups).places(of: pending)
    }
}

extension JobStore {
    public func checkRoomForOutput() throws {}

    /// The writes of a job's run without a lease (tools and tests that own the store alone).
    public func startStep(id: Int, at date: Date, processGroup: Int32?) async throws {
        _ = try await startStep(id: id, at: date, processGroup: processGroup, lease: nil)
    }

    public func recordProcessGroup(stepID: Int, processGroup: Int32) async throws {
        _ = try await recordProcessGroup(stepID: stepID, processGroup: processGroup, lease: nil)
    }

    public func finishStep(id: Int, status: StepStatus, exitCode: Int?, at date: Date) async throws {
        _ = try await finishStep(id: id, status: status, exitCode: exitCode, at: date, lease: nil)
    }

    public func appendOutput(stepID: Int, offset: Int, data: Data) async throws {
        _ = try await appendOutput(stepID: stepID, offset: offset, data: data, lease: nil)
    }

    public func finishRanJob(id: Int, status: JobStatus, at date: Date) async throws -> Bool {
        try await finishRanJob(id: id, status: status, at: date, lease: nil)
    }

    public func syncCommittedWrites() throws {}

    public func jobStatus(id: Int) async throws -> (job: Job, steps: [Step])? {
        guard let job = try await job(id: id) else { return nil }
        return (job, try await steps(jobID: id))
    }

    public func pipelines(before: Int?, limit: Int) async throws -> [Pipeline] {
        try await pipelines(before: before, limit: limit, owner: nil)
    }

    public func claimPendingJobs(owner: String, limit: Int, at date: Date, leaseUntil: Date) async throws -> [Job] {
        try await claimPendingJobs(owner: owner, limit: limit, at: date, leaseUntil: leaseUntil, maxJobsPerOwner: nil)
    }

    public func createPipeline(name: String, config: String) async throws -> Pipeline {
        try await createPipeline(name: name, config: config, owner: nil)
    }

    public func updatePipeline(id: Int, name: String, config: String) async throws -> Pipeline? {
        try await updatePipeline(id: id, name: name, config: config, owner: nil)
    }

    /// Settles every job left `running`: for a store only one service uses.
    public func settleInterruptedJobs(reason: String, at date: Date) async throws -> [InterruptedStep] {
        try await settleInterruptedJobs(reason: reason, at: date, scope: .leaseEndedBefore(.distantFuture, exceptOwner: nil)).steps
    }

    public func requireJob(id: Int) async throws -> Job {
        guard let job = try await job(id: id) else { throw RapidFlowError.jobNotFound(id) }
        return job
    }

    public func requirePipeline(id: Int) async throws -> Pipeline {
        guard let pipeline = try await pipeline(id: id) else { throw RapidFlowError.pipelineNotFound(id) }
        return pipeline
    }
}
