import Foundation
import MeshCRDT
import MeshTesting
import Testing

/// The fuzz corpus and every saved fuzz crash, replayed as unit tests through the
/// same harness the fuzzer runs (`MergeLawHarness.violations(fuzzInput:)`).
@Suite("FuzzMergeLaws inputs")
struct FuzzCorpusTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(in folder: String) -> [(name: String, bytes: [UInt8])] {
        let directory = fuzzDirectory.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().filter { !$0.hasPrefix(".") }.compactMap { name in
            FileManager.default.contents(atPath: directory.appendingPathComponent(name).path).map { (name, Array($0)) }
        }
    }

    @Test("every seed-corpus input satisfies every law, and the seeds cover every CRDT kind")
    func seedCorpus() {
        let inputs = Self.inputs(in: "Corpus/FuzzMergeLaws")
        #expect(inputs.count >= CRDTKind.allCases.count)
        var kinds: Set<CRDTKind> = []
        for input in inputs {
            if let first = input.bytes.first { kinds.insert(CRDTKind.allCases[Int(first) % CRDTKind.allCases.count]) }
            let violations = MergeLawHarness.violations(fuzzInput: input.bytes)
            #expect(violations.isEmpty, "\(input.name): \(violations.map(\.description).joined(separator: "\n"))")
        }
        #expect(kinds == Set(CRDTKind.allCases))
    }

    @Test("every saved fuzz crash now satisfies every law (regressions)")
    func failCases() {
        for input in Self.inputs(in: "FailCases/FuzzMergeLaws") {
            let violations = MergeLawHarness.violations(fuzzInput: input.bytes)
            #expect(violations.isEmpty, "\(input.name): \(violations.map(\.description).joined(separator: "\n"))")
        }
    }
}
