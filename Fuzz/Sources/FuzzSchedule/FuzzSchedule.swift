import MeshReplication
import MeshSimulation

/// Turns the input into a schedule (`Scenario.fuzzed`): the first bytes shape the scenario
/// (nodes, writes, fault rates, partitions, crashes, skew, strategy, caps); every later byte
/// steers one random decision of the simulator (which node writes what, which message is lost,
/// duplicated or delayed, partition sides, crash times). Any invariant failure traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let (scenario, script) = Scenario.fuzzed(Array(UnsafeBufferPointer(start: data, count: size))) else {
        return 0
    }
    var simulation = Simulation(scenario, script: script)
    let report = simulation.run()
    if !report.passed {
        fatalError("schedule failed: \(report.failure ?? "not converged") — \(report.json)")
    }
    return 0
}
