import Foundation
import RapidFlowCore

extension API {
    /// `GET /jobs/:id/logs`: the pipeline API's structured logs and the image-build API's phase texts
    /// in one payload.
    public struct JobLogs: Codable, Sendable, Equatable {
        public var jobID: Int
        public var status: JobStatus
        /// One entry per step, in order.
        public var logs: [StepLog]
        /// Each phase's output, its steps' output joined.
        public var build: String
        public var test: String
        public var publish: String

        enum CodingKeys: String, CodingKey {
            case jobID = "job_id", status, logs, build, test, publish
        }

        public init(job: RapidFlowCore.Job, steps: [Step], outputs: [Int: Data]) {
            jobID = job.id
            status = job.status
            logs = steps.map { StepLog($0, output: outputs[$0.id]) }
            func output(_ phase: Phase) -> String {
                var joined = Data()
                for step in steps where step.phase == phase {
                    if let output = outputs[step.id] { joined.append(output) }
                }
                return API.text(joined)
            }
            build = output(.build)
            test = output(.test)
            publish = output(.publish)
        }

        /// The output of `phase`.
        public subscript(phase: Phase) -> String {
            switch phase {
            case .build: build
            case .test: test
            case .publish: publish
            }
        }
    }
}
