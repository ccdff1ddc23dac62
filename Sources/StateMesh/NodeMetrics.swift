import MeshReplication
import Metrics

/// The node's swift-metrics instruments (a no-op until the process bootstraps a metrics backend).
///
/// Counters: `statemesh_writes`, `statemesh_deltas_sent`, `statemesh_deltas_received`,
/// `statemesh_deltas_duplicate`, `statemesh_messages_sent{kind}`, `statemesh_bytes_sent{kind}`,
/// `statemesh_bytes_received`, `statemesh_dropped{reason}`, `statemesh_replication_errors`,
/// `statemesh_storage_commits`, `statemesh_storage_failures`, `statemesh_checkpoints`.
/// Gauges: `statemesh_deltas_buffered`, `statemesh_log_records`, `statemesh_convergence_lag`
/// (writes the slowest live peer is known to lack), `statemesh_peers{state}`.
/// Timer: `statemesh_storage_commit_duration`. Handshake failures are counted by the transport
/// (`statemesh_transport_handshake_failures{reason}`).
final class NodeMetrics: Sendable {
    let factory: any MetricsFactory
    let writes: Counter
    let deltasSent: Counter
    let deltasReceived: Counter
    let duplicates: Counter
    let bytesReceived: Counter
    let droppedUnknownSender: Counter
    let droppedNoSession: Counter
    let droppedOutboundFull: Counter
    let replicationErrors: Counter
    let commits: Counter
    let storageFailures: Counter
    let checkpoints: Counter
    let commitDuration: Timer
    let buffered: Gauge
    let logRecords: Gauge
    let lag: Gauge
    let peers: [String: Gauge]

    /// Instruments from `factory` (default: the process-wide `MetricsSystem.factory`).
    init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        writes = Counter(label: "statemesh_writes", factory: factory)
        deltasSent = Counter(label: "statemesh_deltas_sent", factory: factory)
        deltasReceived = Counter(label: "statemesh_deltas_received", factory: factory)
        duplicates = Counter(label: "statemesh_deltas_duplicate", factory: factory)
        bytesReceived = Counter(label: "statemesh_bytes_received", factory: factory)
        droppedUnknownSender = Counter(label: "statemesh_dropped", dimensions: [("reason", "unknownSender")], factory: factory)
        droppedNoSession = Counter(label: "statemesh_dropped", dimensions: [("reason", "noSession")], factory: factory)
        droppedOutboundFull = Counter(label: "statemesh_dropped", dimensions: [("reason", "outboundFull")], factory: factory)
        replicationErrors = Counter(label: "statemesh_replication_errors", factory: factory)
        commits = Counter(label: "statemesh_storage_commits", factory: factory)
        storageFailures = Counter(label: "statemesh_storage_failures", factory: factory)
        checkpoints = Counter(label: "statemesh_checkpoints", factory: factory)
        commitDuration = Timer(label: "statemesh_storage_commit_duration", factory: factory)
        buffered = Gauge(label: "statemesh_deltas_buffered", factory: factory)
        logRecords = Gauge(label: "statemesh_log_records", factory: factory)
        lag = Gauge(label: "statemesh_convergence_lag", factory: factory)
        peers = Dictionary(
            uniqueKeysWithValues: ["alive", "suspect", "dead", "left"].map {
                ($0, Gauge(label: "statemesh_peers", dimensions: [("state", $0)], factory: factory))
            })
    }

    func sent(_ message: ReplicationMessage, byteCount: Int) {
        Counter(label: "statemesh_messages_sent", dimensions: [("kind", message.kind)], factory: factory).increment()
        Counter(label: "statemesh_bytes_sent", dimensions: [("kind", message.kind)], factory: factory)
            .increment(by: byteCount)
        if case .deltas(_, _, let records) = message { deltasSent.increment(by: records.count) }
    }

    func sentMembership(byteCount: Int) {
        Counter(label: "statemesh_messages_sent", dimensions: [("kind", "membership")], factory: factory).increment()
        Counter(label: "statemesh_bytes_sent", dimensions: [("kind", "membership")], factory: factory)
            .increment(by: byteCount)
    }

    func received(bytes: Int) { bytesReceived.increment(by: bytes) }

    func committed(duration: Duration) {
        commits.increment()
        let (seconds, attoseconds) = duration.components
        commitDuration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
