import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore
import ServiceLifecycle

/// Sends the deliveries the store's triggers wrote (the outbox), signed the Standard Webhooks
/// way: at least once, in order per job and webhook, each by one replica at a time (a claim
/// with a lease), with retries on the schedule given (by default 5 s … 1 h, 8 tries in all),
/// 10 s per try, redirects not followed, and a target that answers 410 disabled. Also runs
/// the commit status reporter's queue, one report at a time.
final class WebhookDispatcher: Service {
    struct Settings: Sendable {
        /// The wait after each failed try; a delivery fails for good after `count + 1` tries.
        var retrySchedule: [Duration]
        /// How long one try may take.
        var timeout: Duration = .seconds(10)
        /// Hosts deliveries and commit statuses may go to; nil: any.
        var allowedHosts: Set<String>?
        /// How often the outbox is read when nothing wakes the dispatcher (other replicas' changes, retries).
        var pollInterval: Duration = .seconds(1)
        /// Delivered and failed deliveries older than this are removed (`--retention-hours`); nil keeps them.
        var retention: Duration?
    }

    private let store: any JobStore & WebhookStore
    private let vault: SecretVault
    private let client: HTTPClient
    private let settings: Settings
    private let instanceID: String
    private let baseURL: @Sendable () -> String
    private let logger: Logger
    private let signal = WakeSignal()
    let statuses: CommitStatusReporter

    init(
        store: any JobStore & WebhookStore, vault: SecretVault, settings: Settings, instanceID: String, tap: JobEventTap,
        baseURL: @escaping @Sendable () -> String, logger: Logger
    ) {
        self.store = store
        self.vault = vault
        self.settings = settings
        self.instanceID = instanceID
        self.baseURL = baseURL
        self.logger = logger
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(10))
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        statuses = CommitStatusReporter(
            store: store, vault: vault, client: client, baseURL: baseURL, allowedHosts: settings.allowedHosts, logger: logger)
        let signal = self.signal, statuses = self.statuses
        tap.listen { change in
            signal.signal()
            if case .finished(let jobID, true) = change { statuses.report(jobID: jobID) }
        }
    }

    /// Looks at the outbox now.
    func wake() { signal.signal() }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.statuses.run() }
            var pruned = ContinuousClock.now - .seconds(3600)
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                if ContinuousClock.now - pruned > .seconds(600) {
                    pruned = .now
                    await forgetOldDeliveries()
                }
                let sent = await sendDue()
                if !sent { await signal.wait(timeout: settings.pollInterval) }
            }
            statuses.finish()
        }
        try? await client.shutdown()
    }

    /// How long a forge's delivery id is remembered: a replay within it runs nothing again.
    static let replayWindow: TimeInterval = 24 * 3600

    /// Forgets forges' delivery ids past the replay window, and removes finished deliveries
    /// past the retention.
    private func forgetOldDeliveries() async {
        do {
            _ = try await store.pruneHookDeliveries(before: Date().addingTimeInterval(-Self.replayWindow))
            if let retention = settings.retention {
                _ = try await store.pruneWebhookDeliveries(before: Date().addingTimeInterval(-retention.inSeconds))
            }
        } catch {
            logger.warning("could not remove old webhook deliveries", metadata: ["error": "\(error)"])
        }
    }

    /// Sends what is due; false when nothing was.
    private func sendDue() async -> Bool {
        let now = Date()
        let batch: [WebhookDelivery]
        do {
            // The lease outlasts a try (10 s) with room: another replica takes a delivery over
            // only when this one stopped while sending it.
            batch = try await store.claimDeliveries(claimer: instanceID, limit: 16, at: now, leaseUntil: now.addingTimeInterval(60))
        } catch {
            logger.warning("could not read the webhook outbox", metadata: ["error": "\(error)"])
            return false
        }
        guard !batch.isEmpty else { return false }
        await withDiscardingTaskGroup { group in
            for delivery in batch { group.addTask { await self.send(delivery) } }
        }
        return true
    }

    private func send(_ delivery: WebhookDelivery) async {
        let started = ContinuousClock.now
        func record(_ outcome: DeliveryOutcome, status: Int?, error: String?) async {
            let elapsed = ContinuousClock.now - started
            let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
            do {
                try await store.recordDeliveryAttempt(
                    id: delivery.id, outcome: outcome, status: status, error: error, durationMilliseconds: milliseconds, at: Date())
            } catch {
                logger.warning("could not record a webhook delivery's try", metadata: ["delivery": "\(delivery.id)", "error": "\(error)"])
            }
        }
        do {
            guard let webhook = try await store.webhook(id: delivery.webhookID), webhook.disabledAt == nil else {
                return await record(.failed, status: nil, error: "the webhook is disabled or gone")
            }
            guard let body = try await body(of: delivery) else {
                return await record(.failed, status: nil, error: "job \(delivery.jobID) no longer exists")
            }
            guard allowed(webhook.url) else {
                return await record(.failed, status: nil, error: "the service may not send to this host (--webhook-allow-hosts)")
            }
            guard let secret = try? vault.open(webhook.sealedSecret, purpose: "webhook-secret:\(webhook.url)") else {
                return await retryOrFail(
                    delivery, status: nil,
                    error: "the webhook's secret does not open with this replica's secrets key: replicas must share --secrets-key-file",
                    record: record)
            }
            guard let key = WebhookSignature.standardKey(secret) else {
                return await record(.failed, status: nil, error: "the webhook's secret is not a whsec_ key")
            }
            let id = "msg_rapidflow_\(delivery.id)"
            let timestamp = Int(Date().timeIntervalSince1970)
            var request = HTTPClientRequest(url: webhook.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "RapidFlow-Webhooks")
            request.headers.add(name: "webhook-id", value: id)
            request.headers.add(name: "webhook-timestamp", value: String(timestamp))
            request.headers.add(
                name: "webhook-signature", value: WebhookSignature.standardSignature(id: id, timestamp: timestamp, body: Data(body.utf8), key: key))
            request.body = .bytes(ByteBuffer(string: body))
            let status: Int
            do {
                let response = try await client.execute(request, timeout: .init(settings.timeout))
                status = Int(response.status.code)
                _ = try? await response.body.collect(upTo: 64 << 10)
            } catch {
                return await retryOrFail(delivery, status: nil, error: Self.describe(error), record: record)
            }
            if (200..<300).contains(status) {
                await record(.delivered, status: status, error: nil)
                logger.debug("webhook delivered", metadata: ["delivery": "\(delivery.id)", "event": "\(delivery.event)", "job": "\(delivery.jobID)"])
            } else if status == 410 {
                await record(.failed, status: status, error: "the target answered 410 Gone: the webhook is disabled")
                try await store.disableWebhook(id: webhook.id, reason: "the target answered 410 Gone", at: Date())
                logger.notice("webhook disabled: its target answered 410 Gone", metadata: ["webhook": "\(webhook.id)"])
            } else {
                await retryOrFail(delivery, status: status, error: "the target answered \(status)", record: record)
            }
        } catch {
            await retryOrFail(delivery, status: nil, error: "\(error)", record: record)
        }
    }

    private func retryOrFail(
        _ delivery: WebhookDelivery, status: Int?, error: String, record: (DeliveryOutcome, Int?, String?) async -> Void
    ) async {
        let tries = delivery.tries + 1
        if tries > settings.retrySchedule.count {
            logger.warning("webhook delivery failed for good", metadata: ["delivery": "\(delivery.id)", "tries": "\(tries)", "error": "\(error)"])
            return await record(.failed, status, error)
        }
        let wait = settings.retrySchedule[tries - 1]
        logger.info(
            "webhook delivery will be tried again",
            metadata: ["delivery": "\(delivery.id)", "tries": "\(tries)", "error": "\(error)", "in_seconds": "\(wait.inSeconds)"])
        await record(.retry(at: Date().addingTimeInterval(wait.inSeconds)), status, error)
    }

    func allowed(_ url: String) -> Bool {
        guard let allowedHosts = settings.allowedHosts else { return true }
        guard let host = URLComponents(string: url)?.host?.lowercased() else { return false }
        return allowedHosts.contains(host)
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .readTimeout { return "no answer within the timeout" }
            if error == .connectTimeout { return "could not connect within the timeout" }
        }
        let text = "\(error)"
        return text.contains("connectionRefused") || text.contains("Connection refused") ? "connection refused" : String(text.prefix(300))
    }

    /// The delivery's body as first sent; built (and kept) on its first try.
    private func body(of delivery: WebhookDelivery) async throws -> String? {
        if let body = delivery.body { return body }
        guard let job = try await store.job(id: delivery.jobID) else { return nil }
        let steps = try await store.steps(jobID: job.id)
        let base = baseURL()
        var event = API.WebhookEvent(
            type: delivery.event, timestamp: delivery.createdAt,
            data: API.WebhookEventData(
                job: API.Job(job), phases: Self.phases(steps), step: delivery.stepID.flatMap { id in steps.first { $0.id == id } }.map(API.WebhookStep.init),
                logsURL: "\(base)/jobs/\(job.id)/logs", jobURL: "\(base)/jobs/\(job.id)"))
        // A delivery sent late still says what it announces: the job's status at the change.
        switch delivery.event {
        case "job.created":
            event.data.job.status = .pending
            event.data.job.startedAt = nil
            event.data.job.finishedAt = nil
        case "job.started", "step.finished":
            // A step ends while its job runs (an interrupted job's steps end before the job).
            event.data.job.status = .running
            event.data.job.finishedAt = nil
        default: break
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = String(decoding: try encoder.encode(event), as: UTF8.self)
        try await store.setDeliveryBody(id: delivery.id, body: text)
        // Another replica may have stored its body first: send the stored one.
        return try await store.delivery(id: delivery.id)?.body ?? text
    }

    /// Each phase's first start and last end among its steps.
    static func phases(_ steps: [Step]) -> [String: API.PhaseTiming] {
        var result: [String: API.PhaseTiming] = [:]
        for phase in Phase.allCases {
            let inPhase = steps.filter { $0.phase == phase }
            guard !inPhase.isEmpty else { continue }
            let started = inPhase.compactMap(\.startedAt).min()
            let finished = inPhase.allSatisfy({ $0.finishedAt != nil || $0.status == .skipped }) ? inPhase.compactMap(\.finishedAt).max() : nil
            result[phase.rawValue] = API.PhaseTiming(startedAt: started, finishedAt: started == nil ? nil : finished)
        }
        return result
    }
}
