import Foundation
import Testing

@testable import MeshSimulation

/// Every saved `FuzzSchedule` crash, replayed as the fuzzer runs it (`Scenario.fuzzed`).
@Suite("FuzzSchedule inputs")
struct FuzzScheduleCaseTests {
    static let failCases = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/FailCases/FuzzSchedule")

    static var inputs: [(name: String, bytes: [UInt8])] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: failCases.path)) ?? []
        return names.sorted().filter { !$0.hasPrefix(".") }.compactMap { name in
            FileManager.default.contents(atPath: failCases.appendingPathComponent(name).path).map { (name, Array($0)) }
        }
    }

    /// Every schedule the fuzzer once broke now passes every invariant at every step.
    @Test func savedCrashesPass() throws {
        let inputs = Self.inputs
        #expect(!inputs.isEmpty)
        for input in inputs {
            let (scenario, script) = try #require(Scenario.fuzzed(input.bytes))
            var simulation = Simulation(scenario, script: script)
            let report = simulation.run()
            #expect(report.passed, "\(input.name): \(report.failure ?? "not converged")")
        }
    }
}
