import Foundation
import RapidFlowCore
import SQLKit

extension SQLJobStore: SecretStore {
    public func putSecret(name: String, scope: SecretScope, sealed: Data, at date: Date) async throws -> SecretMetadata {
        try await withDatabase { database in
            let now = Millis(date)
            guard
                let row = try await database.raw(
                    """
                    INSERT INTO secrets (name, scope_kind, scope_value, sealed, created_at, updated_at)
                    VALUES (\(bind: name), \(bind: scope.kind), \(bind: scope.value), \(bind: sealed), \(bind: now), \(bind: now))
                    ON CONFLICT (name, scope_kind, scope_value) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
                    RETURNING *
                    """
                ).first()
            else { throw RapidFlowError(.internalError, "the store did not return the stored secret") }
            return try Self.secretMetadata(from: row)
        }
    }

    public func secrets() async throws -> [SecretMetadata] {
        try await withDatabase { database in
            try await database.raw(
                "SELECT * FROM secrets ORDER BY name, scope_kind, scope_value"
            ).all().map(Self.secretMetadata(from:))
        }
    }

    public func sealedSecret(name: String, scope: SecretScope) async throws -> SealedSecret? {
        try await withDatabase { database in
            try await database.raw(
                """
                SELECT * FROM secrets
                WHERE name = \(bind: name) AND scope_kind = \(bind: scope.kind) AND scope_value = \(bind: scope.value)
                """
            ).first().map(Self.sealedSecret(from:))
        }
    }

    public func sealedSecrets(in scopes: [SecretScope]) async throws -> [SealedSecret] {
        guard !scopes.isEmpty else { return [] }
        var query = SQLQueryString("SELECT * FROM secrets WHERE ")
        for (index, scope) in scopes.enumerated() {
            query.appendInterpolation(unsafeRaw: index == 0 ? "(scope_kind = " : " OR (scope_kind = ")
            query.appendInterpolation(bind: scope.kind)
            query.appendInterpolation(unsafeRaw: " AND scope_value = ")
            query.appendInterpolation(bind: scope.value)
            query.appendInterpolation(unsafeRaw: ")")
        }
        query.appendInterpolation(unsafeRaw: " ORDER BY name, id")
        let finalQuery = query
        return try await withDatabase { database in
            try await database.raw(finalQuery).all().map(Self.sealedSecret(from:))
        }
    }

    public func anySealedSecret() async throws -> SealedSecret? {
        try await withDatabase { database in
            try await database.raw("SELECT * FROM secrets ORDER BY id LIMIT 1").first().map(Self.sealedSecret(from:))
        }
    }

    public func deleteSecret(name: String, scope: SecretScope) async throws -> Bool {
        try await withDatabase { database in
            try await database.raw(
                """
                DELETE FROM secrets
                WHERE name = \(bind: name) AND scope_kind = \(bind: scope.kind) AND scope_value = \(bind: scope.value)
                RETURNING id
                """
            ).first() != nil
        }
    }

    public func recordSecretUse(name: String, scope: SecretScope, jobID: Int, at date: Date) async throws {
        try await withDatabase { database in
            try await database.raw(
                """
                UPDATE secrets SET last_used_at = \(bind: Millis(date)), last_used_job = \(bind: jobID)
                WHERE name = \(bind: name) AND scope_kind = \(bind: scope.kind) AND scope_value = \(bind: scope.value)
                """
            ).run()
        }
    }

    private static func secretMetadata(from row: any SQLRow) throws -> SecretMetadata {
        let kind = try row.decode(column: "scope_kind", as: String.self)
        let value = try row.decode(column: "scope_value", as: String.self)
        guard let scope = SecretScope(kind: kind, value: value) else {
            throw RapidFlowError(.internalError, "a stored secret has an unknown scope '\(kind)'")
        }
        return SecretMetadata(
            name: try row.decode(column: "name", as: String.self), scope: scope,
            createdAt: try row.decode(column: "created_at", as: Millis.self).date,
            updatedAt: try row.decode(column: "updated_at", as: Millis.self).date,
            lastUsedAt: try row.decode(column: "last_used_at", as: Millis?.self)?.date,
            lastUsedJobID: try row.decode(column: "last_used_job", as: Int?.self))
    }

    private static func sealedSecret(from row: any SQLRow) throws -> SealedSecret {
        SealedSecret(metadata: try secretMetadata(from: row), sealed: try row.decode(column: "sealed", as: Data.self))
    }
}
