import MeshCRDT

/// The binary wire and disk encoding of StateMesh values: deterministic,
/// versioned, bounds-checked.
///
/// ```swift
/// let bytes = MeshCodec.encode(set)                                  // [UInt8]
/// let back = try MeshCodec.decode(ORSet<String>.self, from: bytes)   // throws(CodecError)
/// MeshCodec.encode(delta, to: &writer)                               // append into a message
/// let next = try MeshCodec.decode(GCounter.self, from: &reader)      // read one record of a message
/// ```
///
/// A delta is a state of the same type, so deltas and delta-groups are encoded
/// exactly like states.
///
/// ## Guarantees
/// - **Round trip**: `decode(T.self, from: encode(x)) == x` for every valid `x`.
/// - **Deterministic**: equal values encode to equal bytes, whatever the order of
///   insertion or of `Dictionary` iteration (see the note on strings in
///   `WireCodable`).
/// - **Canonical**: each value has exactly one encoding; the decoder refuses any
///   other (`.notCanonical`), so `encode(decode(b)) == b` whenever `decode(b)`
///   succeeds.
/// - **Safe on untrusted input**: decoding never traps, checks every count against
///   `CodecLimits` and against the bytes left before allocating, and throws a
///   `CodecError` naming what was wrong and its byte offset.
///
/// ## Format, version 1
///
/// Integers are unsigned LEB128 varints (minimal: at most 10 bytes, no trailing
/// zero group, no overflow) unless marked `u8` or `u64le` (8 bytes,
/// little-endian). `x*` repeats `x` as many times as the count before it says.
///
/// ```
/// record        = version:u8 kind:u8 parameterTag:u8* replicaTable body
/// version       = 0x01
/// kind          = 0x01 VersionVector | 0x02 CausalContext | 0x03 GCounter | 0x04 PNCounter
///               | 0x05 LWWRegister<V> | 0x06 ORSet<E> | 0x07 LWWMap<K, V> | 0x08 MVRegister<V>
///               | 0x09 EWFlag
/// parameterTag  = WireCodable.wireTypeTag of each type parameter, in order (E; K then V; V)
/// replicaTable  = count replicaID:u64le*      ; strictly increasing; every entry is named by the body
///
/// replica       = index                       ; an index into the replica table
/// counter       = varint >= 1                 ; events are numbered from 1
/// dot           = replica counter             ; absolute: a dot on its own
/// versionVector = count (replica counter)*    ; replicas strictly increasing
/// causalContext = versionVector dotCloud
/// dotCloud      = count sequence(dot)         ; each counter >= vector[replica] + 2 (else it is compacted)
/// dotList       = count sequence(dot)
/// elementDots   = head:varint (counter | sequence(dot))
///               ; head even: one dot, replica index head >> 1, then its counter
///               ; head odd: (head >> 1) + 2 dots follow as a sequence
/// timestamp     = physicalMilliseconds:varint logical:varint   ; logical <= UInt32.max
/// write<V>      = value:V timestamp replica
///
/// sequence(dot) : dots in strictly increasing (replica, counter) order, each coded
///                 against the one before it as `step:varint gap:varint`:
///                 step = index - previous index (the first dot: its index);
///                 gap  = counter - previous counter when step is 0 (>= 1; 0 would be
///                        a repeat), else the counter itself (>= 1).
///                 Runs of one replica's dots cost about two bytes each, and a
///                 sequence cannot go backwards.
///
/// body VersionVector = versionVector
/// body CausalContext = causalContext
/// body GCounter      = versionVector              ; per-replica counts
/// body PNCounter     = versionVector decrementHead (replica counter)* [versionVector versionVector]
///                      ; increments; decrementHead = 2 × (decrement entries) + 1 when reset
///                      ; baselines follow (reset increments, then reset decrements; not both
///                      ; empty), + 0 otherwise: a counter never reset costs no extra byte
/// body LWWRegister   = 0x00 | 0x01 write<V> | 0x02 timestamp replica
///                      ; never written | a write | a deletion (a write without a value)
/// body ORSet         = causalContext count (element:E elementDots)*
/// body LWWMap        = causalContext count (key:K count (dot write<V>)*)*
///                      ; each key >= 1 write; one key's dots form a sequence
/// body MVRegister    = causalContext count (dot value:V)*    ; the dots form a sequence
/// body EWFlag        = causalContext dotList
/// ```
///
/// Set elements and map keys are strictly increasing by their encoded bytes
/// (lexicographic, shorter first on a common prefix). Every dot held by an
/// `ORSet`, `LWWMap`, `MVRegister` or `EWFlag` must be in its causal context
/// (`.invalidValue` otherwise). Nested values have no header; only a record
/// carries the version, kind and replica table. Bytes after the record are
/// `.trailingBytes` for `decode(_:from:limits:)`.
///
/// Size: an `ORSet<UInt64>` element with one dot costs its varint, one head byte
/// (replica index ≤ 63) and the counter's varint — about 6.5 bytes per element
/// for 100,000 elements written by two replicas.
public enum MeshCodec {
    /// The format version written by this encoder and the only one it reads.
    public static let version: UInt8 = 1

    /// Encodes `value` as one record.
    ///
    /// - Complexity: O(n log n) for n elements or keys (they are sorted by their
    ///   encoding); O(n) otherwise.
    @inlinable
    public static func encode<Value: RecordCodable>(_ value: Value) -> [UInt8] {
        var writer = ByteWriter()
        encode(value, to: &writer)
        return writer.bytes
    }

    /// Appends one record encoding `value` to `writer` (for messages holding several).
    @inlinable
    public static func encode<Value: RecordCodable>(_ value: Value, to writer: inout ByteWriter) {
        var collector = ReplicaCollector()
        value.collectReplicas(into: &collector)
        let replicas = collector.sortedReplicas
        let kind = Value.recordKind
        writer.writeByte(version)
        writer.writeByte(kind.tag)
        if kind.parameterCount >= 1 { writer.writeByte(kind.firstParameter) }
        if kind.parameterCount >= 2 { writer.writeByte(kind.secondParameter) }
        writer.writeCount(replicas.count)
        for replica in replicas { writer.writeUInt64(replica.rawValue) }
        // Hand the buffer over without a copy: `writer` lets go of it first.
        var encoder = RecordEncoder(writer: writer, replicas: replicas)
        writer = ByteWriter()
        value.encodeBody(to: &encoder)
        writer = encoder.writer
    }

    /// Decodes `bytes`, which must hold exactly one record of type `Value`.
    ///
    /// - Throws: `CodecError`: `.unsupportedVersion`, `.wrongKind`, `.truncated`,
    ///   `.limitExceeded`, `.malformedVarint`, `.notCanonical`, `.invalidValue`,
    ///   `.invalidUTF8` or `.trailingBytes`, with the offset of the offending byte.
    @inlinable
    public static func decode<Value: RecordCodable>(
        _ type: Value.Type, from bytes: [UInt8], limits: CodecLimits = .default
    ) throws(CodecError) -> Value {
        var reader = try ByteReader(bytes, limits: limits)
        let value = try decode(type, from: &reader)
        try reader.expectEnd()
        return value
    }

    /// Reads one record of type `Value` from `reader` and leaves the reader after it.
    ///
    /// - Throws: as `decode(_:from:limits:)`, except that bytes may follow.
    @inlinable
    public static func decode<Value: RecordCodable>(
        _ type: Value.Type, from reader: inout ByteReader
    ) throws(CodecError) -> Value {
        let versionOffset = reader.offset
        let found = try reader.readByte("version")
        guard found == version else {
            throw CodecError(
                .unsupportedVersion, at: versionOffset,
                "record version \(found) is not supported (this decoder reads \(version))")
        }
        let kind = Value.recordKind
        let kindOffset = reader.offset
        let tag = try reader.readByte("kind")
        guard tag == kind.tag else {
            throw CodecError(
                .wrongKind, at: kindOffset,
                "record kind 0x\(String(tag, radix: 16)) is not \(kind.name) (0x\(String(kind.tag, radix: 16)))")
        }
        if kind.parameterCount >= 1 {
            try expectParameter(kind.firstParameter, kind: kind, from: &reader)
        }
        if kind.parameterCount >= 2 {
            try expectParameter(kind.secondParameter, kind: kind, from: &reader)
        }
        let tableOffset = reader.offset
        let count = try reader.readCount(
            limit: reader.limits.maximumReplicas, minimumItemBytes: 8, "replica table size")
        var replicas: [ReplicaID] = []
        replicas.reserveCapacity(count)
        for _ in 0..<count {
            let entryOffset = reader.offset
            let replica = ReplicaID(try reader.readUInt64("replica table entry"))
            if let previous = replicas.last, !(previous < replica) {
                throw CodecError(
                    .notCanonical, at: entryOffset,
                    "replica table entry \(replica) does not follow \(previous) in increasing order")
            }
            replicas.append(replica)
        }
        var decoder = RecordDecoder(reader: reader, replicas: replicas, tableOffset: tableOffset)
        let value = try Value(decodingBody: &decoder)
        try decoder.expectEveryReplicaUsed()
        reader = decoder.reader
        return value
    }

    @usableFromInline
    static func expectParameter(_ expected: UInt8, kind: RecordKind, from reader: inout ByteReader) throws(CodecError) {
        let offset = reader.offset
        let found = try reader.readByte("type parameter tag")
        guard found == expected else {
            throw CodecError(
                .wrongKind, at: offset,
                "type parameter tag 0x\(String(found, radix: 16)) does not match \(kind)")
        }
    }
}
