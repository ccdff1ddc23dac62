import MeshCRDT
import MeshCodec

/// The one seam through which object states and deltas are encoded inside protocol
/// messages. It writes a compact, canonical, varint-only form (replica IDs as varints,
/// sorted collections) and validates everything it reads through the CRDTs' checked
/// initialisers, so malformed input is a `CodecError`, never a trap or a corrupt value.
///
/// When `MeshCodec`'s record encodings of every CRDT land, only this type changes.
enum PayloadCodec {
    /// Bit 7 of a counter's type byte: reset baselines follow its counts. A counter never
    /// reset encodes exactly as before resets existed (old bytes decode unchanged).
    static let resetBaselinesFlag: UInt8 = 0x80

    static func encode(_ value: ObjectValue, to writer: inout ByteWriter) {
        if case .counter(let counter) = value, counter.hasResets {
            writer.writeByte(ObjectType.counter.rawValue | resetBaselinesFlag)
        } else {
            writer.writeByte(value.type.rawValue)
        }
        switch value {
        case .counter(let counter):
            writeCounts(of: counter.increments, to: &writer)
            writeCounts(of: counter.decrements, to: &writer)
            if counter.hasResets {
                writeCounts(of: counter.resetIncrements, to: &writer)
                writeCounts(of: counter.resetDecrements, to: &writer)
            }
        case .set(let set):
            writeContext(set.context, to: &writer)
            writer.writeCount(set.dottedElements.count)
            // One element (a write's delta) needs no sorted copy of the dictionary.
            if set.dottedElements.count == 1 {
                for (element, dots) in set.dottedElements { writeElement(element, dots, to: &writer) }
            } else {
                for (element, dots) in set.dottedElements.sorted(by: { utf8Precedes($0.key, $1.key) }) {
                    writeElement(element, dots, to: &writer)
                }
            }
        case .map(let map):
            writeContext(map.context, to: &writer)
            writer.writeCount(map.dottedEntries.count)
            if map.dottedEntries.count == 1 {
                for (field, entries) in map.dottedEntries { writeField(field, entries, to: &writer) }
            } else {
                for (field, entries) in map.dottedEntries.sorted(by: { utf8Precedes($0.key, $1.key) }) {
                    writeField(field, entries, to: &writer)
                }
            }
        case .register(let register):
            if let write = register.write {
                writer.writeByte(1)
                writeWrite(write, to: &writer)
            } else if let deletion = register.lastWrite {
                // A deletion: a write without a value.
                writer.writeByte(2)
                writeTimestamp(deletion.timestamp, to: &writer)
                writer.writeVarint(deletion.replica.rawValue)
            } else {
                writer.writeByte(0)
            }
        case .multiValueRegister(let register):
            writeContext(register.context, to: &writer)
            writer.writeCount(register.dottedValues.count)
            for dotted in register.dottedValues {
                writeDot(dotted.dot, to: &writer)
                writer.writeString(dotted.value)
            }
        case .flag(let flag):
            writeContext(flag.context, to: &writer)
            writeDots(flag.enablingDots.sorted, to: &writer)
        }
    }

    private static func writeElement(_ element: String, _ dots: DotSet, to writer: inout ByteWriter) {
        writer.writeString(element)
        if let dot = dots.onlyDot {
            // Nearly every element: no array of one dot to build.
            writer.writeCount(1)
            writeDot(dot, to: &writer)
        } else {
            writeDots(dots.sorted, to: &writer)
        }
    }

    private static func writeField(_ field: String, _ entries: [LWWMap<String, String>.Entry], to writer: inout ByteWriter) {
        writer.writeString(field)
        // A field's writes are kept sorted by dot (an LWWMap invariant, checked when decoded).
        writer.writeCount(entries.count)
        for entry in entries {
            writeDot(entry.dot, to: &writer)
            writeWrite(entry.write, to: &writer)
        }
    }

    /// Whether `left`'s UTF-8 bytes precede `right`'s: the canonical order of encoded members and
    /// fields. Compared over the strings' contiguous bytes; the generic comparison of two `UTF8View`s
    /// walked them index by index and was half of a node's CPU at `SADD` into a set of 60,000 members
    /// (each checkpoint encodes every object, sorted). Decoding checks the same order with it.
    static func utf8Precedes(_ left: String, _ right: String) -> Bool {
        let compared = left.utf8.withContiguousStorageIfAvailable { leftBytes in
            right.utf8.withContiguousStorageIfAvailable { rightBytes in
                let common = min(leftBytes.count, rightBytes.count)
                var index = 0
                while index < common {
                    if leftBytes[index] != rightBytes[index] { return leftBytes[index] < rightBytes[index] }
                    index &+= 1
                }
                return leftBytes.count < rightBytes.count
            }
        }
        if let compared, let compared { return compared }
        return left.utf8.lexicographicallyPrecedes(right.utf8)
    }

    /// The size of `encode(value)`, computed without sorting or writing anything (a snapshot is
    /// split into chunks by the encoded size of every object).
    static func encodedByteCount(of value: ObjectValue) -> Int {
        // The type byte, then the type's parts in `encode`'s layout.
        var total = 1
        switch value {
        case .counter(let counter):
            total += countsByteCount(counter.increments.counts) + countsByteCount(counter.decrements.counts)
            if counter.hasResets {
                total += countsByteCount(counter.resetIncrements.counts) + countsByteCount(counter.resetDecrements.counts)
            }
        case .set(let set):
            total += contextByteCount(set.context) + countByteCount(set.dottedElements.count)
            for (element, dots) in set.dottedElements { total += stringByteCount(element) + dotsByteCount(dots) }
        case .map(let map):
            total += contextByteCount(map.context) + countByteCount(map.dottedEntries.count)
            for (field, entries) in map.dottedEntries {
                total += stringByteCount(field) + countByteCount(entries.count)
                for entry in entries { total += dotByteCount(entry.dot) + writeByteCount(entry.write) }
            }
        case .register(let register):
            total += 1
            if let write = register.write {
                total += writeByteCount(write)
            } else if let deletion = register.lastWrite {
                total += timestampByteCount(deletion.timestamp) + varintByteCount(deletion.replica.rawValue)
            }
        case .multiValueRegister(let register):
            total += contextByteCount(register.context) + countByteCount(register.dottedValues.count)
            for dotted in register.dottedValues { total += dotByteCount(dotted.dot) + stringByteCount(dotted.value) }
        case .flag(let flag):
            total += contextByteCount(flag.context) + dotsByteCount(flag.enablingDots)
        }
        return total
    }

    private static func countByteCount(_ count: Int) -> Int { varintByteCount(UInt64(count)) }

    private static func stringByteCount(_ string: String) -> Int { ReplicationMessage.stringByteCount(string) }

    private static func countsByteCount(_ counts: [VersionVector.Entry]) -> Int {
        ReplicationMessage.countsByteCount(counts)
    }

    private static func dotByteCount(_ dot: Dot) -> Int {
        varintByteCount(dot.replica.rawValue) + varintByteCount(dot.counter)
    }

    private static func dotsByteCount(_ dots: [Dot]) -> Int {
        dots.reduce(countByteCount(dots.count)) { $0 + dotByteCount($1) }
    }

    private static func dotsByteCount(_ dots: DotSet) -> Int {
        // Most elements hold one dot: counted without building the array `sorted` returns.
        if let dot = dots.onlyDot { return countByteCount(1) + dotByteCount(dot) }
        return dotsByteCount(dots.sorted)
    }

    private static func contextByteCount(_ context: CausalContext) -> Int {
        countsByteCount(context.versionVector.entries) + dotsByteCount(context.dotCloud)
    }

    private static func timestampByteCount(_ timestamp: HLCTimestamp) -> Int {
        varintByteCount(timestamp.physicalMilliseconds) + varintByteCount(UInt64(timestamp.logical))
    }

    private static func writeByteCount(_ write: LWWWrite<String>) -> Int {
        stringByteCount(write.value) + timestampByteCount(write.timestamp) + varintByteCount(write.replica.rawValue)
    }

    static func decode(from reader: inout ByteReader) throws(CodecError) -> ObjectValue {
        let start = reader.offset
        let tag = try reader.readByte("object type")
        if tag == ObjectType.counter.rawValue | resetBaselinesFlag {
            let increments = try readCounts(from: &reader)
            let decrements = try readCounts(from: &reader)
            let baselinesOffset = reader.offset
            let resetIncrements = try readCounts(from: &reader)
            let resetDecrements = try readCounts(from: &reader)
            if resetIncrements.isBottom && resetDecrements.isBottom {
                throw CodecError(.notCanonical, at: baselinesOffset, "counter reset baselines are flagged but empty")
            }
            return .counter(
                PNCounter(
                    increments: increments, decrements: decrements, resetIncrements: resetIncrements,
                    resetDecrements: resetDecrements))
        }
        guard let type = ObjectType(rawValue: tag) else {
            throw CodecError(.wrongKind, at: start, "object type \(tag) is unknown")
        }
        switch type {
        case .counter:
            let increments = try readCounts(from: &reader)
            let decrements = try readCounts(from: &reader)
            return .counter(PNCounter(increments: increments, decrements: decrements))
        case .set:
            let context = try readContext(from: &reader)
            let count = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 2, "set size")
            var entries: [String: DotSet] = [:]
            var previous: String?
            for _ in 0..<count {
                let offset = reader.offset
                let element = try reader.readString("set element")
                if let previous, !utf8Precedes(previous, element) {
                    throw CodecError(.notCanonical, at: offset, "set elements are not strictly increasing")
                }
                previous = element
                let dots = try readDots(from: &reader)
                guard let dotSet = DotSet(sorted: dots), !dotSet.isEmpty else {
                    throw CodecError(.invalidValue, at: offset, "element dots are empty or unsorted")
                }
                entries[element] = dotSet
            }
            guard let set = ORSet(entries: entries, context: context) else {
                throw CodecError(.invalidValue, at: start, "a set element holds a dot outside its context")
            }
            return .set(set)
        case .map:
            let context = try readContext(from: &reader)
            let count = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 2, "map size")
            var entries: [String: [LWWMap<String, String>.Entry]] = [:]
            var previous: String?
            for _ in 0..<count {
                let offset = reader.offset
                let field = try reader.readString("map field")
                if let previous, !utf8Precedes(previous, field) {
                    throw CodecError(.notCanonical, at: offset, "map fields are not strictly increasing")
                }
                previous = field
                let writes = try reader.readCount(
                    limit: reader.limits.maximumElements, minimumItemBytes: 6, "writes of a field")
                guard writes > 0 else { throw CodecError(.invalidValue, at: offset, "a map field without writes") }
                var list: [LWWMap<String, String>.Entry] = []
                for _ in 0..<writes {
                    let dotOffset = reader.offset
                    let dot = try readDot(from: &reader)
                    if let last = list.last, !(last.dot < dot) {
                        throw CodecError(.notCanonical, at: dotOffset, "field dots are not strictly increasing")
                    }
                    list.append(LWWMap.Entry(dot: dot, write: try readWrite(from: &reader)))
                }
                entries[field] = list
            }
            guard let map = LWWMap(entries: entries, context: context) else {
                throw CodecError(.invalidValue, at: start, "a map write holds a dot outside its context")
            }
            return .map(map)
        case .register:
            let present = try reader.readByte("register presence")
            switch present {
            case 0: return .register(LWWRegister())
            case 1: return .register(LWWRegister(try readWrite(from: &reader)))
            case 2:
                let timestamp = try readTimestamp(from: &reader)
                let replica = ReplicaID(try reader.readVarint("deleter"))
                return .register(LWWRegister(lastWrite: LWWWrite(value: nil, timestamp: timestamp, replica: replica)))
            default: throw CodecError(.invalidValue, at: reader.offset - 1, "register presence \(present)")
            }
        case .multiValueRegister:
            let context = try readContext(from: &reader)
            let count = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 3, "values")
            var values: [DottedValue<String>] = []
            for _ in 0..<count {
                let dot = try readDot(from: &reader)
                values.append(DottedValue(dot: dot, value: try reader.readString("register value")))
            }
            guard let register = MVRegister(values: values, context: context) else {
                throw CodecError(.invalidValue, at: start, "register values unsorted or outside their context")
            }
            return .multiValueRegister(register)
        case .flag:
            let context = try readContext(from: &reader)
            let offset = reader.offset
            let dots = try readDots(from: &reader)
            guard let dotSet = DotSet(sorted: dots), let flag = EWFlag(dots: dotSet, context: context) else {
                throw CodecError(.invalidValue, at: offset, "flag dots unsorted or outside their context")
            }
            return .flag(flag)
        }
    }

    // MARK: Parts

    /// A counter's counts, as `writeCounts(_:to:)` writes them (no array of them to build).
    static func writeCounts(of counter: GCounter, to writer: inout ByteWriter) {
        writer.writeCount(counter.replicaCount)
        counter.forEachCount { entry in
            writer.writeVarint(entry.replica.rawValue)
            writer.writeVarint(entry.counter)
        }
    }

    static func writeCounts(_ counts: [VersionVector.Entry], to writer: inout ByteWriter) {
        writer.writeCount(counts.count)
        for entry in counts {
            writer.writeVarint(entry.replica.rawValue)
            writer.writeVarint(entry.counter)
        }
    }

    static func readCounts(from reader: inout ByteReader) throws(CodecError) -> GCounter {
        GCounter(counts: try readVector(from: &reader).entries.map { ($0.replica, $0.counter) })
    }

    /// A version vector: count, then (replica, counter) strictly increasing by replica, counters ≥ 1.
    static func writeVector(_ vector: VersionVector, to writer: inout ByteWriter) {
        writeCounts(vector.entries, to: &writer)
    }

    static func readVector(from reader: inout ByteReader) throws(CodecError) -> VersionVector {
        let count = try reader.readCount(limit: reader.limits.maximumReplicas, minimumItemBytes: 2, "vector size")
        var entries: [VersionVector.Entry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let offset = reader.offset
            let replica = ReplicaID(try reader.readVarint("replica"))
            let counter = try reader.readVarint("counter")
            if let last = entries.last, !(last.replica < replica) {
                throw CodecError(.notCanonical, at: offset, "vector replicas are not strictly increasing")
            }
            if counter == 0 { throw CodecError(.notCanonical, at: offset, "a vector entry is zero") }
            entries.append(VersionVector.Entry(replica: replica, counter: counter))
        }
        // The checks above are exactly the initialiser's; it cannot fail here.
        guard let vector = VersionVector(sortedEntries: entries) else {
            throw CodecError(.invalidValue, at: reader.offset, "vector is not canonical")
        }
        return vector
    }

    static func writeDot(_ dot: Dot, to writer: inout ByteWriter) {
        writer.writeVarint(dot.replica.rawValue)
        writer.writeVarint(dot.counter)
    }

    static func readDot(from reader: inout ByteReader) throws(CodecError) -> Dot {
        let offset = reader.offset
        let replica = ReplicaID(try reader.readVarint("dot replica"))
        let counter = try reader.readVarint("dot counter")
        guard counter > 0 else { throw CodecError(.invalidValue, at: offset, "dot counter is zero") }
        return Dot(replica: replica, counter: counter)
    }

    static func writeDots(_ dots: [Dot], to writer: inout ByteWriter) {
        writer.writeCount(dots.count)
        for dot in dots { writeDot(dot, to: &writer) }
    }

    static func readDots(from reader: inout ByteReader) throws(CodecError) -> [Dot] {
        let count = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 2, "dot count")
        var dots: [Dot] = []
        dots.reserveCapacity(count)
        for _ in 0..<count {
            let offset = reader.offset
            let dot = try readDot(from: &reader)
            if let last = dots.last, !(last < dot) {
                throw CodecError(.notCanonical, at: offset, "dots are not strictly increasing")
            }
            dots.append(dot)
        }
        return dots
    }

    static func writeContext(_ context: CausalContext, to writer: inout ByteWriter) {
        writeVector(context.versionVector, to: &writer)
        writeDots(context.dotCloud, to: &writer)
    }

    static func readContext(from reader: inout ByteReader) throws(CodecError) -> CausalContext {
        let offset = reader.offset
        let vector = try readVector(from: &reader)
        let cloud = try readDots(from: &reader)
        guard let context = CausalContext(versionVector: vector, dotCloud: cloud) else {
            throw CodecError(.notCanonical, at: offset, "dot cloud overlaps its vector")
        }
        return context
    }

    static func writeTimestamp(_ timestamp: HLCTimestamp, to writer: inout ByteWriter) {
        writer.writeVarint(timestamp.physicalMilliseconds)
        writer.writeVarint(UInt64(timestamp.logical))
    }

    static func readTimestamp(from reader: inout ByteReader) throws(CodecError) -> HLCTimestamp {
        let physical = try reader.readVarint("timestamp milliseconds")
        let offset = reader.offset
        let logical = try reader.readVarint("timestamp logical")
        guard let narrow = UInt32(exactly: logical) else {
            throw CodecError(.invalidValue, at: offset, "logical time exceeds 32 bits")
        }
        return HLCTimestamp(physicalMilliseconds: physical, logical: narrow)
    }

    static func writeWrite(_ write: LWWWrite<String>, to writer: inout ByteWriter) {
        writer.writeString(write.value)
        writeTimestamp(write.timestamp, to: &writer)
        writer.writeVarint(write.replica.rawValue)
    }

    static func readWrite(from reader: inout ByteReader) throws(CodecError) -> LWWWrite<String> {
        let value = try reader.readString("written value")
        let timestamp = try readTimestamp(from: &reader)
        let replica = ReplicaID(try reader.readVarint("writer"))
        return LWWWrite(value: value, timestamp: timestamp, replica: replica)
    }
}
