import CSQLite
import Synchronization

/// A value bound to or read from SQLite.
enum SQLValue: Sendable, Equatable {
    case integer(Int64)
    case text(String)
    case null

    var int: Int64? { if case .integer(let v) = self { return v } else { return nil } }
    var string: String? { if case .text(let v) = self { return v } else { return nil } }
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    init(stringLiteral value: String) { self = .text(value) }
    init(integerLiteral value: Int64) { self = .integer(value) }
}

struct DatabaseError: Error, CustomStringConvertible {
    var code: Int32
    var message: String
    var description: String { "sqlite error \(code): \(message)" }
    var isConstraintViolation: Bool { code & 0xff == SQLITE_CONSTRAINT }
}

typealias Row = [String: SQLValue]

/// A thin, serialised wrapper over one connection of the system libsqlite3.
/// Every statement is tiny, so one connection behind a mutex is simpler and no slower than a
/// pool for this appliance's load.
final class Database: Sendable {
    private let connection: Mutex<OpaquePointer>

    init(path: String) throws {
        var why = [CChar](repeating: 0, count: 256)
        guard csqlite_load(&why, why.count) == 0 else {
            throw DatabaseError(code: SQLITE_CANTOPEN, message: String(cString: why))
        }
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let handle { sqlite3_close(handle) }
            throw DatabaseError(code: rc, message: message)
        }
        sqlite3_busy_timeout(handle, 5000)
        connection = Mutex(handle)
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA foreign_keys=ON")
        try execute("PRAGMA synchronous=NORMAL")
    }

    deinit {
        connection.withLock { _ = sqlite3_close($0) }
    }

    /// Runs one or more statements without results.
    func execute(_ sql: String) throws {
        try connection.withLock { db in
            var error: UnsafeMutablePointer<CChar>?
            let rc = sqlite3_exec(db, sql, nil, nil, &error)
            if rc != SQLITE_OK {
                let message = error.map { String(cString: $0) } ?? "unknown"
                sqlite3_free(error)
                throw DatabaseError(code: rc, message: message)
            }
        }
    }

    @discardableResult
    func query(_ sql: String, _ parameters: [SQLValue] = []) throws -> [Row] {
        try connection.withLock { db in try Self.run(db, sql, parameters).rows }
    }

    /// Runs a write and returns the rowid it inserted, if any.
    @discardableResult
    func write(_ sql: String, _ parameters: [SQLValue] = []) throws -> (changes: Int, rowID: Int64) {
        try connection.withLock { db in
            _ = try Self.run(db, sql, parameters)
            return (Int(sqlite3_changes(db)), sqlite3_last_insert_rowid(db))
        }
    }

    /// Runs `body` in one transaction; a thrown error rolls everything back.
    func transaction<T>(_ body: (Transaction) throws -> T) throws -> T {
        try connection.withLock { db in
            _ = try Self.run(db, "BEGIN IMMEDIATE", [])
            do {
                let result = try body(Transaction(db: db))
                _ = try Self.run(db, "COMMIT", [])
                return result
            } catch {
                _ = try? Self.run(db, "ROLLBACK", [])
                throw error
            }
        }
    }

    struct Transaction {
        fileprivate let db: OpaquePointer

        @discardableResult
        func query(_ sql: String, _ parameters: [SQLValue] = []) throws -> [Row] {
            try Database.run(db, sql, parameters).rows
        }

        @discardableResult
        func write(_ sql: String, _ parameters: [SQLValue] = []) throws -> (changes: Int, rowID: Int64) {
            _ = try Database.run(db, sql, parameters)
            return (Int(sqlite3_changes(db)), sqlite3_last_insert_rowid(db))
        }

        /// Several statements without parameters (a migration; triggers contain semicolons).
        func script(_ sql: String) throws {
            var error: UnsafeMutablePointer<CChar>?
            let rc = sqlite3_exec(db, sql, nil, nil, &error)
            if rc != SQLITE_OK {
                let message = error.map { String(cString: $0) } ?? "unknown"
                sqlite3_free(error)
                throw DatabaseError(code: rc, message: message)
            }
        }
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private static func run(_ db: OpaquePointer, _ sql: String, _ parameters: [SQLValue]) throws -> (rows: [Row], Void) {
        var statement: OpaquePointer?
        var rc = sqlite3_prepare_v2(db, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw DatabaseError(code: rc, message: String(cString: sqlite3_errmsg(db)))
        }
        defer { sqlite3_finalize(statement) }
        for (index, value) in parameters.enumerated() {
            let position = Int32(index + 1)
            switch value {
            case .integer(let v): rc = sqlite3_bind_int64(statement, position, v)
            case .text(let v): rc = sqlite3_bind_text(statement, position, v, -1, transient)
            case .null: rc = sqlite3_bind_null(statement, position)
            }
            guard rc == SQLITE_OK else { throw DatabaseError(code: rc, message: String(cString: sqlite3_errmsg(db))) }
        }
        var rows: [Row] = []
        while true {
            rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else {
                throw DatabaseError(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)))
            }
            var row: Row = [:]
            for column in 0..<sqlite3_column_count(statement) {
                let name = String(cString: sqlite3_column_name(statement, column))
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row[name] = .integer(sqlite3_column_int64(statement, column))
                case SQLITE_NULL: row[name] = .null
                default:
                    if let text = sqlite3_column_text(statement, column) {
                        row[name] = .text(String(cString: text))
                    } else {
                        row[name] = .null
                    }
                }
            }
            rows.append(row)
        }
        return (rows, ())
    }
}
