import MeshCRDT
import MeshCodec

/// The bytes of `value` as a LEB128 varint.
func varintByteCount(_ value: UInt64) -> Int {
    max(1, (64 - value.leadingZeroBitCount + 6) / 7)
}

/// One key's part of a delta: the key and the delta (a small state) of its object.
public struct KeyedDelta: Sendable, Equatable {
    /// The object key (the `PATH` of `fabric://DOMAIN/PATH`).
    public let key: String
    /// The delta state.
    public let value: ObjectValue

    /// Creates a keyed delta.
    public init(key: String, value: ObjectValue) {
        self.key = key
        self.value = value
    }

    /// The size of its encoding (key, then payload), computed without encoding: what a write
    /// carries, and what a snapshot object takes in its chunk.
    package var encodedByteCount: Int {
        ReplicationMessage.stringByteCount(key) + PayloadCodec.encodedByteCount(of: value)
    }
}

/// A delta or delta-group of one origin as it travels and sits in the log: the
/// origin's contiguous sequence range and the keyed deltas.
///
/// A record carries no dependency vector. Causal order comes from how records travel
/// (see `LinkHeader`): pushes go over sequenced links whose batches carry only the rare
/// dependencies the link itself does not imply, and repairs are sent in the sender's
/// delivery order starting from the receiver's own vector.
///
/// Immutable and shared by reference: a record relayed by a thousand simulated
/// replicas exists once in memory.
public final class DeltaRecord: Sendable, Equatable, CustomStringConvertible {
    /// The writing replica.
    public let origin: ReplicaID
    /// The first domain-level sequence number covered.
    public let firstSequence: UInt64
    /// The last sequence number covered (`>= firstSequence`).
    public let lastSequence: UInt64
    /// The greatest HLC timestamp of the last-writer-wins writes in the group (`.zero` when none:
    /// only LWW values need their timestamp observed by receivers' clocks). Encoded only when
    /// it differs from the timestamp the LWW payloads carry (`impliedTimestamp(of:)`).
    public let timestamp: HLCTimestamp
    /// Whether the origin wants an acknowledgement (a write concern waits on it).
    public let requestsAcknowledgement: Bool
    /// The keyed deltas, sorted by key.
    public let updates: [KeyedDelta]
    /// The record's encoding, made once: journaling and every message that carries the record
    /// (pushes, repairs, relays) copy these bytes instead of encoding the record again.
    let encoding: [UInt8]
    /// The encoded size of this record, in bytes (stored: every replica that receives, logs or
    /// relays the record reads it, and reading `encoding.count` is one more pointer to chase).
    public let encodedByteCount: Int
    /// Merge results the replicas of this process that share them published for this record
    /// (`ReplicationConfiguration.sharesMergeResults`); empty otherwise.
    let sharedMerges = SharedMerges()
    /// The replicas whose events the updates may claim (`ObjectValue.forEachEventReplica`): a
    /// receiver whose bit is clear skips checking the updates for forged claims of its own
    /// events. Every receiver of a simulation would otherwise search every update for its ID.
    let claimedReplicas: ReplicaFilter

    /// Creates a record and computes its encoded size.
    public init(
        origin: ReplicaID, firstSequence: UInt64, lastSequence: UInt64, timestamp: HLCTimestamp,
        requestsAcknowledgement: Bool, updates: [KeyedDelta]
    ) {
        precondition(firstSequence >= 1 && lastSequence >= firstSequence)
        self.origin = origin
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.timestamp = timestamp
        self.requestsAcknowledgement = requestsAcknowledgement
        self.updates = updates
        var claimed = ReplicaFilter()
        for update in updates { update.value.forEachEventReplica { claimed.insert($0) } }
        self.claimedReplicas = claimed
        var writer = ByteWriter()
        Self.encodeFields(
            origin: origin, firstSequence: firstSequence, lastSequence: lastSequence, timestamp: timestamp,
            requestsAcknowledgement: requestsAcknowledgement, updates: updates, to: &writer)
        self.encoding = writer.bytes
        self.encodedByteCount = writer.bytes.count
    }

    /// The number of writes covered.
    public var writeCount: UInt64 { lastSequence - firstSequence + 1 }

    func encode(to writer: inout ByteWriter) {
        writer.writeBytes(encoding)
    }

    /// The greatest timestamp the last-writer-wins payloads of `updates` carry (`.zero` when
    /// none): what a record's timestamp is unless it says otherwise, so the wire does not carry
    /// the timestamp twice (once in the record, once in the LWW delta).
    static func impliedTimestamp(of updates: [KeyedDelta]) -> HLCTimestamp {
        var latest = HLCTimestamp.zero
        for update in updates { latest = max(latest, impliedTimestamp(of: update)) }
        return latest
    }

    /// `impliedTimestamp(of:)` of one update (a local write's: no array to make for it).
    package static func impliedTimestamp(of update: KeyedDelta) -> HLCTimestamp {
        var latest = HLCTimestamp.zero
        switch update.value {
        case .register(let register):
            // Deletions included: receivers' clocks must observe a deletion's timestamp too.
            if let write = register.lastWrite, write.timestamp > latest { latest = write.timestamp }
        case .map(let map):
            for entries in map.dottedEntries.values {
                for entry in entries where entry.write.timestamp > latest { latest = entry.write.timestamp }
            }
        default:
            break
        }
        return latest
    }

    /// The bytes a record of one write (`sequence` by `origin`) spends before its key: origin,
    /// sequence and the flags byte (no span, no timestamp beyond its payload's, no key count).
    package static func singleWriteHeaderByteCount(origin: ReplicaID, sequence: UInt64) -> Int {
        varintByteCount(origin.rawValue) + varintByteCount(sequence) + 1
    }

    // origin firstSequence span flags [timestamp] updates(count (key value)*)
    static func encodeFields(
        origin: ReplicaID, firstSequence: UInt64, lastSequence: UInt64, timestamp: HLCTimestamp,
        requestsAcknowledgement: Bool, updates: [KeyedDelta], to writer: inout ByteWriter
    ) {
        writer.writeVarint(origin.rawValue)
        writer.writeVarint(firstSequence)
        // flags: bit 0 acknowledgement requested, bit 1 timestamp present (only when it is not
        // the one the LWW payloads imply), bit 2 a group (span follows), bit 3 several keys
        // (count follows).
        let hasTimestamp = timestamp != impliedTimestamp(of: updates)
        let isGroup = lastSequence != firstSequence
        let hasSeveralKeys = updates.count != 1
        writer.writeByte(
            (requestsAcknowledgement ? 1 : 0) | (hasTimestamp ? 2 : 0) | (isGroup ? 4 : 0) | (hasSeveralKeys ? 8 : 0))
        if isGroup { writer.writeVarint(lastSequence - firstSequence) }
        if hasTimestamp { PayloadCodec.writeTimestamp(timestamp, to: &writer) }
        if hasSeveralKeys { writer.writeCount(updates.count) }
        for update in updates {
            writer.writeString(update.key)
            PayloadCodec.encode(update.value, to: &writer)
        }
    }

    static func decode(from reader: inout ByteReader) throws(CodecError) -> DeltaRecord {
        let start = reader.offset
        let origin = ReplicaID(try reader.readVarint("origin"))
        let first = try reader.readVarint("first sequence")
        let flagOffset = reader.offset
        let flags = try reader.readByte("flags")
        guard flags <= 15 else { throw CodecError(.invalidValue, at: flagOffset, "unknown delta flags \(flags)") }
        var span: UInt64 = 0
        if flags & 4 != 0 {
            span = try reader.readVarint("sequence span")
            guard span > 0 else { throw CodecError(.notCanonical, at: flagOffset, "a group spanning one write") }
        }
        guard first >= 1, span < UInt64.max - first else {
            throw CodecError(.invalidValue, at: start, "sequence range starts at zero or overflows")
        }
        var explicitTimestamp: (value: HLCTimestamp, offset: Int)?
        if flags & 2 != 0 {
            let offset = reader.offset
            explicitTimestamp = (try PayloadCodec.readTimestamp(from: &reader), offset)
        }
        var count = 1
        if flags & 8 != 0 {
            let offset = reader.offset
            count = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 2, "updates")
            guard count != 1 else { throw CodecError(.notCanonical, at: offset, "a key count of one is implied") }
        }
        var updates: [KeyedDelta] = []
        updates.reserveCapacity(count)
        for _ in 0..<count {
            let offset = reader.offset
            let key = try reader.readString("key")
            if let last = updates.last, !(last.key < key) {
                throw CodecError(.notCanonical, at: offset, "delta keys are not strictly increasing")
            }
            updates.append(KeyedDelta(key: key, value: try PayloadCodec.decode(from: &reader)))
        }
        let implied = impliedTimestamp(of: updates)
        if let explicitTimestamp, explicitTimestamp.value == implied {
            throw CodecError(.notCanonical, at: explicitTimestamp.offset, "a present timestamp is the implied one")
        }
        return DeltaRecord(
            origin: origin, firstSequence: first, lastSequence: first + span, timestamp: explicitTimestamp?.value ?? implied,
            requestsAcknowledgement: flags & 1 != 0, updates: updates)
    }

    public static func == (lhs: DeltaRecord, rhs: DeltaRecord) -> Bool {
        lhs === rhs
            || (lhs.origin == rhs.origin && lhs.firstSequence == rhs.firstSequence
                && lhs.lastSequence == rhs.lastSequence
                && lhs.timestamp == rhs.timestamp && lhs.requestsAcknowledgement == rhs.requestsAcknowledgement
                && lhs.updates == rhs.updates)
    }

    public var description: String { "Δ\(origin):\(firstSequence)…\(lastSequence)" }
}

/// An origin's sequence range, as announced (IHAVE) or requested (GRAFT).
public struct SequenceRange: Sendable, Hashable {
    /// The origin.
    public var origin: ReplicaID
    /// First sequence number (inclusive).
    public var first: UInt64
    /// Last sequence number (inclusive).
    public var last: UInt64

    /// Creates a range.
    public init(origin: ReplicaID, first: UInt64, last: UInt64) {
        self.origin = origin
        self.first = first
        self.last = last
    }
}

/// Sequencing of pushed batches on one sender→receiver link (causal order without
/// per-delta vectors).
///
/// The sender numbers its batches to a peer within an epoch. Batch 0 of an epoch carries
/// the sender's vector as of its previous flush (plus anything it delivered outside
/// links since then); every later batch carries only the entries the sender delivered
/// outside links since the previous batch (repairs and snapshots, which are rare). The
/// receiver processes a link's batches in sequence order and a batch only once its
/// `dependencies` are delivered; by induction everything the sender had delivered
/// before a record of the batch is then delivered at the receiver, so records are
/// delivered after their causal past (the FIFO-tree argument of Saturn, Bravo et al.
/// 2017, made robust to loss by the epoch restart). Epoch 0 marks a standalone batch
/// (classic mode) whose `dependencies` are a full vector.
public struct LinkHeader: Sendable, Hashable {
    /// The link epoch (0: standalone batch).
    public var epoch: UInt64
    /// The batch's position in the epoch, from 0.
    public var sequence: UInt64
    /// Entries that must be delivered before the batch.
    public var dependencies: [VersionVector.Entry]

    /// Creates a header.
    public init(epoch: UInt64, sequence: UInt64, dependencies: [VersionVector.Entry]) {
        self.epoch = epoch
        self.sequence = sequence
        self.dependencies = dependencies
    }
}

/// A protocol message between two replicas.
public enum ReplicationMessage: Sendable, Equatable {
    /// Deltas of one domain: a push batch on a sequenced link (`link` set), or a repair in the
    /// sender's delivery order starting from the receiver's vector (`link` nil).
    case deltas(domain: String, link: LinkHeader?, records: [DeltaRecord])
    /// Lazy announcement: "I delivered `origin` up to `last`" (the range's `first` is unused: 1).
    case announce(domain: String, ranges: [SequenceRange])
    /// Plumtree GRAFT: asks the receiver to send everything the sender's `vector` lacks and to
    /// restart its link to the sender at an epoch of at least `minimumEpoch`; with `joinsTree`,
    /// also to make the link eager (a replica cut off from the tree rejoins it).
    case graft(domain: String, vector: VersionVector, minimumEpoch: UInt64, joinsTree: Bool)
    /// Asks the receiver to stop pushing eagerly on this link (Plumtree PRUNE).
    case prune
    /// Anti-entropy digest: the sender's vector per domain. A reply is not replied to.
    case digest(isReply: Bool, vectors: [DomainVector])
    /// One chunk of a snapshot: objects of a domain and the vector the whole snapshot covers.
    /// (Boxed, like `readReply`: rare and large, they would widen every message and action.)
    indirect case snapshot(SnapshotChunk)
    /// "I delivered your writes of `domain` up to `sequence`" (for write concerns).
    case acknowledge(domain: String, sequence: UInt64)
    /// Asks for the receiver's state of one key (a read from `R` replicas).
    case readRequest(id: UInt64, domain: String, key: String)
    /// The answer to a read request (`nil` when the key is absent).
    indirect case readReply(id: UInt64, domain: String, key: String, value: ObjectValue?)
    /// The tree root's per-round beacon, flooded on eager links: the first copy fixes the
    /// receiver's parent, a later copy of the same round prunes the link it came on.
    case beacon(root: ReplicaID, round: UInt64)

    /// A short name for traffic accounting.
    public var kind: String { Self.kindNames[kindNumber] }

    /// Every `kind`, indexed by `kindNumber` (so traffic can be counted in an array, not a
    /// dictionary hashed by name for every message).
    package static let kindNames = [
        "push", "repair", "ihave", "graft", "prune", "digest", "snapshot", "ack", "read-request", "read-reply", "beacon",
    ]

    /// The position of `kind` in `kindNames`.
    package var kindNumber: Int {
        switch self {
        case .deltas(_, .some, _): 0
        case .deltas(_, .none, _): 1
        case .announce: 2
        case .graft: 3
        case .prune: 4
        case .digest: 5
        case .snapshot: 6
        case .acknowledge: 7
        case .readRequest: 8
        case .readReply: 9
        case .beacon: 10
        }
    }
}

/// A domain's name and vector, as carried by a digest.
public struct DomainVector: Sendable, Equatable {
    /// The domain.
    public var domain: String
    /// Its delivered vector at the sender.
    public var vector: VersionVector

    /// Creates a pair.
    public init(domain: String, vector: VersionVector) {
        self.domain = domain
        self.vector = vector
    }
}

/// One chunk of a snapshot.
public struct SnapshotChunk: Sendable, Equatable {
    /// The domain.
    public var domain: String
    /// Identifies the snapshot at its sender (chunks of different snapshots never mix).
    public var identifier: UInt64
    /// This chunk's index, from 0.
    public var index: Int
    /// How many chunks the snapshot has.
    public var total: Int
    /// The vector the whole snapshot covers.
    public var vector: VersionVector
    /// Objects in this chunk, sorted by key.
    public var objects: [KeyedDelta] {
        didSet { objectsByteCount = Self.encodedByteCount(of: objects) }
    }
    /// The encoded size of `objects` (keys and payloads, without their count), kept with them:
    /// a chunk is sized by its sender, its receiver (against the staging bound) and a simulator,
    /// and encoding thousands of objects to measure them cost a quarter of a large simulation.
    private(set) var objectsByteCount: Int

    /// Creates a chunk.
    public init(domain: String, identifier: UInt64, index: Int, total: Int, vector: VersionVector, objects: [KeyedDelta]) {
        self.init(
            domain: domain, identifier: identifier, index: index, total: total, vector: vector, objects: objects,
            objectsByteCount: Self.encodedByteCount(of: objects))
    }

    /// Creates a chunk whose objects' encoded size is already known (measured by the sender
    /// while it split the snapshot, or by the decoder).
    init(
        domain: String, identifier: UInt64, index: Int, total: Int, vector: VersionVector, objects: [KeyedDelta],
        objectsByteCount: Int
    ) {
        self.domain = domain
        self.identifier = identifier
        self.index = index
        self.total = total
        self.vector = vector
        self.objects = objects
        self.objectsByteCount = objectsByteCount
    }

    static func encodedByteCount(of objects: [KeyedDelta]) -> Int {
        objects.reduce(0) { $0 + $1.encodedByteCount }
    }
}

extension ReplicationMessage {
    /// The format version of protocol messages.
    public static let formatVersion: UInt8 = 1

    /// Encodes the message (version byte, kind byte, body).
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        encode(to: &writer)
        return writer.bytes
    }

    /// The size of `encoded()`, computed without encoding: records and snapshot chunks keep their
    /// payloads' size, and the simulator counts the bytes of every message it carries (a digest
    /// holds a vector of every writer). Reads, which are rare, are encoded to be measured.
    public var encodedByteCount: Int {
        // Version and kind bytes.
        let prefix = 2
        switch self {
        case .deltas(let domain, let link, let records):
            var total = prefix + Self.stringByteCount(domain) + Self.linkByteCount(link) + Self.countByteCount(records.count)
            for record in records { total += record.encodedByteCount }
            return total
        case .announce(let domain, let ranges):
            var total = prefix + Self.stringByteCount(domain) + Self.countByteCount(ranges.count)
            for range in ranges {
                total += varintByteCount(range.origin.rawValue) + varintByteCount(range.first)
                    + varintByteCount(range.last - range.first)
            }
            return total
        case .graft(let domain, let vector, let minimumEpoch, _):
            return prefix + Self.stringByteCount(domain) + Self.countsByteCount(vector.entries)
                + varintByteCount(minimumEpoch) + 1
        case .prune:
            return prefix
        case .digest(_, let vectors):
            var total = prefix + 1 + Self.countByteCount(vectors.count)
            for entry in vectors { total += Self.stringByteCount(entry.domain) + Self.countsByteCount(entry.vector.entries) }
            return total
        case .acknowledge(let domain, let sequence):
            return prefix + Self.stringByteCount(domain) + varintByteCount(sequence)
        case .beacon(let root, let round):
            return prefix + varintByteCount(root.rawValue) + varintByteCount(round)
        case .snapshot(let chunk):
            return prefix + Self.stringByteCount(chunk.domain) + varintByteCount(chunk.identifier)
                + Self.countByteCount(chunk.index) + Self.countByteCount(chunk.total)
                + Self.countsByteCount(chunk.vector.entries) + Self.countByteCount(chunk.objects.count)
                + chunk.objectsByteCount
        case .readRequest, .readReply:
            return encoded().count
        }
    }

    static func countByteCount(_ count: Int) -> Int { varintByteCount(UInt64(count)) }

    static func stringByteCount(_ string: String) -> Int {
        let length = string.utf8.count
        return countByteCount(length) + length
    }

    /// The size of `writeCounts`: a count, then (replica, counter) varints.
    static func countsByteCount(_ entries: [VersionVector.Entry]) -> Int {
        var total = countByteCount(entries.count)
        for entry in entries { total += varintByteCount(entry.replica.rawValue) + varintByteCount(entry.counter) }
        return total
    }

    /// The size of `writeLink`.
    static func linkByteCount(_ link: LinkHeader?) -> Int {
        guard let link else { return 1 }
        return 1 + varintByteCount(link.epoch) + varintByteCount(link.sequence) + countsByteCount(link.dependencies)
    }

    /// Appends the encoding.
    public func encode(to writer: inout ByteWriter) {
        writer.writeByte(Self.formatVersion)
        switch self {
        case .deltas(let domain, let link, let records):
            writer.writeByte(1)
            writer.writeString(domain)
            Self.writeLink(link, to: &writer)
            writer.writeCount(records.count)
            for record in records { record.encode(to: &writer) }
        case .announce(let domain, let ranges):
            writer.writeByte(2)
            writer.writeString(domain)
            Self.writeRanges(ranges, to: &writer)
        case .graft(let domain, let vector, let minimumEpoch, let joinsTree):
            writer.writeByte(3)
            writer.writeString(domain)
            PayloadCodec.writeVector(vector, to: &writer)
            writer.writeVarint(minimumEpoch)
            writer.writeByte(joinsTree ? 1 : 0)
        case .prune:
            writer.writeByte(4)
        case .digest(let isReply, let vectors):
            writer.writeByte(5)
            writer.writeByte(isReply ? 1 : 0)
            writer.writeCount(vectors.count)
            for entry in vectors {
                writer.writeString(entry.domain)
                PayloadCodec.writeVector(entry.vector, to: &writer)
            }
        case .snapshot(let chunk):
            writer.writeByte(6)
            writer.writeString(chunk.domain)
            writer.writeVarint(chunk.identifier)
            writer.writeCount(chunk.index)
            writer.writeCount(chunk.total)
            PayloadCodec.writeVector(chunk.vector, to: &writer)
            writer.writeCount(chunk.objects.count)
            for object in chunk.objects {
                writer.writeString(object.key)
                PayloadCodec.encode(object.value, to: &writer)
            }
        case .acknowledge(let domain, let sequence):
            writer.writeByte(7)
            writer.writeString(domain)
            writer.writeVarint(sequence)
        case .readRequest(let id, let domain, let key):
            writer.writeByte(8)
            writer.writeVarint(id)
            writer.writeString(domain)
            writer.writeString(key)
        case .readReply(let id, let domain, let key, let value):
            writer.writeByte(9)
            writer.writeVarint(id)
            writer.writeString(domain)
            writer.writeString(key)
            if let value {
                writer.writeByte(1)
                PayloadCodec.encode(value, to: &writer)
            } else {
                writer.writeByte(0)
            }
        case .beacon(let root, let round):
            writer.writeByte(10)
            writer.writeVarint(root.rawValue)
            writer.writeVarint(round)
        }
    }

    /// Decodes one message that fills `bytes` exactly.
    ///
    /// - Throws: `CodecError` for anything truncated, oversized, non-canonical or invalid.
    public static func decode(_ bytes: [UInt8], limits: CodecLimits = .default) throws(CodecError) -> ReplicationMessage {
        var reader = try ByteReader(bytes, limits: limits)
        let version = try reader.readByte("message version")
        guard version == formatVersion else {
            throw CodecError(.unsupportedVersion, at: 0, "message version \(version) is not \(formatVersion)")
        }
        let kindOffset = reader.offset
        let kind = try reader.readByte("message kind")
        let message: ReplicationMessage
        switch kind {
        case 1:
            let domain = try reader.readString("domain")
            let link = try readLink(from: &reader)
            let count = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 9, "records")
            var records: [DeltaRecord] = []
            records.reserveCapacity(count)
            for _ in 0..<count { records.append(try DeltaRecord.decode(from: &reader)) }
            message = .deltas(domain: domain, link: link, records: records)
        case 2:
            let domain = try reader.readString("domain")
            message = .announce(domain: domain, ranges: try readRanges(from: &reader))
        case 3:
            let domain = try reader.readString("domain")
            let vector = try PayloadCodec.readVector(from: &reader)
            let minimumEpoch = try reader.readVarint("minimum epoch")
            let flagOffset = reader.offset
            let flag = try reader.readByte("joins-tree flag")
            guard flag <= 1 else { throw CodecError(.invalidValue, at: flagOffset, "joins-tree flag \(flag)") }
            message = .graft(domain: domain, vector: vector, minimumEpoch: minimumEpoch, joinsTree: flag == 1)
        case 4:
            message = .prune
        case 5:
            let flagOffset = reader.offset
            let flag = try reader.readByte("reply flag")
            guard flag <= 1 else { throw CodecError(.invalidValue, at: flagOffset, "reply flag \(flag)") }
            let count = try reader.readCount(limit: 1 << 16, minimumItemBytes: 2, "digest domains")
            var vectors: [DomainVector] = []
            for _ in 0..<count {
                let domain = try reader.readString("domain")
                vectors.append(DomainVector(domain: domain, vector: try PayloadCodec.readVector(from: &reader)))
            }
            message = .digest(isReply: flag == 1, vectors: vectors)
        case 6:
            let domain = try reader.readString("domain")
            let identifier = try reader.readVarint("snapshot id")
            let indexOffset = reader.offset
            let index = try reader.readCount(limit: 1 << 24, minimumItemBytes: 0, "chunk index")
            let total = try reader.readCount(limit: 1 << 24, minimumItemBytes: 0, "chunk total")
            guard index < total else {
                throw CodecError(.invalidValue, at: indexOffset, "chunk index \(index) not below total \(total)")
            }
            let vector = try PayloadCodec.readVector(from: &reader)
            let count = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 2, "objects")
            let objectsOffset = reader.offset
            var objects: [KeyedDelta] = []
            for _ in 0..<count {
                let offset = reader.offset
                let key = try reader.readString("key")
                if let last = objects.last, !(last.key < key) {
                    throw CodecError(.notCanonical, at: offset, "snapshot keys are not strictly increasing")
                }
                objects.append(KeyedDelta(key: key, value: try PayloadCodec.decode(from: &reader)))
            }
            message = .snapshot(
                SnapshotChunk(
                    domain: domain, identifier: identifier, index: index, total: total, vector: vector, objects: objects,
                    objectsByteCount: reader.offset - objectsOffset))
        case 7:
            let domain = try reader.readString("domain")
            message = .acknowledge(domain: domain, sequence: try reader.readVarint("sequence"))
        case 8:
            let id = try reader.readVarint("read id")
            let domain = try reader.readString("domain")
            message = .readRequest(id: id, domain: domain, key: try reader.readString("key"))
        case 9:
            let id = try reader.readVarint("read id")
            let domain = try reader.readString("domain")
            let key = try reader.readString("key")
            let presentOffset = reader.offset
            let present = try reader.readByte("presence")
            switch present {
            case 0: message = .readReply(id: id, domain: domain, key: key, value: nil)
            case 1:
                message = .readReply(id: id, domain: domain, key: key, value: try PayloadCodec.decode(from: &reader))
            default: throw CodecError(.invalidValue, at: presentOffset, "presence \(present)")
            }
        case 10:
            let root = ReplicaID(try reader.readVarint("root"))
            message = .beacon(root: root, round: try reader.readVarint("round"))
        default:
            throw CodecError(.wrongKind, at: kindOffset, "message kind \(kind) is unknown")
        }
        try reader.expectEnd()
        return message
    }

    // link = 0x00 | 0x01 epoch sequence vector(dependencies)
    static func writeLink(_ link: LinkHeader?, to writer: inout ByteWriter) {
        guard let link else {
            writer.writeByte(0)
            return
        }
        writer.writeByte(1)
        writer.writeVarint(link.epoch)
        writer.writeVarint(link.sequence)
        PayloadCodec.writeCounts(link.dependencies, to: &writer)
    }

    static func readLink(from reader: inout ByteReader) throws(CodecError) -> LinkHeader? {
        let offset = reader.offset
        switch try reader.readByte("link presence") {
        case 0: return nil
        case 1:
            let epoch = try reader.readVarint("epoch")
            let sequence = try reader.readVarint("batch sequence")
            let dependencies = try PayloadCodec.readVector(from: &reader).entries
            return LinkHeader(epoch: epoch, sequence: sequence, dependencies: dependencies)
        default: throw CodecError(.invalidValue, at: offset, "link presence byte is not 0 or 1")
        }
    }

    static func writeRanges(_ ranges: [SequenceRange], to writer: inout ByteWriter) {
        writer.writeCount(ranges.count)
        for range in ranges {
            writer.writeVarint(range.origin.rawValue)
            writer.writeVarint(range.first)
            writer.writeVarint(range.last - range.first)
        }
    }

    static func readRanges(from reader: inout ByteReader) throws(CodecError) -> [SequenceRange] {
        let count = try reader.readCount(limit: reader.limits.maximumReplicas, minimumItemBytes: 3, "ranges")
        var ranges: [SequenceRange] = []
        for _ in 0..<count {
            let offset = reader.offset
            let origin = ReplicaID(try reader.readVarint("origin"))
            let first = try reader.readVarint("first")
            let span = try reader.readVarint("span")
            guard first >= 1, span < UInt64.max - first else {
                throw CodecError(.invalidValue, at: offset, "range starts at zero or overflows")
            }
            ranges.append(SequenceRange(origin: origin, first: first, last: first + span))
        }
        return ranges
    }
}
