import Foundation

/// An error the domain reports to callers: a stable code and a sentence a person can act on.
///
/// The code is a struct rather than an enum so that new codes never break callers
/// that switch over the ones they know. The server maps codes to HTTP statuses in one place.
public struct RapidFlowError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidRequest = Code(rawValue: "invalid_request")
        public static let invalidConfig = Code(rawValue: "invalid_config")
        public static let invalidJSON = Code(rawValue: "invalid_json")
        public static let invalidID = Code(rawValue: "invalid_id")
        public static let jobNotFound = Code(rawValue: "job_not_found")
        public static let stepNotFound = Code(rawValue: "step_not_found")
        public static let pipelineNotFound = Code(rawValue: "pipeline_not_found")
        public static let routeNotFound = Code(rawValue: "route_not_found")
        public static let methodNotAllowed = Code(rawValue: "method_not_allowed")
        public static let jobNotCancellable = Code(rawValue: "job_not_cancellable")
        public static let jobNotRetryable = Code(rawValue: "job_not_retryable")
        public static let jobNotFinished = Code(rawValue: "job_not_finished")
        public static let bodyTooLarge = Code(rawValue: "body_too_large")
        public static let unauthorized = Code(rawValue: "unauthorized")
        public static let notReady = Code(rawValue: "not_ready")
        public static let insufficientStorage = Code(rawValue: "insufficient_storage")
        public static let internalError = Code(rawValue: "internal_error")
        /// The bytes are not an HTTP/1.1 request the parser accepts.
        public static let malformedRequest = Code(rawValue: "malformed_request")
        public static let methodNotImplemented = Code(rawValue: "method_not_implemented")
        public static let headersTooLarge = Code(rawValue: "headers_too_large")
        /// The request head did not arrive in time.
        public static let requestTimeout = Code(rawValue: "request_timeout")
        /// No stored secret of that name in the scope asked for (404).
        public static let secretNotFound = Code(rawValue: "secret_not_found")
        /// A config or request names a stored secret that its pipeline or owner cannot see (400).
        public static let unknownSecret = Code(rawValue: "unknown_secret")
        /// A secret's name, value or scope is refused (400).
        public static let invalidSecret = Code(rawValue: "invalid_secret")
        /// Another pipeline of the same owner has that name (409).
        public static let pipelineNameTaken = Code(rawValue: "pipeline_name_taken")
        /// The token is valid but its role or owners do not reach what the request asks (403).
        public static let forbidden = Code(rawValue: "forbidden")
        /// Another token has that name (409).
        public static let tokenNameTaken = Code(rawValue: "token_name_taken")
        /// No token with that id (404).
        public static let tokenNotFound = Code(rawValue: "token_not_found")
        /// A webhook delivery's signature (or GitLab token) is missing or wrong (401).
        public static let invalidSignature = Code(rawValue: "invalid_signature")
        /// Another incoming hook has that name (409).
        public static let hookNameTaken = Code(rawValue: "hook_name_taken")
        /// No incoming hook with that id (404).
        public static let hookNotFound = Code(rawValue: "hook_not_found")
        /// No webhook (or webhook delivery) with that id (404).
        public static let webhookNotFound = Code(rawValue: "webhook_not_found")
        /// No cache with that id (404).
        public static let cacheNotFound = Code(rawValue: "cache_not_found")
        /// The job kept no artifact at that path, or it expired (404).
        public static let artifactNotFound = Code(rawValue: "artifact_not_found")
        /// A `Range` header the artifact cannot satisfy (416).
        public static let rangeNotSatisfiable = Code(rawValue: "range_not_satisfiable")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    public static func invalidConfig(_ message: String) -> RapidFlowError {
        RapidFlowError(.invalidConfig, message)
    }

    public static func jobNotFound(_ id: Int) -> RapidFlowError {
        RapidFlowError(.jobNotFound, "job \(id) does not exist")
    }

    public static func stepNotFound(_ id: Int) -> RapidFlowError {
        RapidFlowError(.stepNotFound, "step \(id) does not exist")
    }

    public static func pipelineNameTaken(_ name: String, owner: String, by id: Int) -> RapidFlowError {
        RapidFlowError(
            .pipelineNameTaken,
            "owner '\(owner)' already has a pipeline named '\(name)' (pipeline \(id)): pick another name, or change that one with PUT /pipelines/\(id)")
    }

    public static func pipelineNotFound(_ id: Int) -> RapidFlowError {
        RapidFlowError(.pipelineNotFound, "pipeline \(id) does not exist")
    }
}

extension RapidFlowError {
    /// Whether `error` says a disk is full, as SQLite (SQLITE_FULL), PostgreSQL (53100), the OS
    /// (ENOSPC) or the service's own answer (507, also as a runner reports it) say it.
    public static func isDiskFull(_ error: any Error) -> Bool {
        if let error = error as? RapidFlowError { return error.code == .insufficientStorage }
        let text = String(describing: error)
        return text.contains("database or disk is full") || text.contains("No space left") || text.contains("53100")
            || text.contains("disk full") || text.contains("disk is full") || text.contains("SQLITE_FULL")
            || (error as NSError).code == Int(ENOSPC)
    }
}
