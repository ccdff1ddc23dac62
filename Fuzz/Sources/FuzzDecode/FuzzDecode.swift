// libFuzzer target: decode arbitrary bytes as one of the encoded types.
//
// The first input byte selects the type (modulo the number of types); the rest
// is decoded. Decoding must never crash. Whatever decodes must be in the one
// canonical form (re-encoding gives the input bytes back), must decode again to
// an equal value, and every refusal must name an offset inside the input. Any
// violation is a `fatalError`, which libFuzzer reports as a crash.
//
// Run: scripts/fuzz.sh FuzzDecode 60   (replay: scripts/fuzz.sh --replay)
import MeshCRDT
import MeshCodec

/// Small limits, so the fuzzer also explores the limit checks.
let fuzzLimits = CodecLimits(
    maximumInputBytes: 1 << 16, maximumElements: 1 << 12, maximumReplicas: 64, maximumElementBytes: 1 << 10)

/// The types the selector byte chooses from; keep the order stable, the seed
/// corpus names types by position.
let checks: [(name: String, check: @Sendable ([UInt8]) -> Void)] = [
    ("VersionVector", { checkRoundTrip(VersionVector.self, $0) }),
    ("CausalContext", { checkRoundTrip(CausalContext.self, $0) }),
    ("GCounter", { checkRoundTrip(GCounter.self, $0) }),
    ("PNCounter", { checkRoundTrip(PNCounter.self, $0) }),
    ("LWWRegister<String>", { checkRoundTrip(LWWRegister<String>.self, $0) }),
    ("LWWRegister<Int64>", { checkRoundTrip(LWWRegister<Int64>.self, $0) }),
    ("ORSet<UInt64>", { checkRoundTrip(ORSet<UInt64>.self, $0) }),
    ("ORSet<String>", { checkRoundTrip(ORSet<String>.self, $0) }),
    ("ORSet<[UInt8]>", { checkRoundTrip(ORSet<[UInt8]>.self, $0) }),
    ("LWWMap<String, UInt64>", { checkRoundTrip(LWWMap<String, UInt64>.self, $0) }),
    ("LWWMap<UInt32, Bool>", { checkRoundTrip(LWWMap<UInt32, Bool>.self, $0) }),
    ("MVRegister<String>", { checkRoundTrip(MVRegister<String>.self, $0) }),
    ("MVRegister<Int>", { checkRoundTrip(MVRegister<Int>.self, $0) }),
    ("EWFlag", { checkRoundTrip(EWFlag.self, $0) }),
]

func hex(_ bytes: [UInt8]) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    for byte in bytes.prefix(512) {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0f)])
    }
    return bytes.count > 512 ? text + "…" : text
}

func checkRoundTrip<Value: RecordCodable>(_ type: Value.Type, _ bytes: [UInt8]) {
    let value: Value
    do {
        value = try MeshCodec.decode(type, from: bytes, limits: fuzzLimits)
    } catch {
        guard error.offset >= 0 && error.offset <= bytes.count else {
            fatalError("\(type): error offset \(error.offset) outside input of \(bytes.count) bytes: \(error)")
        }
        return
    }
    let encoded = MeshCodec.encode(value)
    guard encoded == bytes else {
        fatalError("\(type): decoded input is not canonical\n input   \(hex(bytes))\n encoded \(hex(encoded))")
    }
    do {
        let again = try MeshCodec.decode(type, from: encoded, limits: fuzzLimits)
        guard again == value else {
            fatalError("\(type): round trip changed the value\n bytes \(hex(bytes))")
        }
    } catch {
        fatalError("\(type): re-encoded value does not decode: \(error)\n bytes \(hex(encoded))")
    }
}

/// The libFuzzer entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let selected = checks[Int(input[0]) % checks.count]
    selected.check(Array(input.dropFirst()))
    return 0
}
