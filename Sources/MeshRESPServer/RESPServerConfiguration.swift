import MeshRESP

/// How a node's RESP front door listens and what it bounds.
public struct RESPServerConfiguration: Sendable, Hashable {
    /// Address to listen on (default `127.0.0.1`: loopback only).
    public var host: String
    /// Port to listen on (0 picks a free one).
    public var port: Int
    /// The password `AUTH` (or `HELLO ... AUTH default PASSWORD`) must give; `nil` (the default): no authentication.
    public var password: String?
    /// The causal domain of plain keys (a key written `fabric://DOMAIN/PATH` addresses `DOMAIN`). Default `default`.
    public var defaultDomain: String
    /// Connected clients at most; the next one gets `-ERR max number of clients reached` and is closed (default 10,000).
    public var maximumClients: Int
    /// Bounds of one request: arguments, bytes per argument, bytes per inline command.
    public var limits: RESPLimits
    /// Bytes a client may send ahead of what the node has executed (its query buffer); more is a
    /// protocol error that closes only that connection (default 64 MiB).
    public var maximumPipelineBytes: Int
    /// Reply and notification bytes a client may leave unread before it is disconnected, as Redis's
    /// `client-output-buffer-limit` (default 32 MiB).
    public var maximumOutputBytes: Int
    /// Keys a `SCAN` examines per call at most, whatever `COUNT` asks (default 10,000).
    public var maximumScanCount: Int
    /// Channels and patterns one client may subscribe to (default 10,000).
    public var maximumSubscriptionsPerClient: Int

    /// A configuration with the defaults, on `port`.
    public init(host: String = "127.0.0.1", port: Int, password: String? = nil, defaultDomain: String = "default") {
        self.host = host
        self.port = port
        self.password = password
        self.defaultDomain = defaultDomain
        self.maximumClients = 10_000
        self.limits = RESPLimits()
        self.maximumPipelineBytes = 64 << 20
        self.maximumOutputBytes = 32 << 20
        self.maximumScanCount = 10_000
        self.maximumSubscriptionsPerClient = 10_000
    }
}
