import Foundation
import RapidFlowCore

extension API {
    /// A step with its output, as `GET /steps/:id/logs` and the `logs` of `GET /jobs/:id/logs`
    /// show it. `StepDetail` is the same under `id` instead of `step_id`.
    public struct StepLog: Codable, Sendable, Equatable {
        public var stepID: Int
        public var jobID: Int
        public var orderNum: Int
        public var type: StepType
        @Nullable public var name: String?
        public var content: String
        public var phase: Phase
        public var status: StepStatus
        @Nullable public var exitCode: Int?
        public var output: String
        public var createdAt: String
        @Nullable public var startedAt: String?
        @Nullable public var finishedAt: String?
        @Nullable public var durationSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case stepID = "step_id", jobID = "job_id", orderNum = "order_num", type, name, content, phase, status
            case exitCode = "exit_code", output, createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
            case durationSeconds = "duration_seconds"
        }

        public init(_ step: Step, output: Data?) {
            let detail = StepDetail(step, output: output)
            stepID = detail.id
            jobID = detail.jobID
            orderNum = detail.orderNum
            type = detail.type
            name = detail.name
            content = detail.content
            phase = detail.phase
            status = detail.status
            exitCode = detail.exitCode
            self.output = detail.output
            createdAt = detail.createdAt
            startedAt = detail.startedAt
            finishedAt = detail.finishedAt
            durationSeconds = detail.durationSeconds
        }
    }

    /// A step with its output, as the `steps` of `GET /jobs/:id/details` show it.
    public struct StepDetail: Codable, Sendable, Equatable {
        public var id: Int
        public var jobID: Int
        public var orderNum: Int
        public var type: StepType
        @Nullable public var name: String?
        public var content: String
        public var phase: Phase
        public var status: StepStatus
        @Nullable public var exitCode: Int?
        /// The step's output bytes as text (bytes that are not UTF-8 become U+FFFD).
        public var output: String
        public var createdAt: String
        @Nullable public var startedAt: String?
        @Nullable public var finishedAt: String?
        /// Seconds; null until both ends are known.
        @Nullable public var durationSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case id, jobID = "job_id", orderNum = "order_num", type, name, content, phase, status
            case exitCode = "exit_code", output, createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
            case durationSeconds = "duration_seconds"
        }

        public init(_ step: Step, output: Data?) {
            id = step.id
            jobID = step.jobID
            orderNum = step.orderNum
            type = step.type
            name = step.name
            content = step.content
            phase = step.phase
            status = step.status
            exitCode = step.exitCode
            self.output = API.text(output)
            createdAt = Timestamp.format(step.createdAt)
            startedAt = step.startedAt.map(Timestamp.format)
            finishedAt = step.finishedAt.map(Timestamp.format)
            durationSeconds = API.duration(step.startedAt, step.finishedAt)
        }
    }
}

extension API {
    /// Seconds from `start` to `end` in whole milliseconds (what the store keeps), never
    /// negative; nil until both are known. `0.018`, not the `0.017999887…` of a difference
    /// of two floating-point times.
    static func duration(_ start: Date?, _ end: Date?) -> Double? {
        guard let start, let end else { return nil }
        return wholeMilliseconds(end.timeIntervalSince(start))
    }

    /// `seconds` rounded to whole milliseconds, never negative.
    static func wholeMilliseconds(_ seconds: Double) -> Double {
        (max(0, seconds) * 1000).rounded() / 1000
    }

    static func text(_ data: Data?) -> String {
        guard let data else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
}
