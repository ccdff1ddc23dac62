import MeshCodec

/// A journaled record, and for own writes joined into a group the key each write changed, in write
/// order (`nil` for a record journaled on its own).
public struct JournalEntry: Sendable, Equatable {
    /// The record.
    public let record: DeltaRecord
    /// The key of each write of a group row, in write order (`record.writeCount` of them).
    public let writeKeys: [String]?

    /// Creates an entry.
    public init(record: DeltaRecord, writeKeys: [String]?) {
        self.record = record
        self.writeKeys = writeKeys
    }
}

/// How journal rows hold records. A row of the store's record log is either one record under its
/// domain (a remote delivery) or own writes under the domain's name prefixed with `/` (which a
/// node's configuration refuses in domain names). Own writes are a group row: a 0 byte, the
/// length-prefixed record of the writes joined, then for each write in order the position of its key
/// among the record's updates (varints). Journals written before groups hold a batch row instead: the
/// records' encodings, each prefixed with its length (never 0). A row of `n` writes takes `n` of the
/// store's sequences, so checkpoints retain the newest `changeHistoryRecords` writes, not rows.
public enum JournalRow {
    /// What precedes the domain name of a row of own writes.
    public static let batchPrefix = "/"
    /// The first byte of a group row.
    public static let groupMarker: UInt8 = 0

    /// The name a row of own writes of `domain` is stored under.
    public static func batchDomain(_ domain: String) -> String { batchPrefix + domain }

    /// A group row: `record` and the keys of its writes, in write order.
    public static func encodeGroup(_ record: DeltaRecord, writeKeys: [String]) -> [UInt8] {
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

    /// The domain and the entries of a row stored under `domain` with `bytes`, in the order they
    /// were written.
    ///
    /// - Throws: `CodecError` for bytes that are not a row (a damaged or foreign store).
    public static func entries(domain storedDomain: String, bytes: [UInt8], limits: CodecLimits) throws(CodecError) -> (
        domain: String, entries: [JournalEntry]
    ) {
        guard storedDomain.utf8.first == UInt8(ascii: "/") else {
            return (
                storedDomain,
                [JournalEntry(record: try DeltaRecord.decoded(bytes, limits: limits), writeKeys: nil)]
            )
        }
        let domain = String(storedDomain.utf8.dropFirst())!
        var reader = try ByteReader(bytes, limits: limits)
        if bytes.first == groupMarker {
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
