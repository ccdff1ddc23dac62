// libFuzzer target: the merge laws on states built from the fuzz input.
//
// The first byte selects the CRDT type (`CRDTKind`, modulo the number of kinds);
// the rest is an `OperationScript` (MeshTesting): which of 2 to 8 replicas writes
// which small element, and which deltas, delta groups and whole states are
// delivered where, out of order and duplicated. The states that history reaches
// (final replica states, deltas, states before writes) are checked for
// idempotence, commutativity, associativity, bottom, the delta-mutator law on
// every write, the type's invariants, and convergence once every delta is
// delivered everywhere. Any violation is a `fatalError` with a description of
// the states and the history, which libFuzzer reports as a crash.
//
// The interpretation of bytes lives in MeshTesting, so a crashing input replays
// in a unit test with `MergeLawHarness.violations(fuzzInput:)`.
//
// Run: scripts/fuzz.sh FuzzMergeLaws 600
import MeshTesting

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // Long histories only slow the fuzzer down without reaching new states.
    let bytes = UnsafeBufferPointer(start: data, count: min(size, 1 + 4 + 3 * 96))
    let violations = MergeLawHarness.violations(fuzzInput: bytes)
    if let first = violations.first {
        fatalError("\(violations.count) merge-law violation(s); first: \(first)")
    }
    return 0
}
