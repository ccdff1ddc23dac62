/// A storage failure: what kind, what was being done, on which file, and SQLite's own result code.
///
/// Every SQLite and system call in `MeshStore` is checked; a failing one becomes one of these, never
/// a silently ignored status. The code is an extensible struct, so new failure kinds do not break
/// clients that switch over the ones they know.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String

        /// The directory or database could not be created or opened (missing parent, not a directory, …).
        public static let cannotOpen = Code(name: "cannotOpen")
        /// The directory or database cannot be written (read-only mount, no permission, immutable file).
        public static let readOnly = Code(name: "readOnly")
        /// The file system is full (`SQLITE_FULL`, `ENOSPC`).
        public static let diskFull = Code(name: "diskFull")
        /// The database file is damaged or is not a database (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
        public static let corrupt = Code(name: "corrupt")
        /// Another `MeshStore` owns the directory, or SQLite reported `SQLITE_BUSY`/`SQLITE_LOCKED`.
        public static let locked = Code(name: "locked")
        /// An I/O error from the operating system (`SQLITE_IOERR`).
        public static let io = Code(name: "io")
        /// The database was written by a newer StateMesh (its `user_version` is unknown here) or is
        /// not a StateMesh database at all.
        public static let schemaVersion = Code(name: "schemaVersion")
        /// The store was closed (by `close()`, or after a failed rollback left the connection unusable).
        public static let closed = Code(name: "closed")
        /// The caller passed something the store refuses: an oversized blob or key, a negative limit,
        /// a non-positive batching interval. Nothing was changed.
        public static let invalidArgument = Code(name: "invalidArgument")
        /// Any other SQLite failure (out of memory, misuse); `sqliteResultCode` says which.
        /// Added beyond the specified set so that no SQLite result goes unmapped.
        public static let other = Code(name: "other")

        /// The code's name, e.g. `diskFull`.
        public var description: String { name }
    }

    /// The kind of failure.
    public let code: Code
    /// What was being done and what went wrong.
    public let message: String
    /// The file or directory concerned.
    public let path: String
    /// SQLite's extended result code, when the failure came from SQLite.
    public let sqliteResultCode: Int32?

    /// Creates an error.
    public init(_ code: Code, _ message: String, path: String, sqliteResultCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.sqliteResultCode = sqliteResultCode
    }

    /// `code: message (path)`, with SQLite's result code when there is one.
    public var description: String {
        if let sqliteResultCode {
            return "\(code): \(message) (\(path), SQLite result \(sqliteResultCode))"
        }
        return "\(code): \(message) (\(path))"
    }
}
