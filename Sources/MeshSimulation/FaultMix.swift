import MeshCRDT
import MeshReplication

/// The fault mixes a seed sweep cycles through (the CI sweep and `mesh-sim --sweep`).
public enum FaultMix: Int, CaseIterable, Sendable, CustomStringConvertible {
    case clean, lossy, duplicating, partitioned, crashing, skewed, harsh, eventual, classic, concern, wire

    public var description: String {
        ["clean", "lossy", "duplicating", "partitioned", "crashing", "skewed", "harsh", "eventual", "classic", "concern",
            "wire"][rawValue]
    }

    /// The mix seed `seed` runs under in a sweep.
    public static func forSeed(_ seed: UInt64) -> FaultMix { allCases[Int(seed % UInt64(allCases.count))] }

    /// A small scenario (3–8 nodes, 30–70 writes) under this mix, every invariant checked after every step.
    public func scenario(seed: UInt64) -> Scenario {
        var random = SplitMix64(seed: seed &* 0x2545_F491_4F6C_DD1D)
        var scenario = Scenario()
        scenario.seed = seed
        scenario.nodes = 3 + random.below(6)
        scenario.writes = 30 + random.below(40)
        scenario.domains = 1 + random.below(2)
        scenario.writeIntervals = 20
        scenario.checksEveryStep = true
        switch self {
        case .clean: break
        case .lossy: scenario.loss = 0.05 + 0.25 * random.unit()
        case .duplicating:
            scenario.duplicate = 0.3
            scenario.reorder = 0.3
        case .partitioned: scenario.partitions = 1 + random.below(4)
        case .crashing: scenario.crashes = 1 + random.below(3)
        case .skewed: scenario.skewMilliseconds = 300_000
        case .harsh:
            scenario = Scenario.harsh(nodes: scenario.nodes, writes: scenario.writes, seed: seed)
            scenario.writeIntervals = 20
            scenario.domains = 2
            scenario.mixesEventualDomains = random.below(2) == 0
            scenario.replication.maximumLogDeltas = 16 + random.below(64)
            scenario.replication.maximumBufferedDeltas = 4 + random.below(16)
            scenario.checksEveryStep = true
        case .eventual:
            scenario.domains = 2
            scenario.mixesEventualDomains = true
            scenario.loss = 0.1
            scenario.reorder = 0.3
        case .classic:
            scenario.replication.strategy = .classic
            scenario.loss = 0.1
        case .concern:
            scenario.writeConcernFraction = 0.3
            scenario.writeConcernReplicas = 2
            scenario.loss = 0.1
            scenario.crashes = 1
        case .wire:
            scenario.encodesMessages = true
            scenario.loss = 0.1
            scenario.duplicate = 0.1
            scenario.reorder = 0.2
        }
        // Half the seeds also clear keys now and then (drawn last, so the other half replay
        // the runs they did before clears existed).
        if random.below(2) == 1 { scenario.clearFraction = 0.08 }
        return scenario
    }
}

