import Crypto
import Foundation
import Logging
import RapidFlowCore
import RapidFlowStore
import ServiceLifecycle
import Synchronization

/// Who a bearer token is: the service's `--api-token` (admin), or one of the scoped tokens
/// `POST /tokens` made, known here by their SHA-256 only.
///
/// The active tokens are held in memory so a request is told apart without a store read, also
/// before a WebSocket upgrade. The registry reloads them from the store every few seconds (a
/// token made or revoked on another replica counts here within `refreshInterval`; on this
/// replica at once) and writes when tokens were last used.
final class TokenRegistry: Sendable {
    static let prefix = "rft_"
    static let refreshInterval: Duration = .seconds(3)

    let store: any AccessStore
    /// `--api-token`; nil or empty: no token is asked for and every request is admin.
    let adminToken: String?
    private let logger: Logger
    private let active = Mutex<[String: StoredToken]>([:])
    private let uses = Mutex<[Int: Date]>([:])

    init(store: any AccessStore, adminToken: String?, logger: Logger) {
        self.store = store
        self.adminToken = adminToken.flatMap { $0.isEmpty ? nil : $0 }
        self.logger = logger
    }

    var requiresToken: Bool { adminToken != nil }

    /// A new token: the prefix and 32 random bytes, base64url.
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return prefix + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// What the store keeps of a token.
    static func hash(_ token: some Collection<UInt8>) -> String {
        SHA256.hash(data: Array(token)).map { String(format: "%02x", $0) }.joined()
    }

    /// The principal of the first of `candidates` that is a token, nil when none is. Without
    /// an admin token every request is admin.
    func principal(among candidates: [[UInt8]]) -> Principal? {
        guard let adminToken else { return Principal(name: "anonymous", role: .admin) }
        let expected = Array(adminToken.utf8)
        // The admin token is compared in full for every candidate, so timing tells nothing of it.
        var isAdmin = false
        for candidate in candidates { isAdmin = BearerTokenMiddleware<ServiceRequestContext>.constantTimeEquals(candidate, expected) || isAdmin }
        if isAdmin { return .admin }
        for candidate in candidates where candidate.starts(with: Array(Self.prefix.utf8)) {
            // The lookup is by hash: nothing compares the token itself.
            if let token = active.withLock({ $0[Self.hash(candidate)] }) {
                uses.withLock { $0[token.id] = Date() }
                return token.principal
            }
        }
        return nil
    }

    /// The store's active tokens, now.
    func reload() async throws {
        let tokens = try await store.tokens().filter { $0.revokedAt == nil }
        active.withLock { $0 = Dictionary(tokens.map { ($0.tokenHash, $0) }, uniquingKeysWith: { first, _ in first }) }
    }

    /// A token made or revoked here counts at once.
    func changed() async {
        do { try await reload() } catch { logger.warning("could not reload the API tokens", metadata: ["error": "\(error)"]) }
    }

    /// Last-used times not yet written, with what the store has.
    func lastUsed(_ token: StoredToken) -> Date? {
        uses.withLock { $0[token.id] } ?? token.lastUsedAt
    }

    func flushUses() async {
        let pending = uses.withLock { uses in
            defer { uses = [:] }
            return uses
        }
        do {
            try await store.recordTokenUse(pending)
        } catch {
            logger.warning("could not record when API tokens were last used", metadata: ["error": "\(error)"])
            uses.withLock { uses in uses.merge(pending) { newer, _ in newer } }
        }
    }
}

extension TokenRegistry: Service {
    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.refreshInterval) }
            await flushUses()
            if !Task.isShuttingDownGracefully { await changed() }
        }
    }
}
