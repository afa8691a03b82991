import Foundation
import HTTPTypes
import Hummingbird
import RapidFlowCore

/// Every JSON body is the envelope `{"data": …, "error": …, "timestamp": …}`.
public struct APIResponse: ResponseGenerator {
    public var payload: JSONValue
    public var status: HTTPResponse.Status
    public var headers: HTTPFields

    public init(_ payload: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) {
        self.payload = payload
        self.status = status
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Self.envelope(data: payload, error: .null, status: status, headers: headers)
    }

    static func envelope(data: JSONValue, error: JSONValue, status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        let body: JSONValue = .object([("data", data), ("error", error), ("timestamp", .string(Timestamp.format(Date())))])
        var buffer = ByteBuffer()
        buffer.reserveCapacity(256)
        body.write(into: &buffer)
        var allHeaders = headers
        allHeaders[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: allHeaders, body: .init(byteBuffer: buffer))
    }

    /// The one place where errors become HTTP responses.
    static func failure(_ error: any Error) -> Response {
        let apiError = Self.classify(error)
        return envelope(
            data: .null,
            error: .object([("code", .string(apiError.code.rawValue)), ("message", .string(apiError.message))]),
            status: Self.status(for: apiError.code))
    }

    static func classify(_ error: any Error) -> RapidFlowError {
        if let error = error as? RapidFlowError { return error }
        if let error = error as? any HTTPResponseError {
            switch error.status {
            case .notFound: return RapidFlowError(.routeNotFound, "no such route; see the README for the API")
            case .contentTooLarge:
                return RapidFlowError(.bodyTooLarge, "request body is larger than the \(Limits.default.maxBodyBytes / 1024) KiB limit")
            case .methodNotAllowed: return RapidFlowError(.methodNotAllowed, "this route does not take that method")
            case .unauthorized: return RapidFlowError(.unauthorized, "missing or wrong bearer token")
            default:
                if error.status.code < 500 {
                    return RapidFlowError(.invalidRequest, "the request could not be handled: \(error.status.reasonPhrase)")
                }
            }
        }
        return RapidFlowError(.internalError, "the service failed to handle the request; see its log")
    }

    static func status(for code: RapidFlowError.Code) -> HTTPResponse.Status {
        switch code {
        case .jobNotFound, .stepNotFound, .pipelineNotFound, .routeNotFound: .notFound
        case .bodyTooLarge: .contentTooLarge
        case .unauthorized: .unauthorized
        case .methodNotAllowed: .methodNotAllowed
        case .notReady: .serviceUnavailable
        case .insufficientStorage: .init(code: 507, reasonPhrase: "Insufficient Storage")
        case .internalError: .internalServerError
        default: .badRequest
        }
    }
}

/// Turns every error thrown below it, unknown routes included, into the error envelope.
struct ErrorEnvelopeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let classified = APIResponse.classify(error)
            if classified.code == .internalError {
                context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            }
            return APIResponse.failure(error)
        }
    }
}
