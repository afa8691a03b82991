import Hummingbird
import Logging
import RapidFlowCore
import RapidFlowStore

/// `GET /metrics` in the Prometheus text format.
struct MetricsController<Context: RequestContext> {
    let metrics: ServiceMetrics
    let store: any JobStore
    let scheduler: JobScheduler

    func addRoutes(to router: Router<Context>) {
        router.get("metrics") { _, _ in
            let text = try await metrics.scrape(store: store, running: scheduler.runningCount)
            return Response(status: .ok, headers: Self.headers, body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
        // What a load balancer's or scraper's probe asks: the headers, no body, nothing read from the store.
        router.head("metrics") { _, _ in
            Response(status: .ok, headers: Self.headers)
        }
    }

    private static var headers: HTTPFields { [.contentType: "text/plain; version=0.0.4; charset=utf-8"] }
}

/// Counts and times every request by the route that matched (its pattern, not the raw path,
/// so ids do not explode the label set), method and final status code — including errors,
/// which the envelope middleware inside it has already turned into responses. With
/// `--access-log`, one `info` line per request too: method, route template, status, duration
/// and the client's address (never the query string or a header, which may carry a token).
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServiceMetrics
    var accessLog: Logger? = nil

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            record(request, context, code: (error as? any HTTPResponseError)?.status.code ?? 500, since: start)
            throw error
        }
        record(request, context, code: Int(response.status.code), since: start)
        return response
    }

    private func record(_ request: Request, _ context: Context, code: Int, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let route = context.endpointPath ?? "unmatched"
        metrics.recordRequest(route: route, method: request.method.rawValue, code: code, duration: elapsed)
        guard let accessLog else { return }
        var metadata: Logger.Metadata = [
            "method": "\(request.method.rawValue)", "route": "\(route)", "status": "\(code)",
            "duration_ms": "\(Int((elapsed.inSeconds * 1000).rounded()))",
        ]
        if let address = (context as? any RemoteAddressRequestContext)?.remoteAddress {
            metadata["remote"] = "\(address.ipAddress ?? "unknown"):\(address.port ?? 0)"
        }
        accessLog.info("request", metadata: metadata)
    }
}
