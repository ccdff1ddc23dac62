import MeshCodec
import MeshReplication
import MeshStorage

/// The node's own writes waiting to be journaled: the records of one domain, in write order, each
/// length-prefixed. The node writes them to the store as one row (`JournalRow`) before its batch
/// commits, before a checkpoint, before the change history is read, and when the batch reaches its
/// bound: one SQLite row per group commit instead of one per write, with every write still its own
/// record (recovery and subscriber catch-up see the same records as before, and a consumer resumes
/// from any write's position).
///
/// ### Invariants
/// Everything appended is in the store's open batch before that batch commits: what the store
/// commits and what the node acknowledges are the same writes as when every write was its own row.
struct JournalBatch {
    /// At most this many records per row (bounds a row, and what one catch-up row decodes).
    static let maximumRecords = 256
    /// At most about this many record bytes per row.
    static let maximumBytes = 64 << 10

    private(set) var domain = ""
    private(set) var count = 0
    private var writer = ByteWriter()

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count >= Self.maximumRecords || writer.count >= Self.maximumBytes }

    /// Whether a record of `domain` may join (a row holds one domain).
    func accepts(_ domain: String) -> Bool { count == 0 || domain == self.domain }

    /// Appends the record of `delivery` (encoded in place, no record made for it) and returns its size.
    mutating func append(_ delivery: Delivery) -> Int {
        precondition(accepts(delivery.domain), "a journal batch holds one domain")
        if count == 0 { self.domain = delivery.domain }
        count += 1
        return writer.writeLengthPrefixed { delivery.encodeRecord(to: &$0) }
    }

    /// The batch as a row (domain, bytes, record count); empties the batch.
    mutating func take() -> (domain: String, bytes: [UInt8], count: Int) {
        let row = (JournalRow.batchDomain(domain), writer.bytes, count)
        self = JournalBatch()
        return row
    }
}

/// How journal rows hold records. A row of the store's record log is either one record under its
/// domain (a remote delivery) or a batch of own writes under the domain's name prefixed with `/`
/// (which no domain name contains, see `MeshNodeConfiguration`): the records' encodings, each
/// prefixed with its length as a varint. A batch row of `n` records takes `n` of the store's
/// sequences, so checkpoints retain the newest `changeHistoryRecords` records, not rows.
enum JournalRow {
    static let batchPrefix = "/"

    static func batchDomain(_ domain: String) -> String { batchPrefix + domain }

    /// The domain and the records of `stored`, in the order they were written.
    static func records(of stored: StoredRecord, limits: CodecLimits) throws(CodecError) -> (
        domain: String, records: [DeltaRecord]
    ) {
        guard stored.domain.utf8.first == UInt8(ascii: "/") else {
            return (stored.domain, [try DeltaRecord.decoded(stored.bytes, limits: limits)])
        }
        var reader = try ByteReader(stored.bytes, limits: limits)
        var records: [DeltaRecord] = []
        while !reader.isAtEnd {
            // Not `readLengthPrefixed`: a record may be longer than one element (key and value together).
            let length = try reader.readVarint("length of a journaled record")
            let bytes = try reader.readBytes(count: Int(clamping: length), "journaled record")
            records.append(try DeltaRecord.decoded(Array(bytes), limits: limits))
        }
        return (String(stored.domain.utf8.dropFirst())!, records)
    }
}
