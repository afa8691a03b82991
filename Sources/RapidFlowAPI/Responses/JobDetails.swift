import Foundation
import RapidFlowCore

extension API {
    /// `GET /jobs/:id/details`: the job, the pipeline it came from, its steps with their
    /// output, and its environment.
    public struct JobDetails: Codable, Sendable, Equatable {
        public var job: Job
        /// Null for an image job.
        @Nullable public var pipeline: PipelineSummary?
        public var steps: [StepDetail]
        public var environments: [EnvironmentEntry]
        /// The stored secrets the job uses (names only): its variables' and its credentials'.
        public var secretsUsed: [String]

        enum CodingKeys: String, CodingKey {
            case job, pipeline, steps, environments, secretsUsed = "secrets_used"
        }

        /// The pipeline as the job copied it: `config` is the job's own copy, masked.
        public struct PipelineSummary: Codable, Sendable, Equatable {
            public var id: Int
            @Nullable public var name: String?
            @Nullable public var config: String?
        }

        public init(job: RapidFlowCore.Job, steps: [Step], outputs: [Int: Data], environment: [RapidFlowCore.EnvironmentEntry]) {
            self.job = Job(job)
            // Secret values (the job's own and the trigger's) are masked in the config as well.
            let secrets = environment.filter { EnvironmentValidation.looksSecret($0.key) }.map(\.value)
            if let pipelineID = job.pipelineID {
                pipeline = PipelineSummary(
                    id: pipelineID, name: job.pipelineName,
                    config: job.snapshot.config.map { PipelineConfig.maskedText($0, extraSecrets: secrets) })
            } else {
                pipeline = nil
            }
            self.steps = steps.map { StepDetail($0, output: outputs[$0.id]) }
            environments = environment.map(EnvironmentEntry.init)
            let credentials = [job.snapshot.imageJob?.registryCredentialsSecret].compactMap { $0 }
            secretsUsed = Array(Set(environment.compactMap(\.secret) + credentials)).sorted()
        }
    }

    /// One environment entry of a job; secret-looking values are masked, and a stored secret's
    /// variable shows the mask and `"secret": true` (its value is not in the job at all).
    public struct EnvironmentEntry: Codable, Sendable, Equatable {
        public var id: Int
        public var jobID: Int
        public var key: String
        public var value: String
        /// True for a stored secret's variable; absent otherwise.
        public var secret: Bool?

        public static let mask = "********"

        enum CodingKeys: String, CodingKey {
            case id, jobID = "job_id", key, value, secret
        }

        public init(_ entry: RapidFlowCore.EnvironmentEntry) {
            id = entry.id
            jobID = entry.jobID
            key = entry.key
            value = EnvironmentValidation.looksSecret(entry.key) || entry.secret != nil ? Self.mask : entry.value
            secret = entry.secret != nil ? true : nil
        }
    }
}
