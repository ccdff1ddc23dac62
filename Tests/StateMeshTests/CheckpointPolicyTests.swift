import Metrics
import MetricsTestKit
import StateMesh
import Testing

@Suite("Checkpoint policy")
struct CheckpointPolicyTests {
    /// A checkpoint encodes the whole state, so as the state grows checkpoints come further apart than
    /// every `checkpointRecordCount` records (the records journaled since must add up to half of the last
    /// checkpoint), and a restart still recovers every write.
    @Test func largeStatesCheckpointLessOftenAndRecover() async throws {
        let cluster = try Cluster(count: 1) {
            $0.checkpointRecordCount = 100
            $0.durability = .batched(intervalMilliseconds: 5)
        }
        defer { cluster.removeDirectories() }
        let metrics = TestMetrics()
        let node = try await cluster.start(0, metricsFactory: metrics)
        let members = try node.set("fabric://default/large")
        let count = 3_000
        for index in 0..<count { try await members.insert("member-\(100_000 + index)") }
        let checkpoints = metrics.counterTotal(label: "statemesh_checkpoints")
        // Every 100 records would be 30 checkpoints; the state's growth spaces them to about a dozen.
        #expect(checkpoints >= 3 && checkpoints <= 20, "checkpoints: \(checkpoints)")
        await cluster.stop(0)
        let restarted = try await cluster.start(0)
        let recovered = try await restarted.set("fabric://default/large").elements()
        #expect(recovered.count == count)
        #expect(recovered.contains("member-100000") && recovered.contains("member-\(100_000 + count - 1)"))
    }
}
