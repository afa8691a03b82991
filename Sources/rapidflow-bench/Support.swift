import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RapidFlowAPI

// MARK: - Statistics

/// The middle value, or the mean of the two middle values; NaN when there are none.
func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// The nearest-rank percentile of `values` (`p` in 0...1); NaN when there are none.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func format(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Command line

/// `--name value` pairs after the subcommand.
struct Options {
    private var values: [String: String] = [:]
    private(set) var flags: Set<String> = []

    init(_ arguments: ArraySlice<String>) {
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            if let next = remaining.first, !next.hasPrefix("--") {
                values[argument] = next
                remaining.removeFirst()
            } else {
                flags.insert(argument)
            }
        }
    }

    func string(_ name: String) throws -> String {
        guard let value = values[name] else { throw BenchError("missing \(name)") }
        return value
    }

    func int(_ name: String, default fallback: Int) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text) else { throw BenchError("\(name) takes a whole number, not '\(text)'") }
        return value
    }
}

// MARK: - HTTP

/// JSON over HTTP/1.1 to a service on loopback, on kept-alive connections.
struct JSONAPI: Sendable {
    let base: String
    var client: HTTPClient = .shared

    /// The body of a 2xx answer, decoded.
    func json<Answer: Decodable>(_ method: HTTPMethod, _ path: String, _ body: (any Encodable)? = nil, as type: Answer.Type = Answer.self) async throws -> Answer {
        try JSONDecoder().decode(Answer.self, from: try await send(method, path, body))
    }

    /// RapidFlow's envelope: its `data`, as the API type the route answers.
    func rapidFlow<Payload: Decodable>(_ method: HTTPMethod, _ path: String, _ body: (any Encodable)? = nil, as type: Payload.Type = Payload.self) async throws -> Payload {
        let envelope: API.Envelope<Payload> = try await json(method, path, body)
        guard let data = envelope.data else { throw BenchError("\(method) \(path): no data in the answer") }
        return data
    }

    /// Sends the request and returns the whole body; a status other than 2xx is an error.
    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, _ body: (any Encodable)? = nil) async throws -> Data {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(body)))
        }
        let response = try await client.execute(request, timeout: .seconds(600))
        let buffer = try await response.body.collect(upTo: 512 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw BenchError("\(method) \(path): \(response.status.code) \(String(buffer: buffer).prefix(300))")
        }
        return Data(buffer.readableBytesView)
    }
}

/// Numbers one per line, for `scripts/bench.sh` and the report.
func writeSamples(_ values: [Double], to path: String) throws {
    try (values.map { format($0, 3) }.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}
