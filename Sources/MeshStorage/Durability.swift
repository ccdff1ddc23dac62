/// When a committed batch is safe from which failure.
///
/// Both modes run SQLite in WAL mode, and in both a batch is one transaction: after any crash it is
/// either entirely there or entirely absent, never half-applied.
public enum Durability: Sendable, Hashable {
    /// `commit()` returns only after the batch is on stable storage: SQLite `synchronous=FULL` in WAL
    /// mode fsyncs the write-ahead log at every commit. A committed batch survives a process crash,
    /// a kernel panic and a power loss (as far as the disk honours fsync).
    ///
    /// Costs one fsync per commit (see the README's figures).
    case always

    /// Group commit: SQLite `synchronous=NORMAL`; the caller commits every `intervalMilliseconds`
    /// (the store does not run a timer; `MeshStore` does no I/O on its own).
    ///
    /// ### Loss window
    /// - Process crash (SIGKILL, trap): the open, uncommitted batch is lost, i.e. at most the
    ///   writes of one interval. A committed batch is in the operating system's page cache and
    ///   survives.
    /// - Kernel panic or power loss: additionally, batches committed since the last WAL checkpoint
    ///   may be lost (in WAL mode with `synchronous=NORMAL`, SQLite fsyncs the log only when it
    ///   checkpoints, automatically every 1,000 pages, about 4 MiB of log). What is lost is always a
    ///   suffix of whole batches: the database reopens consistent, at an earlier commit.
    case batched(intervalMilliseconds: Int)
}
