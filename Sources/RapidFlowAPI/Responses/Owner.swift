import RapidFlowCore

extension API {
    /// An owner (team) as the queue sees it: its jobs now and the limit that applies to it.
    public struct Owner: Codable, Sendable, Equatable {
        public var owner: String
        /// Its own limit (`PUT /owners/:owner`); null when it has none.
        @Nullable public var maxConcurrentJobs: Int?
        /// The limit in force: its own, else the service's `--max-jobs-per-owner`; null: none.
        @Nullable public var effectiveLimit: Int?
        public var running: Int
        public var pending: Int

        enum CodingKeys: String, CodingKey {
            case owner, maxConcurrentJobs = "max_concurrent_jobs", effectiveLimit = "effective_limit", running, pending
        }

        public init(owner: String, maxConcurrentJobs: Int?, effectiveLimit: Int?, running: Int, pending: Int) {
            self.owner = owner
            self.maxConcurrentJobs = maxConcurrentJobs
            self.effectiveLimit = effectiveLimit
            self.running = running
            self.pending = pending
        }
    }
}
