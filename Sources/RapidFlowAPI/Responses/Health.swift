import Foundation
import RapidFlowCore

extension API {
    /// `GET /health`: the process serves.
    public struct Health: Codable, Sendable, Equatable {
        public var status: String
        public var timestamp: String

        public init(now: Date = Date()) {
            status = "ok"
            timestamp = Timestamp.format(now)
        }
    }

    /// `GET /ready`: the store answers (and, as configured, Docker or Nomad).
    public struct Readiness: Codable, Sendable, Equatable {
        public var status: String
        public var timestamp: String
        public var store: String
        /// Where pipeline steps run: shell, docker, auto, nomad or runner.
        public var executor: String
        /// `ok` or `unreachable`.
        public var docker: String

        public init(executor: String, dockerReachable: Bool, now: Date = Date()) {
            status = "ready"
            timestamp = Timestamp.format(now)
            store = "ok"
            self.executor = executor
            docker = dockerReachable ? "ok" : "unreachable"
        }
    }
}
