// The parts of Nomad's API objects the executor reads. Every other key is ignored, and every
// key read is optional where the docs samples omit it, so a newer agent's extra or missing
// fields do not break decoding.

/// A decoded answer and the `X-Nomad-Index` it came with: the index for the next blocking query.
public struct NomadResponse<Value: Sendable>: Sendable {
    public var value: Value
    public var index: UInt64
}

/// `POST /v1/jobs` and `DELETE /v1/job/:id` answer with the evaluation they created.
public struct NomadWriteResult: Decodable, Sendable, Equatable {
    /// Empty when nothing was evaluated (e.g. deleting a job that does not exist).
    public var evaluationID: String
    public var evaluationCreateIndex: UInt64
    public var jobModifyIndex: UInt64
    /// Non-fatal problems with the submitted job, as one string.
    public var warnings: String?

    enum CodingKeys: String, CodingKey {
        case evaluationID = "EvalID", evaluationCreateIndex = "EvalCreateIndex", jobModifyIndex = "JobModifyIndex"
        case warnings = "Warnings"
    }
}

/// `GET /v1/job/:id`.
public struct NomadJob: Decodable, Sendable, Equatable {
    public var id: String
    public var namespace: String?
    public var type: String?
    /// `pending`, `running` or `dead`.
    public var status: String
    /// True once the job was deregistered without a purge.
    public var stop: Bool
    public var meta: [String: String]?

    enum CodingKeys: String, CodingKey {
        case id = "ID", namespace = "Namespace", type = "Type", status = "Status", stop = "Stop", meta = "Meta"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        namespace = try container.decodeIfPresent(String.self, forKey: .namespace)
        type = try container.decodeIfPresent(String.self, forKey: .type)
        status = try container.decode(String.self, forKey: .status)
        stop = try container.decodeIfPresent(Bool.self, forKey: .stop) ?? false
        meta = try container.decodeIfPresent([String: String].self, forKey: .meta)
    }
}

/// An allocation: the stub of `GET /v1/job/:id/allocations` or the full `GET /v1/allocation/:id`.
public struct NomadAllocation: Decodable, Sendable, Equatable {
    public var id: String
    public var evaluationID: String?
    public var nodeID: String?
    public var jobID: String?
    public var taskGroup: String?
    /// `run`, `stop` (after a DELETE) or `evict`.
    public var desiredStatus: String
    public var desiredDescription: String?
    /// `pending`, `running`, `complete`, `failed`, `lost` or `unknown`.
    public var clientStatus: String
    public var clientDescription: String?
    /// The replacement Nomad created for this allocation, if any.
    public var nextAllocation: String?
    public var taskStates: [String: NomadTaskState]?
    public var createIndex: UInt64
    public var modifyIndex: UInt64?

    enum CodingKeys: String, CodingKey {
        case id = "ID", evaluationID = "EvalID", nodeID = "NodeID", jobID = "JobID", taskGroup = "TaskGroup"
        case desiredStatus = "DesiredStatus", desiredDescription = "DesiredDescription"
        case clientStatus = "ClientStatus", clientDescription = "ClientDescription"
        case nextAllocation = "NextAllocation", taskStates = "TaskStates", createIndex = "CreateIndex", modifyIndex = "ModifyIndex"
    }

    /// `complete`, `failed` and `lost` never change again (Nomad's `ClientTerminalStatus`).
    public var isClientTerminal: Bool { ["complete", "failed", "lost"].contains(clientStatus) }

    /// The node went away: `lost`, or `unknown` while its client is disconnected.
    public var isNodeGone: Bool { ["lost", "unknown"].contains(clientStatus) }
}

/// `TaskStates[task]` of an allocation.
public struct NomadTaskState: Decodable, Sendable, Equatable {
    /// `pending`, `running` or `dead`.
    public var state: String
    public var failed: Bool
    /// The last ten events only, oldest first.
    public var events: [NomadTaskEvent]

    enum CodingKeys: String, CodingKey {
        case state = "State", failed = "Failed", events = "Events"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        state = try container.decode(String.self, forKey: .state)
        failed = try container.decodeIfPresent(Bool.self, forKey: .failed) ?? false
        events = try container.decodeIfPresent([NomadTaskEvent].self, forKey: .events) ?? []
    }
}

/// One task event. Newer agents put the facts in `Details` (a string map) and `DisplayMessage`;
/// the flat fields are deprecated but still sent, and are what the docs samples carry.
public struct NomadTaskEvent: Decodable, Sendable, Equatable {
    public var type: String
    public var time: Int64?
    public var displayMessage: String?
    public var details: [String: String]?
    public var exitCode: Int?
    public var signal: Int?
    public var message: String?
    public var driverError: String?
    public var setupError: String?
    public var validationError: String?
    public var downloadError: String?

    enum CodingKeys: String, CodingKey {
        case type = "Type", time = "Time", displayMessage = "DisplayMessage", details = "Details", exitCode = "ExitCode"
        case signal = "Signal", message = "Message", driverError = "DriverError", setupError = "SetupError"
        case validationError = "ValidationError", downloadError = "DownloadError"
    }

    /// The process's exit code, from `Details.exit_code` or the flat `ExitCode`.
    public var processExitCode: Int? {
        details?["exit_code"].flatMap { Int($0) } ?? exitCode
    }

    /// The most specific human text the event carries.
    var explanation: String? {
        [displayMessage, driverError, setupError, validationError, downloadError, message, details?["message"]]
            .compactMap { $0 }.first { !$0.isEmpty }
    }
}

/// `GET /v1/evaluation/:id?related=true`.
public struct NomadEvaluation: Decodable, Sendable, Equatable {
    public var id: String
    /// `pending`, `complete`, `failed`, `blocked` or `canceled`.
    public var status: String
    public var statusDescription: String?
    /// The blocked evaluation created to place what did not fit now.
    public var blockedEvaluation: String?
    /// Task groups that could not be placed, with the scheduler's reasons.
    public var failedTaskGroupAllocations: [String: NomadPlacementMetrics]?
    public var relatedEvaluations: [NomadEvaluationStub]?

    enum CodingKeys: String, CodingKey {
        case id = "ID", status = "Status", statusDescription = "StatusDescription", blockedEvaluation = "BlockedEval"
        case failedTaskGroupAllocations = "FailedTGAllocs", relatedEvaluations = "RelatedEvals"
    }
}

/// One entry of `RelatedEvals`.
public struct NomadEvaluationStub: Decodable, Sendable, Equatable {
    public var id: String
    public var status: String
    public var blockedEvaluation: String?

    enum CodingKeys: String, CodingKey {
        case id = "ID", status = "Status", blockedEvaluation = "BlockedEval"
    }
}

/// Why the scheduler found no node for a task group (`FailedTGAllocs[group]`, Nomad's `AllocMetric`).
public struct NomadPlacementMetrics: Decodable, Sendable, Equatable {
    public var nodesEvaluated: Int?
    public var nodesFiltered: Int?
    public var nodesExhausted: Int?
    public var nodesAvailable: [String: Int]?
    public var classFiltered: [String: Int]?
    public var constraintFiltered: [String: Int]?
    public var classExhausted: [String: Int]?
    public var dimensionExhausted: [String: Int]?
    public var quotaExhausted: [String]?
    public var coalescedFailures: Int?

    enum CodingKeys: String, CodingKey {
        case nodesEvaluated = "NodesEvaluated", nodesFiltered = "NodesFiltered", nodesExhausted = "NodesExhausted"
        case nodesAvailable = "NodesAvailable", classFiltered = "ClassFiltered", constraintFiltered = "ConstraintFiltered"
        case classExhausted = "ClassExhausted", dimensionExhausted = "DimensionExhausted", quotaExhausted = "QuotaExhausted"
        case coalescedFailures = "CoalescedFailures"
    }
}

/// `GET /v1/agent/health`: each part is present when the agent runs as that kind.
public struct NomadAgentHealth: Decodable, Sendable, Equatable {
    public struct Part: Decodable, Sendable, Equatable {
        public var ok: Bool
        public var message: String
    }

    public var client: Part?
    public var server: Part?
}
