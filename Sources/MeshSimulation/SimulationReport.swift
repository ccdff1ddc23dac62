/// What one simulated run measured and whether every invariant held.
public struct SimulationReport: Sendable, Equatable {
    public var seed: UInt64 = 0
    public var nodes = 0
    public var domains = 0
    public var strategy = ""
    public var writes = 0
    public var acknowledgedWrites = 0
    public var converged = false
    public var passed = false
    public var failure: String?
    public var lostAcknowledgedWrites = 0
    public var causalViolations = 0
    public var duplicateDeliveries = 0
    public var lwwViolations = 0
    public var capViolations = 0
    public var writesNotEverywhere = 0
    /// Time from a write to its delivery at the last replica, in gossip intervals.
    public var roundsP50 = 0.0
    public var roundsP99 = 0.0
    public var roundsMax = 0.0
    public var bytesSent = 0
    /// Sum over writes of (N − 1) × the write's encoded delta (key and CRDT delta).
    public var lowerBoundBytes = 0
    /// Sum over writes of (N − 1) × the bare CRDT delta and key, without any protocol metadata.
    public var bareDeltaLowerBoundBytes = 0
    public var messagesSent = 0
    public var messagesDelivered = 0
    public var messagesDropped = 0
    public var messagesDuplicated = 0
    public var bytesByKind: [String: Int] = [:]
    public var messagesByKind: [String: Int] = [:]
    public var maxCausalBuffer = 0
    public var maxCausalBufferBytes = 0
    public var maxLogBytes = 0
    public var maxLogDeltas = 0
    public var logEvictions = 0
    public var bufferOverflows = 0
    public var snapshotsInstalled = 0
    public var snapshotBytes = 0
    public var crashes = 0
    public var restarts = 0
    public var partitionEpisodes = 0
    public var readsCompleted = 0
    public var errors: [String: Int] = [:]
    public var elapsedVirtualMilliseconds: UInt64 = 0
    /// Wall-clock seconds, filled in by the caller (the core has no clock).
    public var elapsedSeconds = 0.0
    /// Whether the process's allocator backed its heap with huge pages (`mesh-sim --huge-pages`), filled in
    /// by the caller; `nil` prints `null`. Like `elapsedSeconds`, it bears on the time only.
    public var mallocHugePages: Bool?

    public init() {}

    /// `bytesSent / lowerBoundBytes`.
    public var overheadRatio: Double { lowerBoundBytes == 0 ? 0 : Double(bytesSent) / Double(lowerBoundBytes) }

    /// One JSON object, keys in a fixed order.
    public var json: String {
        func number(_ value: Double) -> String {
            let scaled = (value * 1000).rounded() / 1000
            return scaled == scaled.rounded() ? String(Int(scaled)) : String(scaled)
        }
        func object(_ dictionary: [String: Int]) -> String {
            "{" + dictionary.keys.sorted().map { "\"\($0)\":\(dictionary[$0] ?? 0)" }.joined(separator: ",") + "}"
        }
        func string(_ text: String) -> String {
            var escaped = ""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": escaped += "\\\""
                case "\\": escaped += "\\\\"
                case "\n": escaped += "\\n"
                default:
                    if scalar.value < 0x20 { escaped += "?" } else { escaped.unicodeScalars.append(scalar) }
                }
            }
            return "\"" + escaped + "\""
        }
        let fields: [(String, String)] = [
            ("seed", String(seed)), ("nodes", String(nodes)), ("domains", String(domains)),
            ("strategy", string(strategy)), ("writes", String(writes)),
            ("acknowledged_writes", String(acknowledgedWrites)), ("converged", String(converged)),
            ("passed", String(passed)), ("lost_acknowledged_writes", String(lostAcknowledgedWrites)),
            ("causal_violations", String(causalViolations)), ("duplicate_deliveries", String(duplicateDeliveries)),
            ("lww_violations", String(lwwViolations)), ("cap_violations", String(capViolations)),
            ("rounds_to_converge_p50", number(roundsP50)), ("rounds_to_converge_p99", number(roundsP99)),
            ("rounds_to_converge_max", number(roundsMax)), ("bytes_sent", String(bytesSent)),
            ("lower_bound_bytes", String(lowerBoundBytes)), ("bytes_over_lower_bound", number(overheadRatio)),
            ("bare_delta_lower_bound_bytes", String(bareDeltaLowerBoundBytes)),
            ("bytes_over_bare_delta_bound", number(bareDeltaLowerBoundBytes == 0 ? 0 : Double(bytesSent) / Double(bareDeltaLowerBoundBytes))),
            ("messages_sent", String(messagesSent)), ("messages_dropped", String(messagesDropped)),
            ("messages_duplicated", String(messagesDuplicated)), ("bytes_by_kind", object(bytesByKind)),
            ("messages_by_kind", object(messagesByKind)), ("max_causal_buffer", String(maxCausalBuffer)),
            ("max_causal_buffer_bytes", String(maxCausalBufferBytes)), ("max_log_bytes", String(maxLogBytes)),
            ("max_log_deltas", String(maxLogDeltas)), ("log_evictions", String(logEvictions)),
            ("buffer_overflows", String(bufferOverflows)), ("snapshots_installed", String(snapshotsInstalled)),
            ("snapshot_bytes", String(snapshotBytes)), ("crashes", String(crashes)),
            ("partition_episodes", String(partitionEpisodes)), ("errors", object(errors)),
            ("virtual_milliseconds", String(elapsedVirtualMilliseconds)),
            ("elapsed_seconds", number(elapsedSeconds)),
            ("malloc_huge_pages", mallocHugePages.map { String($0) } ?? "null"),
            ("failure", failure.map(string) ?? "null"),
        ]
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}
