import MeshCRDT
import MeshCodec
import MeshTesting
import PropertyBased
import Testing

@Suite("Round trip: decode(encode(x)) == x and encode(decode(b)) == b")
struct RoundTripTests {
    @Test("hand-built ORSets with concurrent adds, removals and dot clouds round-trip")
    func orSets() {
        let sets = handBuiltSets()
        #expect(sets.contains { !$0.context.dotCloud.isEmpty }, "no sample exercises a dot cloud")
        #expect(sets.contains { set in set.dottedElements.values.contains { $0.count > 1 } }, "no element has two dots")
        for set in sets { expectRoundTrip(set) }
    }

    @Test("hand-built LWWMaps with concurrent writes, removals and extreme timestamps round-trip")
    func lwwMaps() {
        let maps = handBuiltMaps()
        #expect(maps.contains { map in map.dottedEntries.values.contains { $0.count > 1 } }, "no key has two writes")
        for map in maps { expectRoundTrip(map) }
    }

    @Test("hand-built MVRegisters, EWFlags, counters and LWWRegisters round-trip")
    func registersFlagsCounters() {
        for register in handBuiltRegisters() { expectRoundTrip(register) }
        for flag in handBuiltFlags() { expectRoundTrip(flag) }
        for counter in handBuiltCounters() {
            expectRoundTrip(counter)
            expectRoundTrip(counter.increments)
        }
        var register = LWWRegister<String>()
        expectRoundTrip(register)
        register.set("hello", timestamp: ts(1_700_000_000_000, 3), at: rc)
        expectRoundTrip(register)
        expectRoundTrip(LWWRegister<Int64>(LWWWrite(value: .min, timestamp: ts(.max, .max), replica: ReplicaID(.max))))
    }

    @Test("cleared registers and reset counters round-trip, and a counter never reset costs no byte more than before")
    func clearedValues() throws {
        var register = LWWRegister<String>()
        register.set("hello", timestamp: ts(1_700_000_000_000, 3), at: ra)
        register.clear(timestamp: ts(1_700_000_000_001), at: rc)
        #expect(register.isCleared)
        let registerBytes = expectRoundTrip(register)
        // version, kind, parameter, table (1 + 8), presence 2, timestamp (6 + 1), replica index.
        #expect(registerBytes.count == 3 + 9 + 1 + 7 + 1)
        #expect(registerBytes[12] == 2)
        expectRoundTrip(LWWRegister<Int64>(lastWrite: LWWWrite(value: nil, timestamp: ts(.max, .max), replica: rc)))

        let counters = handBuiltCounters()
        for counter in counters { expectRoundTrip(counter) }
        #expect(counters[4].hasResets && counters[4].value == 0 && counters[4].isEmpty)
        #expect(counters[5].value == 2 && !counters[5].isEmpty)
        // Never reset: as many bytes as before resets existed (25). The decrement head is
        // 2 × 1 entry with the baselines bit clear, where the format used to write the count 1.
        let plain = MeshCodec.encode(counters[1])
        #expect(hex(plain) == "0104" + "02" + "0a00000000000000" + "0b00000000000000" + "010005" + "020107")
        // Reset: the bit is set and the two baseline vectors follow; here they equal the counts
        // (increments 1 + 2 + 11 bytes, one counter being UInt64.max; decrements 1 + 2).
        let reset = MeshCodec.encode(counters[4])
        #expect(reset.count == MeshCodec.encode(counters[3]).count + 14 + 3)
    }

    @Test("causal metadata round-trips: empty, dense, and with dot clouds")
    func causalMetadata() {
        expectRoundTrip(VersionVector())
        expectRoundTrip(vector((ra, 1), (rb, .max), (rc, 300)))
        expectRoundTrip(CausalContext())
        expectRoundTrip(
            CausalContext(dots: [
                Dot(replica: ra, counter: 3), Dot(replica: ra, counter: 9), Dot(replica: rc, counter: 1),
            ]))
        expectRoundTrip(CausalContext(vector((ra, 5), (rb, 1))))
        for set in handBuiltSets() { expectRoundTrip(set.context) }
    }

    @Test("every WireCodable element type round-trips inside an ORSet, extremes included")
    func elementTypes() {
        func check<Element: WireCodable>(_ elements: [Element], sourceLocation: SourceLocation = #_sourceLocation) {
            var set = ORSet<Element>()
            for (index, element) in elements.enumerated() { set.insert(element, at: index % 2 == 0 ? ra : rc) }
            expectRoundTrip(set, sourceLocation: sourceLocation)
        }
        check([UInt64.min, 1, 127, 128, 16_383, 16_384, .max])
        check([Int64.min, -1, 0, 1, .max])
        check([Int.min, -64, 63, .max])
        check([UInt32.min, .max])
        check([Int32.min, 0, .max])
        check([false, true])
        check(["", "a", "ab", "b", "ä", "🇸🇪", String(repeating: "long ", count: 100)])
        check([[], [0], [0, 0], [255], [UInt8](repeating: 7, count: 300)] as [[UInt8]])
        check([ReplicaID(0), ReplicaID(.max), ra])
        check([UInt8.min, 1, .max])
    }

    @Test(
        "every key-sorting path (radix for many short keys, comparison for few, byte-wise for long keys) yields the canonical order",
        arguments: [(count: 20, longest: 7), (count: 1_500, longest: 7), (count: 3_000, longest: 20)])
    func sortingPaths(count: Int, longest: Int) {
        // Byte strings over {0, 1, 255} share prefixes and end in zeros (up to 7
        // bytes, they encode in at most 8 and take the radix path). The decoder
        // checks strictly increasing byte order, so a round trip proves the sort.
        var random = SeededRandom(seed: UInt64(count * 31 + longest))
        var elements = Set<[UInt8]>()
        while elements.count < count {
            let length = Int(random.next() % UInt64(longest + 1))
            elements.insert((0..<length).map { _ in [0, 1, 255][Int(random.next() % 3)] })
        }
        var set = ORSet<[UInt8]>()
        for element in elements { set.insert(element, at: random.next() % 2 == 0 ? ra : rb) }
        expectRoundTrip(set)
    }

    /// Reachable states, deltas and delta-groups (from MeshTesting's operation
    /// scripts), plus the converged state after every delivery.
    static func reachable<State: ScriptableCRDT & RecordCodable>(_ script: OperationScript, _: State.Type) -> [State] {
        var simulation = Simulation<State>(running: script)
        var values = simulation.states + simulation.deltas.map(\.delta) + [simulation.joinOfAllDeltas]
        simulation.deliverEverything()
        values += simulation.states.prefix(1)
        return values
    }

    static func checkReachable<State: ScriptableCRDT & RecordCodable>(_ type: State.Type) async {
        await propertyCheck(count: casesPerType, input: OperationScript.generator(steps: 0...40)) { script in
            for value in reachable(script, type) { expectRoundTrip(value) }
        }
    }

    @Test("reachable GCounter states and deltas round-trip") func gCounter() async {
        await Self.checkReachable(GCounter.self)
    }
    @Test("reachable PNCounter states and deltas round-trip") func pnCounter() async {
        await Self.checkReachable(PNCounter.self)
    }
    @Test("reachable ORSet<UInt64> states and deltas round-trip") func orSetUInt64() async {
        await Self.checkReachable(ORSet<UInt64>.self)
    }
    @Test("reachable ORSet<Int32> states and deltas round-trip") func orSetInt32() async {
        await Self.checkReachable(ORSet<Int32>.self)
    }
    @Test("reachable LWWRegister<Int64> states and deltas round-trip") func lwwRegister() async {
        await Self.checkReachable(LWWRegister<Int64>.self)
    }
    @Test("reachable LWWMap<UInt64, UInt64> states and deltas round-trip") func lwwMap() async {
        await Self.checkReachable(LWWMap<UInt64, UInt64>.self)
    }
    @Test("reachable MVRegister<UInt8> states and deltas round-trip") func mvRegister() async {
        await Self.checkReachable(MVRegister<UInt8>.self)
    }
    @Test("reachable EWFlag states and deltas round-trip") func ewFlag() async {
        await Self.checkReachable(EWFlag.self)
    }

    @Test("reachable causal contexts and version vectors round-trip")
    func reachableContexts() async {
        await propertyCheck(count: casesPerType, input: OperationScript.generator(steps: 0...40)) { script in
            for set in Self.reachable(script, ORSet<UInt64>.self) {
                expectRoundTrip(set.context)
                expectRoundTrip(set.context.versionVector)
            }
        }
    }

    @Test("reachable ORSets and LWWMaps with string and byte-array elements round-trip")
    func reachableWithStrings() async {
        // Map the small integers of a reachable state to strings (some sharing
        // prefixes, some non-ASCII) and byte arrays: same dots, other element types.
        let names = ["", "a", "ab", "b", "é", "e\u{301}x", "zz", "☕️"]
        await propertyCheck(count: casesPerType, input: OperationScript.generator(steps: 0...40)) { script in
            for set in Self.reachable(script, ORSet<UInt64>.self) {
                let entries = Dictionary(
                    uniqueKeysWithValues: set.dottedElements.map { (names[Int($0.key % 8)], $0.value) })
                let strings = try #require(ORSet<String>(entries: entries, context: set.context))
                expectRoundTrip(strings)
            }
            for map in Self.reachable(script, LWWMap<UInt64, UInt64>.self) {
                let entries = Dictionary(
                    uniqueKeysWithValues: map.dottedEntries.map { key, list in
                        (
                            names[Int(key % 8)],
                            list.map { entry in
                                LWWMap<String, [UInt8]>.Entry(
                                    dot: entry.dot,
                                    write: LWWWrite(
                                        value: [UInt8](
                                            repeating: UInt8(entry.write.value), count: Int(entry.write.value)),
                                        timestamp: entry.write.timestamp, replica: entry.write.replica))
                            }
                        )
                    })
                let converted = try #require(LWWMap<String, [UInt8]>(entries: entries, context: map.context))
                expectRoundTrip(converted)
            }
        }
    }

    @Test("records concatenated in one message decode one after another with the reader left after each")
    func recordsInSequence() throws {
        var writer = ByteWriter()
        let set = handBuiltSets()[3]
        let counter = handBuiltCounters()[1]
        MeshCodec.encode(set, to: &writer)
        MeshCodec.encode(counter, to: &writer)
        var reader = try ByteReader(writer.bytes)
        #expect(try MeshCodec.decode(ORSet<String>.self, from: &reader) == set)
        #expect(try MeshCodec.decode(PNCounter.self, from: &reader) == counter)
        #expect(reader.isAtEnd)
    }

    @Test("a body written in place after its length prefix reads back as a length-prefixed byte string")
    func lengthPrefixedInPlace() throws {
        // Around every varint width boundary of the prefix (1, 2 and 3 bytes), after other bytes.
        let lengths = [0, 1, 127, 128, 129, 300, 16_383, 16_384, 70_000]
        var writer = ByteWriter()
        writer.writeVarint(7)
        for length in lengths {
            let body = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ length) }
            let written = writer.writeLengthPrefixed { inner in
                // In pieces, as an encoder writes.
                for chunk in stride(from: 0, to: body.count, by: 100) {
                    inner.writeBytes(body[chunk..<min(body.count, chunk + 100)])
                }
            }
            #expect(written == length)
        }
        var reference = ByteWriter()
        reference.writeVarint(7)
        for length in lengths {
            reference.writeLengthPrefixed((0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ length) })
        }
        #expect(writer.bytes == reference.bytes)
        var reader = try ByteReader(writer.bytes)
        #expect(try reader.readVarint("seven") == 7)
        for length in lengths {
            let bytes = try reader.readLengthPrefixed("body")
            #expect(bytes == (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ length) })
        }
        #expect(reader.isAtEnd)
    }
}
