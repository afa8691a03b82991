import Foundation
import RapidFlowCore

extension API {
    /// One text message of the WebSocket log stream (`GET /jobs/:id/logs/stream`), an object
    /// whose `event` says which of these it is.
    public enum LogStreamEvent: Codable, Sendable, Equatable {
        case stepStarted(stepID: Int, orderNum: Int, type: StepType, phase: Phase)
        /// Output bytes of a step at their byte offset in its stored output.
        case log(stepID: Int, offset: Int, data: LogData)
        case stepFinished(stepID: Int, status: StepStatus, exitCode: Int?)
        case jobFinished(status: JobStatus)
        case serviceStopping
        /// The stream could not start (an unknown job).
        case error(code: String, message: String)

        /// A `log` event's bytes: `data` when they are valid UTF-8, `data_base64` otherwise.
        public enum LogData: Sendable, Equatable {
            case text(String)
            case base64(String)

            /// The bytes themselves.
            public var bytes: Data? {
                switch self {
                case .text(let text): Data(text.utf8)
                case .base64(let encoded): Data(base64Encoded: encoded)
                }
            }
        }

        enum CodingKeys: String, CodingKey {
            case event, stepID = "step_id", orderNum = "order_num", type, phase, offset, data, dataBase64 = "data_base64"
            case status, exitCode = "exit_code", code, message
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .stepStarted(let stepID, let orderNum, let type, let phase):
                try container.encode("step_started", forKey: .event)
                try container.encode(stepID, forKey: .stepID)
                try container.encode(orderNum, forKey: .orderNum)
                try container.encode(type, forKey: .type)
                try container.encode(phase, forKey: .phase)
            case .log(let stepID, let offset, let data):
                try container.encode("log", forKey: .event)
                try container.encode(stepID, forKey: .stepID)
                try container.encode(offset, forKey: .offset)
                switch data {
                case .text(let text): try container.encode(text, forKey: .data)
                case .base64(let encoded): try container.encode(encoded, forKey: .dataBase64)
                }
            case .stepFinished(let stepID, let status, let exitCode):
                try container.encode("step_finished", forKey: .event)
                try container.encode(stepID, forKey: .stepID)
                try container.encode(status, forKey: .status)
                // Null while unknown, never left out.
                try container.encode(exitCode, forKey: .exitCode)
            case .jobFinished(let status):
                try container.encode("job_finished", forKey: .event)
                try container.encode(status, forKey: .status)
            case .serviceStopping:
                try container.encode("service_stopping", forKey: .event)
            case .error(let code, let message):
                try container.encode("error", forKey: .event)
                try container.encode(code, forKey: .code)
                try container.encode(message, forKey: .message)
            }
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch try container.decode(String.self, forKey: .event) {
            case "step_started":
                self = .stepStarted(
                    stepID: try container.decode(Int.self, forKey: .stepID), orderNum: try container.decode(Int.self, forKey: .orderNum),
                    type: try container.decode(StepType.self, forKey: .type), phase: try container.decode(Phase.self, forKey: .phase))
            case "log":
                let data: LogData =
                    if let text = try container.decodeIfPresent(String.self, forKey: .data) { .text(text) } else {
                        .base64(try container.decode(String.self, forKey: .dataBase64))
                    }
                self = .log(stepID: try container.decode(Int.self, forKey: .stepID), offset: try container.decode(Int.self, forKey: .offset), data: data)
            case "step_finished":
                self = .stepFinished(
                    stepID: try container.decode(Int.self, forKey: .stepID), status: try container.decode(StepStatus.self, forKey: .status),
                    exitCode: try container.decodeIfPresent(Int.self, forKey: .exitCode))
            case "job_finished":
                self = .jobFinished(status: try container.decode(JobStatus.self, forKey: .status))
            case "service_stopping":
                self = .serviceStopping
            case "error":
                self = .error(code: try container.decode(String.self, forKey: .code), message: try container.decode(String.self, forKey: .message))
            case let event:
                throw DecodingError.dataCorruptedError(forKey: .event, in: container, debugDescription: "unknown event '\(event)'")
            }
        }
    }
}
