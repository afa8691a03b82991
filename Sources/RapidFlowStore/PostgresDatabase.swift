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
    /// The lease is taken in a task of its own that hands the connection over and holds it
    /// until `body` is done. A caller whose lease times out (or who is cancelled) returns at
    /// once, without waiting for the pool to notice: a lease request the pool does not give up
    /// must not hold the caller, and with it a health check or a shutdown, forever. A lease
    /// served after that is given straight back.
    func withDatabase<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let handoff = LeaseHandoff()
        let client = client
        let leaseTimeout = leaseTimeout
        let leasing = Task {
            do {
                try await client.withConnection { connection in
                    guard handoff.serve(connection) else { return }
                    await handoff.waitUntilGivenBack()
                }
            } catch {
                handoff.fail(error)
            }
        }
        let timer = Task {
            try? await Task.sleep(for: leaseTimeout)
            if !Task.isCancelled { handoff.fail(PostgresLeaseTimeout(after: leaseTimeout)) }
        }
        let connection: PostgresConnection
        do {
            connection = try await withTaskCancellationHandler {
                try await handoff.connection()
            } onCancel: {
                handoff.fail(CancellationError())
            }
        } catch {
            timer.cancel()
            leasing.cancel()
            throw error
        }
        timer.cancel()
        defer { handoff.giveBack() }
        return try await body(connection.sql(queryLogLevel: nil))
    }

    /// Closes every connection; leases asked for after this fail.
    func shutdown() async {
        running.cancel()
        await running.value
    }
}

/// A connection passed from the task holding the lease to the caller, and back: the first of
/// "served", "failed" (timeout, cancel, pool error) wins.
private final class LeaseHandoff: Sendable {
    private enum State {
        case waiting(CheckedContinuation<PostgresConnection, any Error>?)
        case ready(PostgresConnection)
        case failed(any Error)
        case handedOver
    }
    private let state = Mutex(State.waiting(nil))
    private let returned = Mutex<(given: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    /// The lease came: false when the caller has given up (the connection goes straight back).
    func serve(_ connection: PostgresConnection) -> Bool {
        let (served, waiter): (Bool, CheckedContinuation<PostgresConnection, any Error>?) = state.withLock { state in
            switch state {
            case .waiting(let waiter):
                state = waiter == nil ? .ready(connection) : .handedOver
                return (true, waiter)
            case .ready, .failed, .handedOver:
                return (false, nil)
            }
        }
        waiter?.resume(returning: connection)
        return served
    }

    /// No connection: `error` reaches the caller unless it has one already.
    func fail(_ error: any Error) {
        let waiter: CheckedContinuation<PostgresConnection, any Error>? = state.withLock { state in
            guard case .waiting(let waiter) = state else { return nil }
            state = .failed(error)
            return waiter
        }
        waiter?.resume(throwing: error)
    }

    /// Waits for the connection, or the failure.
    func connection() async throws -> PostgresConnection {
        try await withCheckedThrowingContinuation { continuation in
            let outcome: Result<PostgresConnection, any Error>? = state.withLock { state in
                switch state {
                case .waiting:
                    state = .waiting(continuation)
                    return nil
                case .ready(let connection):
                    state = .handedOver
                    return .success(connection)
                case .failed(let error):
                    return .failure(error)
                case .handedOver:
                    return .failure(PostgresLeaseTimeout(after: .zero))
                }
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    /// The caller is done with the connection.
    func giveBack() {
        let waiter = returned.withLock { returned in
            returned.given = true
            defer { returned.waiter = nil }
            return returned.waiter
        }
        waiter?.resume()
    }

    func waitUntilGivenBack() async {
        await withCheckedContinuation { continuation in
            let given = returned.withLock { returned in
                if !returned.given { returned.waiter = continuation }
                return returned.given
            }
            if given { continuation.resume() }
        }
    }
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
