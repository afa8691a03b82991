import Foundation
import Logging
import PostgresKit
import ServiceLifecycle
import Synchronization

/// Short messages between the service replicas that share one store.
///
/// On PostgreSQL they are `NOTIFY`s on one channel, delivered to every replica that
/// `LISTEN`s, in commit order, as they are sent (no polling). A store only one service uses
/// (SQLite) has none.
///
/// A `Service`: listed after its store and before what consumes the notifications, it ends
/// the streams once they have stopped, and before the store closes.
public protocol ClusterNotifier: Service {
    /// Sends `payload` (at most a few hundred bytes) to every replica, this one included.
    func notify(_ payload: String) async throws
    /// Delivers what every replica sends until the task is cancelled; reconnects after a
    /// lost connection (what was sent in between is not replayed: the store has it).
    func notifications(onConnected: @escaping @Sendable () async -> Void) -> AsyncStream<String>
}

/// `LISTEN`/`NOTIFY` on the channel `rapidflow_events`.
///
/// `NOTIFY` goes through the store's pool; `LISTEN` holds a connection of its own, since a
/// pooled connection goes back to the pool between calls.
final class PostgresNotifier: ClusterNotifier {
    static let channel = "rapidflow_events"
    private let configuration: PostgresConnection.Configuration
    private let database: PostgresDatabase
    private let logger: Logger
    /// The listening connection and task, closed by `close()`.
    private let listening = Mutex<(connection: PostgresConnection?, tasks: [Task<Void, Never>])>((nil, []))

    init(configuration: PostgresConnection.Configuration, database: PostgresDatabase, logger: Logger) {
        self.configuration = configuration
        self.database = database
        self.logger = logger
    }

    /// Until the service group stops; then the notification streams end.
    func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    func notify(_ payload: String) async throws {
        try await database.withDatabase { database in
            try await database.raw("SELECT pg_notify(\(bind: Self.channel), \(bind: payload))").run()
        }
    }

    func notifications(onConnected: @escaping @Sendable () async -> Void) -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let configuration = configuration
        let logger = logger
        let task = Task {
            var attempt = 0
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
                    self.listening.withLock { $0.connection = connection }
                    do {
                        try await connection.listen(on: Self.channel) { notifications in
                            attempt = 0
                            await onConnected()
                            for try await notification in notifications { continuation.yield(notification.payload) }
                        }
                    } catch {
                        try? await connection.close()
                        throw error
                    }
                    try? await connection.close()
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

    /// Ends every notification stream and closes the listening connection; returns once it is closed.
    func close() async {
        let (connection, tasks) = listening.withLock { state in
            defer { state = (nil, []) }
            return state
        }
        tasks.forEach { $0.cancel() }
        try? await connection?.close()
        for task in tasks { await task.value }
    }
}
