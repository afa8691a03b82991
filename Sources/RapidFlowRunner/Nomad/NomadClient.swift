import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// The few Nomad HTTP API calls the executor makes, on AsyncHTTPClient.
///
/// Every request carries the ACL token as `X-Nomad-Token` and the configured namespace and
/// region as query parameters, as Nomad's own Go client does. Nomad reports errors as a status
/// and a plain-text body, never JSON, so a non-2xx answer becomes a `NomadError` with that text.
/// Reads are retried a bounded number of times when no answer came: blocking queries are known
/// to end in a bare `EOF` under load (hashicorp/nomad#12273).
///
/// The client owns its HTTP client, so it must be shut down when no longer used: `shutdown()`,
/// or run it as a `Service`, which shuts it down when the service group stops.
/// It is its own because AsyncHTTPClient's shared client retries a failed connection until the
/// request's deadline, minutes for a blocking query: an agent that is down or a certificate that
/// is not trusted would surface only then. Here a connection that cannot be made fails at once,
/// and the bounded retries above decide.
public struct NomadClient: Sendable {
    /// How often and how patiently a read is tried again after getting no answer.
    public struct RetryPolicy: Sendable {
        /// Tries in all, the first included.
        public var attempts: Int
        public var initialDelay: Duration
        public var maximumDelay: Duration

        public init(attempts: Int, initialDelay: Duration, maximumDelay: Duration) {
            self.attempts = attempts
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
        }

        /// Five tries over about four seconds.
        public static let standard = RetryPolicy(attempts: 5, initialDelay: .milliseconds(250), maximumDelay: .seconds(2))
    }

    public let configuration: NomadConfiguration
    public let retry: RetryPolicy
    private let httpClient: HTTPClient
    private let baseURL: String

    /// Reads the TLS files now, so a wrong path fails at start-up rather than at the first job.
    public init(configuration: NomadConfiguration, retry: RetryPolicy = .standard) throws {
        try configuration.validateAddress()
        var http = HTTPClient.Configuration()
        http.redirectConfiguration = .disallow
        http.timeout = .init(connect: .seconds(10))
        http.tlsConfiguration = configuration.tls.isConfigured ? try Self.makeTLSConfiguration(configuration.tls) : nil
        http.connectionPool.retryConnectionEstablishment = false
        self.configuration = configuration
        self.retry = retry
        self.baseURL = configuration.address.hasSuffix("/") ? String(configuration.address.dropLast()) : configuration.address
        self.httpClient = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
    }

    /// Closes the connections; the client makes no requests after this.
    public func shutdown() async throws {
        try await httpClient.shutdown()
    }
}

// MARK: - Endpoints

extension NomadClient {
    /// `POST /v1/jobs`: creates or updates the job and returns the evaluation it started.
    public func registerJob(_ spec: NomadJobSpec) async throws -> NomadWriteResult {
        try await decode(send(.POST, "/v1/jobs", body: spec.requestBody()))
    }

    /// `GET /v1/job/:id`; with `index` a blocking query that returns once the job changed past it.
    public func job(_ id: String, index: UInt64? = nil, wait: Duration? = nil) async throws -> NomadResponse<NomadJob> {
        try await read("/v1/job/\(segment(id))", blocking: BlockingQuery(index: index, wait: wait))
    }

    /// `GET /v1/job/:id/allocations`: every allocation of the job, with its task states.
    /// A job Nomad does not know answers `[]`, not 404.
    public func jobAllocations(_ id: String, index: UInt64? = nil, wait: Duration? = nil) async throws -> NomadResponse<[NomadAllocation]> {
        try await read("/v1/job/\(segment(id))/allocations", blocking: BlockingQuery(index: index, wait: wait))
    }

    /// `GET /v1/allocation/:id` (the full UUID).
    public func allocation(_ id: String) async throws -> NomadResponse<NomadAllocation> {
        try await read("/v1/allocation/\(segment(id))")
    }

    /// `GET /v1/evaluation/:id?related=true`: the evaluation and those linked to it (its blocked one).
    public func evaluation(_ id: String, index: UInt64? = nil, wait: Duration? = nil) async throws -> NomadResponse<NomadEvaluation> {
        try await read("/v1/evaluation/\(segment(id))", query: [("related", "true")], blocking: BlockingQuery(index: index, wait: wait))
    }

    /// `DELETE /v1/job/:id`: stops the job's allocations (KillSignal, then KillTimeout, then SIGKILL).
    /// Without `purge` the stopped job stays readable until garbage collection; with it, it is gone at once.
    /// Deleting a job Nomad does not know succeeds with an empty evaluation ID.
    public func deregisterJob(_ id: String, purge: Bool) async throws -> NomadWriteResult {
        try await decode(send(.DELETE, "/v1/job/\(segment(id))", query: purge ? [("purge", "true")] : []))
    }

    /// `PUT /v1/system/gc`: collects every terminal job, evaluation and allocation in the cluster now.
    /// Needs a management token. Nomad answers with an empty body.
    public func collectGarbage() async throws {
        _ = try await send(.PUT, "/v1/system/gc")
    }

    /// `GET /v1/agent/health`. An unhealthy agent answers 500 with the same JSON as a plain-text
    /// error, which surfaces as a `NomadError` carrying that text.
    public func agentHealth() async throws -> NomadAgentHealth {
        try await read("/v1/agent/health").value
    }

    /// `GET /v1/status/leader`: the leader's RPC address, empty when the cluster has none.
    public func leader() async throws -> String {
        try await read("/v1/status/leader").value
    }
}

// MARK: - Transport

extension NomadClient {
    /// `index` and `wait` of a blocking query. Nomad waits at most `wait` (5 minutes by default,
    /// 10 at most) plus up to a sixteenth of it as jitter, then answers even if nothing changed.
    struct BlockingQuery {
        var index: UInt64?
        var wait: Duration?

        var parameters: [(String, String)] {
            guard let index else { return [] }
            return [("index", String(index))] + (wait.map { [("wait", NomadClient.waitParameter($0))] } ?? [])
        }

        /// Long enough for Nomad's longest answer to such a query.
        var timeout: TimeAmount {
            guard index != nil else { return NomadClient.requestTimeout }
            let wait = wait ?? .seconds(300)
            return .nanoseconds(Int64((wait + wait / 16) / .nanoseconds(1))) + NomadClient.requestTimeout
        }
    }

    static let requestTimeout = TimeAmount.seconds(30)
    static let maximumBodySize = 16 << 20

    /// Go's duration syntax, whole seconds where possible (`300s`), else milliseconds.
    static func waitParameter(_ wait: Duration) -> String {
        let milliseconds = max(1, Int((wait / .milliseconds(1)).rounded(.up)))
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }

    private func read<Value: Decodable & Sendable>(
        _ path: String, query: [(String, String)] = [], blocking: BlockingQuery = BlockingQuery()
    ) async throws -> NomadResponse<Value> {
        var attempt = 1
        var delay = retry.initialDelay
        while true {
            do {
                let answer = try await send(.GET, path, query: blocking.parameters + query, timeout: blocking.timeout)
                return NomadResponse(value: try decode(answer), index: answer.index)
            } catch let error as NomadError where error.code == .unreachable && attempt < retry.attempts {
                try await Task.sleep(for: delay)
                delay = min(delay * 2, retry.maximumDelay)
                attempt += 1
            }
        }
    }

    /// What came back from a 2xx answer.
    struct Answer {
        var body: ByteBuffer
        var index: UInt64
        var request: String
    }

    private func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: Data? = nil, timeout: TimeAmount = requestTimeout
    ) async throws -> Answer {
        let name = "\(method.rawValue) \(path)"
        var request = HTTPClientRequest(url: baseURL + path + queryString(query))
        request.method = method
        if let token = configuration.token, !token.isEmpty { request.headers.add(name: "X-Nomad-Token", value: token) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        let collected: ByteBuffer
        do {
            response = try await httpClient.execute(request, timeout: timeout)
            collected = try await response.body.collect(upTo: Self.maximumBodySize)
        } catch {
            try Task.checkCancellation()
            throw NomadError(.unreachable, "no answer from Nomad at \(configuration.address): \(redacted(String(describing: error)))", request: name)
        }
        guard (200..<300).contains(response.status.code) else {
            let text = String(buffer: collected).trimmingCharacters(in: .whitespacesAndNewlines)
            throw NomadError(.response, redacted(String(text.prefix(4096))), status: Int(response.status.code), request: name)
        }
        let index = response.headers.first(name: "X-Nomad-Index").flatMap { UInt64($0) } ?? 0
        return Answer(body: collected, index: index, request: name)
    }

    private func decode<Value: Decodable>(_ answer: Answer) throws -> Value {
        do {
            return try JSONDecoder().decode(Value.self, from: Data(answer.body.readableBytesView))
        } catch {
            throw NomadError(.invalidResponse, "the answer was not the JSON Nomad documents: \(error)", request: answer.request)
        }
    }

    /// The namespace and region go on every request, after the endpoint's own parameters.
    private func queryString(_ parameters: [(String, String)]) -> String {
        var all = parameters
        if let namespace = configuration.namespace { all.append(("namespace", namespace)) }
        if let region = configuration.region { all.append(("region", region)) }
        guard !all.isEmpty else { return "" }
        return "?" + all.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
    }

    private func segment(_ value: String) -> String { Self.encode(value) }

    private static func encode(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
    }

    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Errors and answers never show the token, even if something echoed it.
    private func redacted(_ text: String) -> String {
        guard let token = configuration.token, !token.isEmpty else { return text }
        return text.replacingOccurrences(of: token, with: "<token>")
    }

    static func makeTLSConfiguration(_ tls: NomadConfiguration.TLS) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        do {
            if let caFile = tls.caFile {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
            if let certificateFile = tls.clientCertificateFile, let keyFile = tls.clientKeyFile {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } else if tls.clientCertificateFile != nil || tls.clientKeyFile != nil {
                throw NomadError(.invalidConfiguration, "a Nomad client certificate and its key go together")
            }
        } catch let error as NomadError {
            throw error
        } catch {
            throw NomadError(.invalidConfiguration, "cannot load the Nomad TLS files: \(error)")
        }
        if tls.skipVerify { configuration.certificateVerification = .none }
        return configuration
    }
}
