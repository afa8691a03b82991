import RapidFlowCore

extension API {
    /// `POST /jobs/:id/cancel` (the pipeline API), answered once the job has stopped.
    public struct CancelResult: Codable, Sendable, Equatable {
        public var message: String
        public var jobID: Int
        public var status: JobStatus

        public init(jobID: Int, status: JobStatus) {
            message = "job cancelled successfully"
            self.jobID = jobID
            self.status = status
        }

        enum CodingKeys: String, CodingKey {
            case message, jobID = "job_id", status
        }
    }

    /// `POST /jobs/:id/kill` (the image-build API): the same action as cancel.
    public struct KillResult: Codable, Sendable, Equatable {
        public var success: Bool
        public var jobID: Int
        public var status: JobStatus

        public init(jobID: Int, status: JobStatus) {
            success = true
            self.jobID = jobID
            self.status = status
        }

        enum CodingKeys: String, CodingKey {
            case success, jobID = "job_id", status
        }
    }

    /// `POST /jobs/:id/cleanup`: what a finished job left behind and was removed.
    public struct CleanupResult: Codable, Sendable, Equatable {
        public var success: Bool
        public var jobID: Int
        public var removed: Removed

        public init(jobID: Int, removed: Removed) {
            success = true
            self.jobID = jobID
            self.removed = removed
        }

        enum CodingKeys: String, CodingKey {
            case success, jobID = "job_id", removed
        }

        /// The optional fields are left out, not null, when they do not apply.
        public struct Removed: Codable, Sendable, Equatable {
            /// Whether a workspace was there to remove.
            public var workspace: Bool
            /// Present when the Docker engine answers.
            public var containers: Int?
            public var images: Int?
            /// Present with `--executor nomad`: whether Nomad accepted the garbage collection.
            public var nomadGC: Bool?
            /// Present with `?artifacts=true`: how many artifacts were removed.
            public var artifacts: Int?

            public init(workspace: Bool, containers: Int? = nil, images: Int? = nil, nomadGC: Bool? = nil, artifacts: Int? = nil) {
                self.workspace = workspace
                self.containers = containers
                self.images = images
                self.nomadGC = nomadGC
                self.artifacts = artifacts
            }

            enum CodingKeys: String, CodingKey {
                case workspace, containers, images, nomadGC = "nomad_gc", artifacts
            }
        }
    }
}
