import Logging
import NIOCore
import SQLKit
import Synchronization

/// How many statements the store ran: each is a round trip (a hop to SQLite's thread and
/// back for the writer, a network round trip on PostgreSQL). `/metrics` shows them, and the
/// per-job benchmark divides them by the jobs it ran.
public final class StatementCounts: Sendable {
    let writer = Atomic<Int>(0)
    let reader = Atomic<Int>(0)

    /// Statements on the writer (SQLite's one connection, or PostgreSQL's pool) and on the
    /// read-only SQLite connections.
    public var current: (writer: Int, reader: Int) { (writer.load(ordering: .relaxed), reader.load(ordering: .relaxed)) }
}

/// A database that counts the statements run through it.
struct CountingDatabase: SQLDatabase {
    let base: any SQLDatabase
    let counts: StatementCounts

    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var dialect: any SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        counts.writer.add(1, ordering: .relaxed)
        return base.execute(sql: query, onRow)
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        counts.writer.add(1, ordering: .relaxed)
        try await base.execute(sql: query, onRow)
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await base.withSession { [counts] in try await closure(CountingDatabase(base: $0, counts: counts)) }
    }
}
