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
    let writes = Counter(label: "statemesh_writes")
    let deltasSent = Counter(label: "statemesh_deltas_sent")
    let deltasReceived = Counter(label: "statemesh_deltas_received")
    let duplicates = Counter(label: "statemesh_deltas_duplicate")
    let bytesReceived = Counter(label: "statemesh_bytes_received")
    let droppedUnknownSender = Counter(label: "statemesh_dropped", dimensions: [("reason", "unknownSender")])
    let droppedNoSession = Counter(label: "statemesh_dropped", dimensions: [("reason", "noSession")])
    let droppedOutboundFull = Counter(label: "statemesh_dropped", dimensions: [("reason", "outboundFull")])
    let replicationErrors = Counter(label: "statemesh_replication_errors")
    let commits = Counter(label: "statemesh_storage_commits")
    let storageFailures = Counter(label: "statemesh_storage_failures")
    let checkpoints = Counter(label: "statemesh_checkpoints")
    let commitDuration = Timer(label: "statemesh_storage_commit_duration")
    let buffered = Gauge(label: "statemesh_deltas_buffered")
    let logRecords = Gauge(label: "statemesh_log_records")
    let lag = Gauge(label: "statemesh_convergence_lag")
    let peers: [String: Gauge] = Dictionary(
        uniqueKeysWithValues: ["alive", "suspect", "dead", "left"].map {
            ($0, Gauge(label: "statemesh_peers", dimensions: [("state", $0)]))
        })

    func sent(_ message: ReplicationMessage, byteCount: Int) {
        Counter(label: "statemesh_messages_sent", dimensions: [("kind", message.kind)]).increment()
        Counter(label: "statemesh_bytes_sent", dimensions: [("kind", message.kind)]).increment(by: byteCount)
        if case .deltas(_, _, let records) = message { deltasSent.increment(by: records.count) }
    }

    func sentMembership(byteCount: Int) {
        Counter(label: "statemesh_messages_sent", dimensions: [("kind", "membership")]).increment()
        Counter(label: "statemesh_bytes_sent", dimensions: [("kind", "membership")]).increment(by: byteCount)
    }

    func received(bytes: Int) { bytesReceived.increment(by: bytes) }

    func committed(duration: Duration) {
        commits.increment()
        let (seconds, attoseconds) = duration.components
        commitDuration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
