import Foundation
import Hummingbird
import RapidFlowAPI
import RapidFlowCore

extension Request {
    /// The body decoded as one of the API's request types, every refusal a `RapidFlowError`
    /// naming the problem (see `RequestDecoding`); nil when the body is empty. A body past
    /// `limits.maxBodyBytes` is refused with 413 before it is read.
    func decodeJSON<Body: Decodable>(as type: Body.Type, limits: Limits) async throws -> Body? {
        var request = self
        let buffer = try await request.collectBody(upTo: limits.maxBodyBytes)
        return try RequestDecoding.decode(type, from: Data(buffer.readableBytesView))
    }
}
