import MeshReplication

/// The node's own writes waiting to be journaled, joined into one delta-group (`DeltaGroup`): the
/// node writes the group's record to the store as one row (`JournalRow`) before its batch commits,
/// before a checkpoint, before the change history is read, and when the batch reaches its bound.
/// One SQLite row per group commit, and bytes per joined group rather than per write: a hundred
/// increments of one counter, or adds of one member, journal one update, not a hundred. The row
/// also names the key of each write (a varint each), so a consumer of the change history resumes
/// from any single write's position and gets exactly the writes after it.
///
/// ### Invariants
/// Everything appended is in the store's open batch before that batch commits: what the store
/// commits and what the node acknowledges are the same writes as when every write was its own row.
/// The batch covers consecutive writes of one origin in one domain.
struct JournalBatch {
    /// At most this many writes per row (bounds a row, and what one catch-up row decodes).
    static let maximumWrites = 256
    /// At most about this many bytes of writes per row (the sum of the writes' own records, which
    /// bounds the group's record).
    static let maximumBytes = 64 << 10

    private(set) var domain = ""
    private var origin = ReplicaID(0)
    private var group: DeltaGroup?
    /// The key of each write, in write order.
    private var writeKeys: [String] = []
    private var byteCount = 0

    var isEmpty: Bool { group == nil }
    var isFull: Bool { writeKeys.count >= Self.maximumWrites || byteCount >= Self.maximumBytes }

    /// Whether the write `delivery` carries may join: a batch holds consecutive writes of one origin
    /// in one domain.
    func accepts(_ delivery: Delivery) -> Bool {
        guard let group else { return true }
        return delivery.domain == domain && delivery.origin == origin
            && delivery.firstSequence == group.lastSequence + 1
    }

    /// Joins the write `delivery` carries (a local write's delivery) and returns the encoded size of
    /// its delta alone (key and CRDT delta).
    mutating func append(_ delivery: Delivery) -> Int {
        guard let write = delivery.localWrite else { preconditionFailure("a journal batch holds local writes") }
        precondition(accepts(delivery), "a journal batch holds consecutive writes of one origin in one domain")
        let deltaByteCount = write.update.encodedByteCount
        byteCount +=
            DeltaRecord.singleWriteHeaderByteCount(origin: delivery.origin, sequence: delivery.firstSequence)
            + deltaByteCount
        if group == nil {
            domain = delivery.domain
            origin = delivery.origin
            group = DeltaGroup(
                write.update, sequence: delivery.firstSequence, requestsAcknowledgement: write.requestsAcknowledgement)
            writeKeys.reserveCapacity(Self.maximumWrites)
        } else {
            group!.join(
                write.update, sequence: delivery.firstSequence,
                timestamp: DeltaRecord.impliedTimestamp(of: write.update),
                requestsAcknowledgement: write.requestsAcknowledgement)
        }
        writeKeys.append(write.update.key)
        return deltaByteCount
    }

    /// The batch as a row (domain, bytes, write count); empties the batch.
    mutating func take() -> (domain: String, bytes: [UInt8], count: Int) {
        guard let group else { return (JournalRow.batchDomain(domain), [], 0) }
        let row = (
            JournalRow.batchDomain(domain), JournalRow.encodeGroup(group.record(origin: origin), writeKeys: writeKeys),
            writeKeys.count
        )
        self = JournalBatch()
        return row
    }
}
