import Foundation
import Logging
import PostgresKit
import RapidFlowCore

/// A few PostgreSQL connections shared by the store's callers; each call leases one.
///
/// A lease that cannot be served within `requestTimeout` (server down, pool exhausted)
/// fails instead of waiting, so a health check answers rather than hangs.
/// `@unchecked Sendable`: async-kit's pool guards its state with its own lock and event
/// loops but does not declare it.
final class PostgresPool: @unchecked Sendable {
    private let pool: EventLoopGroupConnectionPool<PostgresConnectionSource>
    private let logger: Logger

    init(configuration: SQLPostgresConfiguration, connectionsPerLoop: Int = 2, logger: Logger) {
        self.logger = logger
        pool = EventLoopGroupConnectionPool(
            source: PostgresConnectionSource(sqlConfiguration: configuration),
            maxConnectionsPerEventLoop: connectionsPerLoop, requestTimeout: .seconds(10), pruneInterval: .seconds(60),
            logger: logger, on: MultiThreadedEventLoopGroup.singleton)
    }

    /// Runs `body` on one leased connection, so a transaction's statements stay together.
    /// Statements are not logged: their binds carry job environments.
    func withDatabase<T: Sendable>(_ body: (any SQLDatabase) async throws -> T) async throws -> T {
        let connection = try await pool.requestConnection(logger: logger).get()
        defer { pool.releaseConnection(connection, logger: logger) }
        return try await body(connection.sql(queryLogLevel: nil))
    }

    func shutdown() async {
        try? await pool.shutdownAsync()
    }
}

/// A PostgreSQL URL as given to `--database`, described without its password.
public struct PostgresURL: Sendable, CustomStringConvertible {
    public static let schemes = ["postgres", "postgresql"]

    let configuration: SQLPostgresConfiguration
    /// `host:port/database`: safe for logs and errors.
    public let description: String

    public static func isPostgres(_ url: String) -> Bool {
        schemes.contains { url.hasPrefix("\($0)://") }
    }

    /// `postgres://user:password@host:port/database?sslmode=disable|prefer|require`.
    public init(_ url: String) throws {
        let invalid = RapidFlowError.invalidConfig(
            "--database: expected postgres://user:password@host:port/database[?sslmode=disable|prefer|require]")
        guard Self.isPostgres(url), let components = URLComponents(string: url) else { throw invalid }
        do {
            configuration = try SQLPostgresConfiguration(url: url)
        } catch {
            throw invalid
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        description = "\(components.host ?? "?"):\(components.port ?? SQLPostgresConfiguration.ianaPortNumber)/\(path)"
    }
}

extension PSQLError {
    /// What went wrong, from the server's message or the connection error; never the URL.
    var reason: String {
        if let message = serverInfo?[.message] { return message }
        if let underlying { return String(describing: underlying) }
        return code.description
    }
}
