import Foundation
import HTTPTypes
import Hummingbird
import Logging
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore

/// `/hooks`: builds started by a git push. An admin sets up a hook per forge (its signing
/// secret, optionally an owner and a forge token for commit statuses); the forge delivers to
/// `POST /hooks/<forge>`. A delivery is checked against every hook of that forge, in constant
/// time; one without a valid signature is 401 and runs nothing. A delivery id seen in the
/// last 24 hours gets its first answer again and runs nothing. Push, tag and pull request
/// events start the pipelines whose `repo` is the event's repository and whose `on:` takes
/// the event, at the event's commit.
struct HookController {
    let store: any JobStore & WebhookStore
    let trigger: PipelineTrigger
    let vault: SecretVault
    let limits: Limits
    let statuses: CommitStatusReporter?
    /// Hosts commit statuses may be posted to (`--webhook-allow-hosts`); nil: any.
    let allowedHosts: Set<String>?
    let logger: Logger

    /// The receiving paths: open to the network (no bearer token), guarded by signatures.
    static let receivingPaths: Set<String> = Set(Forge.allCases.map { "/hooks/\($0.rawValue)" })

    func addRoutes(to router: Router<ServiceRequestContext>) {
        router.post("hooks", use: create)
        router.get("hooks", use: list)
        router.get("hooks/:id", use: show)
        router.delete("hooks/:id", use: delete)
        for forge in Forge.allCases {
            router.post("hooks/\(forge.rawValue)") { request, context in try await self.receive(forge, request, context) }
        }
    }

    // MARK: - Setting up

    @Sendable func create(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        guard let body = try await request.decodeJSON(as: API.HookRequest.self, limits: limits) else {
            throw RapidFlowError(.invalidRequest, "request body is empty: send {\"name\": ..., \"forge\": \"github|gitlab|gitea|git\"}")
        }
        let statusURL = body.statusURL ?? (body.statusToken != nil && body.forge == .github ? "https://api.github.com" : nil)
        if let statusURL, let allowedHosts, !allowedHosts.contains(URLComponents(string: statusURL)?.host?.lowercased() ?? "") {
            throw RapidFlowError(.invalidRequest, "'status_url' (\(statusURL)) names a host this service may not send to (--webhook-allow-hosts)")
        }
        if let secret = body.secret, body.forge == .git, WebhookSignature.standardKey(secret) == nil {
            throw RapidFlowError(
                .invalidRequest, "'secret' of a git hook must be 'whsec_' and at least 16 bytes in base64; leave it out and the service makes one")
        }
        let made = body.secret == nil
        let secret = body.secret ?? (body.forge == .git ? WebhookSignature.newSecret() : Self.newForgeSecret())
        let stored = try await store.createHook(
            name: body.name, forge: body.forge, owner: body.owner, sealedSecret: try vault.seal(secret, purpose: "hook-secret:\(body.name)"),
            sealedStatusToken: try body.statusToken.map { try vault.seal($0, purpose: "hook-status-token:\(body.name)") },
            statusURL: statusURL, at: Date())
        logger.info("hook created", metadata: ["hook": "\(stored.name)", "forge": "\(stored.forge.rawValue)"])
        return try APIResponse(Self.payload(stored, secret: made ? secret : nil), headers: [.location: "/hooks/\(stored.id)"])
    }

    @Sendable func list(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        try APIResponse(try await store.hooks(forge: nil).map { Self.payload($0) })
    }

    @Sendable func show(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        try APIResponse(Self.payload(try await requireHook(context)))
    }

    @Sendable func delete(_ request: Request, context: ServiceRequestContext) async throws -> APIResponse {
        let hook = try await requireHook(context)
        _ = try await store.deleteHook(id: hook.id)
        return try APIResponse(API.DeleteResult(id: hook.id))
    }

    private func requireHook(_ context: ServiceRequestContext) async throws -> StoredHook {
        let id = try RequestParsing.id(context, what: "hook")
        guard let hook = try await store.hook(id: id) else { throw RapidFlowError(.hookNotFound, "hook \(id) does not exist") }
        return hook
    }

    static func payload(_ hook: StoredHook, secret: String? = nil) -> API.Hook {
        API.Hook(
            id: hook.id, name: hook.name, forge: hook.forge, owner: hook.owner, postsCommitStatus: hook.sealedStatusToken != nil,
            statusURL: hook.statusURL, createdAt: hook.createdAt, lastDeliveryAt: hook.lastDeliveryAt, secret: secret)
    }

    /// 32 random bytes in hex: what GitHub, GitLab and Gitea accept as a secret.
    static func newForgeSecret() -> String {
        WebhookSignature.hex(Data((0..<32).map { _ in UInt8.random(in: 0...255) }))
    }

    // MARK: - Receiving

    func receive(_ forge: Forge, _ request: Request, _ context: ServiceRequestContext) async throws -> APIResponse {
        var request = request
        let body = Data(try await request.collectBody(upTo: limits.maxBodyBytes).readableBytesView)
        let headers = request.headers
        let hook = try await verifiedHook(forge, headers: headers, body: body)

        let deliveryID = Self.deliveryID(forge, headers)
        if let deliveryID {
            guard deliveryID.utf8.count <= 200 else { throw RapidFlowError(.invalidRequest, "the delivery id header is over 200 bytes") }
            if try await !store.recordHookDelivery(forge: forge, deliveryID: deliveryID, hookID: hook.id, at: Date()) {
                logger.info("replayed hook delivery answered from its first answer", metadata: ["hook": "\(hook.name)", "delivery": "\(deliveryID)"])
                var answer =
                    try await store.hookDeliveryAnswer(forge: forge, deliveryID: deliveryID)
                    .flatMap { try? JSONDecoder().decode(API.HookAnswer.self, from: Data($0.utf8)) }
                    ?? API.HookAnswer(hook: hook.name, event: nil, jobs: [], ignored: "this delivery is being handled already")
                answer.replayed = true
                return try APIResponse(answer)
            }
        }
        let answer: API.HookAnswer
        do {
            answer = try await handle(forge, hook: hook, headers: headers, body: body)
        } catch {
            // A refused delivery may be sent again once fixed: its id is forgotten.
            if let deliveryID { try? await store.forgetHookDelivery(forge: forge, deliveryID: deliveryID) }
            throw error
        }
        if let deliveryID {
            try await store.setHookDeliveryAnswer(
                forge: forge, deliveryID: deliveryID, answer: String(decoding: try JSONEncoder().encode(answer), as: UTF8.self))
        }
        return try APIResponse(answer)
    }

    /// The hook of `forge` whose secret signed the body; 401 when none did.
    private func verifiedHook(_ forge: Forge, headers: HTTPFields, body: Data) async throws -> StoredHook {
        let hooks = try await store.hooks(forge: forge)
        var verified: StoredHook?
        // Every hook is checked, also after a match, so the time taken does not tell which matched.
        for hook in hooks {
            guard let secret = try? vault.open(hook.sealedSecret, purpose: "hook-secret:\(hook.name)") else { continue }
            if Self.verify(forge, headers: headers, body: body, secret: secret), verified == nil { verified = hook }
        }
        guard let verified else {
            logger.warning("hook delivery refused: no valid signature", metadata: ["forge": "\(forge.rawValue)"])
            if hooks.isEmpty {
                throw RapidFlowError(.invalidSignature, "no \(forge.rawValue) hook is set up on this service (POST /hooks): the delivery was not accepted")
            }
            throw RapidFlowError(
                .invalidSignature, "the delivery's \(Self.signatureHeader(forge)) is missing or does not match any \(forge.rawValue) hook's secret")
        }
        return verified
    }

    static func signatureHeader(_ forge: Forge) -> String {
        switch forge {
        case .github: "X-Hub-Signature-256"
        case .gitea: "X-Gitea-Signature"
        case .gitlab: "X-Gitlab-Token"
        case .git: "webhook-signature (with webhook-id and webhook-timestamp)"
        }
    }

    static func verify(_ forge: Forge, headers: HTTPFields, body: Data, secret: String) -> Bool {
        func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
        switch forge {
        case .github: return WebhookSignature.verifyGitHub(header: header("X-Hub-Signature-256"), body: body, secret: secret)
        case .gitea:
            return WebhookSignature.verifyGitea(header: header("X-Gitea-Signature") ?? header("X-Forgejo-Signature"), body: body, secret: secret)
        case .gitlab: return WebhookSignature.verifyGitLab(header: header("X-Gitlab-Token"), secret: secret)
        case .git:
            guard let key = WebhookSignature.standardKey(secret) else { return false }
            return WebhookSignature.verifyStandard(
                id: header("webhook-id"), timestamp: header("webhook-timestamp"), signature: header("webhook-signature"), body: body, key: key)
        }
    }

    /// The forge's id of this delivery: the same on the forge's own redelivery.
    static func deliveryID(_ forge: Forge, _ headers: HTTPFields) -> String? {
        let names: [String] =
            switch forge {
            case .github: ["X-GitHub-Delivery"]
            case .gitea: ["X-Gitea-Delivery", "X-Forgejo-Delivery"]
            case .gitlab: ["X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"]
            case .git: ["webhook-id"]
            }
        return names.lazy.compactMap { HTTPField.Name($0).flatMap { headers[$0] } }.first { !$0.isEmpty }
    }

    static func eventName(_ forge: Forge, _ headers: HTTPFields) -> String? {
        let names: [String] =
            switch forge {
            case .github: ["X-GitHub-Event"]
            case .gitea: ["X-Gitea-Event", "X-Forgejo-Event"]
            case .gitlab: ["X-Gitlab-Event"]
            case .git: []
            }
        return names.lazy.compactMap { HTTPField.Name($0).flatMap { headers[$0] } }.first
    }

    /// Reads the event and starts the pipelines it selects.
    private func handle(_ forge: Forge, hook: StoredHook, headers: HTTPFields, body: Data) async throws -> API.HookAnswer {
        let event: ForgeEvent
        switch try ForgePayload.parse(forge, eventName: Self.eventName(forge, headers), body: body) {
        case .ignored(let reason):
            return API.HookAnswer(hook: hook.name, event: nil, jobs: [], ignored: reason)
        case .event(let parsed):
            event = parsed
        }
        let kind = event.kind.rawValue
        if event.deleted {
            return API.HookAnswer(hook: hook.name, event: kind, jobs: [], ignored: "the push deleted \(event.commit.ref): nothing to build")
        }
        if event.asksToSkip {
            return API.HookAnswer(hook: hook.name, event: kind, jobs: [], ignored: "the head commit's message asks to skip CI ([skip ci])")
        }
        guard event.commit.sha.count >= 7, event.commit.sha.count <= 64, event.commit.sha.allSatisfy(\.isHexDigit) else {
            throw RapidFlowError(.invalidRequest, "the event's commit '\(event.commit.sha.prefix(80))' is not a commit id")
        }
        if let branch = event.branch { try RefValidation.checkRef(branch, field: "branch") }

        var jobs: [Int] = []
        var errors: [String] = []
        for pipeline in try await candidatePipelines(owner: hook.owner) {
            guard let config = try? PipelineConfig(yaml: pipeline.config, limits: limits, repositories: trigger.repositories),
                let repo = config.repo, let filter = config.on, filter.matches(event),
                event.repositoryURLs.contains(where: { RepositoryIdentity.same($0, repo) })
            else { continue }
            do {
                let job = try await trigger.trigger(
                    pipeline,
                    .init(
                        branch: event.branch, event: event.kind, commit: event.commit,
                        statusTarget: hook.sealedStatusToken != nil ? event.repositoryPath.map { CommitStatusTarget(hookID: hook.id, repository: $0) } : nil))
                jobs.append(job.id)
                logger.info(
                    "job started by a hook",
                    metadata: ["job": "\(job.id)", "pipeline": "\(pipeline.name)", "hook": "\(hook.name)", "event": "\(kind)", "commit": "\(event.commit.sha)"])
                if let statuses, job.snapshot.statusTarget != nil { statuses.report(jobID: job.id) }
            } catch let error as RapidFlowError {
                errors.append("pipeline \(pipeline.id) (\(pipeline.name)): \(error.message)")
                logger.warning("a hook's event could not start a pipeline", metadata: ["pipeline": "\(pipeline.id)", "error": "\(error.message)"])
            }
        }
        var answer = API.HookAnswer(
            hook: hook.name, event: kind, jobs: jobs,
            ignored: jobs.isEmpty && errors.isEmpty ? "no pipeline's repo and 'on:' take this \(kind) event" : nil)
        answer.errors = errors.isEmpty ? nil : errors
        return answer
    }

    /// Every pipeline the hook may start: its owner's, or all.
    private func candidatePipelines(owner: String?) async throws -> [Pipeline] {
        var result: [Pipeline] = []
        var before: Int?
        while true {
            let page = try await store.pipelines(before: before, limit: 500, owner: owner)
            result += page
            guard page.count == 500, let last = page.last else { return result }
            before = last.id
        }
    }
}
