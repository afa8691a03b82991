import RapidFlowCore

extension API {
    /// `PUT /owners/:owner`: the owner's own limit on the jobs it runs at once; null removes
    /// it (the service's `--max-jobs-per-owner` applies again).
    public struct OwnerSettings: Codable, Sendable, Equatable {
        public var maxConcurrentJobs: Int?

        public init(maxConcurrentJobs: Int?) {
            self.maxConcurrentJobs = maxConcurrentJobs
        }

        enum CodingKeys: String, CodingKey {
            case maxConcurrentJobs = "max_concurrent_jobs"
        }

        public static let fields = ["max_concurrent_jobs"]
        public static let limitRange = 1...10_000

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(maxConcurrentJobs, forKey: .maxConcurrentJobs)
        }

        public init(from decoder: any Decoder) throws {
            let fields = try RequestFields(decoder, known: Self.fields)
            // Present and null removes the limit; absent is a mistake, not a removal.
            guard (try? decoder.container(keyedBy: CodingKeys.self).contains(.maxConcurrentJobs)) == true else {
                throw fields.missing("max_concurrent_jobs")
            }
            maxConcurrentJobs = try fields.integer("max_concurrent_jobs", range: Self.limitRange)
        }
    }
}
