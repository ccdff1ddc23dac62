import Logging
import MeshSecurity
import Metrics
import NIOCore
import NIOPosix
import Synchronization

/// An encrypted, mutually authenticated gossip transport: a TCP listener and dialer on SwiftNIO running the
/// StateMesh Noise handshake, with at most one authenticated session per peer identity.
///
/// Messages go down with `send(_:to:)` and come up on `inbound` as `(peer, bytes)`. Every rejected
/// handshake or closed session is logged with its typed reason, counted in `counters`, and mirrored to
/// swift-metrics counters `statemesh_transport_handshake_failures` / `statemesh_transport_session_failures`
/// with a `reason` dimension.
///
/// Simultaneous dials: when two sessions to one peer exist, both nodes keep the one whose initiator has
/// the lower node ID (or, with the same initiator, the newer one) and close the other with
/// `.duplicateSession`; both sides evaluate the same rule, so they agree without talking.
public final class MeshTransport: Sendable {
    /// This node's identity.
    public let identity: NodeIdentity
    /// Typed reasons of rejected handshakes and closed sessions.
    public let counters: SecurityCounters
    /// Authenticated inbound messages from all peers, in per-peer order.
    public let inbound: AsyncStream<InboundMessage>
    let core: TransportCore

    /// Creates a transport; call `start()` to listen.
    ///
    /// - Parameters:
    ///   - admission: the allow-list and cluster keys; change them later with `updateAdmission`.
    ///   - eventLoopGroup: defaults to NIO's shared singleton group, which is never shut down.
    public init(
        identity: NodeIdentity, admission: AdmissionPolicy, configuration: MeshTransportConfiguration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "statemesh.transport")
    ) throws {
        try configuration.limits.validate()
        self.identity = identity
        let counters = SecurityCounters()
        self.counters = counters
        let (stream, continuation) = AsyncStream.makeStream(
            of: InboundMessage.self, bufferingPolicy: .bufferingOldest(configuration.inboundBufferLimit))
        self.inbound = stream
        var logger = logger
        logger[metadataKey: "node"] = "\(identity.nodeID)"
        self.core = TransportCore(
            identity: identity, admission: admission, configuration: configuration, group: eventLoopGroup,
            counters: counters, continuation: continuation, logger: logger)
    }

    /// Binds the listener; returns the port (useful with port 0).
    @discardableResult
    public func start() async throws -> Int {
        try await core.start()
    }

    /// The bound port, once started.
    public var listeningPort: Int? { core.listeningPort }

    /// This node's ID.
    public var nodeID: NodeID { identity.nodeID }

    /// Peers with an established session, sorted.
    public var connectedPeers: [NodeID] { core.connectedPeers }

    /// Changes the allow-list or cluster keys; new handshakes use the new policy, established sessions stay.
    public func updateAdmission(_ change: (inout AdmissionPolicy) throws -> Void) rethrows {
        try core.updateAdmission(change)
    }

    /// Dials once and waits until the session is established; returns the peer's ID.
    ///
    /// Throws the handshake's `SecurityError` (e.g. `.unknownIdentity`) or a connect error.
    @discardableResult
    public func dial(host: String, port: Int, expectedPeer: NodeID? = nil) async throws -> NodeID {
        try await core.dial(host: host, port: port, expectedPeer: expectedPeer).peer
    }

    /// Keeps a session to `host:port` up: dials now and redials after failures or closes, with
    /// exponential backoff and full jitter between `reconnectInitialDelay` and `reconnectMaxDelay`.
    public func maintainConnection(host: String, port: Int, expectedPeer: NodeID? = nil) {
        core.maintainConnection(host: host, port: port, expectedPeer: expectedPeer)
    }

    /// Sends one message (up to `limits.maxMessageByteCount` bytes) to `peer`; returns once it is written
    /// to the socket. Throws `.peerNotConnected` when there is no session.
    public func send(_ message: [UInt8], to peer: NodeID) async throws {
        guard let channel = core.channel(for: peer) else {
            throw SecurityError(.peerNotConnected, "no session with \(peer)")
        }
        try await channel.writeAndFlush(message).get()
    }

    /// Sends several messages to `peer` in order with one flush; returns once the last is written.
    ///
    /// Cheaper than one `send` per message for bursts (one event-loop hop, a flush about every 64 KiB).
    /// Throws `.peerNotConnected` when there is no session.
    public func send(contentsOf messages: [[UInt8]], to peer: NodeID) async throws {
        guard let last = messages.last else { return }
        guard let channel = core.channel(for: peer) else {
            throw SecurityError(.peerNotConnected, "no session with \(peer)")
        }
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.eventLoop.execute {
            // Flush about every 64 KiB so the peer starts opening frames while later ones are still being
            // sealed (one flush at the end would serialise sealing and opening).
            var unflushed = 0
            for message in messages.dropLast() {
                channel.write(message, promise: nil)
                unflushed += message.count
                if unflushed >= 65536 {
                    channel.flush()
                    unflushed = 0
                }
            }
            channel.writeAndFlush(last, promise: promise)
        }
        try await promise.futureResult.get()
    }

    /// Waits until a session with `peer` exists or `timeout` passes; returns whether it exists.
    public func waitForSession(with peer: NodeID, timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if core.channel(for: peer) != nil { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return core.channel(for: peer) != nil
    }

    /// Graceful shutdown: stops dialing and listening, closes every session after its queued writes are
    /// flushed, and finishes `inbound`. Idempotent.
    public func shutdown() async {
        await core.shutdown()
    }
}

/// The shared state behind `MeshTransport`; also the `ConnectionObserver` of every connection.
final class TransportCore: ConnectionObserver, Sendable {
    struct SessionEntry {
        let channel: any Channel
        let initiator: NodeID
        let sequence: Int
    }

    struct State {
        var admission: AdmissionPolicy
        var gate: HandshakeGate
        var sessions: [NodeID: SessionEntry] = [:]
        var serverChannel: (any Channel)?
        var dialTasks: [Task<Void, Never>] = []
        var openChannels: [ObjectIdentifier: any Channel] = [:]
        var isShutDown = false
        var sequence = 0
    }

    let identity: NodeIdentity
    let configuration: MeshTransportConfiguration
    let group: any EventLoopGroup
    let counters: SecurityCounters
    let continuation: AsyncStream<InboundMessage>.Continuation
    let logger: Logger
    let state: Mutex<State>

    init(
        identity: NodeIdentity, admission: AdmissionPolicy, configuration: MeshTransportConfiguration,
        group: any EventLoopGroup, counters: SecurityCounters, continuation: AsyncStream<InboundMessage>.Continuation,
        logger: Logger
    ) {
        self.identity = identity
        self.configuration = configuration
        self.group = group
        self.counters = counters
        self.continuation = continuation
        self.logger = logger
        self.state = Mutex(State(admission: admission, gate: HandshakeGate(limits: configuration.limits)))
    }

    var listeningPort: Int? { state.withLock { $0.serverChannel?.localAddress?.port } }

    var connectedPeers: [NodeID] { state.withLock { $0.sessions.keys.sorted() } }

    func channel(for peer: NodeID) -> (any Channel)? { state.withLock { $0.sessions[peer]?.channel } }

    func updateAdmission(_ change: (inout AdmissionPolicy) throws -> Void) rethrows {
        try state.withLock { try change(&$0.admission) }
    }

    // MARK: Pipeline

    func makeHandshakeHandler(
        channel: any Channel, role: MeshHandshake.Role, expectedPeer: NodeID?, holdsGateSlot: Bool,
        established: EventLoopPromise<NodeID>?
    ) throws -> HandshakeHandler {
        let admission = state.withLock { $0.admission }
        let machine = try MeshHandshake(
            role: role, identity: identity, admission: admission, limits: configuration.limits, now: .now,
            expectedPeer: expectedPeer)
        var connectionLogger = logger
        connectionLogger[metadataKey: "remote"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        return HandshakeHandler(
            machine: machine, localID: identity.nodeID, timeout: configuration.limits.handshakeTimeout, observer: self,
            holdsGateSlot: holdsGateSlot, established: established, logger: connectionLogger)
    }

    func configurePipeline(
        channel: any Channel, role: MeshHandshake.Role, expectedPeer: NodeID?, holdsGateSlot: Bool,
        established: EventLoopPromise<NodeID>?
    ) throws {
        let handshake = try makeHandshakeHandler(
            channel: channel, role: role, expectedPeer: expectedPeer, holdsGateSlot: holdsGateSlot,
            established: established)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(
            ByteToMessageHandler(LengthPrefixFrameDecoder(maxFrameByteCount: configuration.limits.maxFrameByteCount)))
        try sync.addHandler(handshake)
        track(channel)
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        state.withLock { $0.openChannels[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.openChannels.removeValue(forKey: id) }
        }
    }

    // MARK: Listener

    func start() async throws -> Int {
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                do {
                    try admit(channel)
                    try configurePipeline(
                        channel: channel, role: .responder, expectedPeer: nil, holdsGateSlot: true, established: nil)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        if let size = configuration.socketBufferByteCount {
            bootstrap = bootstrap.childChannelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(size))
                .childChannelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(size))
        }
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        let alreadyShutDown = state.withLock { state -> Bool in
            if state.isShutDown { return true }
            state.serverChannel = channel
            return false
        }
        if alreadyShutDown {
            try? await channel.close()
            throw SecurityError(.shutDown, "transport was shut down")
        }
        logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return channel.localAddress?.port ?? 0
    }

    /// Applies the concurrency cap and per-address rate limit before any handshake state exists.
    private func admit(_ channel: any Channel) throws {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let rejection = state.withLock { state -> SecurityError? in
            guard !state.isShutDown else { return SecurityError(.shutDown, "transport is shutting down") }
            do {
                try state.gate.admit(address: address, now: .now)
                return nil
            } catch let error as SecurityError {
                return error
            } catch {
                return SecurityError(.rateLimited, "\(error)")
            }
        }
        if let rejection {
            connectionFailed(rejection, duringHandshake: true, remote: channel.remoteAddress, peer: nil)
            throw rejection
        }
    }

    // MARK: Dialer

    func dial(host: String, port: Int, expectedPeer: NodeID?) async throws -> (peer: NodeID, channel: any Channel) {
        guard !state.withLock({ $0.isShutDown }) else { throw SecurityError(.shutDown, "transport is shut down") }
        let loop = group.next()
        let established = loop.makePromise(of: NodeID.self)
        var bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.maxMessagesPerRead, value: 16)
            .connectTimeout(.nanoseconds(configuration.connectTimeout.nanosecondCount))
            .channelInitializer { [self] channel in
                do {
                    try configurePipeline(
                        channel: channel, role: .initiator, expectedPeer: expectedPeer, holdsGateSlot: false,
                        established: established)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        if let size = configuration.socketBufferByteCount {
            bootstrap = bootstrap.channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(size))
                .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(size))
        }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            established.fail(error)
            throw error
        }
        let peer = try await established.futureResult.get()
        return (peer, channel)
    }

    func maintainConnection(host: String, port: Int, expectedPeer: NodeID?) {
        let task = Task { [self] in
            var knownPeer = expectedPeer
            var attempt = 0
            while !Task.isCancelled && !state.withLock({ $0.isShutDown }) {
                if let peer = knownPeer, channel(for: peer) != nil {
                    // A session exists (perhaps one the peer dialed): do not create a duplicate.
                    attempt = 0
                    try? await Task.sleep(for: configuration.reconnectInitialDelay * 4)
                    continue
                }
                do {
                    let (peer, channel) = try await dial(host: host, port: port, expectedPeer: expectedPeer)
                    knownPeer = peer
                    attempt = 0
                    try? await channel.closeFuture.get()
                } catch {
                    attempt += 1
                    logger.debug("dial failed", metadata: ["target": "\(host):\(port)", "error": "\(error)"])
                }
                try? await Task.sleep(for: backoffDelay(attempt: attempt))
            }
        }
        let keep = state.withLock { state -> Bool in
            guard !state.isShutDown else { return false }
            state.dialTasks.append(task)
            return true
        }
        if !keep { task.cancel() }
    }

    /// Exponential backoff with full jitter: uniform in [0, min(max, initial * 2^attempt)].
    func backoffDelay(attempt: Int) -> Duration {
        let initial = configuration.reconnectInitialDelay.nanosecondCount
        let cap = configuration.reconnectMaxDelay.nanosecondCount
        let exponent = min(attempt, 30)
        let ceiling = min(cap, initial.multipliedReportingOverflow(by: 1 << exponent).overflow ? cap : initial << exponent)
        guard ceiling > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...ceiling))
    }

    // MARK: ConnectionObserver

    func connectionFailed(_ error: SecurityError, duringHandshake: Bool, remote: SocketAddress?, peer: NodeID?) {
        counters.increment(error.code)
        let label = duringHandshake ? "statemesh_transport_handshake_failures" : "statemesh_transport_session_failures"
        Counter(label: label, dimensions: [("reason", error.code.name)]).increment()
        var metadata: Logger.Metadata = ["reason": "\(error.code)", "detail": "\(error.message)"]
        if let remote { metadata["remote"] = "\(remote)" }
        if let peer { metadata["peer"] = "\(peer)" }
        logger.warning(duringHandshake ? "handshake rejected" : "session closed", metadata: metadata)
    }

    func handshakeEnded() {
        state.withLock { $0.gate.finish() }
    }

    func sessionEstablished(peer: NodeID, initiator: NodeID, channel: any Channel) -> Bool {
        let (keep, loser) = state.withLock { state -> (Bool, (any Channel)?) in
            state.sequence += 1
            let entry = SessionEntry(channel: channel, initiator: initiator, sequence: state.sequence)
            guard !state.isShutDown else { return (false, nil) }
            guard let existing = state.sessions[peer] else {
                state.sessions[peer] = entry
                return (true, nil)
            }
            // Deterministic on both sides: the lower initiator ID wins; same initiator: the newer wins.
            let newWins = initiator == existing.initiator ? true : initiator < existing.initiator
            if newWins {
                state.sessions[peer] = entry
                return (true, existing.channel)
            }
            return (false, nil)
        }
        if let loser { loser.close(promise: nil) }
        if keep {
            logger.info("session established", metadata: ["peer": "\(peer)", "initiator": "\(initiator)"])
        } else {
            counters.increment(.duplicateSession)
            logger.info("duplicate session closed", metadata: ["peer": "\(peer)"])
        }
        return keep
    }

    func sessionClosed(peer: NodeID, channel: any Channel) {
        state.withLock { state in
            if let entry = state.sessions[peer], entry.channel === channel { state.sessions[peer] = nil }
        }
    }

    func deliver(peer: NodeID, message: [UInt8]) {
        if case .dropped = continuation.yield(InboundMessage(peer: peer, bytes: message)) {
            counters.increment(.inboundOverflow)
        }
    }

    // MARK: Shutdown

    func shutdown() async {
        let (server, tasks, channels) = state.withLock { state -> ((any Channel)?, [Task<Void, Never>], [any Channel]) in
            if state.isShutDown { return (nil, [], []) }
            state.isShutDown = true
            let result = (state.serverChannel, state.dialTasks, Array(state.openChannels.values))
            state.serverChannel = nil
            state.dialTasks = []
            state.sessions = [:]
            return result
        }
        for task in tasks { task.cancel() }
        try? await server?.close()
        for channel in channels {
            // Writes already issued are flushed before the close (NIO processes the close after them).
            channel.flush()
            try? await channel.close()
        }
        for task in tasks { await task.value }
        continuation.finish()
        logger.info("shut down")
    }
}
