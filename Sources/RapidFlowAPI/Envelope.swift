extension API {
    /// Every JSON body: `{"data": …, "error": …, "timestamp": …}`, one of `data` and `error` null.
    public struct Envelope<Payload> {
        @Nullable public var data: Payload?
        @Nullable public var error: ErrorBody?
        /// When the answer was written.
        public var timestamp: String
    }

    /// What went wrong: a stable code (`RapidFlowError.Code`) and a sentence.
    public struct ErrorBody: Codable, Sendable, Equatable {
        public var code: String
        public var message: String

        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }
}

extension API.Envelope: Sendable where Payload: Sendable {}
extension API.Envelope: Equatable where Payload: Equatable {}
extension API.Envelope: Encodable where Payload: Encodable {}
extension API.Envelope: Decodable where Payload: Decodable {}
