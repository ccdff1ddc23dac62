/// A membership input that was refused: what was wrong, in a code that can grow without
/// breaking clients, a message, and an optional underlying cause.
///
/// The state machine never traps on remote input and never reports these as actions
/// (the action enum stays small for the shell's `switch`); each one is counted in
/// `MembershipCounters` and the latest is kept in `MembershipStateMachine.lastError`.
public struct MembershipError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// A message could not be decoded (the cause is a `CodecError`).
        public static let malformedMessage = Code(name: "malformedMessage")
        /// A ping named another member as its target (e.g. a stale address).
        public static let misdirectedPing = Code(name: "misdirectedPing")
        /// The member table is at `maximumMembers`; a new member was not added.
        public static let memberTableFull = Code(name: "memberTableFull")
        /// Too many indirect probes are being relayed; a ping request was not served.
        public static let relayTableFull = Code(name: "relayTableFull")

        public var description: String { name }
    }

    /// The kind of failure.
    public let code: Code
    /// What happened, for people.
    public let message: String
    /// The underlying error, if any (a `CodecError`).
    public let cause: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { "\($0)" }
    }

    public var description: String {
        cause.map { "\(code): \(message) (cause: \($0))" } ?? "\(code): \(message)"
    }
}

/// What one member's failure detector did and refused, since it was created.
public struct MembershipCounters: Sendable, Hashable {
    /// Messages that failed to decode (ignored).
    public var malformedMessages = 0
    /// Pings addressed to another member (ignored).
    public var misdirectedPings = 0
    /// Members named by remote input that did not fit in the table (ignored).
    public var refusedMembers = 0
    /// Ping requests not relayed because `maximumRelayedProbes` were in flight.
    public var refusedRelays = 0
    /// Probe rounds started (direct pings sent).
    public var probes = 0
    /// Probe rounds that ended with no ack, direct or relayed.
    public var failedProbes = 0
    /// Ping requests sent to other members (indirect probes).
    public var indirectProbes = 0
    /// Nacks received from relays.
    public var nacksReceived = 0
    /// Times this member raised its incarnation to refute a claim about itself.
    public var refutations = 0
    /// Members this one declared dead when their suspicion expired.
    public var declaredDead = 0

    /// All zero.
    public init() {}
}
