/// The two admission factors of a StateMesh node: an allow-list of peer identities and the cluster
/// pre-shared keys (PSKs) of the accepted epochs.
///
/// Key rotation with no downtime (install, use, remove): install the new epoch on every node, then make
/// it the dialing epoch everywhere, then remove the old epoch. Sessions already established keep their
/// keys (the PSK only enters the handshake), so rotation never drops a connection or a message.
public struct AdmissionPolicy: Sendable {
    /// Identities allowed to complete a handshake with this node.
    public var allowedPeers: Set<NodeID>
    /// Accepted cluster keys by epoch.
    public private(set) var clusterKeys: [UInt32: [UInt8]]
    /// The epoch this node announces and uses when it dials; must be installed.
    public private(set) var dialingEpoch: UInt32

    /// Creates a policy with one cluster key epoch, used for dialing.
    ///
    /// Throws `.invalidArgument` unless `clusterKey` is 32 bytes.
    public init(allowedPeers: Set<NodeID>, epoch: UInt32, clusterKey: [UInt8]) throws {
        guard clusterKey.count == 32 else { throw SecurityError(.invalidArgument, "cluster keys must be 32 bytes") }
        self.allowedPeers = allowedPeers
        self.clusterKeys = [epoch: clusterKey]
        self.dialingEpoch = epoch
    }

    /// Accepts `clusterKey` for `epoch` (replacing any key of that epoch) without using it for dialing yet.
    public mutating func installClusterKey(_ clusterKey: [UInt8], epoch: UInt32) throws {
        guard clusterKey.count == 32 else { throw SecurityError(.invalidArgument, "cluster keys must be 32 bytes") }
        clusterKeys[epoch] = clusterKey
    }

    /// Dials with `epoch` from now on; throws `.invalidArgument` if that epoch is not installed.
    public mutating func useClusterKey(epoch: UInt32) throws {
        guard clusterKeys[epoch] != nil else { throw SecurityError(.invalidArgument, "epoch \(epoch) not installed") }
        dialingEpoch = epoch
    }

    /// Stops accepting `epoch`; throws `.invalidArgument` when it is the dialing epoch.
    public mutating func removeClusterKey(epoch: UInt32) throws {
        guard epoch != dialingEpoch else {
            throw SecurityError(.invalidArgument, "cannot remove the dialing epoch \(epoch); use another first")
        }
        clusterKeys[epoch] = nil
    }

    /// The cluster key of an accepted epoch.
    public func clusterKey(epoch: UInt32) -> [UInt8]? { clusterKeys[epoch] }
}

/// Every bound of the security layer in one place, with documented defaults.
public struct SecurityLimits: Sendable {
    /// Largest frame body on the wire (header + ciphertext + tag, excluding the 4-byte length prefix). Default and maximum 64 KiB.
    public var maxFrameByteCount: Int = 65536
    /// Largest message after reassembling fragments. Default 1 MiB.
    public var maxMessageByteCount: Int = 1 << 20
    /// A handshake (including the responder's confirmation) must finish within this. Default 5 s.
    public var handshakeTimeout: Duration = .seconds(5)
    /// Handshakes in progress at once per node (both directions). Default 128.
    public var maxConcurrentHandshakes: Int = 128
    /// Sustained handshake attempts per second per remote address (token bucket refill). Default 20.
    public var handshakesPerSecondPerAddress: Double = 20
    /// Token bucket size per remote address. Default 40.
    public var handshakeBurstPerAddress: Int = 40
    /// Remote addresses tracked by the rate limiter; beyond this, idle buckets are evicted. Default 4096.
    public var maxTrackedAddresses: Int = 4096
    /// A sender rekeys after this many frames under one key. Default 2^16.
    public var rekeyAfterFrames: UInt64 = 1 << 16
    /// A sender rekeys when its key is older than this. Default 120 s.
    public var rekeyAfterDuration: Duration = .seconds(120)

    /// The defaults above.
    public init() {}

    /// Throws `.invalidArgument` when a bound is out of range (e.g. frames over 64 KiB or under 64 bytes).
    public func validate() throws {
        guard (64...65536).contains(maxFrameByteCount) else {
            throw SecurityError(.invalidArgument, "maxFrameByteCount must be in 64...65536")
        }
        guard maxMessageByteCount >= 1, maxConcurrentHandshakes >= 1, handshakeBurstPerAddress >= 1,
            handshakesPerSecondPerAddress > 0, maxTrackedAddresses >= 1, rekeyAfterFrames >= 1,
            handshakeTimeout > .zero, rekeyAfterDuration > .zero
        else {
            throw SecurityError(.invalidArgument, "limits must be positive")
        }
    }
}

/// Sans-IO admission control for handshakes: a cap on concurrent handshakes and a per-address token bucket.
///
/// Call `admit(address:now:)` when a connection appears (before any handshake state is allocated)
/// and `finish()` exactly once when that handshake ends, however it ends.
public struct HandshakeGate: Sendable {
    private struct Bucket: Sendable {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let limits: SecurityLimits
    private var buckets: [String: Bucket] = [:]
    /// Handshakes admitted and not yet finished.
    public private(set) var activeCount = 0

    /// Creates a gate enforcing `limits`.
    public init(limits: SecurityLimits) {
        self.limits = limits
    }

    private func refilled(_ bucket: Bucket, now: ContinuousClock.Instant) -> Bucket {
        let elapsed = bucket.updated.duration(to: now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let tokens = min(Double(limits.handshakeBurstPerAddress), bucket.tokens + max(0, seconds) * limits.handshakesPerSecondPerAddress)
        return Bucket(tokens: tokens, updated: max(bucket.updated, now))
    }

    /// Admits one handshake from `address` (a host, without port) or throws `.tooManyHandshakes` / `.rateLimited`.
    public mutating func admit(address: String, now: ContinuousClock.Instant) throws {
        guard activeCount < limits.maxConcurrentHandshakes else {
            throw SecurityError(.tooManyHandshakes, "\(activeCount) handshakes already in progress")
        }
        var bucket = buckets[address].map { refilled($0, now: now) }
            ?? Bucket(tokens: Double(limits.handshakeBurstPerAddress), updated: now)
        guard bucket.tokens >= 1 else {
            buckets[address] = bucket
            throw SecurityError(.rateLimited, "handshake rate from \(address) exceeded")
        }
        bucket.tokens -= 1
        if buckets[address] == nil && buckets.count >= limits.maxTrackedAddresses {
            // Evict buckets that have refilled completely: forgetting them changes nothing.
            let full = Double(limits.handshakeBurstPerAddress)
            buckets = buckets.filter { refilled($0.value, now: now).tokens < full }
            guard buckets.count < limits.maxTrackedAddresses else {
                throw SecurityError(.rateLimited, "too many distinct addresses handshaking")
            }
        }
        buckets[address] = bucket
        activeCount += 1
    }

    /// Releases a slot taken by a successful `admit`.
    public mutating func finish() {
        activeCount = max(0, activeCount - 1)
    }

    /// Number of addresses currently tracked (bounded by `maxTrackedAddresses`).
    public var trackedAddressCount: Int { buckets.count }
}
