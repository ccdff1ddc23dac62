import MeshCRDT

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
    /// The record delivered: the write itself for `.local`, the remote record for `.remote`, `nil` for
    /// snapshots (a shell that persists deliveries checkpoints the whole state after a snapshot).
    public let record: DeltaRecord?

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
        self.record = record
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
    /// The encoded size of the write's delta alone (key and CRDT delta, no protocol metadata).
    public let deltaByteCount: Int
    /// The encoded size of the write as a protocol delta record of its own (origin, sequence,
    /// amortised dependencies, key, CRDT delta): what every other replica must receive.
    public let recordByteCount: Int
    /// The actions to carry out (the local delivery, and the acknowledgement for `.local`).
    public let actions: [ReplicationAction]
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
