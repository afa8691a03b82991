import Foundation
import RapidFlowAPI

/// One HTTP/1 response as it came over the wire.
public struct RawResponse: Sendable {
    public let version: String
    public let status: Int
    public let headers: [(String, String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? { self.headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    /// The code of the envelope's error; nil when there is none, or the body is no envelope.
    public var errorCode: String? {
        (try? JSONDecoder().decode(API.Envelope<UnreadData>.self, from: Data(self.body)))?.error?.code
    }

    /// The responses in `bytes`, in order; a body without a length runs to the end.
    public static func parseAll(_ bytes: [UInt8]) -> [RawResponse] {
        var responses: [RawResponse] = []
        var rest = bytes[...]
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while let headEnd = rest.firstRange(of: separator) {
            let lines = String(decoding: rest[..<headEnd.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
            let statusLine = lines[0].split(separator: " ", maxSplits: 2)
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else { break }
            let headers = lines.dropFirst().compactMap { line -> (String, String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            rest = rest[headEnd.upperBound...]
            let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) } ?? rest.count
            let body = rest.prefix(length)
            rest = rest.dropFirst(body.count)
            responses.append(RawResponse(version: String(statusLine[0]), status: status, headers: headers, body: Array(body)))
        }
        return responses
    }
}
