import MeshCRDT
import MeshCodec
import MeshTesting
import Testing

/// One valid encoding of every record type, for tests that damage encodings.
func sampleEncodings() -> [(name: String, bytes: [UInt8], decodes: ([UInt8], CodecLimits) throws(CodecError) -> Void)] {
    func entry<Value: RecordCodable>(_ value: Value) -> (
        String, [UInt8], ([UInt8], CodecLimits) throws(CodecError) -> Void
    ) {
        (
            "\(Value.self)", MeshCodec.encode(value),
            { bytes, limits throws(CodecError) in
                // Whatever decodes must be the one canonical encoding of its value.
                let value = try MeshCodec.decode(Value.self, from: bytes, limits: limits)
                #expect(
                    MeshCodec.encode(value) == bytes, "\(Value.self) decoded \(hex(bytes)) but re-encodes differently")
            }
        )
    }
    let sets = handBuiltSets()
    var register = LWWRegister<String>()
    register.set("value", timestamp: ts(1_700_000_000_000, 2), at: rc)
    var deleted = register
    deleted.clear(timestamp: ts(1_800_000_000_000), at: ra)
    return [
        entry(vector((ra, 3), (rc, 500))),
        entry(sets[5].context),
        entry(handBuiltCounters()[3]),
        entry(handBuiltCounters()[5]),
        entry(handBuiltCounters()[3].increments),
        entry(register),
        entry(deleted),
        entry(sets[6]),
        entry(handBuiltMaps()[6]),
        entry(handBuiltRegisters()[3]),
        entry(handBuiltFlags()[6]),
    ]
}

@Suite("Rejection: bad input fails with the right CodecError, never a trap")
struct RejectionTests {
    @Test(
        "every strict prefix of every valid encoding is refused as truncated (or as a count the bytes left cannot hold)"
    )
    func truncated() {
        for sample in sampleEncodings() {
            for length in 0..<sample.bytes.count {
                do {
                    try sample.decodes(Array(sample.bytes.prefix(length)), .default)
                    Issue.record("\(sample.name): prefix of \(length) bytes decoded")
                } catch {
                    #expect(
                        error.code == .truncated || error.code == .limitExceeded,
                        "\(sample.name) prefix \(length): \(error)")
                    #expect(error.offset <= length, "\(sample.name) prefix \(length): \(error)")
                }
            }
        }
    }

    @Test("a byte after a complete record is refused as trailing, at the record's end")
    func trailingBytes() {
        for sample in sampleEncodings() {
            do {
                try sample.decodes(sample.bytes + [0], .default)
                Issue.record("\(sample.name): trailing byte accepted")
            } catch {
                #expect(error.code == .trailingBytes && error.offset == sample.bytes.count, "\(sample.name): \(error)")
            }
        }
    }

    @Test(
        "a version byte other than 1 is refused as unsupported, at offset 0", arguments: [0, 2, 0x81, 0xff] as [UInt8])
    func wrongVersion(version: UInt8) {
        for sample in sampleEncodings() {
            var bytes = sample.bytes
            bytes[0] = version
            do {
                try sample.decodes(bytes, .default)
                Issue.record("\(sample.name): version \(version) accepted")
            } catch {
                #expect(error.code == .unsupportedVersion && error.offset == 0, "\(sample.name): \(error)")
            }
        }
    }

    @Test("a record decoded as another type is refused as the wrong kind, at the kind or parameter byte")
    func wrongKind() {
        let counter = MeshCodec.encode(handBuiltCounters()[1])
        expectRejection(GCounter.self, counter, .wrongKind, at: 1)
        expectRejection(ORSet<String>.self, counter, .wrongKind, at: 1)
        let strings = MeshCodec.encode(handBuiltSets()[3])
        expectRejection(ORSet<UInt64>.self, strings, .wrongKind, at: 2)
        expectRejection(MVRegister<String>.self, strings, .wrongKind, at: 1)
        let map = MeshCodec.encode(handBuiltMaps()[3])
        expectRejection(LWWMap<String, Int64>.self, map, .wrongKind, at: 3)
        expectRejection(LWWMap<UInt64, UInt64>.self, map, .wrongKind, at: 2)
        expectRejection(VersionVector.self, MeshCodec.encode(CausalContext()), .wrongKind, at: 1)
    }

    @Test("counts above the configured limits are refused as limitExceeded, at the count")
    func limits() {
        var set = ORSet<UInt64>()
        for element in 0..<10 as Range<UInt64> { set.insert(element, at: ra) }
        let bytes = MeshCodec.encode(set)
        // 3 header bytes, table of one replica (9), vector (3), empty cloud (1): the element count is at 16.
        #expect(bytes[16] == 10)
        var limits = CodecLimits.default
        limits.maximumElements = 9
        expectRejection(ORSet<UInt64>.self, bytes, .limitExceeded, at: 16, limits: limits)
        limits.maximumElements = 10
        #expect(throws: Never.self) { try MeshCodec.decode(ORSet<UInt64>.self, from: bytes, limits: limits) }

        let threeReplicas = MeshCodec.encode(vector((ra, 1), (rb, 2), (rc, 3)))
        limits = .default
        limits.maximumReplicas = 2
        expectRejection(VersionVector.self, threeReplicas, .limitExceeded, at: 2, limits: limits)

        var strings = ORSet<String>()
        strings.insert(String(repeating: "x", count: 100), at: ra)
        let stringBytes = MeshCodec.encode(strings)
        limits = .default
        limits.maximumElementBytes = 99
        // The string's length is the first byte after the element count at 16.
        expectRejection(ORSet<String>.self, stringBytes, .limitExceeded, at: 17, limits: limits)

        limits = .default
        limits.maximumInputBytes = bytes.count - 1
        expectRejection(ORSet<UInt64>.self, bytes, .limitExceeded, at: 0, limits: limits)
    }

    @Test("a count larger than the bytes left could hold is refused before allocating, at the count")
    func countBeyondInput() {
        var record = RawRecord(ORSet<UInt64>.self, replicas: [ra])
        record.vector([(0, 1)])
        record.varint(0)
        let countOffset = record.offset
        record.varint(1 << 40)  // a trillion elements in a few bytes
        record.raw([1, 0, 1])
        expectRejection(ORSet<UInt64>.self, record.bytes, .limitExceeded, at: countOffset)

        var table = RawRecord(VersionVector.self, replicas: [])
        table.writer = ByteWriter()
        table.raw([1, 1])
        table.varint(UInt64(Int.max))  // replica table size
        expectRejection(VersionVector.self, table.bytes, .limitExceeded, at: 2)

        var huge = RawRecord(ORSet<String>.self, replicas: [ra])
        huge.vector([(0, 1)])
        huge.varint(0)
        huge.varint(1)
        let lengthOffset = huge.offset
        huge.varint(1 << 19)  // a string length within the limit but beyond the input
        huge.raw([0x61, 0x62])
        expectRejection(ORSet<String>.self, huge.bytes, .limitExceeded, at: lengthOffset)
    }

    @Test("non-minimal, overlong and overflowing varints are refused at the varint's start")
    func malformedVarints() {
        // A version vector whose one counter is written badly, at offset 13.
        func vectorRecord(counter: [UInt8]) -> [UInt8] {
            var record = RawRecord(VersionVector.self, replicas: [ra])
            record.varint(1)
            record.varint(0)
            #expect(record.offset == 13)
            record.raw(counter)
            return record.bytes
        }
        expectRejection(VersionVector.self, vectorRecord(counter: [0x81, 0x00]), .notCanonical, at: 13)
        expectRejection(VersionVector.self, vectorRecord(counter: [0xff, 0x80, 0x00]), .notCanonical, at: 13)
        expectRejection(
            VersionVector.self, vectorRecord(counter: [UInt8](repeating: 0xff, count: 10) + [0x01]), .malformedVarint,
            at: 13)
        expectRejection(
            VersionVector.self, vectorRecord(counter: [UInt8](repeating: 0xff, count: 9) + [0x02]), .malformedVarint,
            at: 13)
        expectRejection(VersionVector.self, vectorRecord(counter: [0xff, 0xff]), .truncated, at: 15)
        // The largest value is fine.
        let maximum = vectorRecord(counter: [UInt8](repeating: 0xff, count: 9) + [0x01])
        #expect((try? MeshCodec.decode(VersionVector.self, from: maximum)) == vector((ra, .max)))
    }

    @Test("elements or keys out of byte order, or repeated, are refused as not canonical, at the second key")
    func outOfOrderAndRepeats() {
        func set(_ elements: [UInt64]) -> (bytes: [UInt8], secondKey: Int) {
            var record = RawRecord(ORSet<UInt64>.self, replicas: [ra])
            record.vector([(0, UInt64(elements.count))])
            record.varint(0)
            record.varint(UInt64(elements.count))
            var secondKey = 0
            for (index, element) in elements.enumerated() {
                if index == 1 { secondKey = record.offset }
                record.varint(element)
                record.varint(0)  // head: one dot of replica 0
                record.varint(UInt64(index + 1))
            }
            return (record.bytes, secondKey)
        }
        let valid = set([5, 300])
        #expect(throws: Never.self) { try MeshCodec.decode(ORSet<UInt64>.self, from: valid.bytes) }
        // 300 is ac 02, which sorts after 05 as bytes though not as a number below 128.
        let swapped = set([300, 5])
        expectRejection(ORSet<UInt64>.self, swapped.bytes, .notCanonical, at: swapped.secondKey)
        // 256 is 80 02 and 129 is 81 01: byte order, not numeric order, is canonical.
        let byteOrder = set([256, 129])
        #expect(throws: Never.self) { try MeshCodec.decode(ORSet<UInt64>.self, from: byteOrder.bytes) }
        let numericOrder = set([129, 256])
        expectRejection(ORSet<UInt64>.self, numericOrder.bytes, .notCanonical, at: numericOrder.secondKey)
        let repeated = set([7, 7])
        expectRejection(ORSet<UInt64>.self, repeated.bytes, .notCanonical, at: repeated.secondKey)

        var map = RawRecord(LWWMap<String, Bool>.self, replicas: [ra])
        map.vector([(0, 2)])
        map.varint(0)
        map.varint(2)
        for (index, key) in ["b", "a"].enumerated() {
            if index == 1 { #expect(map.offset == 27) }
            map.string(key)
            map.raw([1, 0, UInt8(index + 1), 1, 9, 0, 0])  // one write: dot, value true, timestamp 9.0, replica 0
        }
        expectRejection(LWWMap<String, Bool>.self, map.bytes, .notCanonical, at: 27)
    }

    @Test("two canonically equivalent spellings of one string in a set are refused as not canonical")
    func canonicallyEquivalentStrings() {
        var record = RawRecord(ORSet<String>.self, replicas: [ra])
        record.vector([(0, 2)])
        record.varint(0)
        record.varint(2)
        record.string("e\u{301}")  // 65 cc 81: decomposed, sorts first
        record.raw([0, 1])
        let second = record.offset
        record.string("\u{e9}")  // c3 a9: precomposed, == to the first in Swift
        record.raw([0, 2])
        expectRejection(ORSet<String>.self, record.bytes, .notCanonical, at: second)
    }

    @Test("replica tables out of order or with an unused entry are refused as not canonical")
    func replicaTables() {
        var unordered = RawRecord(VersionVector.self, replicas: [rb, ra])
        unordered.vector([(0, 1), (1, 1)])
        expectRejection(VersionVector.self, unordered.bytes, .notCanonical, at: 11)

        var repeated = RawRecord(VersionVector.self, replicas: [ra, ra])
        repeated.vector([(0, 1), (1, 1)])
        expectRejection(VersionVector.self, repeated.bytes, .notCanonical, at: 11)

        var unused = RawRecord(VersionVector.self, replicas: [ra, rb])
        unused.vector([(0, 1)])
        expectRejection(VersionVector.self, unused.bytes, .notCanonical, at: 2)

        var outside = RawRecord(VersionVector.self, replicas: [ra])
        outside.vector([(0, 1), (1, 1)])
        expectRejection(VersionVector.self, outside.bytes, .invalidValue, at: 14)
    }

    @Test("version vectors and dot clouds out of order, with zero counters or uncompacted dots are refused")
    func causalMetadata() {
        var descending = RawRecord(VersionVector.self, replicas: [ra, rb])
        descending.vector([(1, 1), (0, 1)])
        expectRejection(VersionVector.self, descending.bytes, .notCanonical, at: 22)

        var zero = RawRecord(VersionVector.self, replicas: [ra])
        zero.vector([(0, 0)])
        expectRejection(VersionVector.self, zero.bytes, .invalidValue, at: 13)

        // Context {ra: 2} + cloud: (ra, 3) belongs in the vector; (ra, 4) is fine.
        // The cloud is a dot sequence: the first counter absolute, then gaps.
        func context(cloud: [UInt64]) -> [UInt8] {
            var record = RawRecord(CausalContext.self, replicas: [ra])
            record.vector([(0, 2)])
            record.varint(UInt64(cloud.count))
            for field in cloud {
                record.varint(0)
                record.varint(field)
            }
            return record.bytes
        }
        let valid = context(cloud: [4, 5])
        #expect(
            (try? MeshCodec.decode(CausalContext.self, from: valid))?.dotCloud == [
                Dot(replica: ra, counter: 4), Dot(replica: ra, counter: 9),
            ])
        expectRejection(CausalContext.self, context(cloud: [3]), .notCanonical, at: 15)
        expectRejection(CausalContext.self, context(cloud: [1]), .notCanonical, at: 15)
        expectRejection(CausalContext.self, context(cloud: [0]), .invalidValue, at: 16)
        // A gap of zero repeats the dot before it.
        expectRejection(CausalContext.self, context(cloud: [4, 0]), .notCanonical, at: 17)
        // A gap past UInt64.max overflows.
        expectRejection(CausalContext.self, context(cloud: [4, .max]), .invalidValue, at: 18)
        // A replica step beyond the table.
        var step = RawRecord(CausalContext.self, replicas: [ra, rb])
        step.vector([(0, 1), (1, 1)])
        step.varint(2)
        step.raw([0, 5, 2, 9])
        expectRejection(CausalContext.self, step.bytes, .invalidValue, at: 27)

        // A vector entry of UInt64.max must not make the adjacency check overflow.
        var top = RawRecord(CausalContext.self, replicas: [ra])
        top.vector([(0, .max)])
        top.varint(1)
        top.varint(0)
        top.varint(.max)
        expectRejection(CausalContext.self, top.bytes, .notCanonical, at: 24)
    }

    @Test("a dot outside the causal context is refused as an invalid value, at the dot")
    func dotNotInContext() {
        var set = RawRecord(ORSet<UInt64>.self, replicas: [ra])
        set.vector([(0, 1)])
        set.varint(0)
        set.varint(1)
        set.varint(42)
        let dot = set.offset
        set.raw([0, 2])  // (ra, 2), but the context only has (ra, 1)
        expectRejection(ORSet<UInt64>.self, set.bytes, .invalidValue, at: dot)

        var flag = RawRecord(EWFlag.self, replicas: [ra, rb])
        flag.vector([(0, 1)])
        flag.varint(0)
        flag.varint(1)
        let flagDot = flag.offset
        flag.raw([1, 1])  // (rb, 1): rb is in the table but not in the context
        expectRejection(EWFlag.self, flag.bytes, .invalidValue, at: flagDot)

        var register = RawRecord(MVRegister<Bool>.self, replicas: [ra])
        register.vector([])
        register.varint(0)
        register.varint(1)
        register.raw([0, 1, 1])
        expectRejection(MVRegister<Bool>.self, register.bytes, .invalidValue, at: 15)
    }

    @Test(
        "malformed element dot sets, empty key write lists, bad flags and bad UTF-8 are refused at the offending byte")
    func malformedValues() {
        // Several dots announced for an element, the second repeating the first.
        var dots = RawRecord(ORSet<UInt64>.self, replicas: [ra])
        dots.vector([(0, 3)])
        dots.varint(0)
        dots.varint(1)
        dots.varint(7)
        dots.varint(1)  // head: (0 << 1) | 1, two dots
        dots.raw([0, 2])
        let second = dots.offset
        dots.raw([0, 0])  // same replica, gap 0
        expectRejection(ORSet<UInt64>.self, dots.bytes, .notCanonical, at: second)

        var emptyKey = RawRecord(LWWMap<UInt64, UInt64>.self, replicas: [])
        emptyKey.vector([])
        emptyKey.varint(0)
        emptyKey.varint(1)
        emptyKey.varint(3)
        let listOffset = emptyKey.offset
        emptyKey.raw([UInt8](repeating: 0, count: 8))  // write count 0, then padding
        expectRejection(LWWMap<UInt64, UInt64>.self, emptyKey.bytes, .invalidValue, at: listOffset)

        var presence = RawRecord(LWWRegister<Bool>.self, replicas: [])
        presence.byte(3)
        expectRejection(LWWRegister<Bool>.self, presence.bytes, .invalidValue, at: 4)

        var deletion = RawRecord(LWWRegister<Bool>.self, replicas: [ra])
        deletion.raw([2, 1, 0])  // a deletion: timestamp, then no replica
        expectRejection(LWWRegister<Bool>.self, deletion.bytes, .truncated, at: 15)

        // A counter whose head flags reset baselines that are both empty has a shorter spelling.
        var emptyBaselines = RawRecord(PNCounter.self, replicas: [ra])
        emptyBaselines.vector([(0, 3)])
        emptyBaselines.varint(1)  // no decrements, baselines follow
        let baselinesOffset = emptyBaselines.offset
        emptyBaselines.vector([])
        emptyBaselines.vector([])
        expectRejection(PNCounter.self, emptyBaselines.bytes, .notCanonical, at: baselinesOffset)

        var boolean = RawRecord(LWWRegister<Bool>.self, replicas: [ra])
        boolean.raw([1, 2, 0, 0, 0])
        expectRejection(LWWRegister<Bool>.self, boolean.bytes, .invalidValue, at: 13)

        var logical = RawRecord(LWWRegister<Bool>.self, replicas: [ra])
        logical.raw([1, 1, 0])
        let logicalOffset = logical.offset
        logical.varint(UInt64(UInt32.max) + 1)
        logical.varint(0)
        expectRejection(LWWRegister<Bool>.self, logical.bytes, .invalidValue, at: logicalOffset)

        var utf8 = RawRecord(LWWRegister<String>.self, replicas: [ra])
        utf8.byte(1)
        utf8.raw([2, 0xc3, 0x28, 0, 0, 0])
        expectRejection(LWWRegister<String>.self, utf8.bytes, .invalidUTF8, at: 13)

        var narrow = RawRecord(LWWRegister<UInt32>.self, replicas: [ra])
        narrow.byte(1)
        narrow.varint(UInt64(UInt32.max) + 1)
        narrow.raw([0, 0, 0])
        expectRejection(LWWRegister<UInt32>.self, narrow.bytes, .invalidValue, at: 13)
    }

    @Test("a dot held by two elements or two keys is refused as an invalid value, at its second use")
    func sharedDots() {
        var set = RawRecord(ORSet<UInt64>.self, replicas: [ra])
        set.vector([(0, 1)])
        set.varint(0)
        set.varint(2)
        set.raw([1, 0, 1])  // element 1: (ra, 1)
        set.varint(2)
        let second = set.offset
        set.raw([0, 1])  // element 2: (ra, 1) again
        expectRejection(ORSet<UInt64>.self, set.bytes, .invalidValue, at: second)

        var map = RawRecord(LWWMap<UInt64, Bool>.self, replicas: [ra])
        map.vector([(0, 1)])
        map.varint(0)
        map.varint(2)
        map.raw([1, 1, 0, 1, 1, 9, 0, 0])  // key 1: one write, dot (ra, 1), true, 9.0, ra
        map.raw([2, 1])  // key 2: one write
        let secondWrite = map.offset
        map.raw([0, 1, 1, 9, 0, 0])  // the same dot
        expectRejection(LWWMap<UInt64, Bool>.self, map.bytes, .invalidValue, at: secondWrite)
    }

    @Test("random garbage and randomly damaged encodings never trap; whatever decodes round-trips")
    func garbage() {
        var random = SeededRandom(seed: 0x5EED)
        let samples = sampleEncodings()
        var refused = 0
        for round in 0..<20_000 {
            let sample = samples[round % samples.count]
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                if !bytes.isEmpty && round % 4 == 0 { bytes[0] = 1 }
            } else {
                bytes = sample.bytes
                for _ in 0...(random.next() % 3) where !bytes.isEmpty {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            do {
                try sample.decodes(bytes, .default)
            } catch {
                refused += 1
                #expect(error.offset >= 0 && error.offset <= bytes.count, "\(error)")
            }
        }
        #expect(refused > 10_000)
    }
}

/// SplitMix64, for the garbage test.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
