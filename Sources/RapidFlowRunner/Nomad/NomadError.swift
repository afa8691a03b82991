/// A failure talking to Nomad: a stable code, the HTTP status when the agent answered, and a
/// sentence. Nomad's own error bodies are plain text; `message` carries that text as it came.
///
/// No message ever contains the ACL token: requests are named by method and path only, and a
/// body that echoed the token would have it replaced.
public struct NomadError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The agent answered with a non-2xx status; `status` and `message` say what it said.
        public static let response = Code(rawValue: "nomad_response")
        /// No answer: connection refused, closed without a response (Nomad's `EOF`), timed out.
        public static let unreachable = Code(rawValue: "nomad_unreachable")
        /// A 2xx answer whose body was not the JSON the endpoint documents.
        public static let invalidResponse = Code(rawValue: "nomad_invalid_response")
        public static let invalidConfiguration = Code(rawValue: "nomad_invalid_configuration")
        /// The agent answered but reported itself unhealthy, or the cluster has no leader.
        public static let unhealthy = Code(rawValue: "nomad_unhealthy")
    }

    public let code: Code
    /// Nomad's HTTP status, for `.response`.
    public let status: Int?
    public let message: String
    /// `METHOD /path` of the request, without its query.
    public let request: String?

    public init(_ code: Code, _ message: String, status: Int? = nil, request: String? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.request = request
    }

    public var description: String {
        switch (status, request) {
        case (let status?, let request?): "Nomad answered \(status) to \(request): \(message)"
        case (nil, let request?): "\(request): \(message)"
        default: message
        }
    }

    /// True for a 404: the job, allocation or evaluation does not exist (any more).
    public var isNotFound: Bool { code == .response && status == 404 }
}
