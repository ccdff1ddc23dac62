import MeshCRDT
import MeshCodec

/// The identity of a peer replica. A node holds one `ReplicaID` for all its domains.
public typealias PeerID = ReplicaID

/// A point in (possibly skewed) physical time, in milliseconds, handed to the state
/// machine by its shell. The core never reads a clock.
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since an arbitrary epoch shared by the caller's clock.
    public var milliseconds: UInt64

    /// Creates an instant.
    @inlinable
    public init(milliseconds: UInt64) { self.milliseconds = milliseconds }

    @inlinable
    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// `self` advanced by `milliseconds`, saturating.
    @inlinable
    public func advanced(by milliseconds: UInt64) -> Instant {
        let (sum, overflow) = self.milliseconds.addingReportingOverflow(milliseconds)
        return Instant(milliseconds: overflow ? .max : sum)
    }

    public var description: String { "\(milliseconds)ms" }
}

/// A replication failure: what went wrong, in a code that can grow without breaking
/// clients, a message, and an optional underlying cause.
public struct ReplicationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The domain named by a call or a message is not replicated here.
        public static let unknownDomain = Code(name: "unknownDomain")
        /// A write or a remote delta names a key that holds an object of another type.
        public static let typeMismatch = Code(name: "typeMismatch")
        /// A message could not be decoded (the cause is a `CodecError`).
        public static let malformedMessage = Code(name: "malformedMessage")
        /// A delta or snapshot from a peer is inconsistent (e.g. claims dots this replica issues).
        public static let invalidDelta = Code(name: "invalidDelta")
        /// A remote HLC timestamp was too far ahead of local time; it was not adopted.
        public static let clockSkew = Code(name: "clockSkew")
        /// A write concern was not met in time; the write stays durable locally.
        public static let writeConcernTimeout = Code(name: "writeConcernTimeout")
        /// A read from `R` replicas did not get enough replies in time.
        public static let readTimeout = Code(name: "readTimeout")
        /// A value exceeds a configured bound (key length, replicas requested, …).
        public static let limitExceeded = Code(name: "limitExceeded")
        /// The operation does not apply to the object (e.g. a read id already in use).
        public static let invalidRequest = Code(name: "invalidRequest")

        public var description: String { name }
    }

    /// The kind of failure.
    public let code: Code
    /// What happened, for people.
    public let message: String
    /// The underlying error, if any (a `CodecError` or a `ClockError`).
    public let cause: String?
    /// The write a `.writeConcernTimeout` is about.
    public let write: WriteID?
    /// The read id a `.readTimeout` is about.
    public let readID: UInt64?

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, cause: (any Error)? = nil, write: WriteID? = nil, readID: UInt64? = nil
    ) {
        self.code = code
        self.message = message
        self.cause = cause.map { "\($0)" }
        self.write = write
        self.readID = readID
    }

    public var description: String {
        cause.map { "\(code): \(message) (cause: \($0))" } ?? "\(code): \(message)"
    }
}

/// How a domain delivers remote deltas.
public enum DomainMode: UInt8, Sendable, Hashable {
    /// Causal delivery: a delta is merged only after everything it depends on.
    case causal = 0
    /// Merge on arrival (CRDT joins converge anyway); `V` tracks what was merged
    /// contiguously and anti-entropy repairs gaps.
    case eventual = 1
}

/// How new deltas are spread.
public enum GossipStrategy: UInt8, Sendable, Hashable {
    /// Epidemic broadcast trees (Leitão, Pereira, Rodrigues 2007): eager push along
    /// a self-pruning spanning tree, lazy announcements to other peers, GRAFT on a gap.
    case plumtree = 0
    /// Classic delta-state sync (Almeida et al. 2018, algorithm 2): every flush ships
    /// the join of the deltas delivered since the last flush to `fanout` random peers,
    /// with no tree, no pruning and no announcements. Kept to measure the gain.
    case classic = 1
}

/// One causal domain a replica replicates.
public struct DomainConfiguration: Sendable, Hashable {
    /// The domain name (`DOMAIN` in `fabric://DOMAIN/PATH`).
    public var name: String
    /// Causal or eventual delivery.
    public var mode: DomainMode

    /// Creates a domain configuration.
    public init(name: String, mode: DomainMode = .causal) {
        self.name = name
        self.mode = mode
    }
}

/// Every bound and tunable of the replication core, with documented defaults.
///
/// ### Invariants
/// - every count and byte bound is positive; `maximumBatchBytes` leaves room under a 64 KiB frame.
public struct ReplicationConfiguration: Sendable, Hashable {
    /// Spreading strategy. Default `.plumtree`.
    public var strategy: GossipStrategy = .plumtree
    /// Peers pushed to eagerly at start (and, in `.classic`, per flush). Default 3.
    public var fanout: Int = 3
    /// Most eager (tree) links a replica keeps; extra eager senders are pruned. Default 6.
    public var maximumEagerPeers: Int = 6
    /// Lazy peers that get an IHAVE announcement per gossip round. Default 1.
    public var lazyFanout: Int = 1
    /// The gossip round: announcements, digest exchange, stability, timeouts. Default 100 ms.
    public var gossipIntervalMilliseconds: UInt64 = 100
    /// Records delivered more recently than this are left out of digest repairs (they are
    /// probably still in flight on the tree). Default 300 ms.
    public var repairDelayMilliseconds: UInt64 = 300
    /// A digest goes to a random peer every this many gossip rounds. Default 2.
    public var antiEntropyRounds: Int = 2
    /// How long a gap announced or detected may stay open before a GRAFT pulls it. Default 200 ms.
    public var graftTimeoutMilliseconds: UInt64 = 200
    /// Most deltas held in one domain's causal buffer. Default 4,096.
    public var maximumBufferedDeltas: Int = 4_096
    /// Most encoded bytes held in one domain's causal buffer. Default 4 MiB.
    public var maximumBufferedBytes: Int = 4 << 20
    /// Most deltas (or delta-groups) in one domain's log. Default 65,536.
    public var maximumLogDeltas: Int = 65_536
    /// Most encoded bytes in one domain's log. Default 16 MiB.
    public var maximumLogBytes: Int = 16 << 20
    /// Most deltas in one message. Default 1,024.
    public var maximumBatchDeltas: Int = 1_024
    /// Most encoded delta bytes in one message (under the 64 KiB transport frame). Default 60,000.
    public var maximumBatchBytes: Int = 60_000
    /// Most deltas sent in answer to one digest or graft (the rest waits a round). Default 4,096.
    public var maximumRepairDeltas: Int = 4_096
    /// Encoded object bytes per snapshot chunk. Default 32 KiB.
    public var snapshotChunkBytes: Int = 32 << 10
    /// Most bytes of one snapshot being received (chunks staged until complete). Default 64 MiB.
    public var maximumSnapshotBytes: Int = 64 << 20
    /// Gossip rounds before the same peer may be sent another snapshot. Default 10.
    public var snapshotCooldownRounds: UInt64 = 10
    /// Most local writes joined into one delta-group before it is flushed. Default 64.
    public var maximumGroupWrites: Int = 64
    /// Whether consecutive local writes between two flushes are joined into one
    /// delta-group (Almeida et al. 2018). Default `true`.
    public var joinsLocalWrites: Bool = true
    /// How long a write concern may wait before the write is reported not acknowledged. Default 10 s.
    public var writeConcernTimeoutMilliseconds: UInt64 = 10_000
    /// How long a read from `R` replicas may wait for replies. Default 5 s.
    public var readTimeoutMilliseconds: UInt64 = 5_000
    /// Most reads in flight. Default 1,024.
    public var maximumPendingReads: Int = 1_024
    /// Most writes waiting for their concern. Default 65,536.
    public var maximumPendingWrites: Int = 65_536
    /// Bound for remote HLC timestamps ahead of local physical time. Default 10 min.
    public var maximumClockOffsetMilliseconds: UInt64 = HybridLogicalClock.defaultMaximumForwardOffsetMilliseconds
    /// Stability (and log truncation at it) is tracked only while the membership has at most
    /// this many peers: it needs every peer's vector. Beyond it the log cap governs. Default 128.
    public var maximumStabilityPeers: Int = 128
    /// Limits for decoding messages.
    public var codecLimits: CodecLimits = .default
    /// Whether a replica takes the result another replica of this process published for merging
    /// the same record update into an identical object version, instead of merging again (and
    /// publishes its own). For many replicas in one process (the simulator): their objects share
    /// storage and each merge is done about once per process. A node, with one replica per
    /// process, gains nothing and would keep each merged object's old version alive. Default `false`.
    public var sharesMergeResults: Bool = false

    /// The defaults listed on each property.
    public init() {}

    /// The defaults.
    public static let `default` = ReplicationConfiguration()

    /// Traps on a configuration that cannot work (our own invariant, never remote input).
    func validate() {
        precondition(fanout >= 1 && maximumEagerPeers >= fanout && lazyFanout >= 0)
        precondition(gossipIntervalMilliseconds > 0 && antiEntropyRounds >= 1)
        precondition(maximumBufferedDeltas > 0 && maximumBufferedBytes > 0)
        precondition(maximumLogDeltas > 0 && maximumLogBytes > 0)
        precondition(maximumBatchDeltas > 0 && maximumBatchBytes > 0 && maximumBatchBytes <= 65_000)
        precondition(maximumRepairDeltas > 0 && snapshotChunkBytes > 0 && snapshotChunkBytes <= maximumBatchBytes)
        precondition(maximumGroupWrites >= 1 && maximumPendingReads > 0 && maximumPendingWrites > 0)
    }
}

/// How many replicas must have delivered a write before it is acknowledged.
public enum WriteConcern: Sendable, Hashable {
    /// Acknowledged once durable locally (the default).
    case local
    /// Acknowledged once `count` replicas, this one included, delivered it.
    case replicas(Int)
    /// Acknowledged once a majority of the known membership (this replica included) delivered it.
    case majority
}

/// Names one local write: the domain and the sequence number of its dot.
public struct WriteID: Hashable, Sendable, CustomStringConvertible {
    /// The domain written.
    public let domain: String
    /// The writing replica.
    public let replica: ReplicaID
    /// The write's domain-level sequence number (its dot is `(replica, sequence)`).
    public let sequence: UInt64

    /// Creates a write identifier.
    public init(domain: String, replica: ReplicaID, sequence: UInt64) {
        self.domain = domain
        self.replica = replica
        self.sequence = sequence
    }

    public var description: String { "\(domain)/\(replica):\(sequence)" }
}

/// The position of each replicated domain, by name. Every write, read and received message looks
/// its domain up; a node replicates a handful of domains, so up to `scanLimit` names are compared
/// one by one (equal short names compare as two words, and a front door passes the same string
/// each time) instead of hashing the name. More domains go through a dictionary.
struct DomainIndex: Sendable {
    static let scanLimit = 8
    private let names: [String]
    private let positions: [String: Int]

    init(_ names: [String]) {
        var positions: [String: Int] = [:]
        for (position, name) in names.enumerated() {
            precondition(positions[name] == nil, "domain \(name) configured twice")
            positions[name] = position
        }
        self.names = names
        self.positions = names.count > Self.scanLimit ? positions : [:]
    }

    subscript(name: String) -> Int? {
        guard names.count <= Self.scanLimit else { return positions[name] }
        for position in names.indices where names[position] == name { return position }
        return nil
    }
}
