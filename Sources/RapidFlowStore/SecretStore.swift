import Foundation
import RapidFlowCore

/// A stored secret as the store holds it: its metadata and its sealed value, which only the
/// service's key opens.
public struct SealedSecret: Sendable, Equatable {
    public var metadata: SecretMetadata
    public var sealed: Data

    public init(metadata: SecretMetadata, sealed: Data) {
        self.metadata = metadata
        self.sealed = sealed
    }
}

/// Where sealed secrets are kept. The store never sees a value: what it is given is sealed.
public protocol SecretStore: Sendable {
    /// Creates the secret of `name` in `scope`, or replaces its value (keeping its creation time).
    func putSecret(name: String, scope: SecretScope, sealed: Data, at: Date) async throws -> SecretMetadata
    /// Every secret, by name then scope.
    func secrets() async throws -> [SecretMetadata]
    func sealedSecret(name: String, scope: SecretScope) async throws -> SealedSecret?
    /// Every secret of the given scopes.
    func sealedSecrets(in scopes: [SecretScope]) async throws -> [SealedSecret]
    /// One secret, any: what start-up opens to check the key.
    func anySealedSecret() async throws -> SealedSecret?
    func deleteSecret(name: String, scope: SecretScope) async throws -> Bool
    /// The secret was used by `jobID` at `at`.
    func recordSecretUse(name: String, scope: SecretScope, jobID: Int, at: Date) async throws
}
