import MeshCRDT

/// The header bytes after the version that name a record's type: a kind tag and
/// the wire type tags of its type parameters (see `WireCodable.wireTypeTag`).
///
/// `ORSet<String>` is kind `0x06` with parameter `0x07`; decoding its bytes as an
/// `ORSet<UInt64>` or an `LWWMap` fails with `.wrongKind` at the offending byte.
public struct RecordKind: Hashable, Sendable, CustomStringConvertible {
    /// The kind tag: which record type.
    public let tag: UInt8
    /// How many parameter tags follow (0, 1 or 2).
    public let parameterCount: Int
    /// The first parameter tag (element, key or value type), if any.
    public let firstParameter: UInt8
    /// The second parameter tag (a map's value type), if any.
    public let secondParameter: UInt8
    /// A name for messages.
    public let name: StaticString

    /// A kind without type parameters.
    public init(tag: UInt8, name: StaticString) {
        self.tag = tag
        self.parameterCount = 0
        self.firstParameter = 0
        self.secondParameter = 0
        self.name = name
    }

    /// A kind with one type parameter.
    public init(tag: UInt8, name: StaticString, parameter: UInt8) {
        self.tag = tag
        self.parameterCount = 1
        self.firstParameter = parameter
        self.secondParameter = 0
        self.name = name
    }

    /// A kind with two type parameters.
    public init(tag: UInt8, name: StaticString, parameters first: UInt8, _ second: UInt8) {
        self.tag = tag
        self.parameterCount = 2
        self.firstParameter = first
        self.secondParameter = second
        self.name = name
    }

    /// Equal tags; the name is not compared.
    public static func == (lhs: RecordKind, rhs: RecordKind) -> Bool {
        lhs.tag == rhs.tag && lhs.parameterCount == rhs.parameterCount
            && lhs.firstParameter == rhs.firstParameter && lhs.secondParameter == rhs.secondParameter
    }

    /// Hashes the tags (not the name).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(tag)
        hasher.combine(parameterCount)
        hasher.combine(firstParameter)
        hasher.combine(secondParameter)
    }

    /// The name and the tags in hexadecimal.
    public var description: String {
        var text = "\(name)(0x\(String(tag, radix: 16))"
        if parameterCount >= 1 { text += ", 0x\(String(firstParameter, radix: 16))" }
        if parameterCount >= 2 { text += ", 0x\(String(secondParameter, radix: 16))" }
        return text + ")"
    }
}

/// A value that is encoded as a top-level record (see `MeshCodec` for the format).
///
/// Every CRDT of `MeshCRDT`, `VersionVector` and `CausalContext` conform. A record
/// is written in two passes: `collectReplicas` gathers every `ReplicaID` the body
/// will name (they form the record's replica table), then `encodeBody` writes the
/// body, naming replicas by their index in that table.
public protocol RecordCodable: Equatable, Sendable {
    /// The kind tag and parameter tags written after the version byte.
    static var recordKind: RecordKind { get }

    /// Adds every replica that `encodeBody` will write to `collector`.
    func collectReplicas(into collector: inout ReplicaCollector)

    /// Writes the body (everything after the replica table).
    func encodeBody(to encoder: inout RecordEncoder)

    /// Reads the body, validating that it is the one canonical encoding of a valid value.
    init(decodingBody decoder: inout RecordDecoder) throws(CodecError)
}

/// Gathers the replicas named by a record, for its replica table.
public struct ReplicaCollector: Sendable {
    @usableFromInline
    var last: ReplicaID?
    @usableFromInline
    var seen: Set<ReplicaID> = []

    /// An empty collector.
    public init() {}

    /// Adds `replica` (cheap when it repeats the previous one, as runs of dots do).
    @inlinable
    public mutating func insert(_ replica: ReplicaID) {
        if replica == last { return }
        last = replica
        seen.insert(replica)
    }

    /// Adds the replica of `dot`.
    @inlinable
    public mutating func insert(_ dot: Dot) { insert(dot.replica) }

    /// Adds every replica of `vector`.
    public mutating func insert(_ vector: VersionVector) {
        for entry in vector.entries { insert(entry.replica) }
    }

    /// Adds every replica of `context`.
    public mutating func insert(_ context: CausalContext) {
        insert(context.versionVector)
        for dot in context.dotCloud { insert(dot.replica) }
    }

    /// The replicas, sorted.
    @usableFromInline
    var sortedReplicas: [ReplicaID] { seen.sorted() }
}

/// Writes one record's body: raw values through `writer`, replicas as indexes into
/// the record's replica table.
public struct RecordEncoder: Sendable {
    /// The output.
    public var writer: ByteWriter
    /// The record's replica table, sorted.
    public let replicas: [ReplicaID]
    @usableFromInline
    var lastReplica: ReplicaID
    @usableFromInline
    var lastIndex: Int

    @usableFromInline
    init(writer: ByteWriter, replicas: [ReplicaID]) {
        self.writer = writer
        self.replicas = replicas
        self.lastReplica = replicas.first ?? ReplicaID(0)
        self.lastIndex = replicas.isEmpty ? -1 : 0
    }

    /// The index of `replica` in the table.
    ///
    /// - Precondition: `replica` was collected (a bug in the record's
    ///   `collectReplicas`, never a property of remote input).
    @inlinable
    public mutating func index(of replica: ReplicaID) -> Int {
        if lastIndex >= 0 && replica == lastReplica { return lastIndex }
        var low = 0
        var high = replicas.count
        while low < high {
            let mid = (low &+ high) >> 1
            if replicas[mid] < replica { low = mid &+ 1 } else { high = mid }
        }
        precondition(low < replicas.count && replicas[low] == replica, "replica \(replica) was not collected")
        lastReplica = replica
        lastIndex = low
        return low
    }

    /// Writes `replica` as its table index (a varint).
    @inlinable
    public mutating func writeReplica(_ replica: ReplicaID) {
        let position = index(of: replica)
        writer.writeVarint(UInt64(position))
    }

    /// Writes `dot` as `replica counter` (absolute: the first dot of a sequence, or one on its own).
    @inlinable
    public mutating func writeDot(_ dot: Dot) {
        writeReplica(dot.replica)
        writer.writeVarint(dot.counter)
    }

    /// Writes the next dot of a strictly increasing sequence, relative to the one
    /// before it (see `DotCursor`).
    ///
    /// - Precondition: `dot` follows the cursor's dot (sequences come from sorted,
    ///   repeat-free collections of our own types).
    @inlinable
    public mutating func writeDot(_ dot: Dot, cursor: inout DotCursor) {
        let position = index(of: dot.replica)
        if cursor.index < 0 {
            writer.writeVarint(UInt64(position))
            writer.writeVarint(dot.counter)
        } else {
            precondition(
                position > cursor.index || (position == cursor.index && dot.counter > cursor.counter),
                "dot sequence is not strictly increasing at \(dot)")
            let step = position - cursor.index
            writer.writeVarint(UInt64(step))
            writer.writeVarint(step == 0 ? dot.counter - cursor.counter : dot.counter)
        }
        cursor.index = position
        cursor.counter = dot.counter
    }
}

/// The last dot written or read in a strictly increasing dot sequence, so the next
/// one is coded relative to it: `step counter`, where `step` is the difference of
/// replica table indexes and `counter` is the difference of counters when `step`
/// is 0 and the counter itself otherwise. Runs of one replica's dots cost about two
/// bytes each, and a sequence cannot go backwards, so its order needs no check.
public struct DotCursor: Sendable {
    /// The table index of the last dot, or -1 before the first.
    public var index: Int
    /// The counter of the last dot.
    public var counter: UInt64

    /// A cursor before the first dot.
    @inlinable
    public init() {
        index = -1
        counter = 0
    }
}

/// Reads one record's body from untrusted bytes: raw values through `reader`,
/// replicas through the record's replica table.
public struct RecordDecoder: Sendable {
    /// The input.
    public var reader: ByteReader
    /// The record's replica table, sorted.
    public let replicas: [ReplicaID]
    /// Where the replica table starts (for errors about unused entries).
    @usableFromInline
    let tableOffset: Int
    @usableFromInline
    var used: [Bool]
    @usableFromInline
    var usedCount: Int

    @usableFromInline
    init(reader: ByteReader, replicas: [ReplicaID], tableOffset: Int) {
        self.reader = reader
        self.replicas = replicas
        self.tableOffset = tableOffset
        self.used = Array(repeating: false, count: replicas.count)
        self.usedCount = 0
    }

    /// The limits in force.
    @inlinable
    public var limits: CodecLimits { reader.limits }

    /// The offset of the next byte.
    @inlinable
    public var offset: Int { reader.offset }

    /// Reads a replica table index and returns the replica.
    ///
    /// - Throws: `.invalidValue` when the index is outside the table.
    @inlinable
    public mutating func readReplica(_ what: @autoclosure () -> String = "replica") throws(CodecError) -> ReplicaID {
        replicas[try readReplicaIndex(what())]
    }

    /// Reads a replica table index (for callers that check the order of replicas).
    ///
    /// - Throws: `.invalidValue` when the index is outside the table.
    public mutating func readReplicaIndex(_ what: @autoclosure () -> String = "replica") throws(CodecError) -> Int {
        let start = reader.offset
        let raw = try reader.readVarint(what())
        guard raw < UInt64(replicas.count) else {
            throw CodecError(
                .invalidValue, at: start,
                "\(what()) index \(raw) is outside the replica table of \(replicas.count) entries")
        }
        let index = Int(raw)
        markUsed(index)
        return index
    }

    /// Records that the body named table entry `index` (which must be in range).
    @usableFromInline
    mutating func markUsed(_ index: Int) {
        if !used[index] {
            used[index] = true
            usedCount += 1
        }
    }

    /// Reads a dot counter (a varint of at least 1).
    ///
    /// - Throws: `.invalidValue` for zero: events are numbered from 1.
    public mutating func readCounter(_ what: @autoclosure () -> String = "counter") throws(CodecError) -> UInt64 {
        let start = reader.offset
        let counter = try reader.readVarint(what())
        guard counter > 0 else {
            throw CodecError(.invalidValue, at: start, "\(what()) is zero; events are numbered from 1")
        }
        return counter
    }

    /// Reads the next dot of a strictly increasing sequence (see `DotCursor`).
    ///
    /// - Throws: `.invalidValue` for a replica index outside the table or a counter
    ///   of zero or beyond `UInt64.max`; `.notCanonical` for a repeat of the
    ///   previous dot.
    public mutating func readDot(
        cursor: inout DotCursor, _ what: @autoclosure () -> String = "dot"
    ) throws(CodecError) -> Dot {
        let start = reader.offset
        let step = try reader.readVarint("replica of \(what())")
        let first = cursor.index < 0
        let available = UInt64(replicas.count - (first ? 0 : cursor.index))
        guard step < available else {
            throw CodecError(
                .invalidValue, at: start,
                "replica of \(what()) is outside the replica table of \(replicas.count) entries")
        }
        let index = (first ? 0 : cursor.index) + Int(step)
        markUsed(index)
        let counterOffset = reader.offset
        let field = try reader.readVarint("counter of \(what())")
        let counter: UInt64
        if !first && step == 0 {
            guard field > 0 else {
                throw CodecError(.notCanonical, at: start, "\(what()) repeats the dot before it")
            }
            let (sum, overflow) = cursor.counter.addingReportingOverflow(field)
            guard !overflow else {
                throw CodecError(.invalidValue, at: counterOffset, "counter of \(what()) exceeds \(UInt64.max)")
            }
            counter = sum
        } else {
            guard field > 0 else {
                throw CodecError(
                    .invalidValue, at: counterOffset, "counter of \(what()) is zero; events are numbered from 1")
            }
            counter = field
        }
        cursor.index = index
        cursor.counter = counter
        return Dot(replica: replicas[index], counter: counter)
    }

    /// Reads `replica counter` as a dot.
    public mutating func readDot(_ what: @autoclosure () -> String = "dot") throws(CodecError) -> Dot {
        let replica = try readReplica("replica of \(what())")
        let counter = try readCounter("counter of \(what())")
        return Dot(replica: replica, counter: counter)
    }

    /// Throws `.notCanonical` unless every replica of the table was named by the body.
    @usableFromInline
    func expectEveryReplicaUsed() throws(CodecError) {
        guard usedCount == replicas.count else {
            let unused = used.firstIndex(of: false) ?? 0
            throw CodecError(
                .notCanonical, at: tableOffset,
                "replica table entry \(unused) (\(replicas[unused])) is not used by the record")
        }
    }
}

/// The dots a decoder has seen held by elements or keys of one record, to refuse
/// a dot held twice: a dot names one write, so it keeps one element alive, and
/// merges rely on that.
///
/// Dots the causal context's version vector covers are kept in one bitmap per
/// replica (a bit per counter), as long as the bitmaps stay within 64 bits per
/// element of the record (memory proportional to the input); other dots go to a
/// set.
public struct DotClaims: Sendable {
    @usableFromInline var words: [UInt64]
    /// Per replica table index: the first word of its bitmap, or -1 without one.
    @usableFromInline var firstWord: [Int]
    /// Per replica table index: the highest counter its bitmap covers.
    @usableFromInline var covered: [UInt64]
    @usableFromInline var others: Set<Dot>

    /// No claims, and no bitmaps.
    public init() {
        words = []
        firstWord = []
        covered = []
        others = []
    }

    /// No claims yet, with bitmaps for the replicas of `replicas` (a record's
    /// table) whose vector entries fit the budget of 64 bits per element.
    public init(context: CausalContext, replicas: [ReplicaID], elementCount: Int) {
        var budget = UInt64(64) * UInt64(max(elementCount, 1))
        firstWord = Array(repeating: -1, count: replicas.count)
        covered = Array(repeating: 0, count: replicas.count)
        var total = 0
        for (index, replica) in replicas.enumerated() {
            let counter = context.versionVector[replica]
            if counter > 0 && counter <= budget {
                firstWord[index] = total
                covered[index] = counter
                total += Int((counter + 63) / 64)
                budget -= counter
            }
        }
        words = Array(repeating: 0, count: total)
        others = []
    }

    /// Claims `dot`, whose replica is entry `index` of the table; `false` if it
    /// was claimed before.
    @inlinable
    public mutating func claim(_ dot: Dot, index: Int) -> Bool {
        if index >= 0 && index < firstWord.count && firstWord[index] >= 0 && dot.counter >= 1
            && dot.counter <= covered[index]
        {
            let bit = dot.counter - 1
            let word = firstWord[index] + Int(bit / 64)
            let mask: UInt64 = 1 << (bit % 64)
            if words[word] & mask != 0 { return false }
            words[word] |= mask
            return true
        }
        return others.insert(dot).inserted
    }
}
