import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import RapidFlowAPI

/// What a client command needs to talk to a running service: where it is and the token.
struct ServiceClient: Sendable {
    let baseURL: String
    let token: String?

    /// An error the service answered with (its envelope's message), or a failure to reach it.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Sends a request and returns the envelope's `data` as the API type the route answers;
    /// an envelope error becomes a `Failure` carrying the service's message.
    @discardableResult
    func call<Payload: Decodable>(_ method: HTTPMethod, _ path: String, as type: Payload.Type = Payload.self) async throws -> Payload {
        try await call(method, path, json: nil)
    }

    /// The same, with one of the API's request types as the body.
    @discardableResult
    func call<Payload: Decodable>(
        _ method: HTTPMethod, _ path: String, body: some Encodable, as type: Payload.Type = Payload.self
    ) async throws -> Payload {
        try await call(method, path, json: try JSONEncoder().encode(body))
    }

    private func call<Payload: Decodable>(_ method: HTTPMethod, _ path: String, json: Data?) async throws -> Payload {
        var request = makeRequest(method, path)
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: json))
        }
        let response = try await send(request, timeout: .minutes(10))
        let body = Data(buffer: try await response.body.collect(upTo: 512 << 20))
        guard let answer = try? JSONDecoder().decode(Answer.self, from: body) else {
            throw Failure(description: "the service answered \(response.status.code) without a JSON envelope")
        }
        if let error = answer.error { throw failure(error) }
        let envelope: API.Envelope<Payload>
        do {
            envelope = try JSONDecoder().decode(API.Envelope<Payload>.self, from: body)
        } catch {
            throw Failure(description: "the service's answer to \(method) \(path) is not what this client reads: \(error)")
        }
        guard let data = envelope.data else { throw Failure(description: "the service answered \(method) \(path) without data") }
        return data
    }

    /// The service's refusal as a client user reads it: a missing or wrong token names the
    /// client's own way to give one, not the HTTP header.
    private func failure(_ error: API.ErrorBody) -> Failure {
        guard error.code == "unauthorized" else { return Failure(description: "\(error.message) (\(error.code))") }
        let given = token.map { !$0.isEmpty } ?? false
        return Failure(
            description: given
                ? "the service refused the token: check --token or RAPIDFLOW_API_TOKEN (unauthorized)"
                : "the service needs a token: pass --token or set RAPIDFLOW_API_TOKEN (unauthorized)")
    }

    /// What any answer is read as first: an envelope, and its error if it has one.
    private struct Answer: Decodable {
        @Nullable var error: API.ErrorBody?
    }

    /// Streams a plain-text response body chunk by chunk as the service sends it.
    func stream(_ path: String, into write: (ByteBuffer) throws -> Void) async throws {
        let response = try await send(makeRequest(.GET, path), timeout: .hours(24 * 365))
        guard response.status == .ok else {
            let body = Data(buffer: try await response.body.collect(upTo: 1 << 20))
            guard let error = (try? JSONDecoder().decode(Answer.self, from: body))?.error else {
                throw Failure(description: "the service answered \(response.status.code)")
            }
            throw failure(error)
        }
        for try await chunk in response.body { try write(chunk) }
    }

    /// Fails fast when nothing listens at the service's address: the HTTP client would
    /// otherwise keep retrying the connection until the request's deadline.
    func checkReachable() async throws {
        guard let url = URL(string: baseURL), let host = url.host, ["http", "https"].contains(url.scheme ?? "") else {
            throw Failure(description: "--server must be an http:// or https:// URL, got '\(baseURL)'")
        }
        let port = url.port ?? (url.scheme == "https" ? 443 : 80)
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(10))
                .connect(host: host, port: port).get()
            try? await channel.close()
        } catch {
            throw Failure(description: "cannot reach the service at \(baseURL): \(Self.reason(error))")
        }
    }

    /// Why a connection failed, in words (`connection refused`), not the networking library's
    /// internals (`SingleConnectionFailure(… errno: 111)`).
    static func reason(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if let failure = error as? NIOConnectionError {
            if let first = failure.connectionErrors.first { return reason(first.error) }
            if failure.dnsAAAAError != nil || failure.dnsAError != nil { return "its host name does not resolve" }
        }
        if let channel = error as? ChannelError, case .connectTimeout = channel { return "no answer within the connect timeout" }
        let text = "\(error)"
        if let range = text.range(of: "errno: ") {
            let digits = text[range.upperBound...].prefix { $0.isNumber }
            if let code = Int32(digits) { return String(cString: strerror(code)).lowercased() }
        }
        return text
    }

    private func makeRequest(_ method: HTTPMethod, _ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL.trimmingSuffix("/") + path)
        request.method = method
        if let token, !token.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request
    }

    private func send(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await HTTPClient.shared.execute(request, timeout: timeout)
        } catch let error as HTTPClientError {
            throw Failure(description: "cannot reach the service at \(baseURL): \(Self.reason(error))")
        } catch let error as ChannelError {
            throw Failure(description: "cannot reach the service at \(baseURL): \(Self.reason(error))")
        } catch let error as IOError {
            throw Failure(description: "cannot reach the service at \(baseURL): \(Self.reason(error))")
        }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}

/// Percent-encodes a query value.
func queryValue(_ value: String) -> String {
    value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? value
}
