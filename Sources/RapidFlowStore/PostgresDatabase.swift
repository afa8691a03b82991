import Foundation
import Logging
import NIOCore
import PostgresKit
import PostgresNIO
import RapidFlowCore
import Synchronization

/// The store's PostgreSQL connections: postgres-nio's `PostgresClient`, a pool that serves
/// leases only while its `run()` goes on.
///
/// The client runs in a task this type owns from `init` to `shutdown()`: the store is opened
/// and migrated before the service group starts (so a wrong password stops start-up), and the
/// store's own `Service`, listed first, shuts it down after everything that uses it has stopped.
///
/// A lease that is not served within `leaseTimeout` (10 s unless the opener says otherwise:
/// server down, pool exhausted) fails instead of waiting: the client retries a server that refuses connections for a minute
/// before it fails what waits, and a health check must answer rather than hang.
final class PostgresDatabase: Sendable {
    static let defaultLeaseTimeout: Duration = .seconds(10)
    let leaseTimeout: Duration

    private let client: PostgresClient
    private let running: Task<Void, Never>

    /// Returns once the client's `run()` has begun: a lease asked for before waits, and the
    /// client warns about it.
    init(location: PostgresURL, logger: Logger, leaseTimeout: Duration = PostgresDatabase.defaultLeaseTimeout) async {
        self.leaseTimeout = leaseTimeout
        let client = PostgresClient(configuration: location.clientConfiguration, backgroundLogger: logger)
        self.client = client
        let (started, signal) = AsyncStream<Void>.makeStream()
        running = Task {
            signal.finish()
            await client.run()
        }
        for await _ in started {}
    }

    /// Runs `body` on one leased connection, so a transaction's statements stay together.
    /// Statements are not logged: their binds carry job environments.
    ///
    /// The lease and `body` run in a task of their own, and the caller waits for its outcome,
    /// not for the task: a caller whose lease is not served within `leaseTimeout` (or who is
    /// cancelled before it is) leaves at once, and a lease served later is given straight back;
    /// a caller whose connection closed under a running statement leaves
    /// `closedConnectionGrace` later even when the driver never fails that statement (a
    /// `COMMIT` sent as the server dropped the database stayed pending for good). A body that
    /// merely takes long is waited for.
    func withDatabase<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await withConnection { try await body($0.sql(queryLogLevel: nil)) }
    }

    /// `withDatabase` with the driver's own connection: for prepared statements, which the
    /// connection keeps once it has prepared them.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let outcome = LeaseOutcome<T>()
        let client = client
        let leaseTimeout = leaseTimeout
        let work = Task {
            do {
                let value = try await client.withConnection { connection in
                    guard outcome.served(connection) else { throw PostgresLeaseTimeout(after: leaseTimeout) }
                    return try await body(connection)
                }
                outcome.finish(.success(value))
            } catch {
                outcome.finish(.failure(error))
            }
        }
        let watchdog = Task {
            try await Task.sleep(for: leaseTimeout)
            guard let connection = outcome.connectionOrExpire(PostgresLeaseTimeout(after: leaseTimeout)) else { return }
            while true {
                try await Task.sleep(for: .seconds(1))
                if connection.isClosed {
                    try await Task.sleep(for: Self.closedConnectionGrace)
                    outcome.finish(.failure(PostgresConnectionLost()))
                    return
                }
            }
        }
        defer { watchdog.cancel() }
        return try await withTaskCancellationHandler {
            try await outcome.value()
        } onCancel: {
            // The body sees the cancel; a caller still waiting for its lease leaves now.
            work.cancel()
            outcome.expireIfWaiting(CancellationError())
        }
    }

    static let closedConnectionGrace: Duration = .seconds(2)

    /// Closes every connection; leases asked for after this fail. A lease the driver never
    /// gives back is not waited for past a few seconds.
    func shutdown() async {
        running.cancel()
        let running = running
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await running.value }
            group.addTask { try? await Task.sleep(for: .seconds(5)) }
            await group.next()
            group.cancelAll()
        }
    }
}

/// The outcome of one `withDatabase` call: the first of "lease timed out", "cancelled while
/// waiting", "connection lost" and the body's own result wins; the caller waits for it.
private final class LeaseOutcome<T: Sendable>: Sendable {
    private enum State {
        case waiting
        case leased(PostgresConnection)
        case done(Result<T, any Error>)
    }
    private let state = Mutex(State.waiting)
    private let waiter = Mutex<(result: Result<T, any Error>?, continuation: CheckedContinuation<T, any Error>?)>((nil, nil))

    /// The lease came; false when the caller has left (the connection goes straight back).
    func served(_ connection: PostgresConnection) -> Bool {
        state.withLock { state in
            guard case .waiting = state else { return false }
            state = .leased(connection)
            return true
        }
    }

    /// The leased connection, or nil after failing the call with `error` when no lease came.
    func connectionOrExpire(_ error: any Error) -> PostgresConnection? {
        let (connection, expired): (PostgresConnection?, Bool) = state.withLock { state in
            switch state {
            case .waiting:
                state = .done(.failure(error))
                return (nil, true)
            case .leased(let connection): return (connection, false)
            case .done: return (nil, false)
            }
        }
        if expired { deliver(.failure(error)) }
        return connection
    }

    func expireIfWaiting(_ error: any Error) {
        let expired = state.withLock { state in
            guard case .waiting = state else { return false }
            state = .done(.failure(error))
            return true
        }
        if expired { deliver(.failure(error)) }
    }

    func finish(_ result: Result<T, any Error>) {
        let first = state.withLock { state in
            if case .done = state { return false }
            state = .done(result)
            return true
        }
        if first { deliver(result) }
    }

    private func deliver(_ result: Result<T, any Error>) {
        let continuation = waiter.withLock { waiter in
            defer { waiter.continuation = nil }
            if waiter.continuation == nil { waiter.result = result }
            return waiter.continuation
        }
        continuation?.resume(with: result)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready = waiter.withLock { waiter in
                if waiter.result == nil { waiter.continuation = continuation }
                return waiter.result
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// The connection closed under a running statement, and the driver did not answer for it.
struct PostgresConnectionLost: Error, CustomStringConvertible {
    var description: String { "the PostgreSQL connection closed while a statement ran" }
}

/// PostgreSQL gave no connection within the lease timeout.
struct PostgresLeaseTimeout: Error, CustomStringConvertible {
    let after: Duration
    var description: String {
        "no PostgreSQL connection within \(after.components.seconds) s"
    }
}

/// A PostgreSQL URL as given to `--database`, described without its password.
public struct PostgresURL: Sendable, CustomStringConvertible {
    public static let schemes = ["postgres", "postgresql"]

    /// For a connection of its own (the open check, `LISTEN`).
    let connectionConfiguration: PostgresConnection.Configuration
    /// For the pool: the same server, credentials and TLS mode.
    let clientConfiguration: PostgresClient.Configuration
    /// `host:port/database`: safe for logs and errors.
    public let description: String
    /// Where and as whom, without the password: what `pg_dump` takes as flags.
    public let connectionFlags: String

    public static func isPostgres(_ url: String) -> Bool {
        schemes.contains { url.hasPrefix("\($0)://") }
    }

    /// `postgres://user:password@host:port/database?sslmode=disable|prefer|require`.
    public init(_ url: String) throws {
        let invalid = RapidFlowError.invalidConfig(
            "--database: expected postgres://user:password@host:port/database[?sslmode=disable|prefer|require]")
        guard Self.isPostgres(url), let components = URLComponents(string: url) else { throw invalid }
        // postgres-kit parses the URL, `sslmode` and its aliases included; TLS, when used,
        // always verifies the certificate chain and the host name.
        let connection: PostgresConnection.Configuration
        do {
            connection = try SQLPostgresConfiguration(url: url).coreConfiguration
        } catch {
            throw invalid
        }
        guard let host = connection.host, let port = connection.port else { throw invalid }
        let tls: PostgresClient.Configuration.TLS =
            if connection.tls.isEnforced { .require(.makeClientConfiguration()) }
            else if connection.tls.isAllowed { .prefer(.makeClientConfiguration()) }
            else { .disable }
        var client = PostgresClient.Configuration(
            host: host, port: port, username: connection.username, password: connection.password, database: connection.database,
            tls: tls)
        // A few connections, as many as two per event-loop thread.
        client.options.maximumConnections = 2 * System.coreCount
        connectionConfiguration = connection
        clientConfiguration = client
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        description = "\(host):\(port)/\(path)"
        connectionFlags = "--host \(host) --port \(port) --username \(connection.username) --dbname \(connection.database ?? connection.username)"
    }

    /// Connects once and runs `SELECT 1`: the pool retries a refusing server quietly, so this
    /// is where the reason (a wrong password, no such database) comes from.
    func check(logger: Logger) async throws {
        let connection = try await PostgresConnection.connect(configuration: connectionConfiguration, id: 0, logger: logger)
        do {
            _ = try await connection.query("SELECT 1", logger: logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
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
