/// Counters of one `MeshStore` since it was opened, for metrics and status pages.
public struct StorageStatistics: Sendable, Hashable {
    /// Batches committed (a `commit()` with nothing to commit does not count).
    public var commits: Int = 0
    /// `commit()` calls that failed and rolled their batch back.
    public var failedCommits: Int = 0
    /// Batches discarded: by `rollback()`, by a failed mutation, or by `close()` with a batch open.
    public var rollbacks: Int = 0
    /// Records appended in committed batches.
    public var recordsAppended: Int = 0
    /// Bytes of record payload appended in committed batches.
    public var recordBytesAppended: Int = 0
    /// Checkpoints stored by committed batches.
    public var checkpointsReplaced: Int = 0
    /// The highest sequence handed out so far (0 before the first append ever).
    public var lastSequence: Int64 = 0
    /// How long the last successful `commit()` took (the fsync in `.always` mode).
    public var lastCommitDuration: Duration = .zero
    /// The longest successful `commit()`.
    public var longestCommitDuration: Duration = .zero
    /// The sum over successful `commit()` calls; divide by `commits` for the mean.
    public var totalCommitDuration: Duration = .zero

    /// All zero.
    public init() {}
}
