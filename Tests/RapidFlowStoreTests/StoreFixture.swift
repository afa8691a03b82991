import Foundation
import Logging
import PostgresKit
import Testing

@testable import RapidFlowStore

/// The dialects every store test runs against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }
}

/// Where one test's store lives: a fresh SQLite file, or a fresh PostgreSQL database made
/// for the test and dropped after it, so tests never see each other's rows. It can be
/// opened several times (reopening is what some tests check).
struct StoreFixture: Sendable {
    let kind: StoreKind
    /// A file path for SQLite, a URL for PostgreSQL.
    let location: String

    static func with<T>(_ kind: StoreKind, _ body: (StoreFixture) async throws -> T) async throws -> T {
        switch kind {
        case .sqlite:
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString).sqlite").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            return try await body(StoreFixture(kind: kind, location: path))
        case .postgres:
            let database = try await PostgresScratchDatabase.create()
            do {
                let result = try await body(StoreFixture(kind: kind, location: database.url))
                try await database.drop()
                return result
            } catch {
                try? await database.drop()
                throw error
            }
        }
    }

    /// A fresh, migrated store of `kind` for one test.
    static func withStore<T>(_ kind: StoreKind, _ body: (SQLJobStore) async throws -> T) async throws -> T {
        try await with(kind) { try await $0.withStore(body) }
    }

    func open() async throws -> SQLJobStore {
        switch kind {
        case .sqlite: try await SQLJobStore.openSQLite(path: location, logger: Logger(label: "test"))
        // The 10 s lease bound is the service's (a health check answers rather than hangs);
        // these tests check what the store stores, on a machine the whole suite loads.
        case .postgres: try await SQLJobStore.openPostgres(url: location, logger: Logger(label: "test"), leaseTimeout: .seconds(60))
        }
    }

    /// Opens, migrates, runs `body`, closes.
    func withStore<T>(_ body: (SQLJobStore) async throws -> T) async throws -> T {
        let store = try await open()
        do {
            try await store.migrate()
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }
}

/// A database of its own on the test PostgreSQL server (`RAPIDFLOW_TEST_POSTGRES_URL`,
/// printed by scripts/test-services.sh). Without that server the PostgreSQL cases fail:
/// the test command always starts it.
struct PostgresScratchDatabase: Sendable {
    let name: String
    let url: String
    private let adminURL: String

    static func adminURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["RAPIDFLOW_TEST_POSTGRES_URL"], !url.isEmpty else {
            throw MissingPostgres()
        }
        return url
    }

    static func create() async throws -> PostgresScratchDatabase {
        let admin = try adminURL()
        let name = "rapidflow_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await run(on: admin) { try await $0.raw("CREATE DATABASE \(ident: name)").run() }
        var components = try #require(URLComponents(string: admin))
        components.path = "/" + name
        return PostgresScratchDatabase(name: name, url: try #require(components.string), adminURL: admin)
    }

    func drop() async throws {
        try await Self.run(on: adminURL) { try await $0.raw("DROP DATABASE IF EXISTS \(ident: name) WITH (FORCE)").run() }
    }

    private static func run(on url: String, _ body: (any SQLDatabase) async throws -> Void) async throws {
        let configuration = try SQLPostgresConfiguration(url: url).coreConfiguration
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: Logger(label: "test"))
        do {
            try await body(connection.sql(queryLogLevel: nil))
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

struct MissingPostgres: Error, CustomStringConvertible {
    var description: String {
        "RAPIDFLOW_TEST_POSTGRES_URL is not set: start the test PostgreSQL server with `eval \"$(scripts/test-services.sh)\"`"
    }
}
