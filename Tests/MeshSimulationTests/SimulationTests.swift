import MeshCRDT
import MeshReplication
import Testing

@testable import MeshSimulation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func environmentInteger(_ name: String) -> Int? {
    guard let raw = getenv(name) else { return nil }
    return Int(String(cString: raw))
}

/// The sweep is split into shards so the test runner spreads it over the cores.
let sweepShards = 8

/// Seeds that once failed, with the mix they failed under; each replays forever as a test.
let regressionSeeds: [(mix: FaultMix, seed: UInt64)] = [
    (.clean, 1), (.harsh, 1), (.concern, 64),
]

/// Runs compared between one and several stepping threads: the wire mix covers encoded messages.
let parallelCases: [(mix: FaultMix, seed: UInt64)] = [(.harsh, 4242), (.clean, 7), (.concern, 64), (.wire, 10)]

@Suite("simulation")
struct SimulationTests {
    @Test(
        "every seed of the sweep converges with no lost acknowledged write, causal violation, double delivery or cap violation",
        arguments: 0..<sweepShards)
    func seedSweep(shard: Int) {
        let count = environmentInteger("MESH_SIM_SEEDS") ?? 1_000
        let first = UInt64(environmentInteger("MESH_SIM_FIRST_SEED") ?? 1)
        var failed: [(FaultMix, UInt64, String)] = []
        for offset in stride(from: shard, to: count, by: sweepShards) {
            let seed = first + UInt64(offset)
            let mix = FaultMix.forSeed(seed)
            var simulation = Simulation(mix.scenario(seed: seed))
            let report = simulation.run()
            if !report.passed {
                failed.append((mix, seed, report.failure ?? "not converged"))
                print("FAILED seed \(seed) mix \(mix): \(report.failure ?? "not converged") — replay: mesh-sim --sweep --seed \(seed)")
            }
        }
        #expect(failed.isEmpty, "failing (mix, seed): \(failed.map { "(\($0.0), \($0.1))" }.joined(separator: ", "))")
    }

    @Test("frequent clears (Redis DEL) converge under every fault mix, with no lost write or LWW violation")
    func clearsConverge() {
        var failed: [String] = []
        var clears = 0
        for seed in UInt64(1)...44 {
            let mix = FaultMix.forSeed(seed)
            var scenario = mix.scenario(seed: seed)
            scenario.clearFraction = 0.25
            var simulation = Simulation(scenario)
            let report = simulation.run()
            clears += simulation.writes.filter(\.isClear).count
            if !report.passed { failed.append("\(mix) \(seed): \(report.failure ?? "not converged")") }
        }
        #expect(clears > 100)
        #expect(failed.isEmpty, "\(failed)")
    }

    @Test("seeds that failed once stay fixed", arguments: regressionSeeds.indices)
    func regression(index: Int) {
        let (mix, seed) = regressionSeeds[index]
        var simulation = Simulation(mix.scenario(seed: seed))
        let report = simulation.run()
        #expect(report.passed, "seed \(seed) mix \(mix): \(report.failure ?? "not converged")")
    }

    @Test("the same seed replays the same run exactly")
    func determinism() {
        let scenario = FaultMix.harsh.scenario(seed: 4242)
        var first = Simulation(scenario)
        var second = Simulation(scenario)
        let one = first.run()
        let two = second.run()
        #expect(one == two)
        #expect(one.messagesSent > 0)
    }

    @Test(
        "stepping replicas on several threads replays the same run as one thread",
        arguments: parallelCases.indices)
    func parallelStepsReplaySequentialRun(index: Int) {
        let (mix, seed) = parallelCases[index]
        var scenario = mix.scenario(seed: seed)
        scenario.threads = 1
        var sequential = Simulation(scenario)
        let expected = sequential.run()
        for threads in [2, 3] {
            scenario.threads = threads
            var parallel = Simulation(scenario)
            let report = parallel.run()
            #expect(report == expected, "\(threads) threads: \(report.json) vs \(expected.json)")
            #expect(parallel.parallelBatches > 0)
        }
        #expect(sequential.parallelBatches == 0 && expected.messagesSent > 0)
    }

    @Test(
        "sharing merge results between replicas changes neither the run nor any replica's state",
        arguments: parallelCases.indices)
    func sharedMergesReplayTheSameRun(index: Int) {
        let (mix, seed) = parallelCases[index]
        var scenario = mix.scenario(seed: seed)
        scenario.sharesMergeResults = false
        var merging = Simulation(scenario)
        let expected = merging.run()
        scenario.sharesMergeResults = true
        scenario.threads = 2
        var sharing = Simulation(scenario)
        let report = sharing.run()
        #expect(report == expected, "\(report.json) vs \(expected.json)")
        #expect(expected.passed, "\(expected.failure ?? "not converged")")
        var compared = 0
        for node in 0..<scenario.nodes {
            for domain in sharing.domainConfigurations.map(\.name) {
                for key in (0..<sharing.keysPerDomain).map({ "k\($0)" }) {
                    let mine = sharing.replicas[node]?.value(of: key, in: domain)
                    #expect(mine == merging.replicas[node]?.value(of: key, in: domain), "node \(node) \(domain) \(key)")
                    if mine != nil { compared += 1 }
                }
            }
        }
        #expect(compared > 0)
    }

    @Test("a larger mesh with loss and a paranoid check per step is the same run on two threads")
    func parallelStepsLargerMesh() {
        var scenario = Scenario()
        scenario.nodes = 96
        scenario.writes = 1_500
        scenario.loss = 0.05
        scenario.duplicate = 0.05
        scenario.reorder = 0.05
        scenario.checksEveryStep = true
        scenario.replication.maximumLogDeltas = 256
        scenario.seed = 5
        var sequential = Simulation(scenario)
        let expected = sequential.run()
        scenario.threads = 2
        var parallel = Simulation(scenario)
        let report = parallel.run()
        #expect(expected.passed, "\(expected.failure ?? "not converged")")
        #expect(report == expected)
        #expect(parallel.parallelBatches > 100)
    }

    @Test("the harshest mix converges after healing with every acknowledged write and no causal violation")
    func harshMix() {
        for seed in UInt64(1)...5 {
            var scenario = Scenario.harsh(nodes: 16, writes: 400, seed: seed)
            scenario.domains = 2
            scenario.replication.maximumLogDeltas = 256
            scenario.replication.maximumBufferedDeltas = 64
            var simulation = Simulation(scenario)
            let report = simulation.run()
            #expect(report.passed, "seed \(seed): \(report.failure ?? "not converged")")
            #expect(report.lostAcknowledgedWrites == 0 && report.causalViolations == 0)
            #expect(report.maxCausalBuffer <= 64)
            #expect(report.crashes > 0 && report.partitionEpisodes > 0 && report.messagesDropped > 0)
        }
    }

    @Test("a peer cut off until its deltas were compacted out of every log catches up by snapshot")
    func snapshotCatchUp() {
        var scenario = Scenario()
        scenario.nodes = 6
        scenario.writes = 600
        scenario.writeIntervals = 30
        scenario.isolatedNode = 5
        scenario.replication.maximumLogDeltas = 32
        scenario.seed = 11
        var simulation = Simulation(scenario)
        let report = simulation.run()
        #expect(report.passed, "\(report.failure ?? "not converged")")
        #expect(report.snapshotsInstalled >= 1)
        #expect(report.logEvictions > 0)
        #expect(report.snapshotBytes > 0)
        print("snapshot catch-up: \(report.snapshotsInstalled) snapshots, \(report.snapshotBytes) snapshot bytes, \(report.json)")
    }

    @Test("Plumtree sends fewer bytes than classic delta-state sync on the same workload")
    func plumtreeBeatsClassic() {
        var scenario = Scenario()
        scenario.nodes = 16
        scenario.writes = 800
        scenario.loss = 0.01
        scenario.seed = 3
        var tree = Simulation(scenario)
        scenario.replication.strategy = .classic
        var classic = Simulation(scenario)
        let treeReport = tree.run()
        let classicReport = classic.run()
        #expect(treeReport.passed && classicReport.passed)
        #expect(treeReport.bytesSent < classicReport.bytesSent)
        #expect(treeReport.overheadRatio < 1.6)
    }

    @Test("the checker itself flags a delivery that skips a sequence number and one delivered twice")
    func checkerCatchesViolations() {
        var scenario = Scenario()
        scenario.nodes = 2
        scenario.writes = 0
        var simulation = Simulation(scenario)
        _ = simulation.run()
        simulation.issueWriteForTesting()
        simulation.issueWriteForTesting()
        let origin = ReplicaID(UInt64(simulation.writes[0].node) + 1)
        let other = Int(simulation.writes[0].node) == 0 ? 1 : 0
        let skipping = Delivery(domain: "d0", origin: origin, firstSequence: 2, lastSequence: 2, source: .remote, record: nil)
        if simulation.writes[1].node == simulation.writes[0].node {
            simulation.observe(skipping, at: other)
            #expect(simulation.report.causalViolations == 1)
        }
        let first = Delivery(domain: "d0", origin: origin, firstSequence: 1, lastSequence: 1, source: .remote, record: nil)
        simulation.observe(first, at: other)
        simulation.observe(first, at: other)
        #expect(simulation.report.duplicateDeliveries >= 1)
    }
}
