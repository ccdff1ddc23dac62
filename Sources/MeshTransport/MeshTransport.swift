import Logging
import MeshSecurity
import Metrics
import NIOCore
import NIOPosix
import Synchronization

/// An encrypted, mutually authenticated gossip transport: a TCP listener and dialer on SwiftNIO running the
/// StateMesh Noise handshake, with at most one authenticated session per peer identity.
///
/// Messages go down with `send(_:to:)` and come up on `inbound` as `(peer, bytes)`, with back-pressure: a
/// peer whose messages the consumer has not taken stops being read (see `inboundBufferLimit`). Sessions
/// coming and going are published on `events`. Every rejected
/// handshake or closed session is logged with its typed reason, counted in `counters`, and mirrored to
/// swift-metrics counters `statemesh_transport_handshake_failures` / `statemesh_transport_session_failures`
/// with a `reason` dimension.
///
/// Simultaneous dials: when two sessions to one peer exist, both nodes keep the one whose initiator has
/// the lower node ID (or, with the same initiator, the newer one) and count the other as
/// `.duplicateSession`; both sides evaluate the same rule, so they agree without talking. The loser is
/// closed by the winner's initiator once it holds the winner (the other node keeps it open meanwhile, at
/// most `handshakeTimeout`), so neither node is left without a session in between (see `TransportEvent`).
public final class MeshTransport: Sendable {
    /// This node's identity.
    public let identity: NodeIdentity
    /// Typed reasons of rejected handshakes and closed sessions.
    public let counters: SecurityCounters
    /// Authenticated inbound messages from all peers, in per-peer order; one consumer at a time.
    ///
    /// Nothing is dropped: when a peer's messages waiting here reach `inboundBufferLimit` messages or
    /// `inboundHighWaterByteCount` bytes, the transport stops reading that peer's connection until the
    /// consumer has taken them down to half of both marks (TCP flow control then slows the sender). A
    /// consumer that stops iterating therefore stalls the peers that send to it, not other traffic.
    public let inbound: InboundMessages
    /// Sessions becoming established and closed, per peer alternating (see `TransportEvent` for exactly
    /// what is emitted), unless `receiveEvents` takes them; finishes after `shutdown()`. Bounded by
    /// `eventBufferLimit` (oldest dropped).
    public let events: AsyncStream<TransportEvent>
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
        guard configuration.inboundBufferLimit >= 1, configuration.inboundHighWaterByteCount >= 1,
            configuration.eventBufferLimit >= 1
        else {
            throw SecurityError(.invalidArgument, "inbound and event buffer limits must be at least 1")
        }
        self.identity = identity
        let counters = SecurityCounters()
        self.counters = counters
        let mailbox = InboundMailbox()
        let (events, eventContinuation) = AsyncStream.makeStream(
            of: TransportEvent.self, bufferingPolicy: .bufferingNewest(configuration.eventBufferLimit))
        self.events = events
        var logger = logger
        logger[metadataKey: "node"] = "\(identity.nodeID)"
        let core = TransportCore(
            identity: identity, admission: admission, configuration: configuration, group: eventLoopGroup,
            counters: counters, mailbox: mailbox, eventContinuation: eventContinuation, logger: logger)
        self.core = core
        self.inbound = InboundMessages(mailbox: mailbox, core: core)
    }

    /// Hands every authenticated inbound message to `receive` on `loop`, in per-peer order, instead of
    /// `inbound` (one or the other, once); messages that arrived before are handed over first, at once.
    /// Call it on `loop`.
    ///
    /// For a consumer that lives on an event loop (a node's actor): a session running on `loop` (the
    /// transport created with `loop` as its group) hands over its messages within the socket read that
    /// opened them, with no task and no thread hop; a session on another loop hands over each read
    /// burst in a task submitted to `loop`. A message counts as taken when it is handed over, so
    /// `receive` itself is the back-pressure: the session is not read while it runs. It must not
    /// block. After `shutdown()` nothing more is handed over, and `receive` is released.
    public func receiveInbound(on loop: any EventLoop, _ receive: @escaping @Sendable (InboundMessage) -> Void) {
        let core = self.core
        core.mailbox.install(
            InboundMailbox.Receiver(loop: loop) { batch in
                for bytes in batch.messages {
                    let message = InboundMessage(peer: batch.peer, bytes: bytes, session: batch.session)
                    core.consumed(message)
                    receive(message)
                }
            })
    }

    /// Hands every `TransportEvent` from now on to `receive` on `loop`, in order, instead of `events`
    /// (which then gets nothing more). Earlier events are not replayed: read `connectedPeers` after
    /// calling this for the sessions already up (an event for one of them may still follow). Each event
    /// runs in a task submitted to `loop`, so a message a new session opened may reach `receiveInbound`
    /// before its `sessionEstablished` does. Once; `receive` is released at `shutdown()`.
    public func receiveEvents(on loop: any EventLoop, _ receive: @escaping @Sendable (TransportEvent) -> Void) {
        core.eventReceiver.withLock { receiver in
            precondition(receiver == nil, "MeshTransport.receiveEvents is called once")
            receiver = LoopConsumer(loop: loop, receive: receive)
        }
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
    ///
    /// A maintained connection is redialed after any close, including one caused by `disconnect(_:)`;
    /// call `stopMaintaining(host:port:)` first to let it stay closed.
    public func maintainConnection(host: String, port: Int, expectedPeer: NodeID? = nil) {
        core.maintainConnection(host: host, port: port, expectedPeer: expectedPeer)
    }

    /// Stops redialing `host:port` (every `maintainConnection` to exactly that host string and port).
    /// An established session stays up; end it with `disconnect(_:)`. A dial already in flight finishes, and
    /// its session, if any, is kept. Does nothing for an address that is not maintained.
    public func stopMaintaining(host: String, port: Int) {
        core.stopMaintaining(host: host, port: port)
    }

    /// Closes the established session with `peer`, if there is one, and returns once it is closed.
    ///
    /// The peer is removed from `connectedPeers` and `events` gets `.sessionClosed(peer, reason: nil)` before
    /// the connection is closed; messages already written are flushed first, messages from the peer not yet
    /// read are discarded, and those already in `inbound` stay there. Does nothing when there is no session.
    /// A maintained connection to the peer redials (see `maintainConnection`); the peer may also dial again.
    public func disconnect(_ peer: NodeID) async {
        await core.disconnect(peer)
    }

    /// Sends one message (up to `limits.maxMessageByteCount` bytes) to `peer`; returns once it is written
    /// to the socket. Throws `.peerNotConnected` when there is no session.
    public func send(_ message: [UInt8], to peer: NodeID) async throws {
        guard let channel = core.channel(for: peer) else {
            throw SecurityError(.peerNotConnected, "no session with \(peer)")
        }
        try await channel.writeAndFlush(message).get()
    }

    /// Sends several messages to `peer` in order; returns once the last is written to the socket.
    ///
    /// Cheaper than one `send` per message for bursts: the burst goes to the session's event loop once, which
    /// seals it in slices of about 256 KiB as the socket drains (see `BurstWriter`), with a flush about every
    /// 64 KiB and at most about 512 KiB of sealed frames waiting in memory however long the burst. Throws
    /// `.peerNotConnected` when there is no session, or the write error when the session closes midway
    /// (messages after it are not sent).
    public func send(contentsOf messages: [[UInt8]], to peer: NodeID) async throws {
        guard !messages.isEmpty else { return }
        try await write(contentsOf: messages, to: peer).get()
    }

    /// `send(contentsOf:to:)` without suspending: hands the burst to the session's event loop and returns
    /// a future that succeeds once the last message is written to the socket (or fails as `send` throws).
    ///
    /// For callers on an event loop of their own (a node's actor), which would otherwise hop to Swift's
    /// global executor and back for every `await`; they can hop the future back to their loop instead.
    /// Throws `.peerNotConnected` when there is no session.
    public func write(contentsOf messages: [[UInt8]], to peer: NodeID) throws(SecurityError) -> EventLoopFuture<Void> {
        guard let channel = core.channel(for: peer) else {
            throw SecurityError(.peerNotConnected, "no session with \(peer)")
        }
        let written = channel.eventLoop.makePromise(of: Void.self)
        if messages.isEmpty {
            written.succeed(())
            return written.futureResult
        }
        channel.eventLoop.execute {
            BurstWriter(channel: channel, messages: messages, written: written).start()
        }
        return written.futureResult
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

    /// Back-pressure accounting of one session: its messages delivered to `inbound` and not yet taken.
    struct InboundQueue {
        let channel: any Channel
        var messageCount = 0
        var byteCount = 0
        /// Reading is off (autoRead false) because a high-water mark was reached.
        var isPaused = false
    }

    struct State {
        var admission: AdmissionPolicy
        var gate: HandshakeGate
        var sessions: [NodeID: SessionEntry] = [:]
        var serverChannel: (any Channel)?
        var dialTasks: [(address: String, task: Task<Void, Never>)] = []
        /// Per session number (`SessionEntry.sequence`), for every session that was kept, until it closes.
        var inboundQueues: [Int: InboundQueue] = [:]
        var openChannels: [ObjectIdentifier: any Channel] = [:]
        var isShutDown = false
        var sequence = 0
    }

    let identity: NodeIdentity
    let configuration: MeshTransportConfiguration
    let group: any EventLoopGroup
    let counters: SecurityCounters
    let mailbox: InboundMailbox
    let eventContinuation: AsyncStream<TransportEvent>.Continuation
    /// Where events go instead of `events`, once set (`MeshTransport.receiveEvents`). Its own lock:
    /// `publish` reads it with `state`'s held, and nothing takes `state` while holding this one.
    /// Each event is submitted to its loop: events are published under the state lock, where no
    /// consumer may run.
    let eventReceiver = Mutex<LoopConsumer<TransportEvent>?>(nil)
    let logger: Logger
    let state: Mutex<State>

    init(
        identity: NodeIdentity, admission: AdmissionPolicy, configuration: MeshTransportConfiguration,
        group: any EventLoopGroup, counters: SecurityCounters, mailbox: InboundMailbox,
        eventContinuation: AsyncStream<TransportEvent>.Continuation, logger: Logger
    ) {
        self.identity = identity
        self.configuration = configuration
        self.group = group
        self.counters = counters
        self.mailbox = mailbox
        self.eventContinuation = eventContinuation
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
        try sync.addHandler(LengthPrefixFrameHandler(maxFrameByteCount: configuration.limits.maxFrameByteCount))
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

    /// Socket reads adapt to the traffic between 64 bytes and `maxReadByteCount`.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(
        minimum: 64, initial: 2048, maximum: MeshTransportConfiguration.maxReadByteCount)

    // MARK: Listener

    func start() async throws -> Int {
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: MeshTransportConfiguration.readsPerEvent)
            .childChannelOption(.recvAllocator, value: Self.receiveAllocator)
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
            .channelOption(.maxMessagesPerRead, value: MeshTransportConfiguration.readsPerEvent)
            .channelOption(.recvAllocator, value: Self.receiveAllocator)
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
            state.dialTasks.append((Self.address(host: host, port: port), task))
            return true
        }
        if !keep { task.cancel() }
    }

    static func address(host: String, port: Int) -> String { "\(host):\(port)" }

    func stopMaintaining(host: String, port: Int) {
        let address = Self.address(host: host, port: port)
        let stopped = state.withLock { state -> [Task<Void, Never>] in
            let stopped = state.dialTasks.filter { $0.address == address }.map(\.task)
            state.dialTasks.removeAll { $0.address == address }
            return stopped
        }
        // A cancelled task leaves its loop at the next check; one waiting on an open session's close keeps
        // that session and ends when it closes.
        for task in stopped { task.cancel() }
    }

    func disconnect(_ peer: NodeID) async {
        let channel = state.withLock { state -> (any Channel)? in
            guard let entry = state.sessions.removeValue(forKey: peer) else { return nil }
            publish(.sessionClosed(peer, reason: nil))
            return entry.channel
        }
        guard let channel else { return }
        logger.info("session disconnected", metadata: ["peer": "\(peer)"])
        try? await channel.close()
    }

    /// Publishes an event; call with the state lock held, so events are in the order of the state changes
    /// (a receiver's loop runs its tasks in the order they were submitted).
    private func publish(_ event: TransportEvent) {
        if let receiver = eventReceiver.withLock({ $0 }) {
            receiver.submit(event)
        } else if case .dropped = eventContinuation.yield(event) {
            counters.increment(.eventOverflow)
        }
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

    func sessionEstablished(peer: NodeID, initiator: NodeID, channel: any Channel) -> SessionAdmission {
        let localID = identity.nodeID
        let (admission, loser) = state.withLock { state -> (SessionAdmission, (channel: any Channel, now: Bool)?) in
            state.sequence += 1
            let entry = SessionEntry(channel: channel, initiator: initiator, sequence: state.sequence)
            guard !state.isShutDown else { return (.rejected, nil) }
            guard let existing = state.sessions[peer] else {
                state.sessions[peer] = entry
                state.inboundQueues[entry.sequence] = InboundQueue(channel: channel)
                publish(.sessionEstablished(peer))
                return (.active(entry.sequence), nil)
            }
            // Deterministic on both sides: the lower initiator ID wins; same initiator: the newer wins.
            let newWins = initiator == existing.initiator ? true : initiator < existing.initiator
            // The loser is closed by the node that initiated the winner: it holds the winner only after the
            // key confirmation, so the responder holds it already, and neither node is ever left without a
            // session (which would publish a closed/established pair). The responder of the winner keeps
            // the loser open (still delivering) until the peer closes it, at most `handshakeTimeout`.
            if newWins {
                // The peer stays connected across the takeover: no event (see `TransportEvent`).
                state.sessions[peer] = entry
                state.inboundQueues[entry.sequence] = InboundQueue(channel: channel)
                return (.active(entry.sequence), (existing.channel, initiator == localID))
            }
            if existing.initiator == localID { return (.rejected, nil) }
            state.inboundQueues[entry.sequence] = InboundQueue(channel: channel)
            return (.standby(entry.sequence), (channel, false))
        }
        if let loser {
            if loser.now {
                loser.channel.close(promise: nil)
            } else {
                let grace = TimeAmount.nanoseconds(configuration.limits.handshakeTimeout.nanosecondCount)
                loser.channel.eventLoop.scheduleTask(in: grace) { loser.channel.close(promise: nil) }
            }
        }
        switch admission {
        case .active:
            logger.info("session established", metadata: ["peer": "\(peer)", "initiator": "\(initiator)"])
        case .standby, .rejected:
            counters.increment(.duplicateSession)
            logger.info("duplicate session closed", metadata: ["peer": "\(peer)"])
        }
        return admission
    }

    func sessionClosed(peer: NodeID, session: Int, channel: any Channel, reason: SecurityError?) {
        state.withLock { state in
            state.inboundQueues[session] = nil
            if let entry = state.sessions[peer], entry.channel === channel {
                state.sessions[peer] = nil
                publish(.sessionClosed(peer, reason: reason))
            }
        }
    }

    /// Hands authenticated messages to `inbound`; on the session's event loop. Stops reading the session
    /// when its queue reaches a high-water mark.
    func deliver(peer: NodeID, messages: [[UInt8]], session: Int, channel: any Channel) {
        let pause = state.withLock { state -> Bool in
            guard var queue = state.inboundQueues[session] else { return false }
            queue.messageCount += messages.count
            for message in messages { queue.byteCount += message.count }
            let pause = !queue.isPaused
                && (queue.messageCount >= configuration.inboundBufferLimit
                    || queue.byteCount >= configuration.inboundHighWaterByteCount)
            if pause { queue.isPaused = true }
            state.inboundQueues[session] = queue
            return pause
        }
        // Counted before they are visible, so `consumed` never sees a message the queue does not hold.
        mailbox.offer(InboundBatch(peer: peer, session: session, messages: messages))
        if pause {
            // On the event loop: takes effect at once; frames already read are still delivered (bounded).
            channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        }
    }

    /// The consumer took `message` from `inbound`; resumes reading its session below the low-water marks.
    func consumed(_ message: InboundMessage) {
        let session = message.session
        let resume = state.withLock { state -> (any Channel)? in
            guard var queue = state.inboundQueues[session] else { return nil }
            queue.messageCount -= 1
            queue.byteCount -= message.bytes.count
            var resume: (any Channel)?
            if queue.isPaused && queue.messageCount <= configuration.inboundBufferLimit / 2
                && queue.byteCount <= configuration.inboundHighWaterByteCount / 2
            {
                queue.isPaused = false
                resume = queue.channel
            }
            state.inboundQueues[session] = queue
            return resume
        }
        guard let channel = resume else { return }
        channel.eventLoop.execute { [self] in
            // Re-checked on the loop: a pause decided after this resume (and applied before it) wins.
            let isPaused = state.withLock { $0.inboundQueues[session]?.isPaused ?? true }
            if !isPaused { channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in } }
        }
    }

    /// Messages and bytes of `peer`'s current session waiting in `inbound`, and whether reading is paused.
    func inboundQueueState(for peer: NodeID) -> (messageCount: Int, byteCount: Int, isPaused: Bool)? {
        state.withLock { state in
            guard let number = state.sessions[peer]?.sequence, let queue = state.inboundQueues[number] else {
                return nil
            }
            return (queue.messageCount, queue.byteCount, queue.isPaused)
        }
    }

    // MARK: Shutdown

    func shutdown() async {
        let (server, tasks, channels) = state.withLock { state -> ((any Channel)?, [Task<Void, Never>], [any Channel]) in
            if state.isShutDown { return (nil, [], []) }
            state.isShutDown = true
            let result = (state.serverChannel, state.dialTasks.map(\.task), Array(state.openChannels.values))
            state.serverChannel = nil
            state.dialTasks = []
            for peer in state.sessions.keys.sorted() {
                publish(.sessionClosed(peer, reason: SecurityError(.shutDown, "transport shut down")))
            }
            state.sessions = [:]
            state.inboundQueues = [:]
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
        mailbox.finish()
        eventContinuation.finish()
        eventReceiver.withLock { $0 = nil }
        logger.info("shut down")
    }
}

/// The authenticated messages of a `MeshTransport` (its `inbound`): an `AsyncSequence` of `InboundMessage`
/// that tells the transport about each message taken, which is what lets a paused peer be read again.
///
/// One consumer at a time (like `AsyncStream`); the sequence finishes after `shutdown()`. Underneath, the
/// messages of one socket read burst travel together (one wake-up of the consumer per burst); the iterator
/// hands them out one by one.
public struct InboundMessages: AsyncSequence, Sendable {
    public typealias Element = InboundMessage
    public typealias Failure = Never

    let mailbox: InboundMailbox
    let core: TransportCore

    /// Iterates the messages; taking one counts it as consumed for back-pressure.
    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = InboundMessage
        public typealias Failure = Never

        let mailbox: InboundMailbox
        let core: TransportCore
        /// The batch being handed out and the index of its next message.
        var batch: InboundBatch?
        var nextIndex = 0

        /// The next message, or nil once the transport has shut down and every message was taken.
        public mutating func next() async -> InboundMessage? {
            await next(isolation: nil)
        }

        /// The next message, or nil once the transport has shut down and every message was taken; waits
        /// in the caller's isolation (no hop through the global executor).
        public mutating func next(isolation actor: isolated (any Actor)?) async -> InboundMessage? {
            if let message = takeFromBatch() { return message }
            guard let batch = await mailbox.next(isolation: actor) else { return nil }
            return start(batch)
        }

        private mutating func start(_ batch: InboundBatch) -> InboundMessage? {
            self.batch = batch
            nextIndex = 0
            return takeFromBatch()
        }

        /// The batch's next message (counted as consumed), or nil when no batch is being handed out.
        /// Batches are never empty (`SecureSessionHandler` hands over only bursts that opened something).
        private mutating func takeFromBatch() -> InboundMessage? {
            guard let current = batch, nextIndex < current.messages.count else { return nil }
            let message = InboundMessage(peer: current.peer, bytes: current.messages[nextIndex], session: current.session)
            nextIndex += 1
            if nextIndex == current.messages.count { batch = nil }
            core.consumed(message)
            return message
        }
    }

    /// A new iterator over the same messages.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(mailbox: mailbox, core: core)
    }
}

/// Writes one `send(contentsOf:to:)` burst on the session's event loop, which it never leaves.
///
/// Messages go down in slices of about `sliceByteCount` plaintext bytes; a slice is sealed only once the
/// slice before the previous one has reached the socket, so at most two slices of ciphertext wait in memory
/// however long the burst, and the sender's buffers are reused instead of freshly faulted in. The next slice
/// is started from the write promise's callback, on the loop: the loop keeps sealing while the socket
/// drains, without a hop to the caller's task per slice. Within a slice, messages are sealed by the session
/// handler in groups of about `flushByteCount` bytes into one buffer each (one allocation and one pipeline
/// write per group, not per message), and each group is flushed, so the peer starts opening frames while
/// later ones are still being sealed. The first failed write fails `written`; nothing after it is sent.
final class BurstWriter {
    /// Plaintext bytes per slice.
    static let sliceByteCount = 256 << 10
    /// Plaintext bytes of a group: sealed into one buffer, written and flushed together.
    static let flushByteCount = 64 << 10

    private let channel: any Channel
    private let messages: [[UInt8]]
    private let written: EventLoopPromise<Void>
    private var session: SecureSessionHandler?
    private var next = 0
    private var slicesInFlight = 0
    private var hasFailed = false
    /// Set while `fill` runs: a write that completes inside it (NIO may complete a write during the flush
    /// that issued it) lets that loop start the next slice instead of recursing once per slice.
    private var isFilling = false

    init(channel: any Channel, messages: [[UInt8]], written: EventLoopPromise<Void>) {
        self.channel = channel
        self.messages = messages
        self.written = written
    }

    /// Starts the burst; on the channel's event loop.
    func start() {
        channel.eventLoop.preconditionInEventLoop()
        guard let handler = try? channel.pipeline.syncOperations.handler(type: SecureSessionHandler.self) else {
            written.fail(SecurityError(.peerNotConnected, "session closed"))
            return
        }
        session = handler
        fill()
    }

    /// Writes slices until two are in flight, the burst is all written, or a write failed.
    private func fill() {
        guard !isFilling else { return }
        isFilling = true
        defer { isFilling = false }
        while !hasFailed && next < messages.count && slicesInFlight < 2 { writeSlice() }
    }

    private func writeSlice() {
        guard let session else { return }
        var sliceByteCount = 0
        let promise = channel.eventLoop.makePromise(of: Void.self)
        slicesInFlight += 1
        repeat {
            let groupStart = next
            var groupByteCount = 0
            while next < messages.count && (next == groupStart || groupByteCount + messages[next].count <= Self.flushByteCount) {
                groupByteCount += messages[next].count
                next += 1
            }
            sliceByteCount += groupByteCount
            let isSliceEnd = next == messages.count || sliceByteCount >= Self.sliceByteCount
            session.writeSealed(messages[groupStart..<next], promise: isSliceEnd ? promise : nil)
            channel.flush()
            if isSliceEnd { break }
        } while true
        promise.futureResult.assumeIsolated().whenComplete { result in
            self.sliceWritten(result)
        }
    }

    private func sliceWritten(_ result: Result<Void, any Error>) {
        slicesInFlight -= 1
        guard !hasFailed else { return }
        switch result {
        case .failure(let error):
            hasFailed = true
            written.fail(error)
        case .success:
            if next < messages.count {
                fill()
            } else if slicesInFlight == 0 {
                written.succeed(())
            }
        }
    }
}
