import Logging
import MeshCRDT
import MeshRESP
import MeshReplication
import Metrics
import NIOCore
import StateMesh

/// The server's shared state: clients, keyspace subscriptions and counters.
///
/// ### Invariants
/// Confined to the node's event loop: every method runs there (the listener, every connection
/// and the node's actor share that loop). That is why it may be `@unchecked Sendable`.
final class RESPServerState: @unchecked Sendable {
    let node: MeshNode
    let configuration: RESPServerConfiguration
    let logger: Logger
    let startedAt = ContinuousClock.now
    /// Whether replies to writes wait for an fsync (`.always` durability).
    let acknowledgesAfterCommit: Bool

    private(set) var clients: [UInt64: RESPConnectionHandler] = [:]
    private var nextClientID: UInt64 = 1
    private(set) var endpoint = ""
    /// Counters for `INFO stats` and `mesh status`, mirrored to swift-metrics (`metrics`).
    var connectionsReceived: UInt64 = 0
    var rejectedConnections: UInt64 = 0
    var commandsProcessed: UInt64 = 0
    var protocolErrors: UInt64 = 0 {
        didSet { metrics.protocolErrors.increment(by: Int64(protocolErrors - oldValue)) }
    }
    let metrics = RESPMetrics()
    var keyspaceHits: UInt64 = 0
    var keyspaceMisses: UInt64 = 0
    var notificationsSent: UInt64 = 0
    private var lastPublishedStatus = ContinuousClock.now

    /// Connections whose replies were written and wait for `flushReplies()`, and a spare array to swap in.
    private var unflushed: [RESPConnectionHandler] = []
    private var flushing: [RESPConnectionHandler] = []

    /// Channel name → subscribed client IDs; pattern → subscribed client IDs.
    private var channelSubscribers: [String: Set<UInt64>] = [:]
    private var patternSubscribers: [String: Set<UInt64>] = [:]

    init(node: MeshNode, configuration: RESPServerConfiguration, logger: Logger) {
        self.node = node
        self.configuration = configuration
        self.logger = logger
        self.acknowledgesAfterCommit = node.configuration.durability == .always
    }

    // MARK: Lifecycle

    func started(endpoint: String) {
        self.endpoint = endpoint
        updateDeliveryObserver()
        publishStatus()
    }

    func closeAll() {
        for client in clients.values { client.close() }
        clients = [:]
        channelSubscribers = [:]
        patternSubscribers = [:]
        updateDeliveryObserver()
        node.assumeIsolated { node in node.setFrontDoorStatus(nil) }
    }

    /// Registers a new connection; `nil` when the server is full.
    func register(_ client: RESPConnectionHandler) -> UInt64? {
        connectionsReceived += 1
        metrics.connections.increment()
        guard clients.count < configuration.maximumClients else {
            rejectedConnections += 1
            metrics.rejectedConnections.increment()
            logger.notice("RESP client refused: \(configuration.maximumClients) clients already connected")
            return nil
        }
        let id = nextClientID
        nextClientID += 1
        clients[id] = client
        metrics.clients.record(clients.count)
        publishStatus()
        return id
    }

    func unregister(_ id: UInt64, channels: Set<String>, patterns: Set<String>) {
        guard clients.removeValue(forKey: id) != nil else { return }
        metrics.clients.record(clients.count)
        for channel in channels { unsubscribe(id, from: channel) }
        for pattern in patterns { unsubscribe(id, fromPattern: pattern) }
        publishStatus()
    }

    /// Refreshes what `mesh status` shows (clients and commands); at most once a second for commands.
    func publishStatus(force: Bool = true) {
        let now = ContinuousClock.now
        guard force || now - lastPublishedStatus >= .seconds(1) else { return }
        lastPublishedStatus = now
        let status = NodeStatus.FrontDoor(
            proto: "resp", endpoint: endpoint, clients: clients.count, commands: commandsProcessed)
        node.assumeIsolated { node in node.setFrontDoorStatus(status) }
    }

    var pubSubClientCount: Int { clients.values.count { $0.isSubscribed } }

    // MARK: Flushing replies

    /// Flushes `client`'s written replies at the end of this turn of the loop: NIO runs the tasks
    /// `execute` queues from the loop itself after it has handled every I/O event the turn's
    /// `epoll_wait` returned (and without waking the loop: it is awake).
    func flushLater(_ client: RESPConnectionHandler) {
        unflushed.append(client)
        guard unflushed.count == 1 else { return }
        let bound = NIOLoopBound(self, eventLoop: node.eventLoop)
        node.eventLoop.execute { bound.value.flushAll() }
    }

    private func flushAll() {
        swap(&unflushed, &flushing)
        for client in flushing { client.flushReplies() }
        flushing.removeAll(keepingCapacity: true)
    }

    // MARK: Keyspace subscriptions

    func subscribe(_ id: UInt64, to channel: String) {
        channelSubscribers[channel, default: []].insert(id)
        updateDeliveryObserver()
    }

    func subscribe(_ id: UInt64, toPattern pattern: String) {
        patternSubscribers[pattern, default: []].insert(id)
        updateDeliveryObserver()
    }

    func unsubscribe(_ id: UInt64, from channel: String) {
        channelSubscribers[channel]?.remove(id)
        if channelSubscribers[channel]?.isEmpty == true { channelSubscribers[channel] = nil }
        updateDeliveryObserver()
    }

    func unsubscribe(_ id: UInt64, fromPattern pattern: String) {
        patternSubscribers[pattern]?.remove(id)
        if patternSubscribers[pattern]?.isEmpty == true { patternSubscribers[pattern] = nil }
        updateDeliveryObserver()
    }

    /// Whether the node calls `notify(_:)` on its deliveries.
    private(set) var observesDeliveries = false

    /// Has the node call `notify(_:)` on every delivery while anyone is subscribed, and not at all
    /// otherwise: with no subscriber `notify` does nothing, and calling it through a weakly
    /// capturing closure cost every write a weak load and a call (about 2% of the front door's CPU
    /// at `INCR -P 16`).
    private func updateDeliveryObserver() {
        guard hasSubscribers != observesDeliveries else { return }
        observesDeliveries = hasSubscribers
        if observesDeliveries {
            node.assumeIsolated { node in
                node.setDeliveryObserver { [weak self] delivery in self?.notify(delivery) }
            }
        } else {
            node.assumeIsolated { node in node.setDeliveryObserver(nil) }
        }
    }

    /// Whether RESP commands are running (they notify their own writes, one event per command).
    var isRunningCommands = false

    /// Whether anyone subscribed to anything.
    var hasSubscribers: Bool { !channelSubscribers.isEmpty || !patternSubscribers.isEmpty }

    /// Sends keyspace (`__keyspace@0__:KEY` → event) and keyevent (`__keyevent@0__:EVENT` → key)
    /// notifications for every key a delivery changed: remote deltas, snapshots from peers, and local
    /// writes not made by a RESP command (those notify per command, as Redis does).
    ///
    /// A remote delta is named by its net effect (`KeyspaceEvent.name(of:leaving:)`): writes its origin
    /// joined into one delta-group arrive, and are notified, as one change. A snapshot names each key
    /// it changed once, the same way, its object as received being the delta that was merged.
    func notify(_ delivery: Delivery) {
        guard hasSubscribers else { return }
        switch delivery.source {
        case .snapshot:
            notify(delivery.snapshotUpdates, in: delivery.domain)
        case .local where isRunningCommands:
            return
        case .local, .remote:
            guard let record = delivery.record else { return }
            notify(record.updates, in: delivery.domain)
        }
    }

    private func notify(_ updates: [KeyedDelta], in domain: String) {
        for update in updates {
            let key = KeyNaming.clientName(domain: domain, key: update.key, defaultDomain: configuration.defaultDomain)
            let after = node.assumeIsolated { node in node.object(at: update.key, in: domain) }
            notify(key: key, event: KeyspaceEvent.name(of: update.value, leaving: after))
        }
    }

    /// Sends the keyspace and keyevent notifications of one change.
    func notify(key: String, event: String) {
        guard hasSubscribers else { return }
        publish(channel: "__keyspace@0__:" + key, message: event)
        publish(channel: "__keyevent@0__:" + event, message: key)
    }

    private func publish(channel: String, message: String) {
        if let ids = channelSubscribers[channel] {
            for id in ids { clients[id]?.deliverMessage(channel: channel, message: message) }
        }
        for (pattern, ids) in patternSubscribers where Glob.matches(pattern: pattern, channel) {
            for id in ids { clients[id]?.deliverPatternMessage(pattern: pattern, channel: channel, message: message) }
        }
    }
}

/// The front door's swift-metrics instruments (no-op until the process bootstraps a backend):
/// counters `statemesh_resp_commands`, `statemesh_resp_connections`,
/// `statemesh_resp_rejected_connections`, `statemesh_resp_protocol_errors`,
/// `statemesh_resp_notifications`; gauge `statemesh_resp_clients`.
final class RESPMetrics: Sendable {
    let commands = Counter(label: "statemesh_resp_commands")
    let connections = Counter(label: "statemesh_resp_connections")
    let rejectedConnections = Counter(label: "statemesh_resp_rejected_connections")
    let protocolErrors = Counter(label: "statemesh_resp_protocol_errors")
    let notifications = Counter(label: "statemesh_resp_notifications")
    let clients = Gauge(label: "statemesh_resp_clients")
}

/// How keys are named to clients: plain for the default domain, `fabric://DOMAIN/PATH` otherwise.
enum KeyNaming {
    static func clientName(domain: String, key: String, defaultDomain: String) -> String {
        domain == defaultDomain ? key : "fabric://\(domain)/\(key)"
    }
}

/// The event name a keyspace notification carries for a delta, as Redis names the command.
enum KeyspaceEvent {
    /// The event of `delta`, given the object it left behind: a removal that left nothing is `del`
    /// (a set or hash cleared by `DEL`, or emptied by its last `SREM`/`HDEL`, which Redis also ends
    /// with `del`).
    static func name(of delta: ObjectValue, leaving object: ObjectValue?) -> String {
        let emptied = object?.isEmpty ?? true
        switch delta {
        case .counter(let counter):
            if counter.hasResets { return "del" }
            return counter.decrements.isBottom ? "incrby" : "decrby"
        case .set(let set): return !set.isEmpty ? "sadd" : emptied ? "del" : "srem"
        case .map(let map): return !map.isEmpty ? "hset" : emptied ? "del" : "hdel"
        case .register(let register): return register.value == nil ? "del" : "set"
        case .multiValueRegister, .flag: return "set"
        }
    }
}
