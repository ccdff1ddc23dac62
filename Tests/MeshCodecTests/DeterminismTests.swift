import MeshCRDT
import MeshCodec
import MeshTesting
import PropertyBased
import Testing

@Suite("Determinism: equal values encode to equal bytes")
struct DeterminismTests {
    @Test("one ORSet built from dictionaries with different iteration orders encodes to the same bytes")
    func setFromDifferentDictionaryOrders() throws {
        let context = CausalContext(vector((ra, 600)))
        var forward: [String: DotSet] = [:]
        forward.reserveCapacity(5_000)
        for index in 1...600 { forward["element \(index)"] = DotSet(Dot(replica: ra, counter: UInt64(index))) }
        var backward: [String: DotSet] = [:]
        for index in (1...600).reversed() {
            backward["element \(index)"] = DotSet(Dot(replica: ra, counter: UInt64(index)))
        }
        // The test only proves something if the two dictionaries iterate differently.
        #expect(Array(forward.keys) != Array(backward.keys))
        let first = try #require(ORSet(entries: forward, context: context))
        let second = try #require(ORSet(entries: backward, context: context))
        #expect(first == second)
        #expect(MeshCodec.encode(first) == MeshCodec.encode(second))
    }

    @Test("an LWWMap built by inserting keys in opposite orders encodes to the same bytes")
    func mapInDifferentInsertionOrders() {
        // Same dots and writes, different insertion order: build with explicit parts.
        let keys = (0..<300).map { UInt64($0 * 7919 % 1000) }
        func build(_ order: [UInt64]) -> LWWMap<UInt64, String> {
            var entries: [UInt64: [LWWMap<UInt64, String>.Entry]] = [:]
            for key in order {
                let dot = Dot(replica: key % 2 == 0 ? ra : rb, counter: key + 1)
                entries[key] = [
                    .init(dot: dot, write: LWWWrite(value: "v\(key)", timestamp: ts(key), replica: dot.replica))
                ]
            }
            let context = CausalContext(dots: entries.values.flatMap { $0.map(\.dot) })
            return LWWMap(entries: entries, context: context)!
        }
        let forward = build(keys)
        let backward = build(keys.reversed())
        #expect(forward == backward)
        #expect(MeshCodec.encode(forward) == MeshCodec.encode(backward))
    }

    @Test("merging in either order gives equal values and equal bytes")
    func mergeOrder() {
        let sets = handBuiltSets()
        for left in sets {
            for right in sets {
                #expect(MeshCodec.encode(left.merging(right)) == MeshCodec.encode(right.merging(left)))
            }
        }
        let maps = handBuiltMaps()
        for left in maps {
            for right in maps {
                #expect(MeshCodec.encode(left.merging(right)) == MeshCodec.encode(right.merging(left)))
            }
        }
    }

    @Test("replicas that converge after random delivery hold byte-identical encodings")
    func convergedReplicas() async {
        await propertyCheck(count: casesPerType, input: OperationScript.generator(steps: 0...40)) { script in
            func check<State: ScriptableCRDT & RecordCodable>(_: State.Type) {
                var simulation = Simulation<State>(running: script)
                simulation.deliverEverything()
                let encodings = Set(simulation.states.map { MeshCodec.encode($0) })
                #expect(encodings.count == 1, "\(State.self): converged replicas encode differently")
            }
            check(ORSet<UInt64>.self)
            check(LWWMap<UInt64, UInt64>.self)
            check(MVRegister<UInt64>.self)
            check(EWFlag.self)
            check(PNCounter.self)
        }
    }

    @Test("a fixed value encodes to the same golden bytes (the format is pinned)")
    func goldenVector() {
        var set = ORSet<UInt64>()
        set.insert(300, at: ra)
        set.insert(5, at: rb)
        set.insert(5, at: ra)  // 5 now held by (ra, 2): the (rb, 1) dot was observed
        let expected =
            "01" + "06" + "01"  // version 1, ORSet, of UInt64
            + "02" + "0a00000000000000" + "0b00000000000000"  // replica table: ra, rb
            + "02" + "0002" + "0101"  // vector {ra: 2, rb: 1}
            + "00"  // empty dot cloud
            + "02"  // two elements, in byte order: 5 (05) before 300 (ac 02)
            + "05" + "00" + "02"  // 5: one dot, replica 0 (head 0 << 1), counter 2
            + "ac02" + "00" + "01"  // 300: one dot, replica 0, counter 1
        #expect(hex(MeshCodec.encode(set)) == expected)
    }
}
