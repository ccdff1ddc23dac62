#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import MeshCRDT
import MeshCodec
import MeshMembership
import MeshReplication
import MeshSecurity
import MeshStorage
import MeshTransport
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// One StateMesh node: the replication core, the secure transport, SQLite storage and SWIM
/// membership wired together, with typed handles, change subscriptions, status and metrics.
///
/// The node decides nothing about the protocol itself: `ReplicaStateMachine` and
/// `MembershipStateMachine` decide, the node carries out their actions (send, persist,
/// acknowledge, publish) and feeds them events (messages, ticks, sessions).
///
/// Run it as a swift-service-lifecycle `Service` (`ServiceGroup`), or call `run()` in a task and
/// `shutdown()` to stop. Shutdown is graceful: peers are told the node leaves, storage is
/// committed and closed, sessions are flushed and closed.
///
/// ### Durability
/// A write returns after its delta is committed to SQLite (`.always`; concurrent writes share a
/// commit) or journaled for the next group commit (`.batched`). On restart the node loads the
/// last checkpoint, replays the journal and resumes with the same replica ID.
public actor MeshNode: Service {
    enum Phase { case idle, starting, running, stopping, stopped }

    /// The configuration the node was created with.
    public nonisolated let configuration: MeshNodeConfiguration
    /// This node's identity's ID.
    public nonisolated let nodeID: NodeID
    /// The event loop the actor's code runs on.
    public nonisolated let eventLoop: any EventLoop
    private nonisolated let executor: UnownedSerialExecutor
    let logger: Logger
    let transport: MeshTransport
    let metrics: NodeMetrics

    /// The node's serial executor: its event loop's.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor }

    /// The loops nodes run on by default: their own group, not NIO's singleton, so a node's blocking
    /// work (an fsync in `.always` durability, a checkpoint) delays its own clients and sessions,
    /// never another node's of the same process. A node's transport runs on the node's loop too: a
    /// session's opened messages reach the node, and the node's sends reach the session, without a
    /// thread hop (on a loop of its own, every message woke a second thread: with the node taking
    /// messages within the read, a 3-node mesh spends 8–13% less CPU per replicated INCR at `-P 1`).
    /// Like NIO's singleton it lives as long as the process.
    static let nodeLoops = MultiThreadedEventLoopGroup(numberOfThreads: max(2, System.coreCount))

    var phase = Phase.idle
    var store: MeshStore?
    var replica: ReplicaStateMachine?
    var membership: MembershipStateMachine?
    var storageFailure: StorageError?
    var journaledSinceCheckpoint = 0
    /// Encoded bytes of the records journaled since the last checkpoint, and that checkpoint's size:
    /// a checkpoint also waits until the journal has grown by half of the last one (see `journal`).
    var journaledBytesSinceCheckpoint = 0
    var lastCheckpointByteCount = 0
    /// Own writes journaled but not yet written to the store: one row at the next commit (`JournalBatch`).
    var journalBatch = JournalBatch()
    /// Whether a local write is journaled but not committed yet (nothing may carry it to a peer).
    var ownWritesUncommitted = false
    var persistedLinkEpoch: UInt64 = 0

    /// Peers' replica IDs and back (from membership records).
    var replicaOfMember: [MemberID: ReplicaID] = [:]
    var memberOfReplica: [ReplicaID: MemberID] = [:]
    /// Authenticated sessions, by member ID.
    var sessions: [MemberID: NodeID] = [:]
    var maintainedAddresses = Set<MemberAddress>()
    /// Messages waiting for each peer's session (see `enqueue`).
    var outboxes: [NodeID: PeerOutbox] = [:]
    /// Tells outboxes apart across a peer's outbox being dropped and made again.
    var outboxesMade: UInt64 = 0

    var writeWaiters: [WriteID: Waiter<Void>] = [:]
    var readWaiters: [UInt64: Waiter<ReadResult>] = [:]
    var nextReadID: UInt64 = 1
    var commitWaiters: [(MeshError?) -> Void] = []
    var isCommitScheduled = false
    /// Whether a `.batched` group commit is scheduled on the loop (`scheduleBatchedCommit`).
    var isBatchedCommitScheduled = false
    var subscribers: [UInt64: Subscriber] = [:]
    var nextSubscriberID: UInt64 = 1
    /// Peers whose traffic is dropped at this node (fault injection for tests of partitions).
    var blockedPeers = Set<NodeID>()
    /// Whether all peer traffic is dropped (`goOffline()`).
    var isOffline = false

    var runningWaiters: [CheckedContinuation<Void, any Error>] = []
    var stopSignal: AsyncStream<Void>.Continuation?
    var stopped: [CheckedContinuation<Void, Never>] = []
    var lastDuplicates: [String: Int] = [:]
    var statusServer: StatusServer?
    var lastGaugeUpdate = ContinuousClock.now - .seconds(1)
    /// Bytes and messages sent by kind, local writes and their encoded delta bytes (for status).
    var traffic = NodeStatus.Traffic()
    /// Called on every delivery (local or remote), on the node's loop: a front door's change notifications.
    var deliveryObserver: ((Delivery) -> Void)?
    /// What a front door reports for `status()` (endpoint, clients).
    var frontDoorStatus: NodeStatus.FrontDoor?

    /// Creates a node; nothing is opened or bound until `run()`.
    ///
    /// - Throws: `MeshError(.invalidConfiguration)` naming the option that is wrong.
    ///
    /// - Parameters:
    ///   - metricsFactory: where the node's metrics go (default: the process-wide `MetricsSystem.factory`).
    ///   - eventLoop: the loop the node and its transport run on (default: one of a process-wide
    ///     group kept for nodes).
    public init(
        configuration: MeshNodeConfiguration, logger: Logger = Logger(label: "statemesh.node"),
        metricsFactory: (any MetricsFactory)? = nil, eventLoop: (any EventLoop)? = nil
    ) throws {
        try configuration.validate()
        let loop = eventLoop ?? Self.nodeLoops.next()
        self.eventLoop = loop
        self.executor = loop.executor.asUnownedSerialExecutor()
        self.configuration = configuration
        self.nodeID = configuration.identity.nodeID
        var logger = logger
        logger[metadataKey: "node"] = "\(configuration.identity.nodeID)"
        self.logger = logger
        self.metrics = metricsFactory.map { NodeMetrics(factory: $0) } ?? NodeMetrics()
        do {
            self.transport = try MeshTransport(
                identity: configuration.identity, admission: configuration.admission,
                configuration: configuration.transport, eventLoopGroup: loop, logger: logger)
        } catch {
            throw MeshError(.invalidConfiguration, "transport: \(error)", cause: error)
        }
    }

    // MARK: Lifecycle

    /// Opens storage, recovers, listens, meets the seeds, and serves until `shutdown()`, task
    /// cancellation or a graceful-shutdown signal from a `ServiceGroup`.
    ///
    /// - Throws: `MeshError(.storageFailed)` when the data directory cannot be opened or recovered,
    ///   `MeshError(.invalidConfiguration)` when the listener cannot bind; nothing is left half-started.
    public func run() async throws {
        guard phase == .idle else { throw MeshError(.invalidRequest, "a node runs once") }
        phase = .starting
        let (signal, signalContinuation) = AsyncStream.makeStream(of: Void.self)
        stopSignal = signalContinuation
        do {
            try await start()
        } catch {
            phase = .stopped
            store?.close()
            await statusServer?.close()
            await transport.shutdown()
            for waiter in runningWaiters { waiter.resume(throwing: error) }
            runningWaiters = []
            resumeStopped()
            throw error
        }
        phase = .running
        for waiter in runningWaiters { waiter.resume() }
        runningWaiters = []
        logger.info(
            "node running",
            metadata: [
                "replica": "\(replica!.replicaID)", "port": "\(transport.listeningPort ?? 0)",
                "data": "\(configuration.dataDirectory)",
            ])

        let ticks = startTicking()
        // The sessions run on this loop (see `nodeLoops`): each opened message is handled within the read.
        transport.receiveInbound(on: eventLoop) { message in
            self.assumeIsolated { $0.handleInbound(message) }
        }
        // Sessions coming and going as they do; those already up are read once, here.
        transport.receiveEvents(on: eventLoop) { event in
            self.assumeIsolated { $0.handleSessionEvent(event) }
        }
        refreshSessions()
        await withGracefulShutdownHandler {
            for await _ in signal { break }
        } onGracefulShutdown: {
            signalContinuation.finish()
        }
        ticks.cancel()
        await stop()
    }

    /// Waits until `run()` has recovered state and is listening.
    ///
    /// - Throws: the error `run()` failed with.
    public func waitUntilRunning() async throws {
        switch phase {
        case .running: return
        case .stopping, .stopped: throw MeshError(.notRunning, "the node stopped")
        case .idle, .starting:
            try await withCheckedThrowingContinuation { runningWaiters.append($0) }
        }
    }

    /// Stops the node gracefully and waits until `run()` has returned.
    public func shutdown() async {
        switch phase {
        case .stopped: return
        case .idle:
            phase = .stopped
            resumeStopped()
            return
        default:
            stopSignal?.finish()
            await withCheckedContinuation { stopped.append($0) }
        }
    }

    /// The port of the status endpoint, if configured (after `waitUntilRunning()`).
    public var statusPort: Int? { statusServer?.port }

    /// The port the node listens on (after `waitUntilRunning()`).
    public var listeningPort: Int? { transport.listeningPort }

    /// This node's replica ID (after `waitUntilRunning()`).
    public var replicaID: ReplicaID? { replica?.replicaID }

    private func start() async throws {
        let store: MeshStore
        do {
            store = try MeshStore(directory: configuration.dataDirectory, durability: configuration.durability)
        } catch {
            throw MeshError(.storageFailed, "cannot open \(configuration.dataDirectory): \(error)", cause: error)
        }
        self.store = store
        let persisted = try recover(from: store)
        replica = ReplicaStateMachine(
            restoring: persisted, peers: [], configuration: configuration.replication,
            seed: UInt64.random(in: 1...UInt64.max))
        persistedLinkEpoch = persisted.linkEpoch

        let port: Int
        do {
            port = try await transport.start()
        } catch {
            throw MeshError(
                .invalidConfiguration,
                "cannot listen on \(configuration.transport.host):\(configuration.transport.port): \(error)",
                cause: error)
        }
        if let endpoint = configuration.statusEndpoint {
            do {
                statusServer = try await StatusServer.start(host: endpoint.host, port: endpoint.port) { [weak self] in
                    guard let self else { return NodeStatus.empty }
                    return await self.status()
                }
            } catch {
                throw MeshError(
                    .invalidConfiguration, "cannot serve status on \(endpoint.host):\(endpoint.port): \(error)",
                    cause: error)
            }
        }
        // SWIM incarnations must grow across restarts, or an old rumour could win.
        let incarnation = (try? store.value(forKey: "incarnation").flatMap(Self.decodeUInt64)) ?? 0
        try persist { try $0.setValue(Self.encodeUInt64(incarnation + 1), forKey: "incarnation") }
        try commitNow()
        let me = Member(
            id: MemberID(bytes: nodeID.bytes), replicaID: persisted.replicaID,
            address: MemberAddress(host: configuration.advertisedHost ?? configuration.transport.host, port: port),
            incarnation: incarnation + 1, status: .alive)
        // Members remembered from the last run are seeds too: the node finds the mesh even if the
        // configured seeds are gone.
        var seeds = configuration.seeds
        for (_, bytes) in (try? store.members()) ?? [] {
            if let member = MemberRecord.decode(bytes), member.status != .left, !seeds.contains(member.address) {
                seeds.append(member.address)
            }
        }
        var machine = MembershipStateMachine(
            me: me, seeds: seeds, configuration: configuration.membership, seed: UInt64.random(in: 1...UInt64.max))
        let actions = machine.start(now: now())
        membership = machine
        handle(actions)
    }

    /// Loads the checkpoint and replays the journal; a fresh directory gets a new replica ID.
    private func recover(from store: MeshStore) throws -> PersistedReplica {
        var persisted: PersistedReplica
        var limits = configuration.replication.codecLimits
        limits.maximumInputBytes = Int.max
        do {
            if let (bytes, through) = try store.checkpoint() {
                persisted = try PersistedReplica(decoding: bytes, limits: limits)
                lastCheckpointByteCount = bytes.count
                var after = through
                var replayed = 0
                while true {
                    let records = try store.records(after: after, limit: 4_096)
                    guard let last = records.last else { break }
                    for stored in records {
                        let row = try JournalRow.entries(domain: stored.domain, bytes: stored.bytes, limits: limits)
                        for entry in row.entries {
                            if persisted.replay(entry.record, in: row.domain) { replayed += 1 }
                            journaledSinceCheckpoint += Int(clamping: entry.writeKeys?.count ?? 1)
                        }
                        journaledBytesSinceCheckpoint += stored.bytes.count
                    }
                    after = last.sequence
                }
                if let epoch = try store.value(forKey: "link-epoch").flatMap(Self.decodeUInt64) {
                    persisted.raiseLinkEpoch(to: epoch)
                }
                if let clock = try store.value(forKey: "hlc").flatMap(Self.decodeTimestamp) {
                    persisted.raiseClock(to: clock)
                }
                // Epochs issued after the last commit are unknown: skip well past them.
                persisted.raiseLinkEpoch(to: persisted.linkEpoch + (1 << 20))
                for domain in configuration.domains where !persisted.domainNames.contains(domain.name) {
                    persisted.addDomain(domain)
                }
                logger.info(
                    "recovered from storage",
                    metadata: ["replica": "\(persisted.replicaID)", "replayed": "\(replayed)"])
            } else {
                // A wiped or new data directory: a new replica ID, never one whose history was lost.
                var random = SystemRandomNumberGenerator()
                let id = ReplicaID(random.next() >> 1 | 1)
                persisted = PersistedReplica(replicaID: id, domains: configuration.domains)
                try store.replaceCheckpoint(persisted.encoded())
                try store.commit()
                logger.info("new replica", metadata: ["replica": "\(id)"])
            }
        } catch let error as StorageError {
            throw MeshError(.storageFailed, "recovery from \(configuration.dataDirectory) failed: \(error)", cause: error)
        } catch {
            throw MeshError(.storageFailed, "the data in \(configuration.dataDirectory) is unreadable: \(error)", cause: error)
        }
        return persisted
    }

    private func stop() async {
        guard phase == .running || phase == .starting else { return }
        phase = .stopping
        if membership != nil {
            let goodbye = membership!.leave(now: now())
            handle(goodbye)
        }
        // Let the goodbye and queued gossip leave before the sessions close (their writes are scheduled
        // on this loop, which runs them while this waits).
        try? await Task.sleep(for: .milliseconds(50))
        outboxes = [:]
        let stopError = MeshError(.notRunning, "the node is shutting down")
        for (_, waiter) in writeWaiters { waiter.fail(stopError) }
        writeWaiters = [:]
        for (_, waiter) in readWaiters { waiter.fail(stopError) }
        readWaiters = [:]
        if storageFailure == nil {
            do {
                // Refutations may have raised our incarnation: the next start continues above it.
                if let incarnation = membership?.myself.incarnation {
                    try persist { try $0.setValue(Self.encodeUInt64(incarnation), forKey: "incarnation") }
                }
                try commitNow()
            } catch {
                logger.error("final commit failed: \(error)")
            }
        }
        store?.close()
        for subscriber in subscribers.values { subscriber.continuation.finish() }
        subscribers = [:]
        await statusServer?.close()
        await transport.shutdown()
        phase = .stopped
        logger.info("node stopped")
        resumeStopped()
    }

    private func resumeStopped() {
        for waiter in stopped { waiter.resume() }
        stopped = []
    }

    // MARK: Loops

    /// Ticks often enough for prompt pushes and probe timeouts; the state machines run their rounds
    /// on their own schedules (gossip interval, probe interval) whatever the tick rate.
    ///
    /// A timer of the node's own event loop: a `Task.sleep` loop woke a Dispatch timer thread and a
    /// worker thread, then hopped to the loop, on every tick (most of an idle node's CPU).
    private func startTicking() -> RepeatedTask {
        let period = min(
            configuration.replication.gossipIntervalMilliseconds / 4, configuration.membership.probeTimeoutMilliseconds / 4,
            25)
        let interval = TimeAmount.milliseconds(Int64(max(period, 5)))
        return eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            self.assumeIsolated { $0.tick() }
        }
    }

    /// `.batched`: schedules the group commit of what was just journaled, one interval from now, unless
    /// one is scheduled already. A commit is therefore never later than one interval after the first
    /// change it covers (as with a commit every interval), and an idle node does not wake up for it.
    private func scheduleBatchedCommit() {
        guard !isBatchedCommitScheduled, case .batched(let interval) = configuration.durability else { return }
        isBatchedCommitScheduled = true
        eventLoop.scheduleTask(in: .milliseconds(Int64(interval))) {
            self.assumeIsolated { node in node.commitBatch() }
        }
    }

    private func commitBatch() {
        isBatchedCommitScheduled = false
        // Stopping commits what is left itself (`stop()`).
        guard phase == .running else { return }
        if hasUncommittedJournal { try? commitNow() }
        // A commit that failed leaves the journal uncommitted: the node has failed and refuses writes.
    }

    func tick() {
        guard phase == .running else { return }
        let time = now()
        if membership != nil {
            let actions = membership!.tick(now: time)
            handle(actions)
        }
        if replica != nil, commitOwnWritesBeforeSending() {
            let actions = replica!.tick(now: time)
            handle(actions)
        }
        expireWaiters(now: ContinuousClock.now)
        if configuration.durability == .always, hasUncommittedJournal, commitWaiters.isEmpty {
            try? commitNow()
        }
        // Gauges need a whole status (every peer's lag in every domain): not on every 25 ms tick.
        if ContinuousClock.now - lastGaugeUpdate >= .seconds(1) {
            lastGaugeUpdate = ContinuousClock.now
            updateGauges()
        }
    }

    /// A session came up (membership hears of it, unless the peer is cut off by `goOffline()` or
    /// `block`) or went down (forgotten with its outbox).
    private func handleSessionEvent(_ event: TransportEvent) {
        guard phase == .running else { return }
        switch event {
        case .sessionEstablished(let peer):
            guard !isOffline, !blockedPeers.contains(peer) else { return }
            sessionCameUp(peer, now: now())
        case .sessionClosed(let peer, _):
            sessionWentDown(peer)
        }
    }

    /// Makes `sessions` the transport's sessions less the peers cut off by `goOffline()` or `block`. At
    /// start, and when offline mode or a block changes; sessions that come and go meanwhile arrive as
    /// events.
    private func refreshSessions() {
        guard phase == .running else { return }
        let time = now()
        var current = Set<NodeID>()
        for peer in transport.connectedPeers where !isOffline && !blockedPeers.contains(peer) {
            current.insert(peer)
            sessionCameUp(peer, now: time)
        }
        for peer in sessions.values where !current.contains(peer) { sessionWentDown(peer) }
    }

    /// Records a session with `peer`; membership hears of it unless one was recorded already.
    private func sessionCameUp(_ peer: NodeID, now time: Instant) {
        let member = MemberID(bytes: peer.bytes)
        guard sessions[member] == nil else { return }
        sessions[member] = peer
        if membership != nil {
            let actions = membership!.sessionEstablished(with: member, now: time)
            handle(actions)
        }
    }

    /// Forgets the session with `peer` and its outbox.
    private func sessionWentDown(_ peer: NodeID) {
        sessions[MemberID(bytes: peer.bytes)] = nil
        outboxes[peer] = nil
    }

    // MARK: Inbound

    private func handleInbound(_ message: InboundMessage) {
        guard phase == .running, !isOffline, !blockedPeers.contains(message.peer), let kind = message.bytes.first else {
            return
        }
        let member = MemberID(bytes: message.peer.bytes)
        if sessions[member] == nil { sessions[member] = message.peer }
        let body = Array(message.bytes.dropFirst())
        metrics.received(bytes: message.bytes.count)
        switch kind {
        case Envelope.membership:
            guard membership != nil else { return }
            let actions = membership!.receive(body, from: member, now: now())
            handle(actions)
        case Envelope.replication:
            guard let origin = replicaOfMember[member] else {
                // Not introduced yet (its membership record comes first on a session); gossip repairs.
                metrics.droppedUnknownSender.increment()
                return
            }
            // A reply (repair, snapshot, read) may carry this node's own writes.
            guard replica != nil, commitOwnWritesBeforeSending() else { return }
            let actions = replica!.receive(body, from: origin, now: now())
            handle(actions)
        default:
            logger.warning("unknown envelope kind \(kind) from \(message.peer)")
            metrics.droppedUnknownSender.increment()
        }
    }

    // MARK: Carrying out actions

    func handle(_ actions: [ReplicationAction]) {
        for action in actions {
            switch action {
            case .send(let message, let peer):
                guard let member = memberOfReplica[peer], let node = sessions[member] else {
                    metrics.droppedNoSession.increment()
                    continue
                }
                let bytes = message.encoded()
                metrics.sent(message, byteCount: bytes.count + 1)
                traffic.bytesSent[message.kind, default: 0] += UInt64(bytes.count + 1)
                traffic.messagesSent[message.kind, default: 0] += 1
                enqueue(Envelope.replication, bytes, to: node)
            case .deliver(let delivery):
                deliver(delivery)
            case .acknowledge(let id):
                acknowledge(id)
            case .completeRead(let result):
                readWaiters.removeValue(forKey: result.id)?.succeed(result)
            case .fail(let error):
                if let id = error.write, let waiter = writeWaiters.removeValue(forKey: id) {
                    waiter.fail(MeshError(error))
                } else if let id = error.readID, let waiter = readWaiters.removeValue(forKey: id) {
                    waiter.fail(MeshError(error))
                } else {
                    metrics.replicationErrors.increment()
                    logger.notice("replication: \(error)")
                }
            }
        }
    }

    /// Journals a delivery and tells the change feed, the subscribers and the observer.
    private func deliver(_ delivery: Delivery) {
        if delivery.source == .remote { metrics.deltasReceived.increment() }
        journal(delivery)
        publish(delivery)
        deliveryObserver?(delivery)
    }

    /// Resolves whoever waits for write `id`'s concern.
    private func acknowledge(_ id: WriteID) {
        // Every local write is acknowledged here; most have no waiter (hashing the ID costs).
        if !writeWaiters.isEmpty { writeWaiters.removeValue(forKey: id)?.succeed(()) }
    }

    func handle(_ actions: [MembershipAction]) {
        for action in actions {
            switch action {
            case .send(let bytes, let member):
                guard let node = sessions[member] else { continue }
                metrics.sentMembership(byteCount: bytes.count + 1)
                traffic.bytesSent["membership", default: 0] += UInt64(bytes.count + 1)
                traffic.messagesSent["membership", default: 0] += 1
                enqueue(Envelope.membership, bytes, to: node)
            case .connect(let address, _):
                if maintainedAddresses.insert(address).inserted {
                    transport.maintainConnection(host: address.host, port: address.port)
                }
            case .memberChanged(let member, let previous):
                memberChanged(member, previous: previous)
            }
        }
    }

    private func memberChanged(_ member: Member, previous: MemberStatus?) {
        guard member.id.bytes != nodeID.bytes else { return }
        logger.info(
            "member \(member.status)",
            metadata: [
                "peer": "\(member.id)", "replica": "\(member.replicaID)",
                "address": "\(member.address.host):\(member.address.port)", "incarnation": "\(member.incarnation)",
            ])
        if let old = replicaOfMember[member.id], old != member.replicaID {
            // The peer's data directory was wiped: its old replica is gone for good.
            memberOfReplica[old] = nil
            if replica != nil {
                let actions = replica!.peerLeft(old)
                handle(actions)
            }
        }
        replicaOfMember[member.id] = member.replicaID
        memberOfReplica[member.replicaID] = member.id
        if replica != nil {
            switch member.status {
            case .alive, .suspect:
                replica!.peerJoined(member.replicaID)
            case .dead:
                // It may come back: it keeps holding back stability (the log keeps what it lacks).
                let actions = replica!.peerUnreachable(member.replicaID)
                handle(actions)
            case .left:
                // Decommissioned for good: it no longer holds back stability.
                let actions = replica!.peerLeft(member.replicaID)
                handle(actions)
            }
        }
        if member.status != .left, maintainedAddresses.insert(member.address).inserted {
            transport.maintainConnection(host: member.address.host, port: member.address.port)
        }
        try? persist { try $0.setMember(MemberRecord.encode(member), forID: member.id.bytes) }
    }

    /// Queues a message for `node`'s session (see `PeerOutbox`: one burst per turn of the node's loop,
    /// bursts in order, at most `maximumOutboundMessagesPerPeer` waiting).
    ///
    /// The bursts are handed to the transport without an `await` (`MeshTransport.write`): a call to the
    /// transport's async `send` from this actor hops to Swift's global executor and back for every
    /// message, and with replication traffic those hops cost a peer about a third of its CPU.
    private func enqueue(_ kind: UInt8, _ body: [UInt8], to node: NodeID) {
        guard !isOffline, !blockedPeers.contains(node) else { return }
        if outboxes[node]?.isFull == true {
            metrics.droppedOutboundFull.increment()
            return
        }
        var framed = [UInt8]()
        framed.reserveCapacity(body.count + 1)
        framed.append(kind)
        framed.append(contentsOf: body)
        // Taken out and put back, so the queue's storage has one owner while it grows.
        var outbox = outboxes.removeValue(forKey: node) ?? makeOutbox()
        if outbox.enqueue(framed) == .queuedScheduleWrite {
            eventLoop.execute { self.assumeIsolated { $0.writeOutbox(to: node) } }
        }
        outboxes[node] = outbox
    }

    private func makeOutbox() -> PeerOutbox {
        outboxesMade += 1
        return PeerOutbox(generation: outboxesMade, capacity: configuration.maximumOutboundMessagesPerPeer)
    }

    /// Hands what waits for `node` to the transport as one burst, unless a burst is being written.
    private func writeOutbox(to node: NodeID) {
        // Taken out and put back, so the queue's storage has one owner while it is emptied.
        guard var outbox = outboxes.removeValue(forKey: node) else { return }
        let burst = outbox.takeBurst()
        let generation = outbox.generation
        guard !burst.isEmpty else {
            outboxes[node] = outbox
            return
        }
        let written: EventLoopFuture<Void>
        do {
            written = try transport.write(contentsOf: burst, to: node)
        } catch {
            // No session (it closed since): dropped, gossip repairs what the messages carried.
            outbox.burstEnded()
            outboxes[node] = outbox
            metrics.droppedNoSession.increment(by: burst.count)
            return
        }
        // Back in the table before the completion is registered: a write done already completes at once.
        outboxes[node] = outbox
        written.hop(to: eventLoop).whenComplete { _ in
            // A failed write (the session closed midway) drops the rest of the burst, as above.
            self.assumeIsolated { $0.outboxWritten(to: node, generation: generation) }
        }
    }

    private func outboxWritten(to node: NodeID, generation: UInt64) {
        guard outboxes[node]?.generation == generation else { return }
        outboxes[node]!.burstEnded()
        writeOutbox(to: node)
    }

    // MARK: Storage

    /// Runs `change` on the open batch; a storage error puts the node into the failed state.
    func persist(_ change: (MeshStore) throws -> Void) throws(MeshError) {
        if let storageFailure {
            throw MeshError(.storageFailed, "storage failed earlier: \(storageFailure)", cause: storageFailure)
        }
        guard let store else { throw MeshError(.notRunning, "storage is not open") }
        defer { if hasUncommittedJournal { scheduleBatchedCommit() } }
        do {
            try change(store)
        } catch let error as StorageError {
            failStorage(error)
            throw MeshError(.storageFailed, "\(error)", cause: error)
        } catch {
            throw MeshError(.storageFailed, "\(error)", cause: error)
        }
    }

    private func journal(_ delivery: Delivery) {
        // Not `let machine = replica`: a copy of the state machine per delivery retains all its storage.
        guard replica != nil, storageFailure == nil else { return }
        do {
            if delivery.localWrite != nil {
                // Own writes join into one group per row and commit (`JournalBatch`); remote deltas keep
                // a row each.
                if !journalBatch.accepts(delivery) { try flushJournalBatch() }
                traffic.localDeltaBytes += UInt64(journalBatch.append(delivery))
                scheduleBatchedCommit()
                if journalBatch.isFull { try flushJournalBatch() }
                ownWritesUncommitted = true
                journaledSinceCheckpoint += 1
            } else if let record = delivery.record {
                try persist { _ = try $0.appendRecord(domain: delivery.domain, bytes: record.encoded()) }
                journaledSinceCheckpoint += 1
                journaledBytesSinceCheckpoint += record.encodedByteCount
            }
            // A snapshot carries no record to journal, and the journal is bounded: checkpoint. A checkpoint
            // encodes the whole state, so it also waits until the records journaled since the last one add
            // up to half its size: its cost per journaled byte stays bounded however large the state (with a
            // checkpoint every 10,000 records, SADD into a set of 60,000 members spent half of node 1's CPU
            // encoding checkpoints). The journal between checkpoints stays under half the state's size.
            if !delivery.hasRecord
                || (journaledSinceCheckpoint >= configuration.checkpointRecordCount
                    && journaledBytesSinceCheckpoint * 2 >= lastCheckpointByteCount)
            {
                // The checkpoint covers every row before it, so the gathered own writes go first.
                try flushJournalBatch()
                let checkpoint = replica!.persisted.encoded()
                try persist { try $0.replaceCheckpoint(checkpoint, retainingRecords: configuration.changeHistoryRecords) }
                lastCheckpointByteCount = checkpoint.count
                journaledBytesSinceCheckpoint = 0
                journaledSinceCheckpoint = 0
                metrics.checkpoints.increment()
            }
            let linkEpoch = replica!.linkEpoch
            if linkEpoch != persistedLinkEpoch {
                try persist { try $0.setValue(Self.encodeUInt64(linkEpoch), forKey: "link-epoch") }
                persistedLinkEpoch = linkEpoch
            }
        } catch {
            logger.error("journaling \(delivery.domain) failed: \(error)")
        }
    }

    /// Whether anything journaled is not committed yet (in the store's open batch or gathered own writes).
    var hasUncommittedJournal: Bool { store?.hasUncommittedChanges == true || !journalBatch.isEmpty }

    /// Writes the gathered own writes to the store's open batch as one row (a row of `n` records takes
    /// `n` sequences, so the change history's bound still counts records).
    func flushJournalBatch() throws(MeshError) {
        guard !journalBatch.isEmpty else { return }
        let row = journalBatch.take()
        try persist { _ = try $0.appendRecord(domain: row.domain, bytes: row.bytes, span: row.count) }
        journaledBytesSinceCheckpoint += row.bytes.count
    }

    /// Makes this node's own journaled writes durable before anything that may carry them leaves
    /// (pushes, repairs, snapshots, read replies): a peer must never hold a write that a crash could
    /// take from its origin, or the origin would reissue its dots after restarting. Returns false when
    /// storage has failed: the node then stops replicating (it holds state it could not persist).
    private func commitOwnWritesBeforeSending() -> Bool {
        guard storageFailure == nil else { return false }
        // A commit calls its waiters, and a waiter (a front door releasing replies) could write
        // again: commit until nothing of ours is pending, or give up sending this time.
        for _ in 0..<3 where ownWritesUncommitted {
            try? commitNow()
        }
        return storageFailure == nil && !ownWritesUncommitted
    }

    /// Commits the open batch now and resumes every write waiting for it.
    func commitNow() throws(MeshError) {
        isCommitScheduled = false
        let waiters = commitWaiters
        commitWaiters = []
        do {
            try flushJournalBatch()
            try persist { store in
                if store.hasUncommittedChanges {
                    // The HLC high-water mark goes with every batch: a restart never issues a timestamp
                    // below one it issued before (counter and set writes carry none in their records).
                    if let latest = replica?.latestTimestamp {
                        try store.setValue(Self.encodeTimestamp(latest), forKey: "hlc")
                    }
                    let started = ContinuousClock.now
                    try store.commit()
                    metrics.committed(duration: ContinuousClock.now - started)
                }
                ownWritesUncommitted = false
            }
        } catch {
            for waiter in waiters { waiter(error) }
            throw error
        }
        for waiter in waiters { waiter(nil) }
    }

    /// Waits until everything journaled so far is durable (`.always`), sharing one commit with
    /// every write that arrives meanwhile; returns at once in `.batched` mode.
    private func awaitDurability() async throws {
        guard configuration.durability == .always else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            whenDurable { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
        }
    }

    /// Calls `completion` on the node's loop once everything journaled so far is durable under the
    /// durability mode: after the next group commit in `.always` mode (shared by every write that
    /// arrives meanwhile), at once in `.batched` mode. The error is the commit's failure.
    package func whenDurable(_ completion: @escaping (MeshError?) -> Void) {
        guard configuration.durability == .always else { return completion(nil) }
        commitWaiters.append(completion)
        if !isCommitScheduled {
            isCommitScheduled = true
            Task { self.commitScheduled() }
        }
    }

    private func commitScheduled() {
        guard isCommitScheduled else { return }
        try? commitNow()
    }

    private func failStorage(_ error: StorageError) {
        guard storageFailure == nil else { return }
        storageFailure = error
        store?.rollback()
        journalBatch = JournalBatch()  // gathered for the batch just rolled back: gone with it
        logger.critical(
            "storage failed; the node refuses writes until restarted (it recovers the last committed state)",
            metadata: ["error": "\(error)"])
        metrics.storageFailures.increment()
    }

    // MARK: Writes and reads

    /// Applies `operation` to the object at `address`, makes it durable, and waits for `options.concern`.
    ///
    /// - Throws: `MeshError` with `.typeMismatch` (the address holds another type), `.unknownDomain`,
    ///   `.storageFailed`, `.writeConcernTimeout` (durable locally, not confirmed by enough replicas),
    ///   `.limitExceeded`, `.notRunning`.
    @discardableResult
    public func write(
        _ operation: WriteOperation, at address: MeshAddress, options: WriteOptions = .local
    ) async throws -> WriteID {
        let (id, waitsForReplicas) = try writeLocally(operation, at: address, concern: options.concern)
        var concernWaiter: Waiter<Void>?
        if waitsForReplicas {
            let waiter = Waiter<Void>(deadline: ContinuousClock.now.advanced(by: options.timeout))
            writeWaiters[id] = waiter
            concernWaiter = waiter
        }
        try await awaitDurability()
        if let concernWaiter { try await concernWaiter.value() }
        return id
    }

    /// Applies `operation` and journals it, without waiting: the caller waits for durability
    /// (`whenDurable`) before acknowledging the write to anyone. Returns the write and whether it
    /// still waits for its concern.
    ///
    /// - Parameter requestsAcknowledgement: ask receivers to acknowledge the write's delta at once
    ///   (for `WAIT`-style confirmation without a write concern).
    package func writeLocally(
        _ operation: WriteOperation, at address: MeshAddress, concern: WriteConcern = .local,
        requestsAcknowledgement: Bool = false
    ) throws(MeshError) -> (id: WriteID, waitsForReplicas: Bool) {
        try writeLocally(
            operation, to: address.path, in: address.domain, concern: concern,
            requestsAcknowledgement: requestsAcknowledgement)
    }

    /// `writeLocally(_:at:concern:requestsAcknowledgement:)` for a key and domain that already form a
    /// valid address (a front door that resolved them; no `MeshAddress` to build per write).
    package func writeLocally(
        _ operation: WriteOperation, to key: String, in domain: String, concern: WriteConcern = .local,
        requestsAcknowledgement: Bool = false
    ) throws(MeshError) -> (id: WriteID, waitsForReplicas: Bool) {
        guard phase == .running, replica != nil else { throw MeshError(.notRunning, "the node is not running") }
        if let storageFailure {
            throw MeshError(.storageFailed, "storage failed earlier: \(storageFailure)", cause: storageFailure)
        }
        let outcome: WriteOutcome
        do {
            // In place: a copy of the state machine would copy-on-write all of its state per write.
            outcome = try replica!.write(
                operation, to: key, in: domain, concern: concern,
                requestsAcknowledgement: requestsAcknowledgement, now: now())
        } catch {
            throw MeshError(error)
        }
        metrics.writes.increment()
        traffic.localWrites += 1
        // The outcome's two actions, carried out as `handle` would, without an array of them per write.
        deliver(outcome.delivery)
        if outcome.isAcknowledged { acknowledge(outcome.id) }
        return (outcome.id, !outcome.isAcknowledged)
    }

    /// The object at `address` on this node, or `nil` if nothing was written there.
    public func value(at address: MeshAddress) -> ObjectValue? {
        replica?.value(of: address.path, in: address.domain)
    }

    /// The object at `address` joined from `options.replicas` replicas (this one included).
    ///
    /// - Throws: `MeshError(.readTimeout)` when fewer replicas answered in time, `.unknownDomain`, `.notRunning`.
    public func read(_ address: MeshAddress, options: ReadOptions = .local) async throws -> ObjectValue? {
        guard phase == .running, replica != nil else { throw MeshError(.notRunning, "the node is not running") }
        let id = nextReadID
        nextReadID += 1
        let actions: [ReplicationAction]
        do {
            actions = try replica!.read(address.path, in: address.domain, replicas: options.replicas, id: id, now: now())
        } catch {
            throw MeshError(error)
        }
        let waiter = Waiter<ReadResult>(deadline: ContinuousClock.now.advanced(by: options.timeout))
        readWaiters[id] = waiter
        handle(actions)
        return try await waiter.value().value
    }

    /// The keys of `domain` on this node, sorted.
    public func keys(in domain: String) -> [String] {
        (replica?.objects(in: domain)?.keys).map { $0.sorted() } ?? []
    }

    private func expireWaiters(now instant: ContinuousClock.Instant) {
        for (id, waiter) in writeWaiters where waiter.deadline <= instant {
            writeWaiters[id] = nil
            waiter.fail(MeshError(.writeConcernTimeout, "write \(id) is durable here but not confirmed by enough replicas in time"))
        }
        for (id, waiter) in readWaiters where waiter.deadline <= instant {
            readWaiters[id] = nil
            waiter.fail(MeshError(.readTimeout, "read \(id) did not get enough replies in time"))
        }
    }

    // MARK: Membership operations

    /// Removes a node from the mesh for good: it no longer holds back stability, and it cannot rejoin
    /// with this identity's current incarnation.
    public func decommission(_ peer: NodeID) throws(MeshError) {
        guard phase == .running, membership != nil else { throw MeshError(.notRunning, "the node is not running") }
        let actions = membership!.decommission(MemberID(bytes: peer.bytes), now: now())
        handle(actions)
    }

    /// The membership as this node sees it, including itself.
    public var members: [Member] { membership?.members ?? [] }

    // MARK: Offline mode

    /// Stops exchanging messages with every peer until `goOnline()`: writes and reads go on locally,
    /// as on a laptop with no network. May be called before `run()`, so a node starts disconnected. Peers will suspect and then declare this node dead; when it
    /// comes back it refutes and catches up (and they catch up with what it wrote meanwhile).
    public func goOffline() {
        isOffline = true
        outboxes = [:]
        refreshSessions()
    }

    /// Resumes exchanging messages after `goOffline()`.
    public func goOnline() {
        isOffline = false
        refreshSessions()
    }

    /// Whether `goOffline()` is in force.
    public var isOfflineMode: Bool { isOffline }

    // MARK: Fault injection

    /// Drops all traffic with `peers` at this node (both directions) until `unblock` — a partition
    /// for tests, below membership and replication but above the transport.
    package func block(_ peers: Set<NodeID>) {
        blockedPeers.formUnion(peers)
        for peer in peers { outboxes[peer] = nil }
        refreshSessions()
    }

    /// Ends a `block`.
    package func unblock(_ peers: Set<NodeID>) {
        blockedPeers.subtract(peers)
        refreshSessions()
    }

    // MARK: Time

    /// Wall-clock milliseconds since 1970 (the HLC's physical component).
    nonisolated func now() -> Instant {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Instant(milliseconds: UInt64(spec.tv_sec) * 1_000 + UInt64(spec.tv_nsec) / 1_000_000)
    }

    static func encodeUInt64(_ value: UInt64) -> [UInt8] {
        var writer = ByteWriter()
        writer.writeVarint(value)
        return writer.bytes
    }

    static func encodeTimestamp(_ timestamp: HLCTimestamp) -> [UInt8] {
        var writer = ByteWriter()
        writer.writeVarint(timestamp.physicalMilliseconds)
        writer.writeVarint(UInt64(timestamp.logical))
        return writer.bytes
    }

    static func decodeTimestamp(_ bytes: [UInt8]) -> HLCTimestamp? {
        guard var reader = try? ByteReader(bytes), let physical = try? reader.readVarint(),
            let logical = try? reader.readVarint(), logical <= UInt64(UInt32.max), reader.isAtEnd
        else { return nil }
        return HLCTimestamp(physicalMilliseconds: physical, logical: UInt32(logical))
    }

    static func decodeUInt64(_ bytes: [UInt8]) -> UInt64? {
        guard var reader = try? ByteReader(bytes), let value = try? reader.readVarint(), reader.isAtEnd else { return nil }
        return value
    }
}

/// The first byte of every node message: which layer it is for.
enum Envelope {
    static let replication: UInt8 = 1
    static let membership: UInt8 = 2
}

/// A one-shot result someone awaits, with a deadline the node enforces.
final class Waiter<Value: Sendable>: Sendable {
    let deadline: ContinuousClock.Instant
    private let state = Mutex<State>(State())

    struct State {
        var result: Result<Value, MeshError>?
        var continuation: CheckedContinuation<Value, any Error>?
    }

    init(deadline: ContinuousClock.Instant) { self.deadline = deadline }

    func succeed(_ value: Value) { complete(.success(value)) }
    func fail(_ error: MeshError) { complete(.failure(error)) }

    private func complete(_ result: Result<Value, MeshError>) {
        let continuation = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: result.mapError { $0 as any Error })
    }

    func value() async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<Value, MeshError>? in
                if let result = state.result { return result }
                state.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
        }
    }
}

/// A member as stored in the data directory (to find the mesh again after a restart).
enum MemberRecord {
    static func encode(_ member: Member) -> [UInt8] {
        var writer = ByteWriter()
        writer.writeByte(1)
        writer.writeVarint(member.replicaID.rawValue)
        writer.writeString(member.address.host)
        writer.writeVarint(UInt64(member.address.port))
        writer.writeVarint(member.incarnation)
        writer.writeByte(member.status.rawValue)
        writer.writeBytes(member.id.bytes)
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) -> Member? {
        guard var reader = try? ByteReader(bytes), (try? reader.readByte()) == 1,
            let replica = try? reader.readVarint(), let host = try? reader.readString(),
            let port = try? reader.readVarint(), port <= 65_535, let incarnation = try? reader.readVarint(),
            let status = (try? reader.readByte()).flatMap(MemberStatus.init(rawValue:)),
            let id = try? reader.readBytes(count: 32), reader.isAtEnd
        else { return nil }
        return Member(
            id: MemberID(bytes: Array(id)), replicaID: ReplicaID(replica), address: MemberAddress(host: host, port: Int(port)),
            incarnation: incarnation, status: status)
    }
}
