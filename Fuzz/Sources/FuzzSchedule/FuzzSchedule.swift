import MeshReplication
import MeshSimulation

/// Turns the input into a schedule: the first bytes shape the scenario (nodes, writes,
/// fault rates, partitions, crashes, skew, strategy, caps); every later byte steers one
/// random decision of the simulator (which node writes what, which message is lost,
/// duplicated or delayed, partition sides, crash times). Any invariant failure traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard bytes.count >= 8 else { return 0 }
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
    var simulation = Simulation(scenario, script: Array(bytes[8...]))
    let report = simulation.run()
    if !report.passed {
        fatalError("schedule failed: \(report.failure ?? "not converged") — \(report.json)")
    }
    return 0
}
