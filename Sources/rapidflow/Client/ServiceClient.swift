import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// What a client command needs to talk to a running service: where it is and the token.
struct ServiceClient: Sendable {
    let baseURL: String
    let token: String?

    /// An error the service answered with (its envelope's message), or a failure to reach it.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Sends a request and returns the envelope's `data`; an envelope error becomes a `Failure`
    /// carrying the service's message.
    @discardableResult
    func call(_ method: HTTPMethod, _ path: String, body: Any? = nil) async throws -> Any {
        var request = makeRequest(method, path)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await send(request, timeout: .minutes(10))
        let bytes = try await response.body.collect(upTo: 512 << 20)
        let json = try? JSONSerialization.jsonObject(with: Data(buffer: bytes), options: [.fragmentsAllowed])
        guard let envelope = json as? [String: Any] else {
            throw Failure(description: "the service answered \(response.status.code) without a JSON envelope")
        }
        if let error = envelope["error"] as? [String: Any] {
            let message = error["message"] as? String ?? "unknown error"
            let code = error["code"] as? String ?? "\(response.status.code)"
            throw Failure(description: "\(message) (\(code))")
        }
        return envelope["data"] ?? NSNull()
    }

    /// Streams a plain-text response body chunk by chunk as the service sends it.
    func stream(_ path: String, into write: (ByteBuffer) throws -> Void) async throws {
        let response = try await send(makeRequest(.GET, path), timeout: .hours(24 * 365))
        guard response.status == .ok else {
            let bytes = try await response.body.collect(upTo: 1 << 20)
            let json = try? JSONSerialization.jsonObject(with: Data(buffer: bytes)) as? [String: Any]
            let message = (json?["error"] as? [String: Any])?["message"] as? String ?? "HTTP \(response.status.code)"
            throw Failure(description: message)
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
            throw Failure(description: "cannot reach the service at \(baseURL): \(error)")
        }
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
            throw Failure(description: "cannot reach the service at \(baseURL): \(error)")
        } catch let error as ChannelError {
            throw Failure(description: "cannot reach the service at \(baseURL): \(error)")
        } catch let error as IOError {
            throw Failure(description: "cannot reach the service at \(baseURL): \(error.description)")
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
