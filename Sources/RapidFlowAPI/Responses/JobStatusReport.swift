import Foundation
import RapidFlowCore

extension API {
    /// `GET /jobs/:id/status`: phase timestamps and durations derived from the steps.
    public struct JobStatusReport: Codable, Sendable, Equatable {
        public var jobID: Int
        public var status: JobStatus
        public var metrics: Metrics
        public var phaseTimestamps: PhaseTimestamps
        public var steps: [Step]

        enum CodingKeys: String, CodingKey {
            case jobID = "job_id", status, metrics, phaseTimestamps = "phase_timestamps", steps
        }

        /// Seconds; a duration is null until both its ends are known.
        public struct Metrics: Codable, Sendable, Equatable {
            @Nullable public var buildDurationSeconds: Double?
            @Nullable public var testDurationSeconds: Double?
            @Nullable public var publishDurationSeconds: Double?
            /// Jobs running on this service now.
            public var concurrentJobsTotal: Int
            @Nullable public var jobDurationSeconds: Double?

            enum CodingKeys: String, CodingKey {
                case buildDurationSeconds = "build_duration_seconds", testDurationSeconds = "test_duration_seconds"
                case publishDurationSeconds = "publish_duration_seconds", concurrentJobsTotal = "concurrent_jobs_total"
                case jobDurationSeconds = "job_duration_seconds"
            }

            /// The duration of `phase`.
            public subscript(phase: Phase) -> Double? {
                switch phase {
                case .build: buildDurationSeconds
                case .test: testDurationSeconds
                case .publish: publishDurationSeconds
                }
            }
        }

        /// A phase without steps has null start and end; null until it happens.
        public struct PhaseTimestamps: Codable, Sendable, Equatable {
            @Nullable public var jobStart: String?
            @Nullable public var buildStart: String?
            @Nullable public var buildEnd: String?
            @Nullable public var testStart: String?
            @Nullable public var testEnd: String?
            @Nullable public var publishStart: String?
            @Nullable public var publishEnd: String?
            @Nullable public var jobEnd: String?

            enum CodingKeys: String, CodingKey {
                case jobStart = "job_start", buildStart = "build_start", buildEnd = "build_end", testStart = "test_start"
                case testEnd = "test_end", publishStart = "publish_start", publishEnd = "publish_end", jobEnd = "job_end"
            }

            /// When `phase` started and ended.
            public subscript(phase: Phase) -> (start: String?, end: String?) {
                switch phase {
                case .build: (buildStart, buildEnd)
                case .test: (testStart, testEnd)
                case .publish: (publishStart, publishEnd)
                }
            }
        }

        /// A step without its output.
        public struct Step: Codable, Sendable, Equatable {
            public var stepID: Int
            public var orderNum: Int
            public var type: StepType
            public var phase: Phase
            public var status: StepStatus
            @Nullable public var exitCode: Int?
            @Nullable public var durationSeconds: Double?

            enum CodingKeys: String, CodingKey {
                case stepID = "step_id", orderNum = "order_num", type, phase, status, exitCode = "exit_code"
                case durationSeconds = "duration_seconds"
            }
        }

        public init(job: RapidFlowCore.Job, steps: [RapidFlowCore.Step], concurrentJobs: Int) {
            jobID = job.id
            status = job.status
            // A phase starts with its first step that started and ends when all of those have ended.
            func span(_ phase: Phase) -> (start: Date?, end: Date?) {
                let started = steps.filter { $0.phase == phase && $0.startedAt != nil }
                let start = started.compactMap(\.startedAt).min()
                let end = started.allSatisfy { $0.finishedAt != nil } ? started.compactMap(\.finishedAt).max() : nil
                return (start, end)
            }
            let build = span(.build), test = span(.test), publish = span(.publish)
            func time(_ date: Date?) -> String? { date.map(Timestamp.format) }
            metrics = Metrics(
                buildDurationSeconds: API.duration(build.start, build.end), testDurationSeconds: API.duration(test.start, test.end),
                publishDurationSeconds: API.duration(publish.start, publish.end), concurrentJobsTotal: concurrentJobs,
                jobDurationSeconds: API.duration(job.startedAt, job.finishedAt))
            phaseTimestamps = PhaseTimestamps(
                jobStart: time(job.startedAt), buildStart: time(build.start), buildEnd: time(build.end), testStart: time(test.start),
                testEnd: time(test.end), publishStart: time(publish.start), publishEnd: time(publish.end), jobEnd: time(job.finishedAt))
            self.steps = steps.map { step in
                Step(
                    stepID: step.id, orderNum: step.orderNum, type: step.type, phase: step.phase, status: step.status,
                    exitCode: step.exitCode, durationSeconds: API.duration(step.startedAt, step.finishedAt))
            }
        }
    }
}
