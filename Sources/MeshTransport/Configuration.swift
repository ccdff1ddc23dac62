import MeshSecurity

/// Configuration of a `MeshTransport` node, with documented defaults.
public struct MeshTransportConfiguration: Sendable {
    /// Address to listen on. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks an ephemeral port (see `MeshTransport.listeningPort`). Default 0.
    public var port: Int = 0
    /// Bounds of the security layer (frame cap, handshake timeout, concurrency and rate limits, rekeying).
    public var limits = SecurityLimits()
    /// First reconnect delay of the dialer; doubles per failed attempt. Default 50 ms.
    public var reconnectInitialDelay: Duration = .milliseconds(50)
    /// Largest reconnect delay. Default 5 s.
    public var reconnectMaxDelay: Duration = .seconds(5)
    /// TCP connect timeout of the dialer. Default 5 s.
    public var connectTimeout: Duration = .seconds(5)
    /// High-water mark, in messages, of one peer's messages waiting in `inbound`: when a session reaches it
    /// (or `inboundHighWaterByteCount`), the transport stops reading that peer's socket, so TCP flow control
    /// pushes back on the sender; reading resumes once the consumer has taken the queue down to half of both
    /// marks. Nothing is dropped. Default 4,096.
    ///
    /// Memory bound per peer: the marks plus what one socket read burst had already decoded when reading
    /// paused (at most `readsPerEvent` (4) reads of up to `maxReadByteCount` (256 KiB) each, 1 MiB).
    public var inboundBufferLimit: Int = 4096
    /// High-water mark, in bytes, of one peer's messages waiting in `inbound` (see `inboundBufferLimit`).
    /// Default 16 MiB.
    public var inboundHighWaterByteCount: Int = 16 << 20
    /// Events buffered in `events` while its consumer is behind; beyond it the oldest are dropped and counted
    /// as `eventOverflow` (re-read `connectedPeers` then). Default 1,024.
    public var eventBufferLimit: Int = 1024
    /// Kernel send and receive buffer size per connection (`SO_SNDBUF`/`SO_RCVBUF`); nil keeps the OS default
    /// (autotuned). Larger buffers let bulk transfers make progress with fewer thread wake-ups. Default nil.
    public var socketBufferByteCount: Int32? = nil
    /// Listen backlog. Default 256.
    public var backlog: Int32 = 256

    /// The defaults above.
    public init() {}

    /// Largest single socket read (the receive allocator adapts between 64 bytes and this). Larger than a
    /// frame (64 KiB + 4), so a stream of full frames is mostly opened in place from the read buffer instead
    /// of being joined across reads, and a burst takes few system calls.
    static let maxReadByteCount = 256 << 10
    /// Socket reads per readiness event (`maxMessagesPerRead`): with `maxReadByteCount`, at most 1 MiB is
    /// read, opened and handed to `inbound` per event, which bounds the overshoot past the high-water marks.
    static let readsPerEvent: UInt = 4
}

/// One authenticated message from a peer.
public struct InboundMessage: Sendable {
    /// The authenticated sender.
    public let peer: NodeID
    /// The message bytes, exactly as the peer passed them to `send`.
    public let bytes: [UInt8]
    /// The session it arrived on (its number in the transport), for back-pressure accounting.
    let session: Int

    init(peer: NodeID, bytes: [UInt8], session: Int) {
        self.peer = peer
        self.bytes = bytes
        self.session = session
    }
}

/// The messages one read burst of one session opened, in order: what `inbound`'s stream carries, so a
/// burst costs one hand-over to the consumer rather than one per message.
struct InboundBatch: Sendable {
    let peer: NodeID
    let session: Int
    let messages: [[UInt8]]
}

/// A change of the set of peers with an established session, as published on `MeshTransport.events`.
///
/// Per peer the events alternate, starting with `sessionEstablished`: a peer is connected (in
/// `connectedPeers`, reachable by `send`) from its `sessionEstablished` until its `sessionClosed`.
///
/// Duplicate sessions (simultaneous dials, or a redial while a session is up) produce no event: a duplicate
/// that wins the resolution takes over from the old session silently, and the loser is closed silently. The
/// loser is closed by the node that initiated the winner, once it holds the winner (after the key
/// confirmation, when the other node holds it too); the other node keeps the loser open until then (at
/// most `handshakeTimeout`), still delivering what arrives on it. So neither node is left without a session
/// in between, and no closed/established pair is published for a peer that stayed connected.
///
/// A pair is published only when the peer really had no session for a while: its connection closed or
/// failed (or `disconnect(_:)` was called) and a later dial established a new one.
public enum TransportEvent: Sendable {
    /// `peer` had no established session and now has one: `send(_:to:)` to it works.
    case sessionEstablished(NodeID)
    /// `peer`'s established session ended and no other session with it is up. `reason` is nil for an
    /// orderly close (the peer closed the connection, or `disconnect(_:)` was called), `.shutDown` when this
    /// transport shuts down, and otherwise the typed reason the session failed (e.g. `.decryptFailed`,
    /// `.replayedFrame`, `.connectionLost`).
    case sessionClosed(NodeID, reason: SecurityError?)
}

extension SecurityError.Code {
    /// A message was dropped because `inbound` was full. No longer produced: `inbound` applies back-pressure
    /// to the sending peer instead of dropping (see `MeshTransportConfiguration.inboundBufferLimit`).
    public static let inboundOverflow = SecurityError.Code("inboundOverflow")
    /// `events` dropped its oldest event because its consumer was `eventBufferLimit` events behind.
    public static let eventOverflow = SecurityError.Code("eventOverflow")
}

extension Duration {
    var nanosecondCount: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
