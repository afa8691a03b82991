import Foundation
import RapidFlowAPI
import Testing

extension TestServer {
    /// One answer of the service, its body read through the API's types.
    public struct Reply: Sendable {
        public let status: Int
        public let headers: [(String, String)]
        public let body: Data

        public init(status: Int, headers: [(String, String)], body: Data) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        public var text: String { String(decoding: body, as: UTF8.self) }

        public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }

        /// The envelope, its `data` read as one of the API's response types.
        public func envelope<Payload: Decodable>(_ type: Payload.Type) throws -> API.Envelope<Payload> {
            do {
                return try JSONDecoder().decode(API.Envelope<Payload>.self, from: body)
            } catch {
                throw TestFailure("the answer (\(status)) is no envelope of \(Payload.self): \(error)\n\(text.prefix(300))")
            }
        }

        /// The envelope's `data` as one of the API's response types; a null `data` fails the test.
        public func decoded<Payload: Decodable>(
            _ type: Payload.Type, sourceLocation: SourceLocation = #_sourceLocation
        ) throws -> Payload {
            try #require(try envelope(type).data, "\(status): \(text.prefix(300))", sourceLocation: sourceLocation)
        }

        /// The envelope's error; nil when there is none, or the body is no envelope.
        public var error: API.ErrorBody? { try? envelope(UnreadData.self).error }
        public var errorCode: String? { error?.code }
        public var errorMessage: String { error?.message ?? "" }
    }
}

/// An envelope's `data` left unread, whatever it holds: for an answer read only for its error.
public struct UnreadData: Decodable, Sendable {
    public init(from decoder: any Decoder) throws {}
}
