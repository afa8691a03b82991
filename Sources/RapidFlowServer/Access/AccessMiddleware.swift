import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RapidFlowCore
import RapidFlowStore

/// Who may do what: every request but `/health`, `/ready`, the static files and the runner's
/// own routes names its token (when the service has `--api-token`); the token's role and
/// owners are checked against the route (`AccessPolicy`), and every call that changes state
/// is written to the audit log, refused ones included.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = ServiceRequestContext

    let registry: TokenRegistry
    let store: any JobStore
    let limits: Limits
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        // Forges sign their deliveries instead of sending a token (HookController checks them).
        if BearerTokenMiddleware<Context>.openPaths.contains(path) || path.hasPrefix("/runner/")
            || (request.method == .post && HookController.receivingPaths.contains(path))
        {
            return try await next(request, context)
        }
        let candidates = BearerTokenMiddleware<Context>.candidates(authorization: request.headers[.authorization], subprotocols: [])
        guard let principal = registry.principal(among: candidates) else {
            throw RapidFlowError(.unauthorized, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")
        }
        var context = context
        context.principal = principal
        var request = request
        let changesState = request.method != .get && request.method != .head
        let decision = try await AccessPolicy(store: store, limits: limits).decide(principal, &request, audited: changesState)
        if let refusal = decision.refusal {
            if changesState { await audit(principal, request, context, decision, status: 403) }
            throw refusal
        }
        guard changesState else { return try await next(request, context) }
        do {
            let response = try await next(request, context)
            await audit(principal, request, context, decision, status: Int(response.status.code))
            return response
        } catch {
            let status = (error as? RapidFlowError).map { Int(APIResponse.status(for: $0.code).code) } ?? 500
            await audit(principal, request, context, decision, status: status)
            throw error
        }
    }

    private func audit(_ principal: Principal, _ request: Request, _ context: Context, _ decision: AccessPolicy.Decision, status: Int) async {
        let entry = AuditEntry(
            at: Date(), actor: principal.name, method: request.method.rawValue, path: request.uri.path, target: decision.target,
            owner: decision.owner, address: context.remoteAddress?.ipAddress, status: status)
        do {
            try await registry.store.recordAudit(entry)
        } catch {
            logger.warning(
                "could not write the audit log", metadata: ["method": "\(entry.method)", "path": "\(entry.path)", "error": "\(error)"])
        }
    }
}

/// The rules: which role a route needs, and whether a token limited to some owners reaches
/// the job, pipeline or owner it names.
struct AccessPolicy {
    let store: any JobStore
    let limits: Limits

    struct Decision {
        /// `job 12`, `pipeline 3`, `owner team-a`, `token 2`, `secret NAME`.
        var target: String?
        var owner: String?
        var refusal: RapidFlowError?
    }

    /// The role `method` on `path` needs.
    static func requiredRole(_ method: HTTPRequest.Method, _ segments: [Substring]) -> TokenRole {
        let first = segments.first ?? ""
        if method == .get || method == .head {
            if first == "tokens" { return segments.count == 2 && segments[1] == "current" ? .read : .admin }
            // Webhook URLs and hooks' setups may carry credentials: admins only.
            return ["audit", "secrets", "hooks", "webhooks"].contains(first) ? .admin : .read
        }
        // A cache of one's own owner may be dropped by whoever may run its jobs.
        if method == .delete, first == "caches", segments.count == 2 { return .run }
        guard method == .post else { return .admin }
        switch segments.count {
        case 1: return first == "jobs" ? .run : .admin
        case 3 where first == "jobs": return ["cancel", "kill", "retry"].contains(segments[2]) ? .run : .admin
        case 3 where first == "pipelines": return segments[2] == "jobs" ? .run : .admin
        default: return .admin
        }
    }

    /// Routes about every owner at once, or about access itself: only a token that reaches
    /// every owner may use them.
    static func needsEveryOwner(_ method: HTTPRequest.Method, _ segments: [Substring]) -> Bool {
        let first = segments.first ?? ""
        if ["tokens", "audit", "secrets", "metrics", "hooks", "webhooks"].contains(first) { return !(segments.count == 2 && segments[1] == "current") }
        return first == "owners" && segments.count == 1
    }

    func decide(_ principal: Principal, _ request: inout Request, audited: Bool) async throws -> Decision {
        let segments = request.uri.path.split(separator: "/")
        let needed = Self.requiredRole(request.method, segments)
        var decision = Decision()
        let limited = principal.owners != nil
        // What the call acts on, and whose it is: for a limited token's check and the audit log.
        if limited || audited { try await resolve(segments, into: &decision, owners: limited ? principal.owners : nil) }
        guard principal.role >= needed else {
            decision.refusal = RapidFlowError(
                .forbidden, "the token '\(principal.name)' has the role \(principal.role.rawValue); \(request.method.rawValue) \(request.uri.path) needs \(needed.rawValue)")
            return decision
        }
        guard let owners = principal.owners else { return decision }
        let reach = owners.sorted().joined(separator: ", ")
        if Self.needsEveryOwner(request.method, segments) {
            decision.refusal = RapidFlowError(.forbidden, "the token '\(principal.name)' reaches only the owners \(reach); \(request.uri.path) is about every owner")
            return decision
        }
        var named: [String] = decision.owner.map { [$0] } ?? []
        // Lists name their owner in the query; new jobs and pipelines in their body.
        if segments.count == 1, ["jobs", "pipelines", "caches"].contains(segments[0]), request.method == .get {
            guard let owner = request.uri.queryParameters.get("owner") else {
                decision.refusal = RapidFlowError(
                    .forbidden, "the token '\(principal.name)' reaches only the owners \(reach): add ?owner= with one of them")
                return decision
            }
            named.append(owner)
        }
        if request.method == .post || request.method == .put, ["jobs", "pipelines"].contains(segments.first ?? ""), segments.count <= 2 {
            let body = try await request.collectBody(upTo: limits.maxBodyBytes)
            let owner = (try? JSONDecoder().decode(OwnerField.self, from: Data(buffer: body)))?.owner ?? JobOwner.fallback
            named.append(owner)
            decision.owner = decision.owner ?? owner
        }
        if let outside = named.first(where: { !owners.contains($0) }) {
            decision.refusal = RapidFlowError(.forbidden, "the token '\(principal.name)' reaches only the owners \(reach), not '\(outside)'")
        }
        return decision
    }

    private struct OwnerField: Decodable {
        var owner: String?
    }

    /// The job, step's job, pipeline or owner the path names, and its owner.
    private func resolve(_ segments: [Substring], into decision: inout Decision, owners: Set<String>?) async throws {
        guard segments.count >= 2 else { return }
        let name = String(segments[1])
        switch segments[0] {
        case "jobs":
            guard let id = Int(name) else { return }
            decision.target = "job \(id)"
            decision.owner = try await store.job(id: id)?.account
        case "steps":
            guard let id = Int(name) else { return }
            decision.target = "step \(id)"
            if let step = try await store.step(id: id) { decision.owner = try await store.job(id: step.jobID)?.account }
        case "pipelines":
            guard let id = Int(name) else { return }
            decision.target = "pipeline \(id)"
            decision.owner = try await store.pipeline(id: id).map { $0.owner ?? JobOwner.fallback }
        case "caches":
            guard let id = Int(name) else { return }
            decision.target = "cache \(id)"
            decision.owner = try await (store as? any WorkspaceFileStore)?.cache(id: id)?.owner
        case "owners":
            decision.target = "owner \(name)"
            decision.owner = name
        case "tokens":
            decision.target = "token \(name)"
        case "secrets":
            decision.target = "secret \(name)"
        default:
            return
        }
    }
}
