import Crypto
import Foundation
import RapidFlowCore
import RapidFlowStore

/// Seals and opens stored secrets with the service's key (AES-256-GCM), so the store only
/// ever holds sealed values. Each value is sealed with its name and scope as authenticated
/// data: a sealed value moved to another row does not open.
public struct SecretVault: Sendable {
    let store: any SecretStore
    /// The key's bytes: `SymmetricKey` is not `Sendable`, so one is made for each use.
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }
    /// The key file, named in refusals (never its contents).
    public let keyPath: String

    /// What a job gets from the vault when it starts.
    struct Resolved: Sendable {
        /// Each referenced secret's value and the scope it came from.
        var values: [String: (value: String, scope: SecretScope)] = [:]
        /// Every secret value the job can see, for its masker.
        var visibleValues: [String] = []
    }

    /// Reads the key at `keyPath`, creating it (mode 0600) when it does not exist and nothing is
    /// sealed yet; refuses, naming the file, a key that is missing, malformed or not the one the
    /// stored secrets were sealed with.
    static func open(store: any SecretStore, keyPath: String) async throws -> SecretVault {
        let stored = try await store.anySealedSecret()
        if !FileManager.default.fileExists(atPath: keyPath) {
            guard stored == nil else {
                throw RapidFlowError(
                    .invalidConfig,
                    "secrets are stored but the secrets key file \(keyPath) does not exist: start with the key file they were sealed with "
                        + "(--secrets-key-file or RAPIDFLOW_SECRETS_KEY_FILE)")
            }
            try SecretsKeyFile.create(at: keyPath)
        }
        let vault = SecretVault(store: store, key: try SecretsKeyFile.read(keyPath), keyPath: keyPath)
        if let stored, (try? vault.value(of: stored)) == nil {
            throw RapidFlowError(
                .invalidConfig,
                "the secrets key file \(keyPath) does not open the stored secrets: it is not the key they were sealed with")
        }
        return vault
    }

    private init(store: any SecretStore, key: [UInt8], keyPath: String) {
        self.store = store
        self.keyBytes = key
        self.keyPath = keyPath
    }

    /// Stores `value` (already checked) as the secret `name` of `scope`.
    func put(name: String, scope: SecretScope, value: String) async throws -> SecretMetadata {
        try await store.putSecret(name: name, scope: scope, sealed: try seal(value, name: name, scope: scope), at: Date())
    }

    private func seal(_ value: String, name: String, scope: SecretScope) throws -> Data {
        guard let combined = try AES.GCM.seal(Data(value.utf8), using: key, authenticating: Self.context(name: name, scope: scope)).combined else {
            throw RapidFlowError(.internalError, "a secret could not be sealed")
        }
        return combined
    }

    func value(of secret: SealedSecret) throws -> String {
        let box = try AES.GCM.SealedBox(combined: secret.sealed)
        let plain = try AES.GCM.open(box, using: key, authenticating: Self.context(name: secret.metadata.name, scope: secret.metadata.scope))
        return String(decoding: plain, as: UTF8.self)
    }

    private static func context(name: String, scope: SecretScope) -> Data {
        Data("rapidflow-secret\0\(name)\0\(scope.kind)\0\(scope.value)".utf8)
    }

    /// The names of `references` that no scope of `scopes` holds.
    func missing(_ references: [String], in scopes: [SecretScope]) async throws -> [String] {
        guard !references.isEmpty else { return [] }
        let known = Set(try await store.sealedSecrets(in: scopes).map(\.metadata.name))
        var seen = Set<String>()
        return references.filter { !known.contains($0) && seen.insert($0).inserted }
    }

    /// Refuses a config or job that names a secret its scopes do not hold, naming the secrets.
    func requireExisting(_ references: [String], in scopes: [SecretScope], for subject: String) async throws {
        let missing = try await missing(references, in: scopes)
        guard missing.isEmpty else {
            let names = missing.map { "'\($0)'" }.joined(separator: ", ")
            throw RapidFlowError(
                .unknownSecret,
                "\(subject) uses the stored secret\(missing.count == 1 ? "" : "s") \(names), which no scope it can see holds "
                    + "(\(scopes.map(\.description).joined(separator: ", "))); store it with PUT /secrets/NAME")
        }
    }

    /// Opens every secret the scopes hold: the narrowest scope's value for each referenced
    /// name, and all values for the masker. A referenced name no scope holds is an error.
    func resolve(_ references: [String], in scopes: [SecretScope]) async throws -> Resolved {
        var resolved = Resolved()
        let rank = Dictionary(uniqueKeysWithValues: scopes.enumerated().map { ($1, $0) })
        var chosen: [String: (rank: Int, secret: SealedSecret)] = [:]
        for secret in try await store.sealedSecrets(in: scopes) {
            let opened = try value(of: secret)
            resolved.visibleValues.append(opened)
            let order = rank[secret.metadata.scope] ?? .max
            if let current = chosen[secret.metadata.name], current.rank <= order { continue }
            chosen[secret.metadata.name] = (order, secret)
            resolved.values[secret.metadata.name] = (opened, secret.metadata.scope)
        }
        if let absent = references.first(where: { resolved.values[$0] == nil }) {
            throw RapidFlowError(.unknownSecret, "the stored secret '\(absent)' no longer exists in a scope the job can see")
        }
        return resolved
    }
}

/// The key file: 32 random bytes in base64 on one line, readable by the service's user only.
enum SecretsKeyFile {
    static func create(at path: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        // Created 0600 from the start (O_EXCL: never an existing file), never widened later.
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw RapidFlowError(.invalidConfig, "cannot create the secrets key file \(path): \(String(cString: strerror(errno)))")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: Data((key.base64EncodedString() + "\n").utf8))
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw RapidFlowError(.invalidConfig, "cannot write the secrets key file \(path)")
        }
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RapidFlowError(.invalidConfig, "cannot read the secrets key file \(path): check that it exists and the service's user may read it")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Data(base64Encoded: text), bytes.count == 32 else {
            throw RapidFlowError(
                .invalidConfig, "the secrets key file \(path) holds no key: it must be 32 random bytes in base64 on one line, as rapidflow writes it")
        }
        return Array(bytes)
    }
}

extension SecretVault {
    /// Seals a value that is not a stored secret (a hook's or webhook's signing secret, a forge
    /// token) with `purpose` as authenticated data: a sealed value moved to another row or
    /// purpose does not open.
    func seal(_ value: String, purpose: String) throws -> Data {
        guard let combined = try AES.GCM.seal(Data(value.utf8), using: key, authenticating: Data("rapidflow\0\(purpose)".utf8)).combined else {
            throw RapidFlowError(.internalError, "a value could not be sealed")
        }
        return combined
    }

    func open(_ sealed: Data, purpose: String) throws -> String {
        let box = try AES.GCM.SealedBox(combined: sealed)
        return String(decoding: try AES.GCM.open(box, using: key, authenticating: Data("rapidflow\0\(purpose)".utf8)), as: UTF8.self)
    }
}
