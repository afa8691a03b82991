/// The status of a job: the pipeline API's values.
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case pending, running, success, failed, cancelled

    /// A final status is reached once and never changes afterwards.
    public var isFinal: Bool {
        switch self {
        case .pending, .running: false
        case .success, .failed, .cancelled: true
        }
    }
}

/// The status of a step: the pipeline API's values, plus `skipped` for steps never reached.
public enum StepStatus: String, Codable, Sendable, CaseIterable {
    case pending, running, success, failed, cancelled, skipped

    public var isFinal: Bool {
        switch self {
        case .pending, .running: false
        case .success, .failed, .cancelled, .skipped: true
        }
    }
}

/// Every step belongs to one phase; phase timings are derived from the steps.
public enum Phase: String, Codable, Sendable, CaseIterable {
    case build, test, publish
}

/// The two kinds of job that share one table.
public enum JobKind: String, Codable, Sendable {
    /// From `POST /pipelines/:id/jobs`: bash steps of a stored pipeline config.
    case pipeline
    /// From `POST /jobs`: clone, docker build, test, push.
    case image
}
