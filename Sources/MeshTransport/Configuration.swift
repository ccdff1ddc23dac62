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
    /// Messages buffered in `inbound` while the consumer is behind; beyond it, newly arriving messages are
    /// dropped and counted as `inboundOverflow` (gossip anti-entropy repairs them). Memory bound:
    /// `inboundBufferLimit * limits.maxMessageByteCount`. Default 4,096.
    public var inboundBufferLimit: Int = 4096
    /// Kernel send and receive buffer size per connection (`SO_SNDBUF`/`SO_RCVBUF`); nil keeps the OS default
    /// (autotuned). Larger buffers let bulk transfers make progress with fewer thread wake-ups. Default nil.
    public var socketBufferByteCount: Int32? = nil
    /// Listen backlog. Default 256.
    public var backlog: Int32 = 256

    /// The defaults above.
    public init() {}
}

/// One authenticated message from a peer.
public struct InboundMessage: Sendable {
    /// The authenticated sender.
    public let peer: NodeID
    /// The message bytes, exactly as the peer passed them to `send`.
    public let bytes: [UInt8]
}

extension SecurityError.Code {
    /// A message was dropped because `inbound` was full.
    public static let inboundOverflow = SecurityError.Code("inboundOverflow")
}

extension Duration {
    var nanosecondCount: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
