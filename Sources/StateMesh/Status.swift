import MeshCRDT
import MeshMembership
import MeshReplication

/// A node's view of the mesh at one moment, for people (`mesh status`) and tools (`--json`).
public struct NodeStatus: Sendable, Codable, Hashable {
    /// One peer as this node sees it.
    public struct Peer: Sendable, Codable, Hashable {
        /// The peer's node ID: the first 8 bytes of the SHA-256 of its public key in hex, as in logs
        /// (`"\(nodeID)"` of a `NodeID`).
        public var nodeID: String
        /// The peer's current replica ID, once known.
        public var replicaID: UInt64?
        /// Where it listens.
        public var address: String
        /// `alive`, `suspect`, `dead` or `left`.
        public var state: String
        /// Its SWIM incarnation.
        public var incarnation: UInt64
        /// Whether an authenticated session is up.
        public var isConnected: Bool
        /// Writes this node delivered that the peer is not known to have delivered (all domains).
        public var lag: UInt64
    }

    /// One domain.
    public struct Domain: Sendable, Codable, Hashable {
        /// The domain's name.
        public var name: String
        /// Delivered version vector, replica ID → count.
        public var vector: [String: UInt64]
        /// Stable vector (delivered by every known peer).
        public var stable: [String: UInt64]
        /// Objects held.
        public var objectCount: Int
        /// Deltas waiting in the causal buffer, and their bytes.
        public var bufferedDeltas: Int
        public var bufferedBytes: Int
        /// Records in the delta log, and their bytes.
        public var logRecords: Int
        public var logBytes: Int
        /// The largest lag of any live peer in this domain (writes not known delivered there).
        public var replicationLag: UInt64
    }

    /// What this node sent since it started.
    public struct Traffic: Sendable, Codable, Hashable {
        /// Bytes sent by message kind (push, repair, ihave, graft, digest, snapshot, ack, membership, …),
        /// each message counted with its one-byte envelope, before transport framing and encryption.
        public var bytesSent: [String: UInt64] = [:]
        /// Messages sent by kind.
        public var messagesSent: [String: UInt64] = [:]
        /// Writes made on this node.
        public var localWrites: UInt64 = 0
        /// The encoded size of those writes' deltas (key and payload): `(N-1) ×` this is the lower bound
        /// of what replicating them costs.
        public var localDeltaBytes: UInt64 = 0
    }

    /// This node's ID, shortened as for peers.
    public var nodeID: String
    /// This node's replica ID (new for every wiped data directory).
    public var replicaID: UInt64
    /// The listening address.
    public var address: String
    /// Peers by node ID.
    public var peers: [Peer]
    /// Domains by name.
    public var domains: [Domain]
    /// Lifeguard local health (0 is healthy; higher means this node misses its own probes' answers).
    public var localHealth: Int
    /// `always` or `batched`.
    public var durability: String
    /// Writes waiting for their write concern.
    public var pendingWrites: Int
    /// Change subscribers.
    public var subscribers: Int
    /// What this node sent.
    public var traffic: Traffic
    /// Committed storage batches since the node started.
    public var storageCommits: Int
    /// Whether storage failed (the node then refuses writes and stops replicating until restarted).
    public var storageFailed: Bool
    /// The protocol front door (the RESP server), if one serves this node.
    public var frontDoor: FrontDoor? = nil

    /// A protocol front door's endpoint and clients.
    public struct FrontDoor: Sendable, Codable, Hashable {
        /// The protocol, e.g. `resp`.
        public var proto: String
        /// `HOST:PORT` it listens on.
        public var endpoint: String
        /// Connected clients.
        public var clients: Int
        /// Commands served since the node started.
        public var commands: UInt64

        /// Creates a front-door status.
        public init(proto: String, endpoint: String, clients: Int, commands: UInt64) {
            self.proto = proto
            self.endpoint = endpoint
            self.clients = clients
            self.commands = commands
        }
    }
}

extension NodeStatus {
    static let empty = NodeStatus(
        nodeID: "", replicaID: 0, address: "", peers: [], domains: [], localHealth: 0, durability: "",
        pendingWrites: 0, subscribers: 0, traffic: Traffic(), storageCommits: 0, storageFailed: false)
}

extension VersionVector {
    var dictionary: [String: UInt64] {
        Dictionary(uniqueKeysWithValues: entries.map { ("\($0.replica.rawValue)", $0.counter) })
    }

    /// Writes in `self` that `other` lacks.
    func excess(over other: VersionVector) -> UInt64 {
        entries.reduce(0) { total, entry in total + (entry.counter > other[entry.replica] ? entry.counter - other[entry.replica] : 0) }
    }
}
