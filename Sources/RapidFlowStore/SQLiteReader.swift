import CRapidFlowSQLite
import Foundation
import RapidFlowCore
import Synchronization
import VaporCSQLite

/// Read-only connections to the SQLite store, beside its one writer.
///
/// In WAL mode readers never wait for the writer, and each sees the last committed state. A
/// read runs right on the calling task's thread: a primary-key read takes microseconds,
/// less than a hop to a thread pool and back. Each connection keeps its statements prepared
/// for its lifetime and guards them with a lock of its own; a read takes the first free
/// connection, or waits on one when all are busy. A connection opens on its first read, so a
/// quiet service holds one open file set, not `count`.
///
/// This talks to the SQLite library the driver (sqlite-nio) builds, through its C
/// interface, and the driver's connection stays the one writer.
final class SQLiteReader: Sendable {
    private let connections: [Connection]
    private let next = Atomic<Int>(0)
    /// The store's counts: reads are counted here.
    let counts = StatementCounts()

    init(path: String, count: Int) throws {
        connections = (0..<max(1, count)).map { _ in Connection(path: path) }
        // The first opens now: a store that cannot be read is refused at start.
        try connections[0].lock.withLock { try connections[0].open() }
    }

    /// Runs `body` on a free connection.
    func read<T>(_ body: (Connection) throws -> T) throws -> T {
        counts.reader.add(1, ordering: .relaxed)
        for connection in connections where connection.lock.try() {
            defer { connection.lock.unlock() }
            return try body(connection)
        }
        let connection = connections[next.add(1, ordering: .relaxed).oldValue % connections.count]
        connection.lock.lock()
        defer { connection.lock.unlock() }
        return try body(connection)
    }

    /// Every row of `sql`, each read by `decode`.
    func rows<T>(_ sql: String, _ values: [Value], _ decode: (Row) throws -> T) throws -> [T] {
        try read { connection in
            var rows: [T] = []
            try connection.query(sql, values) { rows.append(try decode($0)) }
            return rows
        }
    }

    func close() {
        for connection in connections {
            connection.lock.lock()
            connection.close()
            connection.lock.unlock()
        }
    }

    /// A value bound to a statement's `?`.
    enum Value {
        case int(Int64)
        case text(String)
        case null
    }

    /// One connection and its prepared statements; used only under its lock.
    final class Connection: @unchecked Sendable {
        let lock = NSLock()
        private let path: String
        private var handle: OpaquePointer?
        private var statements: [String: OpaquePointer] = [:]

        init(path: String) {
            self.path = path
        }

        /// Opens the connection unless it is open.
        func open() throws {
            guard handle == nil else { return }
            var handle: OpaquePointer?
            let status = sqlite_nio_sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
            guard status == SQLITE_OK, let handle else {
                let reason = handle.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "code \(status)"
                sqlite_nio_sqlite3_close(handle)
                throw RapidFlowError(.internalError, "could not open a reader on the store \(path): \(reason)")
            }
            // A reader waits only while SQLite recovers the log after a crash.
            sqlite_nio_sqlite3_busy_timeout(handle, 5000)
            // Plans that do not depend on bound values: otherwise a statement on `jobs` (whose
            // partial indexes the planner checks against the binds) or with `LIMIT ?` is
            // prepared again each time its values change, which cost more than the read.
            _ = rapidflow_sqlite_stable_plans(UnsafeMutableRawPointer(handle))
            self.handle = handle
        }

        func close() {
            for statement in statements.values { sqlite_nio_sqlite3_finalize(statement) }
            statements = [:]
            sqlite_nio_sqlite3_close(handle)
            handle = nil
        }

        /// Runs `sql` with `values` bound and hands each row to `row`.
        func query(_ sql: String, _ values: [Value], row: (Row) throws -> Void) throws {
            try open()
            let statement = try prepared(sql)
            // Ends the statement's read, so a checkpoint is never held back. Every value is bound
            // anew each time: no `clear_bindings`.
            defer { sqlite_nio_sqlite3_reset(statement) }
            for (index, value) in values.enumerated() {
                let position = Int32(index + 1)
                let status: Int32 =
                    switch value {
                    case .int(let number): sqlite_nio_sqlite3_bind_int64(statement, position, number)
                    case .null: sqlite_nio_sqlite3_bind_null(statement, position)
                    case .text(let text):
                        sqlite_nio_sqlite3_bind_text64(
                            statement, position, text, UInt64(text.utf8.count), Self.transient, UInt8(SQLITE_UTF8))
                    }
                guard status == SQLITE_OK else { throw failure("bind", status) }
            }
            while true {
                let status = sqlite_nio_sqlite3_step(statement)
                if status == SQLITE_DONE { return }
                guard status == SQLITE_ROW else { throw failure("read", status) }
                try row(Row(statement: statement))
            }
        }

        private func prepared(_ sql: String) throws -> OpaquePointer {
            if let statement = statements[sql] { return statement }
            var statement: OpaquePointer?
            let status = sqlite_nio_sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
            guard status == SQLITE_OK, let statement else { throw failure("prepare", status) }
            statements[sql] = statement
            return statement
        }

        private func failure(_ what: String, _ status: Int32) -> RapidFlowError {
            let reason = handle.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "code \(status)"
            return RapidFlowError(.internalError, "the store could not \(what) a statement: \(reason)")
        }

        /// SQLite copies a bound text before the call returns.
        private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    }

    /// The current row of a statement, its columns read by position.
    struct Row {
        let statement: OpaquePointer

        func isNull(_ column: Int32) -> Bool { sqlite_nio_sqlite3_column_type(statement, column) == SQLITE_NULL }

        func int(_ column: Int32) -> Int { Int(sqlite_nio_sqlite3_column_int64(statement, column)) }

        func optionalInt(_ column: Int32) -> Int? { isNull(column) ? nil : int(column) }

        func text(_ column: Int32) -> String {
            guard let bytes = sqlite_nio_sqlite3_column_text(statement, column) else { return "" }
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
        }

        func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }

        func data(_ column: Int32) -> Data {
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            guard count > 0, let bytes = sqlite_nio_sqlite3_column_blob(statement, column) else { return Data() }
            return Data(bytes: bytes, count: count)
        }
    }
}
