import Foundation
import RapidFlowCore

extension API {
    /// A job: the pipeline API's job object, with `kind` and a few extras.
    public struct Job: Codable, Sendable, Equatable {
        public var id: Int
        public var kind: JobKind
        @Nullable public var pipelineID: Int?
        @Nullable public var pipelineName: String?
        public var status: JobStatus
        @Nullable public var branch: String?
        /// The repository the job clones (`repo` of the config, `repo_url` of an image job).
        @Nullable public var repoName: String?
        @Nullable public var language: String?
        @Nullable public var version: String?
        @Nullable public var image: String?
        @Nullable public var folder: String?
        public var exposePorts: Bool
        public var cancelled: Bool
        @Nullable public var containerID: String?
        @Nullable public var retryOf: Int?
        public var ports: [String]
        /// Timestamps are RFC 3339 in UTC with milliseconds, as `Timestamp.format` writes them.
        public var createdAt: String
        @Nullable public var startedAt: String?
        @Nullable public var finishedAt: String?
        /// The team the job belongs to: the image job's owner, or its pipeline's (`default` when none).
        public var owner: String
        public var priority: JobPriority
        /// While pending: its place in the order the scheduler takes jobs (1 is next), and
        /// what it waits for (`slot`, `owner_limit` or `concurrency_group:<name>`); null once it started.
        @Nullable public var queuePosition: Int?
        @Nullable public var waitingFor: String?
        /// The concurrency group the job belongs to: at most one of its jobs runs at a time.
        @Nullable public var concurrencyGroup: String?
        /// What started it: `push`, `tag`, `pull_request` (a forge's webhook), `api` or `retry`.
        public var event: String
        /// The commit a forge event named, which the job cloned; null for API triggers.
        @Nullable public var commitSHA: String?
        @Nullable public var commitRef: String?
        @Nullable public var commitMessage: String?
        @Nullable public var commitAuthor: String?

        enum CodingKeys: String, CodingKey {
            case id, kind, pipelineID = "pipeline_id", pipelineName = "pipeline_name", status, branch, repoName = "repo_name"
            case language, version, image, folder, exposePorts = "expose_ports", cancelled, containerID = "container_id"
            case retryOf = "retry_of", ports, createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
            case owner, priority, queuePosition = "queue_position", waitingFor = "waiting_for"
            case concurrencyGroup = "concurrency_group"
            case event, commitSHA = "commit_sha", commitRef = "commit_ref", commitMessage = "commit_message", commitAuthor = "commit_author"
        }

        public init(_ job: RapidFlowCore.Job, place: QueuePlace? = nil) {
            let snapshot = job.snapshot
            id = job.id
            kind = job.kind
            pipelineID = job.pipelineID
            pipelineName = job.pipelineName
            status = job.status
            branch = snapshot.branch
            repoName = snapshot.repo
            language = snapshot.language
            version = snapshot.version
            image = snapshot.image
            folder = snapshot.folder
            exposePorts = snapshot.exposePorts
            cancelled = job.cancelled
            containerID = job.containerID
            retryOf = job.retryOf
            ports = job.ports
            createdAt = Timestamp.format(job.createdAt)
            startedAt = job.startedAt.map(Timestamp.format)
            finishedAt = job.finishedAt.map(Timestamp.format)
            owner = job.account
            priority = job.priority
            queuePosition = job.status == .pending ? place?.position : nil
            waitingFor = job.status == .pending ? place?.waitingFor.name : nil
            concurrencyGroup = snapshot.concurrencyGroup
            event = (snapshot.event ?? (job.retryOf == nil ? .api : .retry)).rawValue
            commitSHA = snapshot.commit?.sha
            commitRef = snapshot.commit?.ref
            commitMessage = snapshot.commit?.message
            commitAuthor = snapshot.commit?.author
        }

        /// How long the job ran: finished minus started, or up to `now` while it runs.
        public func duration(now: Date = Date()) -> Double? {
            guard let started = startedAt.flatMap(Timestamp.parse) else { return nil }
            return API.wholeMilliseconds((finishedAt.flatMap(Timestamp.parse) ?? now).timeIntervalSince(started))
        }
    }

    /// `POST /jobs`: the new image job's id, as a string (as the image-build API has it) and as a number.
    public struct SubmittedJob: Codable, Sendable, Equatable {
        public var jobID: String
        public var id: Int

        public init(id: Int) {
            jobID = String(id)
            self.id = id
        }

        enum CodingKeys: String, CodingKey {
            case jobID = "job_id", id
        }
    }
}
