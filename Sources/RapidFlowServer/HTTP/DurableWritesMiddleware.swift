import Hummingbird
import NIOPosix
import RapidFlowStore

/// An API call that changed something answers only once the change would survive a power
/// loss: after the handler, a call that is not a read flushes the store's committed writes
/// (`JobStore.syncCommittedWrites`) before its answer goes out.
///
/// The one exception is what runners report (`/runner/…`: step output, step starts and
/// ends): like a local step's output it is the engine's own progress, written without a
/// flush, and a job it was lost for is settled by recovery.
struct DurableWritesMiddleware<Context: RequestContext>: RouterMiddleware {
    let store: any JobStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        guard request.method != .get, request.method != .head, request.method != .options,
            !request.uri.path.hasPrefix("/runner/")
        else { return response }
        // A flush waits on the disk: off the concurrency pool, whose threads are the cores.
        let store = store
        try await NIOThreadPool.singleton.runIfActive { try store.syncCommittedWrites() }
        return response
    }
}
