import Hummingbird
import RapidFlowCore

/// Refuses requests whose headers together exceed the limit, with a message saying so.
struct HeaderLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let maxBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var total = 0
        for field in request.headers {
            total += field.name.rawName.utf8.count + field.value.utf8.count + 4
        }
        guard total <= maxBytes else {
            throw RapidFlowError(.invalidRequest, "request headers are \(total) bytes; at most \(maxBytes) are allowed")
        }
        return try await next(request, context)
    }
}
