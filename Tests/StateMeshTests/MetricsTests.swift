import Metrics
import MetricsTestKit
import StateMesh
import Testing

@Suite("Node metrics")
struct MetricsTests {
    /// Writes, bytes by message kind, commits, received deltas and peers by state reach the metrics backend.
    @Test func countersAndGaugesMove() async throws {
        let cluster = try Cluster(count: 2)
        defer { cluster.removeDirectories() }
        let writerMetrics = TestMetrics()
        let readerMetrics = TestMetrics()
        let writer = try await cluster.start(0, metricsFactory: writerMetrics)
        let reader = try await cluster.start(1, metricsFactory: readerMetrics)
        #expect(await eventually { await reader.status().peers.first?.state == "alive" })
        for index in 0..<10 { try await writer.counter("fabric://default/c\(index)").increment() }
        #expect(await eventually { try! await reader.counter("fabric://default/c9").value() == 1 })
        #expect(writerMetrics.counterTotal(label: "statemesh_writes") == 10)
        #expect(writerMetrics.counterTotal(label: "statemesh_bytes_sent", dimensions: [("kind", "push")]) > 0)
        #expect(writerMetrics.counterTotal(label: "statemesh_bytes_sent", dimensions: [("kind", "membership")]) > 0)
        #expect(writerMetrics.counterTotal(label: "statemesh_storage_commits") > 0)
        #expect(readerMetrics.counterTotal(label: "statemesh_deltas_received") >= 1)
        #expect(
            await eventually {
                (try? readerMetrics.expectGauge("statemesh_peers", [("state", "alive")]).lastValue) == 1
            })
        await cluster.stopAll()
    }
}
