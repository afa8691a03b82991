import Foundation
import RapidFlowCore

extension API {
    /// An incoming hook; `secret` only in the answer that created it (when the service made it).
    public struct Hook: Codable, Sendable, Equatable {
        public var id: Int
        public var name: String
        public var forge: Forge
        @Nullable public var owner: String?
        /// Where the forge delivers: `/hooks/<forge>`.
        public var path: String
        /// Whether jobs it starts post commit statuses.
        public var postsCommitStatus: Bool
        @Nullable public var statusURL: String?
        public var createdAt: String
        @Nullable public var lastDeliveryAt: String?
        public var secret: String?

        enum CodingKeys: String, CodingKey {
            case id, name, forge, owner, path, postsCommitStatus = "posts_commit_status", statusURL = "status_url"
            case createdAt = "created_at", lastDeliveryAt = "last_delivery_at", secret
        }

        public init(
            id: Int, name: String, forge: Forge, owner: String?, postsCommitStatus: Bool, statusURL: String?, createdAt: Date,
            lastDeliveryAt: Date?, secret: String? = nil
        ) {
            self.id = id
            self.name = name
            self.forge = forge
            self.owner = owner
            path = "/hooks/\(forge.rawValue)"
            self.postsCommitStatus = postsCommitStatus
            self.statusURL = statusURL
            self.createdAt = Timestamp.format(createdAt)
            self.lastDeliveryAt = lastDeliveryAt.map(Timestamp.format)
            self.secret = secret
        }
    }

    /// The answer to a forge delivery: the jobs it created (the forge's delivery page shows it).
    public struct HookAnswer: Codable, Sendable, Equatable {
        /// The hook that verified the delivery.
        public var hook: String
        /// `push`, `tag`, `pull_request`, or null when the delivery builds nothing.
        @Nullable public var event: String?
        public var jobs: [Int]
        /// Why nothing was started, when nothing was.
        @Nullable public var ignored: String?
        /// True when the delivery id was seen before: this is the first answer again, and
        /// nothing ran again.
        public var replayed: Bool
        /// Pipelines the event selected that could not start, each with the reason.
        public var errors: [String]?

        public init(hook: String, event: String?, jobs: [Int], ignored: String?, replayed: Bool = false) {
            self.hook = hook
            self.event = event
            self.jobs = jobs
            self.ignored = ignored
            self.replayed = replayed
        }
    }

    /// An outgoing webhook; `secret` only in the answer that created it.
    public struct Webhook: Codable, Sendable, Equatable {
        public var id: Int
        public var url: String
        public var events: [String]
        @Nullable public var owner: String?
        @Nullable public var pipelineID: Int?
        public var createdAt: String
        /// Set when the target answered 410 Gone: nothing is sent to it any more.
        @Nullable public var disabledAt: String?
        @Nullable public var disabledReason: String?
        public var secret: String?

        enum CodingKeys: String, CodingKey {
            case id, url, events, owner, pipelineID = "pipeline_id", createdAt = "created_at", disabledAt = "disabled_at"
            case disabledReason = "disabled_reason", secret
        }

        public init(
            id: Int, url: String, events: [String], owner: String?, pipelineID: Int?, createdAt: Date, disabledAt: Date?,
            disabledReason: String?, secret: String? = nil
        ) {
            self.id = id
            self.url = url
            self.events = events
            self.owner = owner
            self.pipelineID = pipelineID
            self.createdAt = Timestamp.format(createdAt)
            self.disabledAt = disabledAt.map(Timestamp.format)
            self.disabledReason = disabledReason
            self.secret = secret
        }
    }

    /// One delivery of an outgoing webhook (`GET /webhooks/:id/deliveries`).
    public struct WebhookDelivery: Codable, Sendable, Equatable {
        public var id: Int
        public var webhookID: Int
        public var jobID: Int
        @Nullable public var stepID: Int?
        public var event: String
        /// `pending` (also between retries), `delivered` or `failed`.
        public var state: String
        public var tries: Int
        /// The last try's HTTP status, or null when it got none (refused, timed out).
        @Nullable public var statusCode: Int?
        @Nullable public var error: String?
        @Nullable public var durationMs: Int?
        /// While pending: when the next try is due.
        @Nullable public var nextTryAt: String?
        public var createdAt: String
        @Nullable public var deliveredAt: String?

        enum CodingKeys: String, CodingKey {
            case id, webhookID = "webhook_id", jobID = "job_id", stepID = "step_id", event, state, tries, statusCode = "status_code"
            case error, durationMs = "duration_ms", nextTryAt = "next_try_at", createdAt = "created_at", deliveredAt = "delivered_at"
        }

        public init(
            id: Int, webhookID: Int, jobID: Int, stepID: Int?, event: String, state: String, tries: Int, statusCode: Int?, error: String?,
            durationMs: Int?, nextTryAt: Date?, createdAt: Date, deliveredAt: Date?
        ) {
            self.id = id
            self.webhookID = webhookID
            self.jobID = jobID
            self.stepID = stepID
            self.event = event
            self.state = state
            self.tries = tries
            self.statusCode = statusCode
            self.error = error
            self.durationMs = durationMs
            self.nextTryAt = nextTryAt.map(Timestamp.format)
            self.createdAt = Timestamp.format(createdAt)
            self.deliveredAt = deliveredAt.map(Timestamp.format)
        }
    }

    /// The body of every outgoing delivery: Standard Webhooks' `type`, `timestamp`, `data`.
    public struct WebhookEvent: Codable, Sendable, Equatable {
        public var type: String
        public var timestamp: String
        public var data: WebhookEventData

        public init(type: String, timestamp: Date, data: WebhookEventData) {
            self.type = type
            self.timestamp = Timestamp.format(timestamp)
            self.data = data
        }
    }

    /// What a delivery tells: the job (status, phase timings), the step for `step.finished`,
    /// and where its logs are. Never output or secrets.
    public struct WebhookEventData: Codable, Sendable, Equatable {
        public var job: Job
        public var phases: [String: PhaseTiming]
        @Nullable public var step: WebhookStep?
        public var logsURL: String
        public var jobURL: String

        enum CodingKeys: String, CodingKey {
            case job, phases, step, logsURL = "logs_url", jobURL = "job_url"
        }

        public init(job: Job, phases: [String: PhaseTiming], step: WebhookStep?, logsURL: String, jobURL: String) {
            self.job = job
            self.phases = phases
            self.step = step
            self.logsURL = logsURL
            self.jobURL = jobURL
        }
    }

    /// A phase's start, end and duration in seconds (to the millisecond), as `GET /jobs/:id/status` gives them.
    public struct PhaseTiming: Codable, Sendable, Equatable {
        @Nullable public var startedAt: String?
        @Nullable public var finishedAt: String?
        @Nullable public var durationSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case startedAt = "started_at", finishedAt = "finished_at", durationSeconds = "duration_seconds"
        }

        public init(startedAt: Date?, finishedAt: Date?) {
            self.startedAt = startedAt.map(Timestamp.format)
            self.finishedAt = finishedAt.map(Timestamp.format)
            if let startedAt, let finishedAt { durationSeconds = API.wholeMilliseconds(finishedAt.timeIntervalSince(startedAt)) }
        }
    }

    public struct WebhookStep: Codable, Sendable, Equatable {
        public var id: Int
        public var orderNum: Int
        public var type: String
        @Nullable public var name: String?
        public var phase: String
        public var status: String
        @Nullable public var exitCode: Int?

        enum CodingKeys: String, CodingKey {
            case id, orderNum = "order_num", type, name, phase, status, exitCode = "exit_code"
        }

        public init(_ step: Step) {
            id = step.id
            orderNum = step.orderNum
            type = step.type.rawValue
            name = step.name
            phase = step.phase.rawValue
            status = step.status.rawValue
            exitCode = step.exitCode
        }
    }
}
