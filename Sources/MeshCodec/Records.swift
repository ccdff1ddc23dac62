import MeshCRDT

// `RecordCodable` conformances of the causal metadata and of every CRDT.

extension VersionVector: RecordCodable {
    /// Kind `0x01`.
    public static var recordKind: RecordKind { RecordKind(tag: 0x01, name: "VersionVector") }

    /// Every replica with an entry.
    public func collectReplicas(into collector: inout ReplicaCollector) {
        collector.insert(self)
    }

    /// `versionVector`.
    public func encodeBody(to encoder: inout RecordEncoder) {
        encoder.writeVersionVector(self)
    }

    /// Reads `versionVector`.
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        self = try decoder.readVersionVector()
    }
}

extension CausalContext: RecordCodable {
    /// Kind `0x02`.
    public static var recordKind: RecordKind { RecordKind(tag: 0x02, name: "CausalContext") }

    /// Every replica of the vector and the cloud.
    public func collectReplicas(into collector: inout ReplicaCollector) {
        collector.insert(self)
    }

    /// `causalContext`.
    public func encodeBody(to encoder: inout RecordEncoder) {
        encoder.writeCausalContext(self)
    }

    /// Reads `causalContext`.
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        self = try decoder.readCausalContext()
    }
}

extension GCounter: RecordCodable {
    /// Kind `0x03`.
    public static var recordKind: RecordKind { RecordKind(tag: 0x03, name: "GCounter") }

    /// Every replica with a count.
    public func collectReplicas(into collector: inout ReplicaCollector) {
        for entry in counts { collector.insert(entry.replica) }
    }

    /// The counts as a `versionVector`.
    public func encodeBody(to encoder: inout RecordEncoder) {
        encoder.writeEntries(counts)
    }

    /// Reads the counts.
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        let entries = try decoder.readEntries("GCounter counts")
        self.init(counts: entries.lazy.map { ($0.replica, $0.counter) })
    }
}

extension PNCounter: RecordCodable {
    /// Kind `0x04`.
    public static var recordKind: RecordKind { RecordKind(tag: 0x04, name: "PNCounter") }

    /// Every replica of the counts and of the reset baselines.
    public func collectReplicas(into collector: inout ReplicaCollector) {
        increments.collectReplicas(into: &collector)
        decrements.collectReplicas(into: &collector)
        if hasResets {
            resetIncrements.collectReplicas(into: &collector)
            resetDecrements.collectReplicas(into: &collector)
        }
    }

    /// Increments; decrements, their count doubled with bit 0 set when reset
    /// baselines follow; then, if so, the reset increments and reset decrements.
    ///
    /// Folding the flag into the count keeps a counter that was never reset as
    /// small as before resets existed (below 64 decrementing replicas).
    public func encodeBody(to encoder: inout RecordEncoder) {
        increments.encodeBody(to: &encoder)
        let down = decrements.counts
        encoder.writer.writeVarint(UInt64(down.count) << 1 | (hasResets ? 1 : 0))
        for entry in down {
            encoder.writeReplica(entry.replica)
            encoder.writer.writeVarint(entry.counter)
        }
        if hasResets {
            resetIncrements.encodeBody(to: &encoder)
            resetDecrements.encodeBody(to: &encoder)
        }
    }

    /// Reads increments, the decrements with the baselines flag, then the baselines if flagged.
    ///
    /// - Throws: `.notCanonical` when the flag announces baselines that are both
    ///   empty (a counter without baselines clears the flag).
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        let increments = try GCounter(decodingBody: &decoder)
        let headOffset = decoder.offset
        let head = try decoder.reader.readVarint("decrement count of a PNCounter")
        let count = try decoder.reader.checkCount(
            head >> 1, at: headOffset, limit: decoder.limits.maximumReplicas, minimumItemBytes: 2,
            "decrement count of a PNCounter")
        let down = try decoder.readEntries(count: count, "PNCounter decrements")
        let decrements = GCounter(counts: down.lazy.map { ($0.replica, $0.counter) })
        guard head & 1 == 1 else {
            self.init(increments: increments, decrements: decrements)
            return
        }
        let baselinesOffset = decoder.offset
        let resetIncrements = try GCounter(decodingBody: &decoder)
        let resetDecrements = try GCounter(decodingBody: &decoder)
        if resetIncrements.isBottom && resetDecrements.isBottom {
            throw CodecError(.notCanonical, at: baselinesOffset, "PNCounter reset baselines are flagged but empty")
        }
        self.init(
            increments: increments, decrements: decrements, resetIncrements: resetIncrements,
            resetDecrements: resetDecrements)
    }
}

extension LWWRegister: RecordCodable where Value: WireCodable {
    /// Kind `0x05`, parameter: the value's tag.
    @inlinable
    public static var recordKind: RecordKind {
        RecordKind(tag: 0x05, name: "LWWRegister", parameter: Value.wireTypeTag)
    }

    /// The writer of the current write or deletion.
    @inlinable
    public func collectReplicas(into collector: inout ReplicaCollector) {
        if let write = lastWrite { collector.insert(write.replica) }
    }

    /// `0x00` when never written, `0x01 write` for a write, `0x02 timestamp replica`
    /// for a deletion.
    @inlinable
    public func encodeBody(to encoder: inout RecordEncoder) {
        guard let stored = lastWrite else {
            encoder.writer.writeByte(0)
            return
        }
        if let write {
            encoder.writer.writeByte(1)
            encoder.writeWrite(write)
        } else {
            encoder.writer.writeByte(2)
            encoder.writeTimestamp(stored.timestamp)
            encoder.writeReplica(stored.replica)
        }
    }

    /// Reads the presence byte and the write or deletion.
    @inlinable
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        let flagOffset = decoder.offset
        switch try decoder.reader.readByte("LWWRegister presence") {
        case 0:
            self.init()
        case 1:
            self.init(try decoder.readWrite(Value.self))
        case 2:
            let timestamp = try decoder.readTimestamp()
            let replica = try decoder.readReplica("replica of an LWWRegister deletion")
            self.init(lastWrite: LWWWrite(value: nil, timestamp: timestamp, replica: replica))
        case let other:
            throw CodecError(.invalidValue, at: flagOffset, "LWWRegister presence byte is \(other), not 0, 1 or 2")
        }
    }
}

/// Where one entry of a keyed collection was written in a scratch buffer, for
/// sorting entries by the bytes of their keys without a per-entry allocation.
@usableFromInline
struct EntryRange {
    /// The key's first (up to) 8 bytes, big-endian, zero-padded: comparing these
    /// first agrees with lexicographic order and settles most comparisons.
    @usableFromInline var prefix: UInt64
    @usableFromInline var keyStart: Int
    @usableFromInline var keyEnd: Int
    @usableFromInline var entryEnd: Int

    @inlinable
    init(prefix: UInt64, keyStart: Int, keyEnd: Int, entryEnd: Int) {
        self.prefix = prefix
        self.keyStart = keyStart
        self.keyEnd = keyEnd
        self.entryEnd = entryEnd
    }
}

extension RecordEncoder {
    /// Writes every entry of a keyed collection in increasing order of the key's
    /// encoding: `count (key payload)*`.
    ///
    /// Each entry is written once into one scratch buffer (key, then payload),
    /// then the entries are sorted by their key bytes and copied out: no
    /// allocation per entry.
    @inlinable
    mutating func writeSortedEntries<Entries: Collection>(
        _ entries: Entries,
        writeKey: (inout ByteWriter, Entries.Element) -> Void,
        writePayload: (inout RecordEncoder, Entries.Element) -> Void
    ) {
        writer.writeCount(entries.count)
        if entries.isEmpty { return }
        var output = ByteWriter()
        swap(&output, &writer)
        var ranges: [EntryRange] = []
        ranges.reserveCapacity(entries.count)
        var longestKey = 0
        for entry in entries {
            let keyStart = writer.count
            writeKey(&writer, entry)
            let keyEnd = writer.count
            longestKey = max(longestKey, keyEnd - keyStart)
            writePayload(&self, entry)
            ranges.append(EntryRange(prefix: 0, keyStart: keyStart, keyEnd: keyEnd, entryEnd: writer.count))
        }
        var scratch = ByteWriter()
        swap(&scratch, &writer)
        swap(&writer, &output)
        scratch.storage.withUnsafeBufferPointer { buffer in
            writer.reserveCapacity(additional: buffer.count)
            if longestKey <= 8 && ranges.count <= Int(UInt32.max) {
                // The common case (integers, short strings): the zero-padded prefix
                // and the length decide the order, so sort them packed into one
                // 128-bit integer with the entry's index: no closure, no byte loop.
                var keys: [UInt128] = []
                keys.reserveCapacity(ranges.count)
                for index in ranges.indices {
                    let range = ranges[index]
                    let prefix = sortPrefix(buffer, range.keyStart..<range.keyEnd)
                    keys.append(UInt128(prefix) << 64 | UInt128(range.keyEnd - range.keyStart) << 32 | UInt128(index))
                }
                sortByKeyAndLength(&keys)
                for key in keys {
                    let range = ranges[Int(truncatingIfNeeded: UInt32(truncatingIfNeeded: key))]
                    writer.writeBytes(UnsafeBufferPointer(rebasing: buffer[range.keyStart..<range.entryEnd]))
                }
                return
            }
            for index in ranges.indices {
                ranges[index].prefix = sortPrefix(buffer, ranges[index].keyStart..<ranges[index].keyEnd)
            }
            ranges.sort { left, right in
                left.prefix != right.prefix
                    ? left.prefix < right.prefix
                    : lexicographicallyPrecedes(buffer, left.keyStart..<left.keyEnd, right.keyStart..<right.keyEnd)
            }
            for range in ranges {
                writer.writeBytes(UnsafeBufferPointer(rebasing: buffer[range.keyStart..<range.entryEnd]))
            }
        }
    }
}

extension RecordDecoder {
    /// Reads the entry count of a keyed collection, checked against
    /// `maximumElements` and against the bytes that many entries need at least.
    @inlinable
    mutating func readEntryCount<Key: WireCodable>(
        _: Key.Type, minimumPayloadBytes: Int, _ what: String
    ) throws(CodecError) -> Int {
        try reader.readCount(
            limit: limits.maximumElements, minimumItemBytes: Key.minimumEncodedByteCount + minimumPayloadBytes,
            "\(what) count")
    }

    /// Reads `count` entries `(key payload)`, keys strictly increasing by their bytes.
    ///
    /// Every key is checked to follow the previous one (`.notCanonical`);
    /// `readPayload` gets the key and its offset, reads what follows it and must
    /// refuse a key `==` to an earlier one (two encodings of one value, such as
    /// two spellings of a string) with `.notCanonical`.
    @inlinable
    mutating func readSortedEntries<Key: WireCodable>(
        _: Key.Type, count: Int, _ what: String,
        readPayload: (inout RecordDecoder, Key, Int) throws(CodecError) -> Void
    ) throws(CodecError) {
        var previous: Range<Int>? = nil
        for _ in 0..<count {
            let keyStart = offset
            let key = try Key(from: &reader)
            let keyRange = keyStart..<offset
            if let previous {
                let ordered = reader.bytes.withUnsafeBufferPointer { buffer in
                    lexicographicallyPrecedes(buffer, previous, keyRange)
                }
                guard ordered else {
                    throw CodecError(
                        .notCanonical, at: keyStart,
                        "\(what)s are not in strictly increasing order of their encoded bytes")
                }
            }
            previous = keyRange
            try readPayload(&self, key, keyStart)
        }
    }
}

/// Sorts packed entries `prefix << 64 | length << 32 | index` by prefix, then
/// length (indexes are unique and only ride along), with a least-significant-
/// digit radix sort over the length byte and the 8 prefix bytes, skipping every
/// digit all entries share (the zero padding of short keys, for one).
///
/// - Complexity: O(n) per distinct digit, at most 9 passes; a comparison sort
///   costs about four times as much for 100,000 entries.
@inlinable
func sortByKeyAndLength(_ keys: inout [UInt128]) {
    let count = keys.count
    if count < 64 {
        keys.sort()
        return
    }
    var other = [UInt128](repeating: 0, count: count)
    var counts = [Int](repeating: 0, count: 256)
    // Digit shifts, least significant first: the length byte, then the prefix bytes.
    let shifts: [UInt128] = [32, 64, 72, 80, 88, 96, 104, 112, 120]
    for shift in shifts {
        var moved = false
        keys.withUnsafeBufferPointer { source in
            other.withUnsafeMutableBufferPointer { target in
                counts.withUnsafeMutableBufferPointer { counts in
                    for index in 0..<256 { counts[index] = 0 }
                    for key in source { counts[Int(truncatingIfNeeded: key >> shift) & 0xff] += 1 }
                    if counts[Int(truncatingIfNeeded: source[0] >> shift) & 0xff] == count { return }
                    var offset = 0
                    for index in 0..<256 {
                        let digitCount = counts[index]
                        counts[index] = offset
                        offset += digitCount
                    }
                    for key in source {
                        let digit = Int(truncatingIfNeeded: key >> shift) & 0xff
                        target[counts[digit]] = key
                        counts[digit] += 1
                    }
                    moved = true
                }
            }
        }
        if moved { swap(&keys, &other) }
    }
}

/// Whether the bytes `left` of `buffer` precede the bytes `right` in lexicographic
/// order (a proper prefix precedes).
@inlinable
func lexicographicallyPrecedes(
    _ buffer: UnsafeBufferPointer<UInt8>, _ left: Range<Int>, _ right: Range<Int>
) -> Bool {
    let common = min(left.count, right.count)
    var index = 0
    while index < common {
        let a = buffer[left.lowerBound &+ index]
        let b = buffer[right.lowerBound &+ index]
        if a != b { return a < b }
        index &+= 1
    }
    return left.count < right.count
}

/// The first (up to) 8 bytes of `range`, big-endian, zero-padded.
@inlinable
func sortPrefix(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> UInt64 {
    var prefix: UInt64 = 0
    let count = min(range.count, 8)
    var index = 0
    while index < count {
        prefix |= UInt64(buffer[range.lowerBound &+ index]) << (56 - 8 * UInt64(index))
        index &+= 1
    }
    return prefix
}

extension ORSet: RecordCodable where Element: WireCodable {
    /// Kind `0x06`, parameter: the element's tag.
    @inlinable
    public static var recordKind: RecordKind { RecordKind(tag: 0x06, name: "ORSet", parameter: Element.wireTypeTag) }

    /// Every replica of the context.
    ///
    /// That covers the elements' dots too: each is in the context and has a
    /// counter of at least 1 (every issued dot has), so its replica has a vector
    /// entry or a cloud dot. Not visiting the dots keeps encoding one pass over
    /// the elements.
    ///
    /// - Precondition: no element holds a dot with counter 0 (`init(entries:context:)`
    ///   and the decoder refuse them; mutators never issue one).
    @inlinable
    public func collectReplicas(into collector: inout ReplicaCollector) {
        collector.insert(context)
    }

    /// `causalContext count (element elementDots)*`, elements in order of their bytes.
    @inlinable
    public func encodeBody(to encoder: inout RecordEncoder) {
        encoder.writeCausalContext(context)
        encoder.writeSortedEntries(
            dottedElements,
            writeKey: { writer, entry in entry.key.encode(to: &writer) },
            writePayload: { encoder, entry in encoder.writeElementDots(entry.value) })
    }

    /// Reads the context, then the elements with their dots.
    ///
    /// - Throws: `.notCanonical` for elements out of order or repeated,
    ///   `.invalidValue` for a dot outside the context or held by two elements.
    @inlinable
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        let context = try decoder.readCausalContext("context of an ORSet")
        let count = try decoder.readEntryCount(Element.self, minimumPayloadBytes: 2, "ORSet element")
        var entries: [Element: DotSet] = [:]
        entries.reserveCapacity(count)
        var claimed = DotClaims(context: context, replicas: decoder.replicas, elementCount: count)
        try decoder.readSortedEntries(Element.self, count: count, "ORSet element") {
            (decoder: inout RecordDecoder, element: Element, keyOffset: Int) throws(CodecError) in
            let dots = try decoder.readElementDots(in: context, claiming: &claimed)
            guard entries.updateValue(dots, forKey: element) == nil else {
                throw CodecError(.notCanonical, at: keyOffset, "ORSet element \(element) appears twice")
            }
        }
        // Every invariant `init?(entries:context:)` checks was checked above, dot by
        // dot, with offsets (no empty dot set, every dot in the context); setting
        // the parts directly spares a second pass over every dot.
        self.init()
        self.entries = entries
        self.causalContext = context
    }
}

extension LWWMap: RecordCodable where Key: WireCodable, Value: WireCodable {
    /// Kind `0x07`, parameters: the key's tag, then the value's tag.
    @inlinable
    public static var recordKind: RecordKind {
        RecordKind(tag: 0x07, name: "LWWMap", parameters: Key.wireTypeTag, Value.wireTypeTag)
    }

    /// Every replica of the context, of the entries' dots and of their writers.
    @inlinable
    public func collectReplicas(into collector: inout ReplicaCollector) {
        collector.insert(context)
        for list in dottedEntries.values {
            for entry in list {
                collector.insert(entry.dot.replica)
                collector.insert(entry.write.replica)
            }
        }
    }

    /// `causalContext count (key count (dot write)*)*`, keys in order of their bytes.
    @inlinable
    public func encodeBody(to encoder: inout RecordEncoder) {
        encoder.writeCausalContext(context)
        encoder.writeSortedEntries(
            dottedEntries,
            writeKey: { writer, entry in entry.key.encode(to: &writer) },
            writePayload: { encoder, entry in
                encoder.writer.writeCount(entry.value.count)
                var cursor = DotCursor()
                for write in entry.value {
                    encoder.writeDot(write.dot, cursor: &cursor)
                    encoder.writeWrite(write.write)
                }
            })
    }

    /// Reads the context, then each key with its writes.
    ///
    /// - Throws: `.notCanonical` for keys or dots out of order or repeated,
    ///   `.invalidValue` for a key without writes, or a dot outside the context or
    ///   held by two keys.
    @inlinable
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        let context = try decoder.readCausalContext("context of an LWWMap")
        // A write is at least a dot (2), a value, a timestamp (2) and a replica (1).
        let minimumWriteBytes = 5 + Value.minimumEncodedByteCount
        let count = try decoder.readEntryCount(Key.self, minimumPayloadBytes: 1 + minimumWriteBytes, "LWWMap key")
        var entries: [Key: [Entry]] = [:]
        entries.reserveCapacity(count)
        var claimed = DotClaims(context: context, replicas: decoder.replicas, elementCount: count)
        try decoder.readSortedEntries(Key.self, count: count, "LWWMap key") {
            (decoder: inout RecordDecoder, key: Key, keyOffset: Int) throws(CodecError) in
            let listOffset = decoder.offset
            let writeCount = try decoder.reader.readCount(
                limit: decoder.limits.maximumElements, minimumItemBytes: minimumWriteBytes,
                "write count of an LWWMap key")
            guard writeCount > 0 else {
                throw CodecError(.invalidValue, at: listOffset, "LWWMap key \(key) has no writes")
            }
            var list: [Entry] = []
            list.reserveCapacity(writeCount)
            var cursor = DotCursor()
            for _ in 0..<writeCount {
                let dotOffset = decoder.offset
                let dot = try decoder.readDot(cursor: &cursor, "dot of an LWWMap write")
                try decoder.expect(dot, in: context, at: dotOffset)
                try decoder.claim(dot, index: cursor.index, in: &claimed, at: dotOffset)
                let write = try decoder.readWrite(Value.self)
                list.append(Entry(dot: dot, write: write))
            }
            guard entries.updateValue(list, forKey: key) == nil else {
                throw CodecError(.notCanonical, at: keyOffset, "LWWMap key \(key) appears twice")
            }
        }
        // Every invariant `init?(entries:context:)` checks was checked above, with
        // offsets (no key without writes, writes in strictly increasing dot order,
        // every dot in the context); setting the parts directly spares a second
        // pass, which costs about a microsecond per key in unspecialized code.
        self.init()
        self.entries = entries
        self.causalContext = context
    }
}

extension MVRegister: RecordCodable where Value: WireCodable {
    /// Kind `0x08`, parameter: the value's tag.
    @inlinable
    public static var recordKind: RecordKind {
        RecordKind(tag: 0x08, name: "MVRegister", parameter: Value.wireTypeTag)
    }

    /// Every replica of the context and of the values' dots.
    @inlinable
    public func collectReplicas(into collector: inout ReplicaCollector) {
        collector.insert(context)
        for dotted in dottedValues { collector.insert(dotted.dot.replica) }
    }

    /// `causalContext count (dot value)*`, in dot order.
    @inlinable
    public func encodeBody(to encoder: inout RecordEncoder) {
        encoder.writeCausalContext(context)
        let values = dottedValues
        encoder.writer.writeCount(values.count)
        var cursor = DotCursor()
        for dotted in values {
            encoder.writeDot(dotted.dot, cursor: &cursor)
            dotted.value.encode(to: &encoder.writer)
        }
    }

    /// Reads the context, then the dotted values.
    ///
    /// - Throws: `.notCanonical` for dots out of order or repeated, `.invalidValue`
    ///   for a dot outside the context.
    @inlinable
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        let start = decoder.offset
        let context = try decoder.readCausalContext("context of an MVRegister")
        let count = try decoder.reader.readCount(
            limit: decoder.limits.maximumElements, minimumItemBytes: 2 + Value.minimumEncodedByteCount,
            "MVRegister value count")
        var values: [DottedValue<Value>] = []
        values.reserveCapacity(count)
        var cursor = DotCursor()
        for _ in 0..<count {
            let dotOffset = decoder.offset
            let dot = try decoder.readDot(cursor: &cursor, "dot of an MVRegister value")
            try decoder.expect(dot, in: context, at: dotOffset)
            values.append(DottedValue(dot: dot, value: try Value(from: &decoder.reader)))
        }
        guard let register = MVRegister(values: values, context: context) else {
            throw CodecError(.invalidValue, at: start, "the MVRegister's parts do not form a valid MVRegister")
        }
        self = register
    }
}

extension EWFlag: RecordCodable {
    /// Kind `0x09`.
    public static var recordKind: RecordKind { RecordKind(tag: 0x09, name: "EWFlag") }

    /// Every replica of the context and of the enabling dots.
    public func collectReplicas(into collector: inout ReplicaCollector) {
        collector.insert(context)
        for dot in enablingDots { collector.insert(dot.replica) }
    }

    /// `causalContext dotList`.
    public func encodeBody(to encoder: inout RecordEncoder) {
        encoder.writeCausalContext(context)
        encoder.writeDotList(enablingDots.sorted)
    }

    /// Reads the context, then the enabling dots.
    ///
    /// - Throws: `.notCanonical` for dots out of order or repeated, `.invalidValue`
    ///   for a dot outside the context.
    public init(decodingBody decoder: inout RecordDecoder) throws(CodecError) {
        let start = decoder.offset
        let context = try decoder.readCausalContext("context of an EWFlag")
        let dots = try decoder.readDotList(in: context, "enabling dots of an EWFlag")
        guard let set = DotSet(sorted: dots), let flag = EWFlag(dots: set, context: context) else {
            throw CodecError(.invalidValue, at: start, "the EWFlag's parts do not form a valid EWFlag")
        }
        self = flag
    }
}
