import MeshCRDT

// Nested encodings of causal metadata (see the grammar in `MeshCodec`): version
// vectors, causal contexts, dots, dot sets, timestamps and LWW writes. They name
// replicas through the record's replica table, so they live on the record
// encoder and decoder rather than on `WireCodable`.

extension RecordEncoder {
    /// Writes `versionVector`: `count (replica counter)*`.
    public mutating func writeVersionVector(_ versionVector: VersionVector) {
        writeEntries(versionVector.entries)
    }

    /// Writes per-replica counters (sorted by replica, none zero): `count (replica counter)*`.
    @usableFromInline
    mutating func writeEntries(_ entries: [VersionVector.Entry]) {
        writer.writeCount(entries.count)
        for entry in entries {
            writeReplica(entry.replica)
            writer.writeVarint(entry.counter)
        }
    }

    /// Writes `context`: its version vector, then its dot cloud.
    public mutating func writeCausalContext(_ context: CausalContext) {
        writeVersionVector(context.versionVector)
        writeDotList(context.dotCloud)
    }

    /// Writes sorted, unique dots as a delta-coded sequence: `count dotSequence`.
    public mutating func writeDotList(_ dots: some Collection<Dot>) {
        writer.writeCount(dots.count)
        var cursor = DotCursor()
        for dot in dots { writeDot(dot, cursor: &cursor) }
    }

    /// Writes the non-empty dot set of a set element: a single dot folds its replica
    /// index into the head varint (`index << 1`); several dots are announced by
    /// `((count - 2) << 1) | 1` and follow in order.
    public mutating func writeElementDots(_ dots: DotSet) {
        // `onlyDot` reads the common single dot without the array `sorted` builds.
        if let dot = dots.onlyDot {
            writer.writeVarint(UInt64(index(of: dot.replica)) << 1)
            writer.writeVarint(dot.counter)
            return
        }
        let sorted = dots.sorted
        // An empty dot set breaks the container's invariant and cannot be written;
        // `max` keeps the head well-defined (the decoder rejects what follows).
        writer.writeVarint((UInt64(max(sorted.count, 2) - 2) << 1) | 1)
        var cursor = DotCursor()
        for dot in sorted { writeDot(dot, cursor: &cursor) }
    }

    /// Writes `timestamp`: physical milliseconds, then the logical counter, as varints.
    public mutating func writeTimestamp(_ timestamp: HLCTimestamp) {
        writer.writeVarint(timestamp.physicalMilliseconds)
        writer.writeVarint(UInt64(timestamp.logical))
    }

    /// Writes `write`: value, timestamp, replica.
    @inlinable
    public mutating func writeWrite<Value: WireCodable>(_ write: LWWWrite<Value>) {
        write.value.encode(to: &writer)
        writeTimestamp(write.timestamp)
        writeReplica(write.replica)
    }
}

extension RecordDecoder {
    /// Reads a version vector: replicas strictly increasing, counters at least 1.
    ///
    /// - Throws: `.limitExceeded` for more entries than `maximumReplicas` or the
    ///   bytes allow, `.notCanonical` for replicas out of order, `.invalidValue`.
    public mutating func readVersionVector(_ what: @autoclosure () -> String = "version vector") throws(CodecError)
        -> VersionVector
    {
        let start = offset
        let entries = try readEntries(what())
        guard let vector = VersionVector(sortedEntries: entries) else {
            throw CodecError(.invalidValue, at: start, "\(what()) is not a valid version vector")
        }
        return vector
    }

    /// Reads per-replica counters: `count (replica counter)*`, replicas strictly
    /// increasing, counters at least 1.
    @usableFromInline
    mutating func readEntries(_ what: @autoclosure () -> String) throws(CodecError) -> [VersionVector.Entry] {
        let count = try reader.readCount(
            limit: limits.maximumReplicas, minimumItemBytes: 2, "entry count of \(what())")
        return try readEntries(count: count, what())
    }

    /// Reads `count` (already read and checked) per-replica counters: `(replica counter)*`.
    @usableFromInline
    mutating func readEntries(count: Int, _ what: @autoclosure () -> String) throws(CodecError)
        -> [VersionVector.Entry]
    {
        var entries: [VersionVector.Entry] = []
        entries.reserveCapacity(count)
        var previous = -1
        for _ in 0..<count {
            let entryOffset = offset
            let index = try readReplicaIndex("replica of an entry of \(what())")
            guard index > previous else {
                throw CodecError(
                    .notCanonical, at: entryOffset,
                    "entries of \(what()) are not in strictly increasing replica order")
            }
            previous = index
            let counter = try readCounter("counter of an entry of \(what())")
            entries.append(VersionVector.Entry(replica: replicas[index], counter: counter))
        }
        return entries
    }

    /// Reads a causal context: a version vector, then a compacted dot cloud.
    ///
    /// - Throws: `.notCanonical` for cloud dots out of order or ones the vector
    ///   covers or would absorb (counter not at least two past the vector).
    public mutating func readCausalContext(_ what: @autoclosure () -> String = "causal context") throws(CodecError)
        -> CausalContext
    {
        let start = offset
        let vector = try readVersionVector("version vector of \(what())")
        let count = try reader.readCount(
            limit: limits.maximumElements, minimumItemBytes: 2, "dot cloud size of \(what())")
        var cloud: [Dot] = []
        cloud.reserveCapacity(count)
        var cursor = DotCursor()
        for _ in 0..<count {
            let dotOffset = offset
            let dot = try readDot(cursor: &cursor, "a dot-cloud dot")
            let counter = dot.counter
            let covered = vector[dot.replica]
            // Written without `covered + 1`, which overflows at UInt64.max.
            guard counter > covered, counter - covered >= 2 else {
                throw CodecError(
                    .notCanonical, at: dotOffset,
                    "dot-cloud dot \(dot) is covered by or adjacent to the version vector (\(covered)); it belongs in the vector"
                )
            }
            cloud.append(dot)
        }
        guard let context = CausalContext(versionVector: vector, dotCloud: cloud) else {
            throw CodecError(.invalidValue, at: start, "\(what()) is not a valid causal context")
        }
        return context
    }

    /// Reads `count dot*`, strictly increasing, every dot in `context`.
    ///
    /// - Throws: `.notCanonical` for dots out of order or repeated, `.invalidValue`
    ///   for a dot outside `context`.
    public mutating func readDotList(
        in context: CausalContext, _ what: @autoclosure () -> String = "dots"
    ) throws(CodecError) -> [Dot] {
        let count = try reader.readCount(limit: limits.maximumElements, minimumItemBytes: 2, "count of \(what())")
        return try readDots(count: count, in: context, what())
    }

    @usableFromInline
    mutating func readDots(
        count: Int, in context: CausalContext, claiming claimed: inout DotClaims, _ what: @autoclosure () -> String
    ) throws(CodecError) -> [Dot] {
        var dots: [Dot] = []
        dots.reserveCapacity(count)
        var cursor = DotCursor()
        for _ in 0..<count {
            let dotOffset = offset
            let dot = try readDot(cursor: &cursor, "dot of \(what())")
            try expect(dot, in: context, at: dotOffset)
            try claim(dot, index: cursor.index, in: &claimed, at: dotOffset)
            dots.append(dot)
        }
        return dots
    }

    @usableFromInline
    mutating func readDots(
        count: Int, in context: CausalContext, _ what: @autoclosure () -> String
    ) throws(CodecError) -> [Dot] {
        var unclaimed = DotClaims()
        return try readDots(count: count, in: context, claiming: &unclaimed, what())
    }

    /// Throws `.invalidValue` when `dot` was already claimed by another element or
    /// key of the same record: a dot names one write, so it keeps one element
    /// alive (merges rely on it), and a record sharing one between elements is
    /// not a state any replica could reach.
    @usableFromInline
    func claim(_ dot: Dot, index: Int, in claimed: inout DotClaims, at dotOffset: Int) throws(CodecError) {
        guard claimed.claim(dot, index: index) else {
            throw CodecError(.invalidValue, at: dotOffset, "dot \(dot) is held by two elements or keys")
        }
    }

    /// Reads the non-empty dot set of a set element (see `writeElementDots`),
    /// every dot in `context` and none already in `claimed` (each is added to it).
    ///
    /// - Throws: `.invalidValue` for a dot outside `context` or already claimed.
    public mutating func readElementDots(
        in context: CausalContext, claiming claimed: inout DotClaims
    ) throws(CodecError) -> DotSet {
        let headOffset = offset
        let head = try reader.readVarint("dot head of an element")
        if head & 1 == 0 {
            let rawIndex = head >> 1
            guard rawIndex < UInt64(replicas.count) else {
                throw CodecError(
                    .invalidValue, at: headOffset,
                    "replica index \(rawIndex) of an element's dot is outside the replica table of \(replicas.count) entries"
                )
            }
            let index = Int(rawIndex)
            markUsed(index)
            let counter = try readCounter("counter of an element's dot")
            let dot = Dot(replica: replicas[index], counter: counter)
            try expect(dot, in: context, at: headOffset)
            try claim(dot, index: index, in: &claimed, at: headOffset)
            return DotSet(dot)
        }
        let count = try reader.checkCount(
            (head >> 1) + 2, at: headOffset, limit: limits.maximumElements, minimumItemBytes: 2,
            "dot count of an element")
        let dots = try readDots(count: count, in: context, claiming: &claimed, "an element's dots")
        guard let set = DotSet(sorted: dots) else {
            throw CodecError(.invalidValue, at: headOffset, "an element's dots do not form a dot set")
        }
        return set
    }

    /// Throws `.invalidValue` unless `context` contains `dot`.
    @usableFromInline
    func expect(_ dot: Dot, in context: CausalContext, at dotOffset: Int) throws(CodecError) {
        guard context.contains(dot) else {
            throw CodecError(.invalidValue, at: dotOffset, "dot \(dot) is not in the causal context")
        }
    }

    /// Reads a hybrid logical clock timestamp.
    ///
    /// - Throws: `.invalidValue` when the logical part exceeds `UInt32.max`.
    public mutating func readTimestamp() throws(CodecError) -> HLCTimestamp {
        let physical = try reader.readVarint("physical milliseconds of a timestamp")
        let logicalOffset = offset
        let rawLogical = try reader.readVarint("logical counter of a timestamp")
        guard let logical = UInt32(exactly: rawLogical) else {
            throw CodecError(
                .invalidValue, at: logicalOffset, "logical counter \(rawLogical) of a timestamp exceeds \(UInt32.max)")
        }
        return HLCTimestamp(physicalMilliseconds: physical, logical: logical)
    }

    /// Reads a last-writer-wins write: value, timestamp, replica.
    @inlinable
    public mutating func readWrite<Value: WireCodable>(_: Value.Type = Value.self) throws(CodecError) -> LWWWrite<Value>
    {
        let value = try Value(from: &reader)
        let timestamp = try readTimestamp()
        let replica = try readReplica("replica of a write")
        return LWWWrite(value: value, timestamp: timestamp, replica: replica)
    }
}
