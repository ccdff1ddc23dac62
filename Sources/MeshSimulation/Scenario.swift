import MeshReplication

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Processors available to this process now.
func activeProcessorCount() -> Int {
    Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// Everything that defines one simulated run; with the seed it determines the run exactly.
public struct Scenario: Sendable, Hashable {
    /// Replicas in the mesh (up to a few thousand).
    public var nodes: Int = 8
    /// Local writes issued during the write phase, at random nodes.
    public var writes: Int = 100
    /// Causal domains (every node replicates all of them).
    public var domains: Int = 1
    /// Whether domains after the first alternate to `eventual` mode.
    public var mixesEventualDomains: Bool = false
    /// The seed of the single random generator.
    public var seed: UInt64 = 1
    /// Probability that a message is lost.
    public var loss: Double = 0
    /// Probability that a message is delivered twice.
    public var duplicate: Double = 0
    /// Probability that a message is held back (delivered out of order).
    public var reorder: Double = 0
    /// Partition episodes during the fault phase (symmetric, one-way, majorities ring, isolate one).
    public var partitions: Int = 0
    /// A node cut off from everyone for the whole fault phase (to force snapshot catch-up).
    public var isolatedNode: Int?
    /// Crash-restarts during the fault phase.
    public var crashes: Int = 0
    /// Each node's clock is off by a uniform amount in `±skewMilliseconds`.
    public var skewMilliseconds: UInt64 = 0
    /// The replicas' configuration: gossip strategy, fan-out and every bound. The scenario
    /// derives the timing fields from `intervalMilliseconds` (see `replicationConfiguration()`).
    public var replication = ReplicationConfiguration()
    /// The gossip interval (a "round").
    public var intervalMilliseconds: UInt64 = 100
    /// Pushes are flushed this many times per interval.
    public var flushesPerInterval: UInt64 = 4
    /// Length of the write phase, in intervals (0: chosen from the write count).
    public var writeIntervals: Int = 0
    /// Distinct keys per domain (0: chosen from the write count).
    public var keysPerDomain: Int = 0
    /// Fraction of writes that ask for a write concern of `writeConcernReplicas`.
    public var writeConcernFraction: Double = 0
    public var writeConcernReplicas: Int = 2
    /// Fraction of writes that clear their key (`WriteOperation.clear`, Redis `DEL`): an
    /// observed reset or removal, or a register deletion. 0 draws no random number, so runs
    /// without clears replay exactly as before clears existed.
    public var clearFraction: Double = 0
    /// Median one-way latency (ms) and the heavy tail's shape (Pareto alpha).
    public var latencyMilliseconds: Double = 10
    public var latencyTailAlpha: Double = 1.5
    /// Anti-entropy repairs skip records delivered within this many gossip intervals (they are
    /// probably still on their way down the tree).
    public var repairDelayIntervals: UInt64 = 3
    /// Rounds allowed after healing before the run is declared not converged.
    public var healIntervals: Int = 400
    /// Replicas take the result another replica published for merging the same update into an
    /// identical object version (`ReplicationConfiguration.sharesMergeResults`): their objects
    /// share storage, and each merge runs about once per process instead of once per replica.
    /// The run and its report are the same either way.
    public var sharesMergeResults: Bool = true
    /// Round-trip every message through its binary encoding (slower; proves the wire path).
    public var encodesMessages: Bool = false
    /// Check every replica's internal invariants after every event (slower).
    public var checksEveryStep: Bool = false
    /// Threads stepping replicas (1: all on the caller's thread; 0: one per active processor for
    /// meshes of 64 replicas or more). The run, its report and its replay from the seed are the
    /// same for every thread count (see `Simulation.handleBatch`).
    public var threads: Int = 1
    /// Most dependencies per write the checker records independently of the protocol (the
    /// most recently delivered ones). All of them up to 256 writers; a sample above, where the
    /// full check would cost O(N) per delivery.
    public var checkedDependencies: Int = 256
    var effectiveThreads: Int {
        if threads > 0 { return threads }
        return nodes >= 64 ? max(1, min(8, activeProcessorCount())) : 1
    }
    var effectiveCheckedDependencies: Int { nodes <= 256 ? checkedDependencies : min(checkedDependencies, 32) }

    /// Creates the default scenario.
    public init() {}

    /// A harsh fault mix: 20% loss, 20% duplication, reordering, repeated partitions,
    /// crash-restarts, ±300 s clock skew.
    public static func harsh(nodes: Int, writes: Int, seed: UInt64) -> Scenario {
        var scenario = Scenario()
        scenario.nodes = nodes
        scenario.writes = writes
        scenario.seed = seed
        scenario.loss = 0.2
        scenario.duplicate = 0.2
        scenario.reorder = 0.2
        scenario.partitions = 3
        scenario.crashes = 2
        scenario.skewMilliseconds = 300_000
        return scenario
    }

    /// `replication` with its timing tied to the scenario's gossip interval and room for
    /// twice the fan-out of eager links.
    func replicationConfiguration() -> ReplicationConfiguration {
        var configuration = replication
        configuration.maximumEagerPeers = max(configuration.maximumEagerPeers, 2 * configuration.fanout)
        configuration.gossipIntervalMilliseconds = intervalMilliseconds
        configuration.graftTimeoutMilliseconds = 2 * intervalMilliseconds
        configuration.repairDelayMilliseconds = repairDelayIntervals * intervalMilliseconds
        configuration.sharesMergeResults = sharesMergeResults
        return configuration
    }
}

extension Scenario {
    /// The scenario and script a fuzz input stands for (the `FuzzSchedule` target): the first eight
    /// bytes shape the scenario (nodes, writes, domains, fault rates, partitions, crashes, skew,
    /// strategy, log and buffer caps), and every later byte steers one random decision of the
    /// simulator. `nil` for inputs shorter than eight bytes. Every step is checked.
    public static func fuzzed(_ bytes: [UInt8]) -> (scenario: Scenario, script: [UInt8])? {
        guard bytes.count >= 8 else { return nil }
        var scenario = Scenario()
        scenario.nodes = 2 + Int(bytes[0] % 6)
        scenario.writes = 5 + Int(bytes[1] % 40)
        scenario.domains = 1 + Int(bytes[2] % 2)
        scenario.mixesEventualDomains = bytes[2] & 0x80 != 0
        scenario.loss = Double(bytes[3] % 64) / 200
        scenario.duplicate = Double(bytes[4] % 64) / 200
        scenario.reorder = Double(bytes[5] % 64) / 160
        scenario.partitions = Int(bytes[6] % 4)
        scenario.crashes = Int((bytes[6] >> 2) % 3)
        scenario.skewMilliseconds = bytes[6] & 0x80 != 0 ? 300_000 : 0
        scenario.replication.strategy = bytes[7] & 1 == 0 ? .plumtree : .classic
        scenario.replication.maximumLogDeltas = 8 + Int(bytes[7] >> 1)
        scenario.replication.maximumBufferedDeltas = 4 + Int(bytes[7] >> 3)
        scenario.writeConcernFraction = bytes[5] & 0x80 != 0 ? 0.3 : 0
        scenario.writeIntervals = 10
        scenario.checksEveryStep = true
        scenario.seed = 1
        return (scenario, Array(bytes[8...]))
    }
}
