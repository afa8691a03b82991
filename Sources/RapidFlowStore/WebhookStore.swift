import Foundation
import RapidFlowCore
import SQLKit

/// An incoming hook as stored: its secret and forge token sealed by the service.
public struct StoredHook: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var forge: Forge
    /// Only this owner's pipelines are started by it; nil: every owner's.
    public var owner: String?
    public var sealedSecret: Data
    /// The forge API token commit statuses are posted with.
    public var sealedStatusToken: Data?
    /// The forge's API base URL (`https://api.github.com`, `https://gitea.example/api/v1`,
    /// `https://gitlab.example/api/v4`).
    public var statusURL: String?
    public var createdAt: Date
    public var lastDeliveryAt: Date?
}

/// A registered notification target as stored.
public struct StoredWebhook: Sendable, Equatable {
    public var id: Int
    public var url: String
    public var events: [String]
    public var owner: String?
    public var pipelineID: Int?
    public var sealedSecret: Data
    public var createdAt: Date
    public var disabledAt: Date?
    public var disabledReason: String?
}

/// One announcement of a state change to one webhook.
public struct WebhookDelivery: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Not yet answered with a 2xx (also between retries).
        case pending
        case delivered
        /// Every try failed, or the target is gone (410).
        case failed
    }

    public var id: Int
    public var webhookID: Int
    public var jobID: Int
    public var stepID: Int?
    /// `job.created`, `job.started`, `job.finished`, `step.finished`.
    public var event: String
    public var state: State
    public var tries: Int
    public var nextTryAt: Date
    public var lastStatus: Int?
    public var lastError: String?
    public var lastDurationMilliseconds: Int?
    /// The body as first sent: every retry sends the same bytes.
    public var body: String?
    public var createdAt: Date
    public var deliveredAt: Date?
}

/// What one try of a delivery came to.
public enum DeliveryOutcome: Sendable, Equatable {
    case delivered
    case retry(at: Date)
    case failed
}

/// Incoming hooks, the delivery ids they saw, outgoing webhooks and their deliveries.
public protocol WebhookStore: Sendable {
    func createHook(
        name: String, forge: Forge, owner: String?, sealedSecret: Data, sealedStatusToken: Data?, statusURL: String?, at: Date
    ) async throws -> StoredHook
    /// Oldest first; with `forge`, that forge's only.
    func hooks(forge: Forge?) async throws -> [StoredHook]
    func hook(id: Int) async throws -> StoredHook?
    func deleteHook(id: Int) async throws -> Bool
    /// Records a delivery id for `forge`; false when it was seen already (a replay).
    func recordHookDelivery(forge: Forge, deliveryID: String, hookID: Int, at: Date) async throws -> Bool
    /// The answer the first delivery of that id got (nil while it is still being handled).
    func hookDeliveryAnswer(forge: Forge, deliveryID: String) async throws -> String?
    func setHookDeliveryAnswer(forge: Forge, deliveryID: String, answer: String) async throws
    /// Forgets a delivery id (one that was refused may be sent again).
    func forgetHookDelivery(forge: Forge, deliveryID: String) async throws
    /// Forgets delivery ids older than `before` (a replay after that runs again).
    func pruneHookDeliveries(before: Date) async throws -> Int

    func createWebhook(url: String, events: [String], owner: String?, pipelineID: Int?, sealedSecret: Data, at: Date) async throws -> StoredWebhook
    func webhooks() async throws -> [StoredWebhook]
    func webhook(id: Int) async throws -> StoredWebhook?
    /// Removes the webhook and its deliveries.
    func deleteWebhook(id: Int) async throws -> Bool
    /// Disables the webhook (its target answered 410); its pending deliveries fail.
    func disableWebhook(id: Int, reason: String, at: Date) async throws
    /// Takes up to `limit` due deliveries for `claimer` until `leaseUntil`: per webhook and job
    /// only the oldest undelivered one (so each job's announcements arrive in order), each
    /// delivery to exactly one claimer at a time, also across replicas.
    func claimDeliveries(claimer: String, limit: Int, at: Date, leaseUntil: Date) async throws -> [WebhookDelivery]
    func setDeliveryBody(id: Int, body: String) async throws
    func recordDeliveryAttempt(
        id: Int, outcome: DeliveryOutcome, status: Int?, error: String?, durationMilliseconds: Int, at: Date
    ) async throws
    /// Newest first.
    func deliveries(webhookID: Int, limit: Int) async throws -> [WebhookDelivery]
    /// Removes delivered and failed deliveries made before `before`; how many.
    func pruneWebhookDeliveries(before: Date) async throws -> Int
    func delivery(id: Int) async throws -> WebhookDelivery?
    /// Sends a delivery again (or a waiting one now) as soon as it is its job's turn: one more
    /// try for one that failed for good, the next of its tries for one still waiting; nil when
    /// there is none, or it is being sent right now.
    func redeliver(id: Int, at: Date) async throws -> WebhookDelivery?
}

extension SQLJobStore: WebhookStore {
    public func createHook(
        name: String, forge: Forge, owner: String?, sealedSecret: Data, sealedStatusToken: Data?, statusURL: String?, at date: Date
    ) async throws -> StoredHook {
        try await withDatabase { database in
            if try await database.raw("SELECT id FROM hooks WHERE name = \(bind: name)").first() != nil {
                throw RapidFlowError(.hookNameTaken, "a hook named '\(name)' exists already: pick another name")
            }
            let inserted: (any SQLRow)?
            do {
                inserted = try await database.raw(
                    """
                    INSERT INTO hooks (name, forge, owner, secret, status_token, status_url, created_at)
                    VALUES (\(bind: name), \(bind: forge.rawValue), \(bind: owner), \(bind: sealedSecret), \(bind: sealedStatusToken),
                            \(bind: statusURL), \(bind: Millis(date)))
                    RETURNING *
                    """
                ).first()
            } catch {
                // Another create of the same name got in between: the unique index refused this one.
                if try await database.raw("SELECT id FROM hooks WHERE name = \(bind: name)").first() != nil {
                    throw RapidFlowError(.hookNameTaken, "a hook named '\(name)' exists already: pick another name")
                }
                throw error
            }
            guard let row = inserted else { throw RapidFlowError(.internalError, "the store did not return the new hook") }
            return try Self.hook(from: row)
        }
    }

    public func hooks(forge: Forge?) async throws -> [StoredHook] {
        try await withDatabase { database in
            if let forge {
                return try await database.raw("SELECT * FROM hooks WHERE forge = \(bind: forge.rawValue) ORDER BY id").all().map(Self.hook(from:))
            }
            return try await database.raw("SELECT * FROM hooks ORDER BY id").all().map(Self.hook(from:))
        }
    }

    public func hook(id: Int) async throws -> StoredHook? {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM hooks WHERE id = \(bind: id)").first().map(Self.hook(from:))
        }
    }

    public func deleteHook(id: Int) async throws -> Bool {
        try await withDatabase { database in
            try await database.raw("DELETE FROM hooks WHERE id = \(bind: id) RETURNING id").first() != nil
        }
    }

    public func recordHookDelivery(forge: Forge, deliveryID: String, hookID: Int, at date: Date) async throws -> Bool {
        try await withDatabase { database in
            let inserted = try await database.raw(
                """
                INSERT INTO hook_deliveries (forge, delivery_id, hook_id, received_at)
                VALUES (\(bind: forge.rawValue), \(bind: deliveryID), \(bind: hookID), \(bind: Millis(date)))
                ON CONFLICT (forge, delivery_id) DO NOTHING RETURNING hook_id
                """
            ).first() != nil
            if inserted {
                try await database.raw("UPDATE hooks SET last_delivery_at = \(bind: Millis(date)) WHERE id = \(bind: hookID)").run()
            }
            return inserted
        }
    }

    public func hookDeliveryAnswer(forge: Forge, deliveryID: String) async throws -> String? {
        try await withDatabase { database in
            try await database.raw(
                "SELECT answer FROM hook_deliveries WHERE forge = \(bind: forge.rawValue) AND delivery_id = \(bind: deliveryID)"
            ).first()?.decode(column: "answer", as: String?.self)
        }
    }

    public func setHookDeliveryAnswer(forge: Forge, deliveryID: String, answer: String) async throws {
        try await withDatabase { database in
            try await database.raw(
                """
                UPDATE hook_deliveries SET answer = \(bind: answer)
                WHERE forge = \(bind: forge.rawValue) AND delivery_id = \(bind: deliveryID)
                """
            ).run()
        }
    }

    public func forgetHookDelivery(forge: Forge, deliveryID: String) async throws {
        try await withDatabase { database in
            try await database.raw(
                "DELETE FROM hook_deliveries WHERE forge = \(bind: forge.rawValue) AND delivery_id = \(bind: deliveryID)"
            ).run()
        }
    }

    public func pruneHookDeliveries(before date: Date) async throws -> Int {
        try await withDatabase { database in
            try await database.raw("DELETE FROM hook_deliveries WHERE received_at < \(bind: Millis(date)) RETURNING hook_id").all().count
        }
    }

    public func createWebhook(
        url: String, events: [String], owner: String?, pipelineID: Int?, sealedSecret: Data, at date: Date
    ) async throws -> StoredWebhook {
        // Stored between commas, so the triggers find an event with one LIKE.
        let eventList = "," + events.joined(separator: ",") + ","
        return try await withDatabase { database in
            guard
                let row = try await database.raw(
                    """
                    INSERT INTO webhooks (url, events, owner, pipeline_id, secret, created_at)
                    VALUES (\(bind: url), \(bind: eventList), \(bind: owner), \(bind: pipelineID), \(bind: sealedSecret), \(bind: Millis(date)))
                    RETURNING *
                    """
                ).first()
            else { throw RapidFlowError(.internalError, "the store did not return the new webhook") }
            return try Self.webhook(from: row)
        }
    }

    public func webhooks() async throws -> [StoredWebhook] {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM webhooks ORDER BY id").all().map(Self.webhook(from:))
        }
    }

    public func webhook(id: Int) async throws -> StoredWebhook? {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM webhooks WHERE id = \(bind: id)").first().map(Self.webhook(from:))
        }
    }

    public func deleteWebhook(id: Int) async throws -> Bool {
        try await withDatabase { database in
            try await self.transaction(on: database) {
                try await database.raw("DELETE FROM webhook_deliveries WHERE webhook_id = \(bind: id)").run()
                return try await database.raw("DELETE FROM webhooks WHERE id = \(bind: id) RETURNING id").first() != nil
            }
        }
    }

    public func disableWebhook(id: Int, reason: String, at date: Date) async throws {
        try await withDatabase { database in
            try await self.transaction(on: database) {
                try await database.raw(
                    """
                    UPDATE webhooks SET disabled_at = \(bind: Millis(date)), disabled_reason = \(bind: reason)
                    WHERE id = \(bind: id) AND disabled_at IS NULL
                    """
                ).run()
                try await database.raw(
                    """
                    UPDATE webhook_deliveries SET state = \(bind: WebhookDelivery.State.failed.rawValue), claimed_by = NULL, claimed_until = NULL
                    WHERE webhook_id = \(bind: id) AND state = \(bind: WebhookDelivery.State.pending.rawValue)
                    """
                ).run()
            }
        }
    }

    /// The advisory lock replicas take around a claim of deliveries on PostgreSQL.
    static let deliveryLockKey: Int64 = 0x5246_5745_4248_4f4f  // "RFWEBHOO"

    public func claimDeliveries(claimer: String, limit: Int, at date: Date, leaseUntil: Date) async throws -> [WebhookDelivery] {
        let pending = WebhookDelivery.State.pending.rawValue
        let now = Millis(date)
        // Most wake-ups find nothing due (no webhook at all, or none due yet): a reader says so
        // without a transaction on the writer. A delivery written after this look is found by
        // the wake-up its own job event brings.
        // On PostgreSQL the look is one statement instead of the claim's four (a transaction
        // with the advisory lock).
        if let reader {
            let due = try reader.rows(
                "SELECT 1 FROM webhook_deliveries WHERE state = ? AND next_try_at <= ? LIMIT 1", [.text(pending), .int(now.value)], { _ in true })
            if due.isEmpty { return [] }
        } else {
            let due = try await withDatabase { database in
                try await database.raw(
                    "SELECT 1 AS due FROM webhook_deliveries WHERE state = \(bind: pending) AND next_try_at <= \(bind: now) LIMIT 1"
                ).first() != nil
            }
            if !due { return [] }
        }
        return try await withDatabase { database in
            try await self.transaction(on: database) {
                if self.dialect == .postgres {
                    try await database.raw("SELECT pg_advisory_xact_lock(\(bind: Self.deliveryLockKey))").run()
                }
                return try await database.raw(
                    """
                    WITH picked AS MATERIALIZED (
                        SELECT d.id FROM webhook_deliveries d
                        WHERE d.state = \(bind: pending) AND d.next_try_at <= \(bind: now)
                          AND (d.claimed_until IS NULL OR d.claimed_until < \(bind: now))
                          AND NOT EXISTS (
                              SELECT 1 FROM webhook_deliveries e
                              WHERE e.webhook_id = d.webhook_id AND e.job_id = d.job_id AND e.id < d.id AND e.state = \(bind: pending))
                        ORDER BY d.id LIMIT \(bind: limit))
                    UPDATE webhook_deliveries SET claimed_by = \(bind: claimer), claimed_until = \(bind: Millis(leaseUntil))
                    WHERE id IN (SELECT id FROM picked)
                    RETURNING *
                    """
                ).all().map(Self.delivery(from:)).sorted { $0.id < $1.id }
            }
        }
    }

    public func setDeliveryBody(id: Int, body: String) async throws {
        try await withDatabase { database in
            try await database.raw("UPDATE webhook_deliveries SET body = \(bind: body) WHERE id = \(bind: id) AND body IS NULL").run()
        }
    }

    public func recordDeliveryAttempt(
        id: Int, outcome: DeliveryOutcome, status: Int?, error: String?, durationMilliseconds: Int, at date: Date
    ) async throws {
        let state: WebhookDelivery.State
        var next = Millis(date)
        var delivered: Millis?
        switch outcome {
        case .delivered:
            state = .delivered
            delivered = Millis(date)
        case .retry(let at):
            state = .pending
            next = Millis(at)
        case .failed: state = .failed
        }
        let finalNext = next, finalDelivered = delivered
        try await withDatabase { database in
            try await database.raw(
                """
                UPDATE webhook_deliveries SET state = \(bind: state.rawValue), tries = tries + 1, next_try_at = \(bind: finalNext),
                    last_status = \(bind: status), last_error = \(bind: error), last_duration_ms = \(bind: durationMilliseconds),
                    delivered_at = \(bind: finalDelivered), claimed_by = NULL, claimed_until = NULL
                WHERE id = \(bind: id) AND state = \(bind: WebhookDelivery.State.pending.rawValue)
                """
            ).run()
        }
    }

    public func deliveries(webhookID: Int, limit: Int) async throws -> [WebhookDelivery] {
        try await withDatabase { database in
            try await database.raw(
                "SELECT * FROM webhook_deliveries WHERE webhook_id = \(bind: webhookID) ORDER BY id DESC LIMIT \(bind: limit)"
            ).all().map(Self.delivery(from:))
        }
    }

    public func pruneWebhookDeliveries(before date: Date) async throws -> Int {
        try await withDatabase { database in
            try await database.raw(
                """
                DELETE FROM webhook_deliveries
                WHERE created_at < \(bind: Millis(date)) AND state <> \(bind: WebhookDelivery.State.pending.rawValue) RETURNING id
                """
            ).all().count
        }
    }

    public func delivery(id: Int) async throws -> WebhookDelivery? {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM webhook_deliveries WHERE id = \(bind: id)").first().map(Self.delivery(from:))
        }
    }

    public func redeliver(id: Int, at date: Date) async throws -> WebhookDelivery? {
        try await withDatabase { database in
            try await database.raw(
                """
                UPDATE webhook_deliveries SET state = \(bind: WebhookDelivery.State.pending.rawValue), next_try_at = \(bind: Millis(date)),
                    claimed_by = NULL, claimed_until = NULL
                WHERE id = \(bind: id) AND (claimed_until IS NULL OR claimed_until < \(bind: Millis(date))) RETURNING *
                """
            ).first().map(Self.delivery(from:))
        }
    }

    // MARK: - Rows

    private static func hook(from row: any SQLRow) throws -> StoredHook {
        let forgeName = try row.decode(column: "forge", as: String.self)
        guard let forge = Forge(rawValue: forgeName) else {
            throw RapidFlowError(.internalError, "a stored hook has an unknown forge '\(forgeName)'")
        }
        return StoredHook(
            id: try row.decode(column: "id", as: Int.self), name: try row.decode(column: "name", as: String.self), forge: forge,
            owner: try row.decode(column: "owner", as: String?.self), sealedSecret: try row.decode(column: "secret", as: Data.self),
            sealedStatusToken: try row.decode(column: "status_token", as: Data?.self),
            statusURL: try row.decode(column: "status_url", as: String?.self),
            createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            lastDeliveryAt: try row.decode(column: "last_delivery_at", as: Millis?.self)?.date)
    }

    private static func webhook(from row: any SQLRow) throws -> StoredWebhook {
        StoredWebhook(
            id: try row.decode(column: "id", as: Int.self), url: try row.decode(column: "url", as: String.self),
            events: try row.decode(column: "events", as: String.self).split(separator: ",").map(String.init),
            owner: try row.decode(column: "owner", as: String?.self), pipelineID: try row.decode(column: "pipeline_id", as: Int?.self),
            sealedSecret: try row.decode(column: "secret", as: Data.self),
            createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            disabledAt: try row.decode(column: "disabled_at", as: Millis?.self)?.date,
            disabledReason: try row.decode(column: "disabled_reason", as: String?.self))
    }

    private static func delivery(from row: any SQLRow) throws -> WebhookDelivery {
        WebhookDelivery(
            id: try row.decode(column: "id", as: Int.self), webhookID: try row.decode(column: "webhook_id", as: Int.self),
            jobID: try row.decode(column: "job_id", as: Int.self), stepID: try row.decode(column: "step_id", as: Int?.self),
            event: try row.decode(column: "event", as: String.self),
            state: WebhookDelivery.State(rawValue: try row.decode(column: "state", as: String.self)) ?? .failed,
            tries: try row.decode(column: "tries", as: Int.self), nextTryAt: try row.decode(column: "next_try_at", as: Millis.self).date,
            lastStatus: try row.decode(column: "last_status", as: Int?.self), lastError: try row.decode(column: "last_error", as: String?.self),
            lastDurationMilliseconds: try row.decode(column: "last_duration_ms", as: Int?.self),
            body: try row.decode(column: "body", as: String?.self), createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            deliveredAt: try row.decode(column: "delivered_at", as: Millis?.self)?.date)
    }
}
