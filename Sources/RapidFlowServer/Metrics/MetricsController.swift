import Hummingbird
import RapidFlowStore

/// `GET /metrics` in the Prometheus text format.
struct MetricsController<Context: RequestContext> {
    let metrics: ServiceMetrics
    let store: any JobStore
    let scheduler: JobScheduler

    func addRoutes(to router: Router<Context>) {
        router.get("metrics") { _, _ in
            let text = try await metrics.scrape(store: store, running: await scheduler.runningCount)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
    }
}

/// Counts every request by the route that matched (its pattern, not the raw path, so ids do
/// not explode the label set), method and final status code — including errors, which the
/// envelope middleware inside it has already turned into responses.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServiceMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        metrics.recordRequest(
            route: context.endpointPath ?? "unmatched", method: request.method.rawValue, code: Int(response.status.code))
        return response
    }
}
