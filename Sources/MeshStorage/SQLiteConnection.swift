internal import CSQLite

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A value bound to a statement parameter.
enum SQLiteValue {
    case integer(Int64)
    case text(String)
    case blob([UInt8])
}

/// One SQLite connection with its cache of prepared statements; every result code is checked.
///
/// Not thread-safe (opened with `SQLITE_OPEN_NOMUTEX`): it belongs to one `MeshStore`, which belongs
/// to one actor.
final class SQLiteConnection {
    let handle: OpaquePointer
    let path: String
    private var statements: [String: OpaquePointer] = [:]
    /// The statements run once per write or commit, by `HotStatement.rawValue`: found by index, not by
    /// hashing their SQL text on every call.
    private var hotStatements: [OpaquePointer?] = Array(repeating: nil, count: HotStatement.allCases.count)

    /// Statements on the write path (every journaled record, every commit).
    enum HotStatement: Int, CaseIterable {
        case insertRecord
        case upsertValue
        case begin
        case commit

        var sql: String {
            switch self {
            case .insertRecord: "INSERT INTO records (sequence, domain, bytes) VALUES (?, ?, ?)"
            case .upsertValue:
                "INSERT INTO metadata (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            case .begin: "BEGIN IMMEDIATE"
            case .commit: "COMMIT"
            }
        }
    }

    /// Opens (creating if missing) the database at `path` for reading and writing.
    init(path: String) throws(StorageError) {
        var opened: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &opened, flags, nil)
        guard let opened else {
            // SQLite could not even allocate a handle.
            throw StorageError(
                .other, "opening the database: SQLite returned no handle", path: path, sqliteResultCode: rc)
        }
        guard rc == SQLITE_OK else {
            let error = SQLiteConnection.error(rc, handle: opened, doing: "opening the database", path: path)
            _ = sqlite3_close_v2(opened)  // closing a handle that failed to open; its result adds nothing
            throw error
        }
        self.handle = opened
        self.path = path
        // Extended codes give messages like SQLITE_IOERR_FSYNC instead of SQLITE_IOERR.
        let extended = sqlite3_extended_result_codes(opened, 1)
        guard extended == SQLITE_OK else {
            let error = SQLiteConnection.error(
                extended, handle: opened, doing: "enabling extended result codes", path: path)
            _ = sqlite3_close_v2(opened)
            throw error
        }
        // SQLite falls back to read-only when the file is not writable; a store must be able to write.
        if sqlite3_db_readonly(opened, "main") == 1 {
            _ = sqlite3_close_v2(opened)
            throw StorageError(.readOnly, "opening the database: SQLite could open it only read-only", path: path)
        }
    }

    /// Finalises every cached statement and closes the connection. SQLite rolls back any open transaction.
    func close() {
        for statement in Array(statements.values) + hotStatements.compactMap({ $0 }) {
            // sqlite3_finalize repeats the statement's last error, which was already reported.
            _ = sqlite3_finalize(statement)
        }
        statements.removeAll()
        hotStatements = Array(repeating: nil, count: HotStatement.allCases.count)
        // With every statement finalised, sqlite3_close_v2 cannot fail with SQLITE_BUSY; there is no
        // caller left to report anything else to.
        _ = sqlite3_close_v2(handle)
    }

    /// Whether a transaction is open on the connection.
    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Sets the busy timeout.
    func setBusyTimeout(milliseconds: Int32) throws(StorageError) {
        let rc = sqlite3_busy_timeout(handle, milliseconds)
        guard rc == SQLITE_OK else { throw failure(rc, doing: "setting the busy timeout") }
    }

    /// Runs `sql` with `arguments`, calling `row` for each result row; `what` names the operation for
    /// errors (evaluated only when one is reported).
    func run(
        _ sql: String, _ arguments: [SQLiteValue] = [], doing what: @autoclosure () -> String,
        row: (Row) throws(StorageError) -> Void = { _ in }
    ) throws(StorageError) {
        try run(prepared(sql, doing: what()), arguments, doing: what(), row: row)
    }

    /// Runs a hot statement with `arguments`; see `run(_:_:doing:row:)`.
    func run(
        _ hot: HotStatement, _ arguments: [SQLiteValue] = [], doing what: @autoclosure () -> String
    ) throws(StorageError) {
        try run(prepared(hot, doing: what()), arguments, doing: what(), row: { _ in })
    }

    /// Appends one row to `records` (the journal: once per write), binding without an argument array
    /// and without copying the blob (it stays alive while the statement steps).
    func insertRecord(
        sequence: Int64, domain: String, bytes: [UInt8], doing what: @autoclosure () -> String
    ) throws(StorageError) {
        let statement = try prepared(.insertRecord, doing: what())
        defer {
            _ = sqlite3_reset(statement)
            _ = sqlite3_clear_bindings(statement)
        }
        let rc: Int32 = bytes.withUnsafeBytes { blob in
            domain.withCString { chars in
                var rc = sqlite3_bind_int64(statement, 1, sequence)
                guard rc == SQLITE_OK else { return rc }
                // An explicit length keeps embedded NUL characters; "" binds an empty string, not NULL.
                rc = sqlite3_bind_text(statement, 2, chars, Int32(domain.utf8.count), nil)
                guard rc == SQLITE_OK else { return rc }
                // A null pointer would bind NULL; an empty record binds a zero-length blob.
                rc = blob.isEmpty
                    ? sqlite3_bind_zeroblob(statement, 3, 0)
                    : sqlite3_bind_blob(statement, 3, blob.baseAddress, Int32(blob.count), nil)
                guard rc == SQLITE_OK else { return rc }
                // SQLITE_STATIC bindings (nil destructor): the bytes must outlive the step, so step here.
                return sqlite3_step(statement)
            }
        }
        guard rc == SQLITE_DONE else { throw failure(rc, doing: what()) }
    }

    private func run(
        _ statement: OpaquePointer, _ arguments: [SQLiteValue], doing what: @autoclosure () -> String,
        row: (Row) throws(StorageError) -> Void
    ) throws(StorageError) {
        defer {
            // Both only repeat a failure already reported by sqlite3_step or a bind call.
            _ = sqlite3_reset(statement)
            _ = sqlite3_clear_bindings(statement)
        }
        for (offset, argument) in arguments.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch argument {
            case .integer(let value):
                rc = sqlite3_bind_int64(statement, index, value)
            case .text(let value):
                // An explicit length keeps embedded NUL characters; "" binds an empty string, not NULL.
                rc = value.withCString { chars in
                    sqlite3_bind_text(statement, index, chars, Int32(value.utf8.count), csqlite_transient())
                }
            case .blob(let value):
                if value.isEmpty {
                    // sqlite3_bind_blob with a null pointer would bind NULL.
                    rc = sqlite3_bind_zeroblob(statement, index, 0)
                } else {
                    rc = value.withUnsafeBytes { bytes in
                        sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(bytes.count), csqlite_transient())
                    }
                }
            }
            guard rc == SQLITE_OK else { throw failure(rc, doing: what()) }
        }
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_ROW {
                try row(Row(statement: statement, connection: self, what: what()))
            } else if rc == SQLITE_DONE {
                return
            } else {
                throw failure(rc, doing: what())
            }
        }
    }

    /// The statement for `sql`, prepared once and kept (`SQLITE_PREPARE_PERSISTENT`).
    private func prepared(_ sql: String, doing what: @autoclosure () -> String) throws(StorageError) -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        let statement = try prepare(sql, doing: what())
        statements[sql] = statement
        return statement
    }

    /// The hot statement `hot`, prepared on first use and kept.
    private func prepared(_ hot: HotStatement, doing what: @autoclosure () -> String) throws(StorageError)
        -> OpaquePointer
    {
        if let statement = hotStatements[hot.rawValue] { return statement }
        let statement = try prepare(hot.sql, doing: what())
        hotStatements[hot.rawValue] = statement
        return statement
    }

    private func prepare(_ sql: String, doing what: @autoclosure () -> String) throws(StorageError) -> OpaquePointer {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw failure(rc == SQLITE_OK ? SQLITE_MISUSE : rc, doing: "\(what()) (preparing `\(sql)`)")
        }
        return statement
    }

    /// The error for a failed call on this connection.
    func failure(_ rc: Int32, doing what: @autoclosure () -> String) -> StorageError {
        SQLiteConnection.error(rc, handle: handle, doing: what(), path: path)
    }

    /// Maps a SQLite result code (and the system errno behind it) to a `StorageError`.
    static func error(_ rc: Int32, handle: OpaquePointer?, doing what: String, path: String) -> StorageError {
        let systemErrno = handle.map { sqlite3_system_errno($0) } ?? 0
        let detail: String
        if let handle, let message = sqlite3_errmsg(handle) {
            detail = String(cString: message)
        } else if let message = sqlite3_errstr(rc) {
            detail = String(cString: message)
        } else {
            detail = "SQLite error"
        }
        var message = "\(what): \(detail)"
        if systemErrno != 0, rc & 0xff == SQLITE_IOERR || rc & 0xff == SQLITE_CANTOPEN || rc & 0xff == SQLITE_FULL {
            message += " (errno \(systemErrno): \(String(cString: strerror(systemErrno))))"
        }
        return StorageError(code(for: rc, systemErrno: systemErrno), message, path: path, sqliteResultCode: rc)
    }

    /// The `StorageError.Code` for a SQLite result code.
    static func code(for rc: Int32, systemErrno: Int32) -> StorageError.Code {
        switch rc & 0xff {
        case SQLITE_FULL:
            return .diskFull
        case SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH:
            return .readOnly
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return .corrupt
        case SQLITE_BUSY, SQLITE_LOCKED:
            return .locked
        case SQLITE_IOERR:
            switch systemErrno {
            case ENOSPC, EDQUOT: return .diskFull
            case EROFS, EACCES, EPERM: return .readOnly
            default: return .io
            }
        case SQLITE_CANTOPEN:
            switch systemErrno {
            case EROFS, EACCES, EPERM: return .readOnly
            default: return .cannotOpen
            }
        case SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE:
            return .invalidArgument
        default:
            return .other
        }
    }

    /// The current row of a running statement.
    struct Row {
        let statement: OpaquePointer
        let connection: SQLiteConnection
        let what: String

        func integer(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

        /// The column as bytes; an empty blob and NULL both read as `[]`.
        func blob(_ column: Int32) throws(StorageError) -> [UInt8] {
            // Order matters: sqlite3_column_blob first, then sqlite3_column_bytes (SQLite's own advice).
            let pointer = sqlite3_column_blob(statement, column)
            let count = Int(sqlite3_column_bytes(statement, column))
            guard count > 0 else { return [] }
            guard let pointer else { throw connection.failure(SQLITE_NOMEM, doing: "\(what) (reading a blob)") }
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        }

        func text(_ column: Int32) throws(StorageError) -> String {
            let pointer = sqlite3_column_text(statement, column)
            let count = Int(sqlite3_column_bytes(statement, column))
            guard count > 0 else { return "" }
            guard let pointer else { throw connection.failure(SQLITE_NOMEM, doing: "\(what) (reading text)") }
            return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
        }
    }
}
