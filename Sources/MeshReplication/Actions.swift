import MeshCRDT
import MeshCodec

/// What the shell must do after an event: the state machine's only output.
public enum ReplicationAction: Sendable {
    /// Send `message` to `peer` (best effort; loss is repaired by the protocol).
    case send(ReplicationMessage, to: PeerID)
    /// Deltas became visible in a domain (a local write, a remote delta, or a snapshot).
    case deliver(Delivery)
    /// A write met its write concern.
    case acknowledge(WriteID)
    /// A read from `R` replicas completed.
    indirect case completeRead(ReadResult)
    /// Something went wrong; the state machine stayed consistent.
    /// (Boxed, like `completeRead`: rare and large, they would widen every action, and a step
    /// returns one action per delivery.)
    indirect case fail(ReplicationError)
}

/// A contiguous run of one origin's writes that became visible in a domain.
public struct Delivery: Sendable, Hashable {
    /// How it arrived.
    public enum Source: UInt8, Sendable, Hashable {
        /// A local write.
        case local
        /// A delta from a peer.
        case remote
        /// A completed snapshot.
        case snapshot
    }

    /// The domain.
    public let domain: String
    /// The origin of the writes.
    public let origin: ReplicaID
    /// First sequence number newly delivered.
    public let firstSequence: UInt64
    /// Last sequence number newly delivered.
    public let lastSequence: UInt64
    /// How it arrived.
    public let source: Source
    /// What was delivered: a record, or a local write whose record is made only if asked for.
    private let content: Content

    private enum Content: Sendable {
        case record(DeltaRecord?)
        case write(LocalWrite)
        /// A snapshot's objects that changed this replica's state, as received.
        case snapshot([KeyedDelta])
    }

    /// Creates a delivery.
    public init(
        domain: String, origin: ReplicaID, firstSequence: UInt64, lastSequence: UInt64, source: Source,
        record: DeltaRecord?
    ) {
        self.domain = domain
        self.origin = origin
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.source = source
        self.content = .record(record)
    }

    /// The delivery of this replica's write `sequence`, which carries the write rather than its
    /// record: a write that joins its open delta-group never needs a record of its own, and a shell
    /// journals it from `localWrite`.
    init(localWrite update: KeyedDelta, sequence: UInt64, requestsAcknowledgement: Bool, domain: String, origin: ReplicaID) {
        self.domain = domain
        self.origin = origin
        self.firstSequence = sequence
        self.lastSequence = sequence
        self.source = .local
        self.content = .write(LocalWrite(update: update, requestsAcknowledgement: requestsAcknowledgement))
    }

    /// The delivery of a completed snapshot that advanced `origin` from `firstSequence` to
    /// `lastSequence`, with the snapshot's objects that changed this replica's state (`snapshotUpdates`).
    init(
        snapshotOf domain: String, origin: ReplicaID, firstSequence: UInt64, lastSequence: UInt64,
        changed: [KeyedDelta]
    ) {
        self.domain = domain
        self.origin = origin
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.source = .snapshot
        self.content = .snapshot(changed)
    }

    /// The record delivered: the write itself for `.local`, the remote record for `.remote`, `nil` for
    /// snapshots (a shell that persists deliveries checkpoints the whole state after a snapshot).
    ///
    /// A local write's record is made on each access (encoding it): journal from `localWrite`.
    public var record: DeltaRecord? {
        switch content {
        case .record(let record): record
        case .write(let write):
            DeltaRecord(
                origin: origin, firstSequence: firstSequence, lastSequence: lastSequence,
                timestamp: DeltaRecord.impliedTimestamp(of: write.update),
                requestsAcknowledgement: write.requestsAcknowledgement, updates: [write.update])
        case .snapshot: nil
        }
    }

    /// For a local write, the write and whether it asks receivers for an acknowledgement (what its
    /// record would hold, without making the record); `nil` for other deliveries.
    package var localWrite: (update: KeyedDelta, requestsAcknowledgement: Bool)? {
        if case .write(let write) = content { (write.update, write.requestsAcknowledgement) } else { nil }
    }

    /// Whether the delivery carries a record (everything but snapshots).
    public var hasRecord: Bool {
        switch content {
        case .record(let record): record != nil
        case .write: true
        case .snapshot: false
        }
    }

    /// The keys the delivered record changed, in its order; for a snapshot, the keys of
    /// `snapshotUpdates`. `nil` for a delivery made without a record (the public initializer).
    public var keys: [String]? {
        switch content {
        case .record(let record): record.map { $0.updates.map(\.key) }
        case .write(let write): [write.update.key]
        case .snapshot(let updates): updates.map(\.key)
        }
    }

    /// For a snapshot, its objects that changed this replica's state, each as received (the peer's
    /// whole object: the delta that was merged), in the snapshot's order; empty for other deliveries.
    /// A snapshot that advances several origins is delivered once per origin, and its changes ride on
    /// the last of those deliveries (the others carry none), so each changed key is named once.
    public var snapshotUpdates: [KeyedDelta] {
        if case .snapshot(let updates) = content { updates } else { [] }
    }

    public static func == (lhs: Delivery, rhs: Delivery) -> Bool {
        lhs.domain == rhs.domain && lhs.origin == rhs.origin && lhs.firstSequence == rhs.firstSequence
            && lhs.lastSequence == rhs.lastSequence && lhs.source == rhs.source
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(domain)
        hasher.combine(origin)
        hasher.combine(firstSequence)
        hasher.combine(lastSequence)
    }
}

/// A local write as its delivery carries it (boxed: a delivery stays as small as its record reference).
private final class LocalWrite: Sendable {
    let update: KeyedDelta
    let requestsAcknowledgement: Bool

    init(update: KeyedDelta, requestsAcknowledgement: Bool) {
        self.update = update
        self.requestsAcknowledgement = requestsAcknowledgement
    }
}

/// The result of a read from `R` replicas: the join of their states of one key.
public struct ReadResult: Sendable, Equatable {
    /// The caller's read identifier.
    public let id: UInt64
    /// The domain.
    public let domain: String
    /// The key.
    public let key: String
    /// The joined value, `nil` when no replica had the key.
    public let value: ObjectValue?
    /// How many replicas contributed (this one included).
    public let replicaCount: Int
}

/// The result of a local write.
public struct WriteOutcome: Sendable {
    /// The write's identifier (its dot in the domain).
    public let id: WriteID
    /// The HLC timestamp the write carries.
    public let timestamp: HLCTimestamp
    /// The write's local delivery (the first of `actions`).
    public let delivery: Delivery
    /// Whether the write's concern is met already (`.local`): `actions` then acknowledges it.
    public let isAcknowledged: Bool
    /// The write's key and delta.
    let update: KeyedDelta

    init(id: WriteID, timestamp: HLCTimestamp, update: KeyedDelta, delivery: Delivery, isAcknowledged: Bool) {
        self.id = id
        self.timestamp = timestamp
        self.update = update
        self.delivery = delivery
        self.isAcknowledged = isAcknowledged
    }

    /// The actions to carry out: the local delivery, and the acknowledgement when `isAcknowledged`.
    /// Made on each access; a caller on the write path takes `delivery` and `isAcknowledged` instead
    /// (an array per write was an allocation and a free per front-door write).
    public var actions: [ReplicationAction] {
        isAcknowledged ? [.deliver(delivery), .acknowledge(id)] : [.deliver(delivery)]
    }

    /// The encoded sizes of the write: its delta alone (key and CRDT delta, no protocol metadata),
    /// and the write as a protocol delta record of its own (origin, sequence, flags, key, CRDT delta:
    /// what every other replica must receive). Computed on each access, from one encoding of the
    /// delta: a caller that wants both asks once.
    public var encodedSizes: (delta: Int, record: Int) {
        var writer = ByteWriter()
        writer.writeString(update.key)
        PayloadCodec.encode(update.value, to: &writer)
        let delta = writer.count
        return (delta, DeltaRecord.singleWriteHeaderByteCount(origin: id.replica, sequence: id.sequence) + delta)
    }

    /// `encodedSizes.delta`.
    public var deltaByteCount: Int { encodedSizes.delta }

    /// `encodedSizes.record`.
    public var recordByteCount: Int { encodedSizes.record }
}

/// Counters and sizes of one domain at one replica.
public struct DomainMetrics: Sendable, Hashable {
    /// Records in the causal buffer, and their bytes.
    public var bufferedCount: Int
    public var bufferedBytes: Int
    /// Records in the delta log, and their bytes.
    public var logCount: Int
    public var logBytes: Int
    /// Records evicted from the log at its cap (not at stability).
    public var logEvictions: Int
    /// Received records that were already delivered or buffered.
    public var duplicates: Int
    /// Received records dropped because the causal buffer was full.
    public var bufferOverflows: Int
    /// Snapshots completed here.
    public var snapshotsInstalled: Int
    /// Snapshot chunks sent from here.
    public var snapshotChunksSent: Int
    /// The stable vector (what every known replica delivered).
    public var stable: VersionVector
}
