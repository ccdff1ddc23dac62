import MeshCodec
import MeshReplication
import MeshStorage

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
        let deltaByteCount = SnapshotChunk.encodedByteCount(of: write.update)
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

/// A journaled record, and for own writes joined into a group the key each write changed, in write
/// order (`nil` for a record journaled on its own).
struct JournalEntry {
    let record: DeltaRecord
    let writeKeys: [String]?
}

/// How journal rows hold records. A row of the store's record log is either one record under its
/// domain (a remote delivery) or own writes under the domain's name prefixed with `/` (which no
/// domain name contains, see `MeshNodeConfiguration`). Own writes are a group row: a 0 byte, the
/// length-prefixed record of the writes joined, then for each write in order the position of its key
/// among the record's updates (varints). Journals written before groups hold a batch row instead: the
/// records' encodings, each prefixed with its length (never 0). A row of `n` writes takes `n` of the
/// store's sequences, so checkpoints retain the newest `changeHistoryRecords` writes, not rows.
enum JournalRow {
    static let batchPrefix = "/"
    /// The first byte of a group row.
    static let groupMarker: UInt8 = 0

    static func batchDomain(_ domain: String) -> String { batchPrefix + domain }

    /// A group row: `record` and the keys of its writes, in write order.
    static func encodeGroup(_ record: DeltaRecord, writeKeys: [String]) -> [UInt8] {
        precondition(UInt64(writeKeys.count) == record.writeCount, "a key per write of the group")
        var writer = ByteWriter()
        writer.writeByte(groupMarker)
        writer.writeLengthPrefixed(record.encoded())
        var positions: [String: Int] = [:]
        positions.reserveCapacity(record.updates.count)
        for (position, update) in record.updates.enumerated() { positions[update.key] = position }
        for key in writeKeys {
            guard let position = positions[key] else { preconditionFailure("a write's key is in its group") }
            writer.writeVarint(UInt64(position))
        }
        return writer.bytes
    }

    /// The domain and the entries of `stored`, in the order they were written.
    static func entries(of stored: StoredRecord, limits: CodecLimits) throws(CodecError) -> (
        domain: String, entries: [JournalEntry]
    ) {
        guard stored.domain.utf8.first == UInt8(ascii: "/") else {
            return (
                stored.domain,
                [JournalEntry(record: try DeltaRecord.decoded(stored.bytes, limits: limits), writeKeys: nil)]
            )
        }
        let domain = String(stored.domain.utf8.dropFirst())!
        var reader = try ByteReader(stored.bytes, limits: limits)
        if stored.bytes.first == groupMarker {
            _ = try reader.readByte("group row marker")
            let length = try reader.readVarint("length of a journaled group")
            let record = try DeltaRecord.decoded(
                Array(try reader.readBytes(count: Int(clamping: length), "journaled group")), limits: limits)
            var writeKeys: [String] = []
            for _ in 0..<record.writeCount {
                let offset = reader.offset
                let position = try reader.readVarint("position of a write's key")
                guard position < UInt64(record.updates.count) else {
                    throw CodecError(
                        .invalidValue, at: offset, "write key \(position) of a group of \(record.updates.count) keys")
                }
                writeKeys.append(record.updates[Int(position)].key)
            }
            try reader.expectEnd()
            return (domain, [JournalEntry(record: record, writeKeys: writeKeys)])
        }
        var entries: [JournalEntry] = []
        while !reader.isAtEnd {
            // Not `readLengthPrefixed`: a record may be longer than one element (key and value together).
            let length = try reader.readVarint("length of a journaled record")
            let bytes = try reader.readBytes(count: Int(clamping: length), "journaled record")
            entries.append(JournalEntry(record: try DeltaRecord.decoded(Array(bytes), limits: limits), writeKeys: nil))
        }
        return (domain, entries)
    }
}
