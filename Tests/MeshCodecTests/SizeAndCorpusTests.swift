import MeshCRDT
import MeshCodec
import MeshTesting
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite("Size and seed corpus")
struct SizeAndCorpusTests {
    /// A 100,000-element ORSet<UInt64>, each element one dot, written by two replicas.
    static func largeSet() -> ORSet<UInt64> {
        var set = ORSet<UInt64>()
        for element in 0..<100_000 as Range<UInt64> {
            set.insert(
                element, at: element % 2 == 0 ? ReplicaID(0x1111_2222_3333_4444) : ReplicaID(0x5555_6666_7777_8888))
        }
        return set
    }

    @Test("a 100k-element ORSet<UInt64> (one dot each, two replicas) takes at most 8 bytes per element and round-trips")
    func orSetSizePerElement() throws {
        let set = Self.largeSet()
        let bytes = MeshCodec.encode(set)
        let perElement = Double(bytes.count) / Double(set.count)
        print("ORSet<UInt64> of \(set.count) elements: \(bytes.count) bytes, \(perElement) bytes per element")
        #expect(perElement <= 8)
        #expect(try MeshCodec.decode(ORSet<UInt64>.self, from: bytes) == set)
    }

    @Test("a one-element ORSet delta with a random 64-bit replica is at most 28 bytes")
    func deltaSize() {
        var set = ORSet<String>()
        let delta = set.insert("agent-17", at: ReplicaID(0x9E37_79B9_7F4A_7C15))
        let bytes = MeshCodec.encode(delta)
        // 3 header, 9 table, 3 vector, 1 cloud, 1 count, 9 element, 2 dot = 28
        #expect(bytes.count <= 28)
    }

    /// Writes the FuzzDecode seed corpus when `STATEMESH_WRITE_FUZZ_CORPUS` names a
    /// folder (`Fuzz/Corpus/FuzzDecode`); otherwise checks the seeds are valid.
    ///
    /// Each seed is the fuzzer's selector byte (the type's position in FuzzDecode's
    /// table) followed by a valid encoding.
    @Test("seed corpus inputs for FuzzDecode are valid encodings of their selected type")
    func seedCorpus() async throws {
        var seeds: [(name: String, bytes: [UInt8])] = []
        func add<Value: RecordCodable>(_ selector: UInt8, _ values: [Value]) {
            for (index, value) in values.enumerated() {
                let bytes = expectRoundTrip(value)
                seeds.append(("\(selector)-\(Value.self)-\(index)", [selector] + bytes))
            }
        }
        let scripts = (0..<6).map { seed in
            OperationScript(bytes: (0..<60).map { UInt8(truncatingIfNeeded: ($0 &* 37) ^ (seed &* 101) &+ seed) })
        }
        func reachable<State: ScriptableCRDT & RecordCodable>(_: State.Type) -> [State] {
            scripts.flatMap { script in
                let simulation = Simulation<State>(running: script)
                return simulation.states.prefix(2) + simulation.deltas.suffix(2).map(\.delta)
            }
        }
        let sets = handBuiltSets()
        let orSets = reachable(ORSet<UInt64>.self)
        add(0, [VersionVector(), vector((ra, 3), (rc, 500))] + orSets.map(\.context.versionVector))
        add(1, [CausalContext()] + sets.map(\.context) + orSets.map(\.context))
        add(2, reachable(GCounter.self))
        add(3, handBuiltCounters() + reachable(PNCounter.self))
        add(
            4,
            [
                LWWRegister<String>(),
                LWWRegister(LWWWrite(value: "hello", timestamp: ts(1_700_000_000_000, 2), replica: rc)),
                LWWRegister(lastWrite: LWWWrite(value: nil, timestamp: ts(1_700_000_000_000, 3), replica: rc)),
            ])
        add(5, reachable(LWWRegister<Int64>.self))
        add(6, orSets)
        add(7, sets)
        add(
            8,
            sets.map { set in
                ORSet(
                    entries: Dictionary(
                        uniqueKeysWithValues: set.dottedElements.map { (Array($0.key.utf8), $0.value) }),
                    context: set.context)!
            })
        add(9, handBuiltMaps())
        add(
            10,
            reachable(LWWMap<UInt64, UInt64>.self).map { map in
                LWWMap<UInt32, Bool>(
                    entries: Dictionary(
                        uniqueKeysWithValues: map.dottedEntries.map { key, list in
                            (
                                UInt32(key),
                                list.map {
                                    .init(
                                        dot: $0.dot,
                                        write: LWWWrite(
                                            value: $0.write.value % 2 == 0, timestamp: $0.write.timestamp,
                                            replica: $0.write.replica))
                                }
                            )
                        }),
                    context: map.context)!
            })
        add(11, handBuiltRegisters())
        add(12, reachable(MVRegister<Int>.self))
        add(13, handBuiltFlags() + reachable(EWFlag.self))
        #expect(seeds.count >= 60)

        guard let folder = ProcessInfoShim.environment("STATEMESH_WRITE_FUZZ_CORPUS") else { return }
        var seen = Set<[UInt8]>()
        for seed in seeds where seen.insert(seed.bytes).inserted {
            let name = seed.name.filter { $0.isLetter || $0.isNumber || $0 == "-" }
            let path = "\(folder)/\(name)"
            guard let file = fopen(path, "wb") else {
                Issue.record("cannot write \(path)")
                continue
            }
            _ = seed.bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
    }
}

/// Reads an environment variable without Foundation.
enum ProcessInfoShim {
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}
