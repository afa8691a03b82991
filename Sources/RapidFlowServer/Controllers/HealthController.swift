import Foundation
import Hummingbird
import RapidFlowCore
import RapidFlowStore

/// `/health` (the process serves) and `/ready` (the store answers).
struct HealthController<Context: RequestContext> {
    let store: any JobStore
    let executorName: String

    func addRoutes(to router: Router<Context>) {
        router.get("health", use: health)
        router.get("ready", use: ready)
    }

    @Sendable func health(_ request: Request, context: Context) async throws -> APIResponse {
        APIResponse(.object([("status", "ok"), ("timestamp", .string(Timestamp.format(Date())))]))
    }

    @Sendable func ready(_ request: Request, context: Context) async throws -> APIResponse {
        do {
            try await store.ping()
        } catch {
            context.logger.error("readiness check failed", metadata: ["error": "\(error)"])
            throw RapidFlowError(.notReady, "the store does not answer; see the service log")
        }
        return APIResponse(
            .object([
                ("status", "ready"), ("timestamp", .string(Timestamp.format(Date()))),
                ("store", "ok"), ("executor", .string(executorName)),
            ]))
    }
}
