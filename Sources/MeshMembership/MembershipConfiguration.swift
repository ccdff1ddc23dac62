/// Every bound and tunable of membership and failure detection, with documented defaults.
///
/// Timing follows SWIM (Das, Gupta, Motivala 2002) with Lifeguard (Dadgar, Phillips,
/// Currey 2018); the defaults are hashicorp/memberlist's LAN profile where it has one.
///
/// ### Detection bound
/// With `n` members, a crashed member is probed by each live member at least once every
/// `2(n − 1)` probe rounds (round-robin over a shuffled list), is suspected at the end of
/// that round, and is declared dead at most `maximumSuspicionTimeout(n)` later (sooner as
/// independent suspicions confirm it). Rounds last `probeInterval × (localHealth + 1)`.
///
/// ### Invariants
/// - every interval, count and bound is positive; `probeTimeoutMilliseconds < probeIntervalMilliseconds`;
/// - `maximumMessageBytes` holds `maximumPiggybackedUpdates + 1` of the largest possible records.
public struct MembershipConfiguration: Sendable, Hashable {
    /// One probe round: ping one member, wait, ask others to ping it. Default 500 ms.
    public var probeIntervalMilliseconds: UInt64 = 500
    /// How long a direct ping may go unanswered before indirect probes are sent. Default 300 ms.
    public var probeTimeoutMilliseconds: UInt64 = 300
    /// Members asked to ping an unresponsive target on our behalf (SWIM's k). Default 3.
    public var indirectProbes: Int = 3
    /// Suspicion lasts at least `suspicionMultiplier × max(1, log10 n) × probeInterval`
    /// (memberlist's `SuspicionMult`). Default 4.
    public var suspicionMultiplier: Int = 4
    /// A fresh suspicion starts at this multiple of the minimum and shrinks towards the
    /// minimum as independent members confirm it (Lifeguard's dogpile). Default 6.
    public var suspicionMaximumMultiplier: Int = 6
    /// Floor of the suspicion timeout whatever the group size. Default 1,000 ms.
    public var minimumSuspicionTimeoutMilliseconds: UInt64 = 1_000
    /// Ceiling of the suspicion timeout whatever the group size. Default 60,000 ms.
    public var maximumSuspicionTimeoutMilliseconds: UInt64 = 60_000
    /// Lifeguard's local health multiplier saturates here; probe rounds and timeouts are
    /// scaled by `localHealth + 1`. Default 8.
    public var maximumLocalHealth: Int = 8
    /// Members sent pending updates in a gossip message each probe round. Default 3.
    public var gossipFanout: Int = 3
    /// Most updates piggybacked on one message. Default 8.
    public var maximumPiggybackedUpdates: Int = 8
    /// An update is piggybacked `retransmitMultiplier × ceil(log10(n + 1))` times. Default 4.
    public var retransmitMultiplier: Int = 4
    /// Most members held, this one and `left` tombstones included; further members named by
    /// remote input are refused and counted. Default 1,024.
    public var maximumMembers: Int = 1_024
    /// A dead member is kept (and re-dialled) this long before it is forgotten. Default 24 h.
    public var deadMemberRetentionMilliseconds: UInt64 = 86_400_000
    /// How often dead members and unanswered seed addresses are re-dialled and sent our
    /// state, so a partitioned member rejoins by itself (memberlist issue #222). Default 2,000 ms.
    public var reconnectIntervalMilliseconds: UInt64 = 2_000
    /// Most dead members and seeds re-dialled per reconnect round (round-robin). Default 8.
    public var maximumReconnectsPerRound: Int = 8
    /// A full-state exchange (push-pull) with one random live member this often. Default 10,000 ms.
    public var pushPullIntervalMilliseconds: UInt64 = 10_000
    /// Most indirect probes relayed for others at once. Default 64.
    public var maximumRelayedProbes: Int = 64
    /// Most bytes in one encoded message, sent or accepted (under the transport's 64 KiB
    /// frame); a full state larger than this is split across several sync messages. Default 60,000.
    public var maximumMessageBytes: Int = 60_000

    /// The defaults listed on each property.
    public init() {}

    /// The defaults.
    public static let `default` = MembershipConfiguration()

    /// Traps on a configuration that cannot work (our own invariant, never remote input).
    func validate() {
        precondition(probeIntervalMilliseconds > 0 && probeTimeoutMilliseconds > 0)
        precondition(
            probeTimeoutMilliseconds < probeIntervalMilliseconds, "the probe timeout must end within the round")
        precondition(indirectProbes >= 0 && suspicionMultiplier >= 1 && suspicionMaximumMultiplier >= 1)
        precondition(minimumSuspicionTimeoutMilliseconds > 0)
        precondition(maximumSuspicionTimeoutMilliseconds >= minimumSuspicionTimeoutMilliseconds)
        precondition(maximumLocalHealth >= 0 && gossipFanout >= 0 && maximumPiggybackedUpdates >= 1)
        precondition(retransmitMultiplier >= 1 && maximumMembers >= 2 && maximumRelayedProbes >= 1)
        precondition(deadMemberRetentionMilliseconds > 0 && reconnectIntervalMilliseconds > 0)
        precondition(maximumReconnectsPerRound >= 1 && pushPullIntervalMilliseconds > 0)
        precondition(
            maximumMessageBytes >= (maximumPiggybackedUpdates + 1) * MembershipMessage.maximumRecordBytes + 64,
            "a message must hold a full piggyback and a sync must hold at least one record")
    }
}
