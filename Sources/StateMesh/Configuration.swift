import MeshMembership
import MeshReplication
import MeshSecurity
import MeshStorage
import MeshTransport

/// Everything a `MeshNode` needs: identity and admission, where to listen, whom to meet,
/// where to keep its data, and the tunables of each layer (with documented defaults).
public struct MeshNodeConfiguration: Sendable {
    /// This node's long-term identity (Ed25519 key and the X25519 key bound to it).
    public var identity: NodeIdentity
    /// The allow-list of peer identities and the cluster pre-shared key(s) by epoch.
    public var admission: AdmissionPolicy
    /// Listener address (`transport.host`, `transport.port`; port 0 picks a free port), limits, backoff.
    public var transport: MeshTransportConfiguration
    /// The host other nodes should dial; defaults to `transport.host`.
    public var advertisedHost: String?
    /// Addresses to meet the mesh through (any live member will do).
    public var seeds: [MemberAddress]
    /// The directory of the SQLite database (created 0700 if missing). Wiping it gives the node a new replica ID.
    public var dataDirectory: String
    /// `.always` (default): a write is acknowledged after its commit reached the disk (commits are
    /// grouped across concurrent writes). `.batched(intervalMilliseconds:)`: acknowledged at once and
    /// committed every interval; a crash loses at most the writes of the last interval.
    public var durability: Durability
    /// The causal domains this node replicates (default: one domain named `default`).
    public var domains: [DomainConfiguration]
    /// Gossip, anti-entropy, buffer and log bounds.
    public var replication: ReplicationConfiguration
    /// Failure detection (SWIM with Lifeguard) tunables.
    public var membership: MembershipConfiguration
    /// Journaled records after which the whole state is checkpointed and the journal truncated (default 10,000),
    /// once the records journaled since the last checkpoint also add up to half of its encoded size (so a
    /// large state is not re-encoded every few thousand writes).
    public var checkpointRecordCount: Int
    /// Deliveries kept in storage as change history, so a subscriber resuming from an older position gets
    /// each missed change rather than a resynchronization (default 100,000).
    public var changeHistoryRecords: Int
    /// Events a change subscriber may have queued before it is ended with `.subscriberTooSlow` (default 65,536).
    public var maximumSubscriberBacklog: Int
    /// Change subscribers per node (default 1,024).
    public var maximumSubscribers: Int
    /// Messages queued per peer before new ones are dropped (gossip repairs them; default 8,192).
    public var maximumOutboundMessagesPerPeer: Int
    /// Where the read-only JSON status endpoint listens (`nil`, the default: no endpoint; port 0 picks one).
    public var statusEndpoint: MemberAddress?

    /// A configuration with defaults for everything but identity, admission and data directory.
    public init(identity: NodeIdentity, admission: AdmissionPolicy, dataDirectory: String) {
        self.identity = identity
        self.admission = admission
        self.transport = MeshTransportConfiguration()
        self.advertisedHost = nil
        self.seeds = []
        self.dataDirectory = dataDirectory
        self.durability = .always
        self.domains = [DomainConfiguration(name: "default")]
        self.replication = .default
        self.membership = MembershipConfiguration()
        self.checkpointRecordCount = 10_000
        self.changeHistoryRecords = 100_000
        self.maximumSubscriberBacklog = 65_536
        self.maximumSubscribers = 1_024
        self.maximumOutboundMessagesPerPeer = 8_192
        self.statusEndpoint = nil
    }

    /// Checks what can be checked before starting; the error names the option.
    public func validate() throws(MeshError) {
        guard !domains.isEmpty else { throw MeshError(.invalidConfiguration, "domains: at least one domain is needed") }
        var names = Set<String>()
        for domain in domains {
            // Bytes, not characters: a "/" followed by a combining mark is one character that is not "/".
            guard !domain.name.isEmpty, !domain.name.utf8.contains(UInt8(ascii: "/")) else {
                throw MeshError(.invalidConfiguration, "domains: \"\(domain.name)\" must be non-empty without /")
            }
            guard names.insert(domain.name).inserted else {
                throw MeshError(.invalidConfiguration, "domains: \(domain.name) is listed twice")
            }
        }
        guard (0...65_535).contains(transport.port) else {
            throw MeshError(.invalidConfiguration, "transport.port: \(transport.port) is not in 0...65535")
        }
        guard !dataDirectory.isEmpty else { throw MeshError(.invalidConfiguration, "dataDirectory: empty") }
        if case .batched(let interval) = durability, interval < 1 || interval > 10_000 {
            throw MeshError(.invalidConfiguration, "durability: batched interval \(interval) ms is not in 1...10000")
        }
        guard checkpointRecordCount >= 1, changeHistoryRecords >= 0, maximumSubscriberBacklog >= 1, maximumSubscribers >= 1,
            maximumOutboundMessagesPerPeer >= 1
        else {
            throw MeshError(.invalidConfiguration, "checkpoint, subscriber and outbound bounds must be at least 1")
        }
        for seed in seeds where !(1...65_535).contains(seed.port) || seed.host.isEmpty {
            throw MeshError(.invalidConfiguration, "seeds: \(seed.host):\(seed.port) is not a valid address")
        }
    }
}

/// Options of one write.
public struct WriteOptions: Sendable, Hashable {
    /// How many replicas must deliver the write before it returns (default `.local`).
    public var concern: WriteConcern
    /// How long to wait for `concern`; the write stays durable locally when it times out.
    public var timeout: Duration

    /// Creates options.
    public init(concern: WriteConcern = .local, timeout: Duration = .seconds(10)) {
        self.concern = concern
        self.timeout = timeout
    }

    /// Local write concern.
    public static let local = WriteOptions()
}

/// Options of one read.
public struct ReadOptions: Sendable, Hashable {
    /// How many replicas (this one included) to merge the value from (default 1: local).
    public var replicas: Int
    /// How long to wait for the other replicas.
    public var timeout: Duration

    /// Creates options.
    public init(replicas: Int = 1, timeout: Duration = .seconds(5)) {
        self.replicas = replicas
        self.timeout = timeout
    }

    /// A local read.
    public static let local = ReadOptions()
}
