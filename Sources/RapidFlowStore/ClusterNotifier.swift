import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresKit
import Synchronization

/// Short messages between the service replicas that share one store.
///
/// On PostgreSQL they are `NOTIFY`s on one channel, delivered to every replica that
/// `LISTEN`s, in commit order, as they are sent (no polling). A store only one service uses
/// (SQLite) has none.
public protocol ClusterNotifier: Sendable {
    /// Sends `payload` (at most a few hundred bytes) to every replica, this one included.
    func notify(_ payload: String) async throws
    /// Delivers what every replica sends until the task is cancelled; reconnects after a
    /// lost connection (what was sent in between is not replayed: the store has it).
    func notifications(onConnected: @escaping @Sendable () async -> Void) -> AsyncStream<String>
}

/// `LISTEN`/`NOTIFY` on the channel `rapidflow_events`.
final class PostgresNotifier: ClusterNotifier {
    static let channel = "rapidflow_events"
    private let configuration: SQLPostgresConfiguration
    private let pool: PostgresPool
    private let logger: Logger
    /// The listening connection and task, closed by `close()`.
    private let listening = Mutex<(connection: PostgresConnection?, tasks: [Task<Void, Never>])>((nil, []))

    init(configuration: SQLPostgresConfiguration, pool: PostgresPool, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.logger = logger
    }

    func notify(_ payload: String) async throws {
        try await pool.withDatabase { database in
            try await database.raw("SELECT pg_notify(\(bind: Self.channel), \(bind: payload))").run()
        }
    }

    func notifications(onConnected: @escaping @Sendable () async -> Void) -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let configuration = configuration.coreConfiguration
        let logger = logger
        let task = Task {
            var attempt = 0
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(
                        on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: 0, logger: logger
                    ).get()
                    self.listening.withLock { $0.connection = connection }
                    defer { Task { try? await connection.close() } }
                    try await connection.listen(on: Self.channel) { notifications in
                        attempt = 0
                        await onConnected()
                        for try await notification in notifications { continuation.yield(notification.payload) }
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("lost the PostgreSQL notification connection; reconnecting", metadata: ["error": "\(String(reflecting: type(of: error)))"])
                }
                attempt += 1
                try? await Task.sleep(for: .milliseconds(min(200 * attempt, 2000)))
            }
            continuation.finish()
        }
        listening.withLock { $0.tasks.append(task) }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Ends every notification stream and closes the listening connection.
    func close() {
        let (connection, tasks) = listening.withLock { state in
            defer { state = (nil, []) }
            return state
        }
        tasks.forEach { $0.cancel() }
        if let connection { connection.close().whenComplete { _ in } }
    }
}
