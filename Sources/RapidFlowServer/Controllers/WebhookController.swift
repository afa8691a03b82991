import Foundation
import Hummingbird
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore

/// `/webhooks`: URLs told when jobs are created, start and finish, and when steps finish.
/// The signing secret is shown once, in the answer that registered the webhook.
struct WebhookController {
    let store: any JobStore & WebhookStore
    let vault: SecretVault
    let limits: Limits
    let dispatcher: WebhookDispatcher?

    func addRoutes(to router: Router<ServiceRequestContext>) {
        router.post("webhooks", use: create)
        router.get("webhooks", use: list)
        router.get("webhooks/:id", use: show)
        router.delete("webhooks/:id", use: delete)
        router.get("webhooks/:id/deliveries", use: deliveries)
        router.post("webhooks/:id/deliveries/:delivery/redeliver", use: redeliver)
    }

    @Sendable func create(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        guard let body = try await request.decodeJSON(as: API.WebhookRequest.self, limits: limits) else {
            throw RapidFlowError(.invalidRequest, "request body is empty: send {\"url\": ..., \"events\": [\"job.finished\"]}")
        }
        if let dispatcher, !dispatcher.allowed(body.url) {
            throw RapidFlowError(.invalidRequest, "'url' names a host this service may not send to (--webhook-allow-hosts)")
        }
        if let pipelineID = body.pipelineID { _ = try await store.requirePipeline(id: pipelineID) }
        let secret = body.secret ?? WebhookSignature.newSecret()
        let stored = try await store.createWebhook(
            url: body.url, events: body.events, owner: body.owner, pipelineID: body.pipelineID,
            sealedSecret: try vault.seal(secret, purpose: "webhook-secret:\(body.url)"), at: Date())
        return try APIResponse(Self.payload(stored, secret: body.secret == nil ? secret : nil), headers: [.location: "/webhooks/\(stored.id)"])
    }

    @Sendable func list(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        try APIResponse(try await store.webhooks().map { Self.payload($0) })
    }

    @Sendable func show(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        try APIResponse(Self.payload(try await requireWebhook(context)))
    }

    @Sendable func delete(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        let webhook = try await requireWebhook(context)
        _ = try await store.deleteWebhook(id: webhook.id)
        return try APIResponse(API.DeleteResult(id: webhook.id))
    }

    /// Newest first, `?limit=` (default 50, at most 500).
    @Sendable func deliveries(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        let webhook = try await requireWebhook(context)
        let limit = try RequestParsing.queryInt(request, "limit", range: 1...500) ?? 50
        return try APIResponse(try await store.deliveries(webhookID: webhook.id, limit: limit).map(Self.payload))
    }

    @Sendable func redeliver(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        let webhook = try await requireWebhook(context)
        let id = try RequestParsing.id(context, "delivery", what: "delivery")
        guard let existing = try await store.delivery(id: id), existing.webhookID == webhook.id else {
            throw RapidFlowError(.webhookNotFound, "webhook \(webhook.id) has no delivery \(id)")
        }
        guard webhook.disabledAt == nil else {
            throw RapidFlowError(.invalidRequest, "webhook \(webhook.id) is disabled (\(webhook.disabledReason ?? "")): register it again to send to it")
        }
        guard let delivery = try await store.redeliver(id: id, at: Date()) else {
            throw RapidFlowError(.invalidRequest, "delivery \(id) is being sent right now: ask again once this try has ended")
        }
        dispatcher?.wake()
        return try APIResponse(Self.payload(delivery))
    }

    private func requireWebhook(_ context: ServiceRequestContext) async throws -> StoredWebhook {
        let id = try RequestParsing.id(context, what: "webhook")
        guard let webhook = try await store.webhook(id: id) else { throw RapidFlowError(.webhookNotFound, "webhook \(id) does not exist") }
        return webhook
    }

    static func payload(_ webhook: StoredWebhook, secret: String? = nil) -> API.Webhook {
        API.Webhook(
            id: webhook.id, url: webhook.url, events: webhook.events, owner: webhook.owner, pipelineID: webhook.pipelineID,
            createdAt: webhook.createdAt, disabledAt: webhook.disabledAt, disabledReason: webhook.disabledReason, secret: secret)
    }

    static func payload(_ delivery: RapidFlowStore.WebhookDelivery) -> API.WebhookDelivery {
        API.WebhookDelivery(
            id: delivery.id, webhookID: delivery.webhookID, jobID: delivery.jobID, stepID: delivery.stepID, event: delivery.event,
            state: delivery.state.rawValue, tries: delivery.tries, statusCode: delivery.lastStatus, error: delivery.lastError,
            durationMs: delivery.lastDurationMilliseconds, nextTryAt: delivery.state == .pending ? delivery.nextTryAt : nil,
            createdAt: delivery.createdAt, deliveredAt: delivery.deliveredAt)
    }
}
