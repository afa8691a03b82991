import Foundation
import HTTPTypes
import Hummingbird
import NIOHTTP1
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

    /// One of the API's response types, its fields in declaration order (`JSONValueEncoder`).
    init(_ payload: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws {
        self.init(try JSONValueEncoder().encode(payload), status: status, headers: headers)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Self.envelope(data: payload, error: .null, status: status, headers: headers)
    }

    static func envelope(data: JSONValue, error: JSONValue, status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        var allHeaders = headers
        allHeaders[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: allHeaders, body: .init(byteBuffer: envelopeBody(data: data, error: error)))
    }

    static func envelopeBody(data: JSONValue, error: JSONValue) -> ByteBuffer {
        let body: JSONValue = .object([("data", data), ("error", error), ("timestamp", .string(Timestamp.format(Date())))])
        var buffer = ByteBuffer()
        buffer.reserveCapacity(256)
        body.write(into: &buffer)
        return buffer
    }

    /// The one place where errors become HTTP responses.
    static func failure(_ error: any Error) -> Response {
        let apiError = Self.classify(error)
        return envelope(data: .null, error: errorObject(apiError), status: Self.status(for: apiError.code))
    }

    static func errorObject(_ error: RapidFlowError) -> JSONValue {
        .object([("code", .string(error.code.rawValue)), ("message", .string(error.message))])
    }

    static func classify(_ error: any Error) -> RapidFlowError {
        if let error = error as? RapidFlowError { return error }
        if let error = error as? HTTPParserError { return malformed(error) }
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
        case .jobNotFound, .stepNotFound, .pipelineNotFound, .routeNotFound, .secretNotFound, .tokenNotFound, .hookNotFound, .webhookNotFound,
            .cacheNotFound, .artifactNotFound:
            .notFound
        case .rangeNotSatisfiable: .rangeNotSatisfiable
        case .bodyTooLarge: .contentTooLarge
        case .pipelineNameTaken, .tokenNameTaken, .hookNameTaken: .conflict
        case .forbidden: .forbidden
        case .unauthorized, .invalidSignature: .unauthorized
        case .methodNotAllowed: .methodNotAllowed
        case .notReady: .serviceUnavailable
        case .insufficientStorage: .init(code: 507, reasonPhrase: "Insufficient Storage")
        case .internalError: .internalServerError
        case .methodNotImplemented: .notImplemented
        case .headersTooLarge: .requestHeaderFieldsTooLarge
        case .requestTimeout: .requestTimeout
        default: .badRequest
        }
    }

    /// What the HTTP parser refused, in words; an unknown method is told apart by the caller,
    /// which has seen the request's first bytes (the parser reports it like any bad start).
    static func malformed(_ error: HTTPParserError) -> RapidFlowError {
        let limits = Limits.default
        return switch error {
        case .headerOverflow:
            RapidFlowError(
                .headersTooLarge,
                "request headers are over \(limits.maxParsedHeaderBytes / 1024) KiB or \(limits.maxHeaderFields) fields")
        case .invalidMethod:
            RapidFlowError(.malformedRequest, "the request does not start with an HTTP method")
        // The parser pauses on the HTTP/2 preface (`PRI * HTTP/2.0`).
        case .invalidVersion, .paused:
            RapidFlowError(.malformedRequest, "unsupported HTTP version: the service speaks HTTP/1.1 and 1.0")
        case .unexpectedContentLength:
            RapidFlowError(.malformedRequest, "Content-Length together with Transfer-Encoding, or more than one Content-Length")
        case .invalidContentLength:
            RapidFlowError(.malformedRequest, "Content-Length is not a non-negative decimal number")
        case .invalidChunkSize:
            RapidFlowError(.malformedRequest, "malformed chunked body")
        // Among others, a Transfer-Encoding the parser refuses (as it does next to a Content-Length).
        case .unknown:
            RapidFlowError(.malformedRequest, "malformed HTTP request: invalid Transfer-Encoding or message framing")
        default:
            RapidFlowError(.malformedRequest, "malformed HTTP request: \(error.debugDescription)")
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
