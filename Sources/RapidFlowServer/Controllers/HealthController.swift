import Foundation
import Hummingbird
import RapidFlowAPI
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// `/health` (the process serves) and `/ready` (the store answers).
struct HealthController<Context: RequestContext> {
    let store: any JobStore
    let executorName: String
    let docker: DockerEngine
    /// With `--executor docker` an unreachable engine makes the service not ready; otherwise
    /// it is reported and only image jobs fail.
    let requiresDocker: Bool
    /// With `--executor nomad`: the agent must be healthy and the cluster have a leader.
    var nomad: NomadExecutor? = nil
    /// True while the service drains before it stops: not ready for new work.
    var isDraining: @Sendable () -> Bool = { false }

    func addRoutes(to router: Router<Context>) {
        router.get("health", use: health)
        router.get("ready", use: ready)
    }

    @Sendable func health(_ request: Request, context: Context) async throws -> APIResponse {
        try APIResponse(API.Health())
    }

    @Sendable func ready(_ request: Request, context: Context) async throws -> APIResponse {
        if isDraining() {
            throw RapidFlowError(.notReady, "the service is draining before it stops: it finishes its running jobs and starts no new one")
        }
        do {
            try await store.ping()
        } catch {
            context.logger.error("readiness check failed", metadata: ["error": "\(error)"])
            throw RapidFlowError(.notReady, "the store does not answer; see the service log")
        }
        if let nomad {
            do {
                try await nomad.checkReady()
            } catch {
                throw RapidFlowError(.notReady, "Nomad is not ready: \(error)")
            }
        }
        let dockerReachable = await docker.isReachable()
        if requiresDocker && !dockerReachable {
            throw RapidFlowError(.notReady, "the Docker engine does not answer at \(docker.socketPath)")
        }
        return try APIResponse(API.Readiness(executor: executorName, dockerReachable: dockerReachable))
    }
}
