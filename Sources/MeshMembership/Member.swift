import MeshCRDT

/// The identity of a member: the 32 bytes of the transport's node ID (SHA-256 of the
/// node's Ed25519 public key), so a member's identity is the identity the secure
/// transport authenticated.
public struct MemberID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// How many bytes an identifier has.
    public static let byteCount = 32

    /// The identifier's bytes (exactly `MemberID.byteCount` of them).
    public let bytes: [UInt8]

    /// Creates an identifier from the transport's node ID bytes.
    ///
    /// - Precondition: `bytes.count == MemberID.byteCount` (our own input; remote bytes go
    ///   through `init?(validating:)` or the message decoder).
    public init(bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "a member ID has \(Self.byteCount) bytes, not \(bytes.count)")
        self.bytes = bytes
    }

    /// Creates an identifier from bytes of unknown length; `nil` unless there are exactly 32.
    public init?(validating bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = Array(bytes)
    }

    /// Orders byte-wise (lexicographically), the order `members` and full-state syncs use.
    public static func < (lhs: MemberID, rhs: MemberID) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The first 8 bytes in lower-case hexadecimal (16 digits), like a short commit hash.
    public var description: String {
        var text = ""
        for byte in bytes.prefix(8) {
            text += byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }
        return text
    }
}

/// Where a member's transport listens.
public struct MemberAddress: Hashable, Sendable, CustomStringConvertible {
    /// Most UTF-8 bytes in a host name or address literal (DNS's bound).
    public static let maximumHostBytes = 255

    /// A host name or an IP address literal.
    public var host: String
    /// The TCP port, `0...65535`.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`.
    public var description: String { "\(host):\(port)" }
}

/// What the group believes about a member (SWIM, Das, Gupta, Motivala 2002).
///
/// For one incarnation the statuses are ordered `alive < suspect < dead`: a claim
/// overrides another about the same member when its incarnation is higher, or equal
/// with a later status. `left` is final and overrides everything at any incarnation.
public enum MemberStatus: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// Answers probes.
    case alive = 0
    /// Missed a probe; will be declared dead unless it refutes in time.
    case suspect = 1
    /// Declared failed; still re-dialled, so it rejoins by refuting when it reappears.
    case dead = 2
    /// Left gracefully or was decommissioned: gone for good under this identity.
    case left = 3

    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "dead"
        case .left: "left"
        }
    }
}

/// One member as the group knows it.
public struct Member: Hashable, Sendable, CustomStringConvertible {
    /// The member's identity (its transport node ID).
    public var id: MemberID
    /// The replica the member's node runs (its history of writes).
    public var replicaID: ReplicaID
    /// Where it listens.
    public var address: MemberAddress
    /// Raised only by the member itself, to refute a suspicion or death claim about it.
    public var incarnation: UInt64
    /// What the group believes.
    public var status: MemberStatus

    /// Creates a member record.
    public init(
        id: MemberID, replicaID: ReplicaID, address: MemberAddress, incarnation: UInt64 = 0,
        status: MemberStatus = .alive
    ) {
        self.id = id
        self.replicaID = replicaID
        self.address = address
        self.incarnation = incarnation
        self.status = status
    }

    /// `id status/incarnation @address`.
    public var description: String { "\(id) \(status)/\(incarnation) @\(address)" }
}
