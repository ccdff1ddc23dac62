internal import CSQLite

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A node's durable local state: metadata, an append-only record log, one checkpoint and the member
/// list, in one SQLite database (WAL mode) inside a directory the store owns exclusively.
///
/// The store keeps opaque bytes; the caller encodes (with `MeshCodec`). Every mutation joins the
/// open *batch*, a SQLite transaction begun lazily with `BEGIN IMMEDIATE`; reads see the open batch;
/// `commit()` makes the whole batch durable as one transaction under the store's `Durability`, so
/// after any crash a batch is either entirely there or entirely absent.
///
/// ```swift
/// let store = try MeshStore(directory: "/var/lib/statemesh", durability: .always)
/// let sequence = try store.appendRecord(domain: "fleet", bytes: encodedDelta)
/// try store.setValue(encodedVector, forKey: "vector/fleet")
/// try store.commit()   // both or neither, fsynced; now acknowledge the write
/// ```
///
/// ### Ownership
/// One `MeshStore` owns its directory: `init` takes an exclusive, non-blocking `flock(2)` on
/// `<directory>/statemesh.lock` and holds it until `close()` (or `deinit`). A second `MeshStore` on the
/// same directory, in this process or another, fails with `.locked` (after a second: see `lockDirectory`).
/// `flock` locks belong to the open file description, so two stores in one process exclude each other
/// too, and the kernel drops the lock when the process dies: a SIGKILLed node never leaves a stale lock
/// behind. (SQLite's own locking stays in its normal mode underneath, so the database can still be
/// inspected read-only with the `sqlite3` shell; `flock` is advisory and not reliable on network file
/// systems.)
///
/// ### Concurrency
/// Deliberately not `Sendable`: the connection is opened with `SQLITE_OPEN_NOMUTEX` and the batch
/// state is plain stored properties, so one actor (the node) must own the store and make every call.
///
/// ### Invariants
/// - The database always equals the state after the last successful `commit()` plus, while
///   `hasUncommittedChanges`, the open batch. A mutation or commit that fails (other than with
///   `.invalidArgument`, which is refused before anything is touched) rolls the whole open batch
///   back before it throws.
/// - Sequences handed out by `appendRecord` increase strictly, across checkpoints (which delete
///   records), rollbacks and reopenings: a committed sequence is never handed out again. A sequence
///   of a batch that was never committed (rolled back, or lost in a crash) may be handed out again
///   after the store is reopened, never before.
///
/// ### Bounds
/// Blobs (values, records, checkpoints, member entries) are at most `maximumBlobByteCount` bytes
/// (64 MiB); keys, domains and member IDs at most `maximumKeyByteCount` bytes (4 KiB). Larger ones
/// are refused with `.invalidArgument`.
public final class MeshStore {
    /// Largest blob accepted: 64 MiB.
    public static let maximumBlobByteCount = 64 << 20
    /// Largest metadata key, record domain (UTF-8 bytes) or member ID accepted: 4 KiB.
    public static let maximumKeyByteCount = 4 << 10
    /// The `PRAGMA user_version` this build writes and reads.
    public static let schemaVersion: Int32 = 1
    /// The `PRAGMA application_id` of a StateMesh database: "StMe".
    static let applicationID: Int32 = 0x5374_4D65
    /// How long SQLite waits for a lock held by a foreign connection (e.g. a `sqlite3` shell).
    static let busyTimeoutMilliseconds: Int32 = 2_000

    /// The directory the store owns.
    public let directory: String
    /// When a commit is durable.
    public let durability: Durability
    /// The database file, `<directory>/statemesh.sqlite` (added to the specified API).
    public let databasePath: String
    /// True when this `init` created the database (a new or wiped data directory): the caller starts
    /// with a new replica ID.
    public let isFresh: Bool

    private var connection: SQLiteConnection?
    private var lockDescriptor: Int32
    private var closedReason: String = "the store was closed"
    private var batchIsOpen = false
    private var lastSequence: Int64
    private var pendingRecords = 0
    private var pendingRecordBytes = 0
    private var pendingCheckpoints = 0
    private var counters = StorageStatistics()

    /// Opens the store in `directory`, creating the directory (mode 0700) and the database if missing.
    ///
    /// - Throws: `.invalidArgument` for an empty path or a non-positive batching interval;
    ///   `.readOnly` when the directory or database cannot be written; `.cannotOpen` when they
    ///   cannot be created or opened for another reason; `.locked` when another `MeshStore` owns the
    ///   directory; `.corrupt` when the file is not a SQLite database; `.schemaVersion` when it was
    ///   written by a newer StateMesh or is not a StateMesh database; `.diskFull`, `.io`.
    public init(directory: String, durability: Durability = .always) throws(StorageError) {
        guard !directory.isEmpty else {
            throw StorageError(.invalidArgument, "opening a store: the directory path is empty", path: directory)
        }
        if case .batched(let interval) = durability, interval <= 0 {
            throw StorageError(
                .invalidArgument, "opening a store: the batching interval must be positive, not \(interval) ms",
                path: directory)
        }
        self.directory = directory
        self.durability = durability
        let databasePath = directory.hasSuffix("/") ? directory + "statemesh.sqlite" : directory + "/statemesh.sqlite"
        self.databasePath = databasePath

        try MeshStore.createDirectory(directory)
        let lockDescriptor = try MeshStore.lockDirectory(directory)
        var connection: SQLiteConnection?
        do throws(StorageError) {
            let opened = try SQLiteConnection(path: databasePath)
            connection = opened
            let isFresh = try MeshStore.prepare(opened, durability: durability)
            self.isFresh = isFresh
            self.lastSequence = try MeshStore.loadLastSequence(opened)
        } catch {
            connection?.close()
            _ = closeDescriptor(lockDescriptor)  // releases the flock; nothing else to report
            throw error
        }
        self.connection = connection
        self.lockDescriptor = lockDescriptor
        counters.lastSequence = lastSequence
    }

    deinit {
        close()
    }

    // MARK: Metadata

    /// The metadata value stored under `key`, including the open batch; nil when there is none.
    public func value(forKey key: String) throws(StorageError) -> [UInt8]? {
        let what = "reading metadata key '\(key)'"
        let connection = try openConnection(doing: what)
        var result: [UInt8]?
        try connection.run("SELECT value FROM metadata WHERE key = ?", [.text(key)], doing: what) {
            row throws(StorageError) in result = try row.blob(0)
        }
        return result
    }

    /// Stores `value` under `key` (replacing any value) in the open batch.
    ///
    /// - Throws: `.invalidArgument` when `key` or `value` is over its bound (the batch is untouched).
    public func setValue(_ value: [UInt8], forKey key: String) throws(StorageError) {
        // Described only when something fails: this runs on every commit.
        let what = { "setting metadata key '\(key)'" }
        try check(key: key.utf8.count, what())
        try check(blob: value.count, what())
        try mutate(what()) { connection throws(StorageError) in
            try connection.run(.upsertValue, [.text(key), .blob(value)], doing: what())
        }
    }

    // MARK: Record log

    /// Appends a record to the log in the open batch and returns its sequence.
    ///
    /// Sequences increase strictly and a committed one is never reused, not even after a checkpoint
    /// deleted every record (see the type's invariants).
    /// - Parameter span: how many sequences the record takes (the caller's bytes may stand for several
    ///   entries of its own, e.g. a batch of deltas); its sequence is the last of them, so
    ///   `replaceCheckpoint(_:retainingRecords:)` retains by what records stand for, not by rows.
    /// - Throws: `.invalidArgument` when `domain` or `bytes` is over its bound or `span` is not positive
    ///   (the batch is untouched).
    public func appendRecord(domain: String, bytes: [UInt8], span: Int = 1) throws(StorageError) -> Int64 {
        // Described only when something fails: this runs once per journaled delivery.
        let what = { "appending a record to domain '\(domain)'" }
        try check(key: domain.utf8.count, what())
        try check(blob: bytes.count, what())
        guard span >= 1 else {
            throw StorageError(.invalidArgument, "\(what()): span \(span) is not positive", path: databasePath)
        }
        guard lastSequence <= Int64.max - Int64(span) else {
            throw StorageError(.invalidArgument, "\(what()): the sequence space is exhausted", path: databasePath)
        }
        let sequence = lastSequence + Int64(span)
        try mutate(what()) { connection throws(StorageError) in
            try connection.insertRecord(sequence: sequence, domain: domain, bytes: bytes, doing: what())
        }
        lastSequence = sequence
        counters.lastSequence = sequence
        pendingRecords += 1
        pendingRecordBytes += bytes.count
        return sequence
    }

    /// Up to `limit` records with a sequence greater than `sequence`, ascending, including the open batch.
    ///
    /// Records covered by the checkpoint are gone; start from `checkpoint()?.throughSequence`.
    /// - Throws: `.invalidArgument` when `limit` is negative. A limit of 0 returns no records.
    public func records(after sequence: Int64, limit: Int) throws(StorageError) -> [StoredRecord] {
        let what = "reading records after sequence \(sequence)"
        guard limit >= 0 else {
            throw StorageError(.invalidArgument, "\(what): the limit \(limit) is negative", path: databasePath)
        }
        let connection = try openConnection(doing: what)
        guard limit > 0 else { return [] }
        var result: [StoredRecord] = []
        try connection.run(
            "SELECT sequence, domain, bytes FROM records WHERE sequence > ? ORDER BY sequence LIMIT ?",
            [.integer(sequence), .integer(Int64(limit))], doing: what
        ) { row throws(StorageError) in
            let record = try StoredRecord(sequence: row.integer(0), domain: row.text(1), bytes: row.blob(2))
            result.append(record)
        }
        return result
    }

    /// Stores `bytes` as the checkpoint covering every record appended so far (`throughSequence` is
    /// the last sequence handed out) and deletes those records but the newest `retainedRecords`, in the
    /// open batch (counted in sequences: a record appended with a `span` counts as that many). Retained records stay readable with `records(after:limit:)` (a change history);
    /// recovery replays only records after `throughSequence`.
    ///
    /// Atomic with the rest of the batch: a rollback restores the previous checkpoint and the records.
    /// - Throws: `.invalidArgument` when `bytes` is over the bound or `retainedRecords` is negative (the
    ///   batch is untouched).
    public func replaceCheckpoint(_ bytes: [UInt8], retainingRecords retainedRecords: Int = 0) throws(StorageError) {
        let through = lastSequence
        let what = "replacing the checkpoint through sequence \(through)"
        try check(blob: bytes.count, what)
        guard retainedRecords >= 0 else {
            throw StorageError(.invalidArgument, "\(what): retained records \(retainedRecords) < 0", path: databasePath)
        }
        try mutate(what) { connection throws(StorageError) in
            try connection.run(
                """
                INSERT INTO checkpoint (id, through_sequence, bytes) VALUES (1, ?, ?)
                ON CONFLICT (id) DO UPDATE SET through_sequence = excluded.through_sequence, bytes = excluded.bytes
                """,
                [.integer(through), .blob(bytes)], doing: what)
            try connection.run(
                "DELETE FROM records WHERE sequence <= ?", [.integer(through - Int64(retainedRecords))], doing: what)
        }
        pendingCheckpoints += 1
    }

    /// The checkpoint and the last sequence it covers, including the open batch; nil before the first.
    public func checkpoint() throws(StorageError) -> (bytes: [UInt8], throughSequence: Int64)? {
        let what = "reading the checkpoint"
        let connection = try openConnection(doing: what)
        var result: (bytes: [UInt8], throughSequence: Int64)?
        try connection.run("SELECT through_sequence, bytes FROM checkpoint WHERE id = 1", doing: what) {
            row throws(StorageError) in
            let bytes = try row.blob(1)
            result = (bytes: bytes, throughSequence: row.integer(0))
        }
        return result
    }

    // MARK: Members

    /// Stores `bytes` for the member `id` (replacing any entry) in the open batch.
    ///
    /// - Throws: `.invalidArgument` when `id` or `bytes` is over its bound (the batch is untouched).
    public func setMember(_ bytes: [UInt8], forID id: [UInt8]) throws(StorageError) {
        let what = "storing member \(MeshStore.hex(id))"
        try check(key: id.count, what)
        try check(blob: bytes.count, what)
        try mutate(what) { connection throws(StorageError) in
            try connection.run(
                "INSERT INTO members (id, bytes) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET bytes = excluded.bytes",
                [.blob(id), .blob(bytes)], doing: what)
        }
    }

    /// Removes the member `id` (nothing happens when it is absent) in the open batch.
    public func removeMember(id: [UInt8]) throws(StorageError) {
        let what = "removing member \(MeshStore.hex(id))"
        try check(key: id.count, what)
        try mutate(what) { connection throws(StorageError) in
            try connection.run("DELETE FROM members WHERE id = ?", [.blob(id)], doing: what)
        }
    }

    /// Every member entry, sorted by ID (bytewise, a prefix first), including the open batch.
    public func members() throws(StorageError) -> [(id: [UInt8], bytes: [UInt8])] {
        let what = "reading the members"
        let connection = try openConnection(doing: what)
        var result: [(id: [UInt8], bytes: [UInt8])] = []
        try connection.run("SELECT id, bytes FROM members ORDER BY id", doing: what) { row throws(StorageError) in
            let id = try row.blob(0)
            let bytes = try row.blob(1)
            result.append((id: id, bytes: bytes))
        }
        return result
    }

    // MARK: Batches

    /// True while a batch is open: a mutation was made since the last commit or rollback.
    public var hasUncommittedChanges: Bool { batchIsOpen }

    /// Makes every change since the last commit durable as one transaction, under `durability`.
    ///
    /// Does nothing when no batch is open.
    /// - Throws: `.diskFull`, `.io`, `.readOnly`, `.locked`, `.corrupt`, `.closed`. On failure the batch
    ///   has been rolled back: the store is at its last successful commit, nothing half-applied.
    public func commit() throws(StorageError) {
        let what = "committing the batch"
        let connection = try openConnection(doing: what)
        guard batchIsOpen else { return }
        let clock = ContinuousClock()
        let start = clock.now
        do throws(StorageError) {
            try connection.run(.commit, doing: what)
        } catch {
            counters.failedCommits += 1
            var message = error.message + "; the batch was rolled back"
            if let rollbackError = discardBatch(connection) {
                message += ", but the rollback failed (\(rollbackError.message)) and the store is now closed"
            }
            throw StorageError(error.code, message, path: error.path, sqliteResultCode: error.sqliteResultCode)
        }
        let elapsed = clock.now - start
        batchIsOpen = false
        counters.commits += 1
        counters.recordsAppended += pendingRecords
        counters.recordBytesAppended += pendingRecordBytes
        counters.checkpointsReplaced += pendingCheckpoints
        counters.lastCommitDuration = elapsed
        counters.longestCommitDuration = max(counters.longestCommitDuration, elapsed)
        counters.totalCommitDuration += elapsed
        resetPending()
    }

    /// Discards the open batch; does nothing when none is open or the store is closed.
    ///
    /// Sequences handed out in the discarded batch are not handed out again by this store.
    public func rollback() {
        guard let connection, batchIsOpen else { return }
        _ = discardBatch(connection)
    }

    /// Closes the store, discarding the open batch (it commits nothing), and releases the directory.
    ///
    /// Idempotent. Every later call throws `.closed`.
    public func close() {
        guard let connection else { return }
        if batchIsOpen {
            counters.rollbacks += 1
            batchIsOpen = false
            resetPending()
        }
        // sqlite3_close rolls back an open transaction; the lock is released only after the database is
        // closed, so no other store can open it while this connection still could write.
        connection.close()
        self.connection = nil
        _ = closeDescriptor(lockDescriptor)  // releases the flock; a failure here leaves nothing to undo
        lockDescriptor = -1
    }

    /// Counters since the store was opened.
    public var statistics: StorageStatistics { counters }

    // MARK: Internals

    /// The first column of `PRAGMA <name>` as text, for tests and diagnostics (e.g. `synchronous`).
    func pragma(_ name: String) throws(StorageError) -> String? {
        let what = "reading PRAGMA \(name)"
        let connection = try openConnection(doing: what)
        var value: String?
        try connection.run("PRAGMA \(name)", doing: what) { row throws(StorageError) in
            if value == nil { value = try row.text(0) }
        }
        return value
    }

    private func openConnection(doing what: @autoclosure () -> String) throws(StorageError) -> SQLiteConnection {
        guard let connection else {
            throw StorageError(.closed, "\(what()): \(closedReason)", path: databasePath)
        }
        return connection
    }

    /// Runs a mutation inside the open batch, opening one first; rolls the whole batch back if it fails.
    private func mutate(
        _ what: @autoclosure () -> String, _ body: (SQLiteConnection) throws(StorageError) -> Void
    ) throws(StorageError) {
        let connection = try openConnection(doing: what())
        if !batchIsOpen {
            try connection.run(.begin, doing: "\(what()) (beginning a batch)")
            batchIsOpen = true
        }
        do throws(StorageError) {
            try body(connection)
        } catch {
            var message = error.message + "; the open batch was rolled back"
            if let rollbackError = discardBatch(connection) {
                message += ", but the rollback failed (\(rollbackError.message)) and the store is now closed"
            }
            throw StorageError(error.code, message, path: error.path, sqliteResultCode: error.sqliteResultCode)
        }
    }

    /// Rolls the open batch back. When SQLite cannot roll back, closes the store (closing the connection
    /// discards the transaction) and returns the rollback's error.
    private func discardBatch(_ connection: SQLiteConnection) -> StorageError? {
        batchIsOpen = false
        resetPending()
        counters.rollbacks += 1
        // After SQLITE_FULL, SQLITE_IOERR and a few others SQLite has already rolled back by itself.
        guard connection.isInTransaction else { return nil }
        do throws(StorageError) {
            try connection.run("ROLLBACK", doing: "rolling back the batch")
            return nil
        } catch {
            closedReason = "the store was closed after a failed rollback: \(error.message)"
            close()
            return error
        }
    }

    private func resetPending() {
        pendingRecords = 0
        pendingRecordBytes = 0
        pendingCheckpoints = 0
    }

    private func check(blob count: Int, _ what: @autoclosure () -> String) throws(StorageError) {
        guard count <= MeshStore.maximumBlobByteCount else {
            throw StorageError(
                .invalidArgument, "\(what()): \(count) bytes exceed the \(MeshStore.maximumBlobByteCount)-byte limit",
                path: databasePath)
        }
    }

    private func check(key count: Int, _ what: @autoclosure () -> String) throws(StorageError) {
        guard count <= MeshStore.maximumKeyByteCount else {
            throw StorageError(
                .invalidArgument,
                "\(what()): the \(count)-byte key exceeds the \(MeshStore.maximumKeyByteCount)-byte limit",
                path: databasePath)
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        for byte in bytes.prefix(32) {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xf)])
        }
        return bytes.count > 32 ? text + "…" : text
    }

    // MARK: Opening

    /// The error for a failed system call on `path`.
    static func systemError(_ what: String, path: String, errno code: Int32) -> StorageError {
        let kind: StorageError.Code
        switch code {
        case EROFS, EACCES, EPERM: kind = .readOnly
        case ENOSPC, EDQUOT: kind = .diskFull
        case EIO: kind = .io
        default: kind = .cannotOpen
        }
        return StorageError(kind, "\(what): \(String(cString: strerror(code))) (errno \(code))", path: path)
    }

    /// `mkdir -p` with mode 0700 for the directories it creates; fsyncs the parent of each one created
    /// so the new directory entry itself survives a power loss.
    static func createDirectory(_ directory: String) throws(StorageError) {
        var prefix = directory.hasPrefix("/") ? "/" : ""
        for component in directory.split(separator: "/", omittingEmptySubsequences: true) {
            let parent = prefix.isEmpty ? "." : prefix
            prefix += prefix.isEmpty || prefix.hasSuffix("/") ? String(component) : "/" + component
            if mkdir(prefix, 0o700) == 0 {
                try syncDirectory(parent)
                continue
            }
            let code = errno
            guard code == EEXIST else {
                throw systemError("creating the directory", path: prefix, errno: code)
            }
        }
        var status = stat()
        guard stat(directory, &status) == 0 else {
            throw systemError("inspecting the directory", path: directory, errno: errno)
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw StorageError(.cannotOpen, "opening the store: the path is not a directory", path: directory)
        }
    }

    static func syncDirectory(_ path: String) throws(StorageError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw systemError("opening the directory to sync it", path: path, errno: errno)
        }
        defer { _ = closeDescriptor(descriptor) }  // read-only descriptor: close cannot lose data
        // Some file systems cannot fsync a directory (EINVAL); their entries are durable by other means.
        guard fsync(descriptor) == 0 || errno == EINVAL else {
            throw systemError("syncing the directory", path: path, errno: errno)
        }
    }

    /// Takes the exclusive, non-blocking flock on `<directory>/statemesh.lock`; returns its descriptor.
    static func lockDirectory(_ directory: String) throws(StorageError) -> Int32 {
        let lockPath = directory.hasSuffix("/") ? directory + "statemesh.lock" : directory + "/statemesh.lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw systemError("opening the lock file", path: lockPath, errno: errno)
        }
        var waitedMilliseconds = 0
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK && waitedMilliseconds < lockWaitMilliseconds {
                // A closed store's lock can outlive its `close()` briefly: a child process this process
                // is starting holds a copy of every descriptor from fork until exec closes it (O_CLOEXEC),
                // and with it the open file description the flock belongs to. Seen as a node restarted
                // in place while other threads spawned processes.
                usleep(10_000)
                waitedMilliseconds += 10
                continue
            }
            _ = closeDescriptor(descriptor)
            if code == EWOULDBLOCK {
                throw StorageError(
                    .locked, "opening the store: another MeshStore (in this or another process) owns the directory",
                    path: directory)
            }
            throw systemError("locking the directory", path: lockPath, errno: code)
        }
        return descriptor
    }

    /// How long `init` waits for a directory's lock before failing with `.locked` (see `lockDirectory`).
    static let lockWaitMilliseconds = 1_000

    /// Sets WAL mode and the synchronous level, then checks or creates the schema. Returns whether the
    /// schema was created (a fresh database).
    static func prepare(_ connection: SQLiteConnection, durability: Durability) throws(StorageError) -> Bool {
        try connection.setBusyTimeout(milliseconds: busyTimeoutMilliseconds)
        var mode = ""
        try connection.run("PRAGMA journal_mode = WAL", doing: "switching to WAL mode") { row throws(StorageError) in
            mode = try row.text(0)
        }
        guard mode.lowercased() == "wal" else {
            throw StorageError(
                .cannotOpen, "switching to WAL mode: SQLite kept journal mode '\(mode)'", path: connection.path)
        }
        let synchronous: String
        switch durability {
        case .always: synchronous = "FULL"
        case .batched: synchronous = "NORMAL"
        }
        try connection.run("PRAGMA synchronous = \(synchronous)", doing: "setting synchronous=\(synchronous)")
        // A huge batch leaves a huge log file behind; truncate it back after checkpoints.
        try connection.run("PRAGMA journal_size_limit = 16777216", doing: "limiting the log file") { _ in }

        try connection.run("BEGIN IMMEDIATE", doing: "checking the schema")
        do throws(StorageError) {
            let fresh = try checkOrCreateSchema(connection)
            try connection.run("COMMIT", doing: "committing the schema")
            return fresh
        } catch {
            if connection.isInTransaction {
                // The connection is closed right after this failure, which discards the transaction anyway.
                _ = try? connection.run("ROLLBACK", doing: "rolling back the schema check")
            }
            throw error
        }
    }

    private static func checkOrCreateSchema(_ connection: SQLiteConnection) throws(StorageError) -> Bool {
        var version: Int64 = 0
        var application: Int64 = 0
        var objects: Int64 = 0
        try connection.run("PRAGMA user_version", doing: "reading the schema version") { row in
            version = row.integer(0)
        }
        try connection.run("PRAGMA application_id", doing: "reading the application ID") { row in
            application = row.integer(0)
        }
        try connection.run("SELECT count(*) FROM sqlite_master", doing: "reading the schema") { row in
            objects = row.integer(0)
        }
        if version == 0 && application == 0 && objects == 0 {
            for statement in schema {
                try connection.run(statement, doing: "creating the schema")
            }
            try connection.run("PRAGMA application_id = \(applicationID)", doing: "setting the application ID")
            try connection.run("PRAGMA user_version = \(schemaVersion)", doing: "setting the schema version")
            return true
        }
        guard application == Int64(applicationID) else {
            throw StorageError(
                .schemaVersion,
                "checking the schema: not a StateMesh database (application_id \(application), user_version \(version))",
                path: connection.path)
        }
        guard version == Int64(schemaVersion) else {
            let relation = version > Int64(schemaVersion) ? "newer than" : "unknown to"
            throw StorageError(
                .schemaVersion,
                "checking the schema: version \(version) is \(relation) this build (which reads \(schemaVersion))",
                path: connection.path)
        }
        return false
    }

    /// Schema version 1. `AUTOINCREMENT` keeps the largest sequence ever inserted in `sqlite_sequence`,
    /// so sequences are not reused after a checkpoint deletes every record.
    private static let schema = [
        "CREATE TABLE metadata (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID",
        "CREATE TABLE records (sequence INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT NOT NULL, bytes BLOB NOT NULL)",
        """
        CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), through_sequence INTEGER NOT NULL, \
        bytes BLOB NOT NULL)
        """,
        "CREATE TABLE members (id BLOB PRIMARY KEY NOT NULL, bytes BLOB NOT NULL) WITHOUT ROWID",
    ]

    private static func loadLastSequence(_ connection: SQLiteConnection) throws(StorageError) -> Int64 {
        var last: Int64 = 0
        try connection.run(
            """
            SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'records'), 0), \
            coalesce((SELECT max(sequence) FROM records), 0), \
            coalesce((SELECT through_sequence FROM checkpoint WHERE id = 1), 0))
            """, doing: "reading the last sequence"
        ) { row in last = row.integer(0) }
        return last
    }
}

/// `close(2)`, which `MeshStore.close()` hides inside the class.
func closeDescriptor(_ descriptor: Int32) -> Int32 {
    #if canImport(Glibc)
        Glibc.close(descriptor)
    #elseif canImport(Musl)
        Musl.close(descriptor)
    #else
        Darwin.close(descriptor)
    #endif
}

/// One record of the log.
public struct StoredRecord: Sendable, Hashable {
    /// Its sequence, unique and increasing in append order.
    public let sequence: Int64
    /// The domain it was appended under.
    public let domain: String
    /// The caller's bytes.
    public let bytes: [UInt8]

    /// Creates a record (the store creates them; public for tests and fakes).
    public init(sequence: Int64, domain: String, bytes: [UInt8]) {
        self.sequence = sequence
        self.domain = domain
        self.bytes = bytes
    }
}
