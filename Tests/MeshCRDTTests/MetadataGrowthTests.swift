import MeshCRDT
import MeshTesting
import Testing

/// Tombstone-freedom: metadata is O(present elements + replicas), never O(removed
/// elements). Each test removes 10,000 distinct elements or keys and shows that
/// what remains is the same size as after the first few.
@Suite("Metadata does not grow with removed elements")
struct MetadataGrowthTests {
    static let operations = 10_000

    /// The size of a causal context: version-vector entries plus cloud dots.
    static func size(_ context: CausalContext) -> Int {
        context.versionVector.count + context.dotCloud.count
    }

    @Test("ORSet: 10,000 distinct adds and removes at two replicas leave no element and a two-entry context")
    func orSet() {
        var a = ORSet<Int>()
        var b = ORSet<Int>()
        var sizeAfterTen = 0
        for element in 0..<Self.operations {
            // a adds, b receives the add, b removes, a receives the remove.
            let add = a.insert(element, at: r1)
            b.merge(add)
            let remove = b.remove(element)
            a.merge(remove)
            if element == 9 { sizeAfterTen = Self.size(a.context) + Self.size(b.context) }
        }
        #expect(a.dottedElements.isEmpty && b.dottedElements.isEmpty)
        #expect(a.context.versionVector.count == 1 && a.context.dotCloud.isEmpty)
        #expect(Self.size(a.context) + Self.size(b.context) == sizeAfterTen)
        #expect(a.context.versionVector[r1] == UInt64(Self.operations))
        #expect(a == b)
    }

    @Test("ORSet: adds and removes delivered out of order still compact to one vector entry once all arrive")
    func orSetOutOfOrder() {
        var writer = ORSet<Int>()
        var deltas: [ORSet<Int>] = []
        for element in 0..<Self.operations {
            deltas.append(writer.insert(element, at: r1))
            deltas.append(writer.remove(element))
        }
        // Shuffled within windows of 64 deltas: every delta is out of order, and the
        // test stays linear (a fully shuffled log makes each merge scan a huge cloud).
        var random = TestRandom(seed: 42)
        var reader = ORSet<Int>()
        var largestCloud = 0
        for start in stride(from: 0, to: deltas.count, by: 64) {
            for delta in deltas[start..<min(start + 64, deltas.count)].shuffled(using: &random) {
                reader.merge(delta)
                largestCloud = max(largestCloud, reader.context.dotCloud.count)
            }
        }
        #expect(largestCloud > 0)  // the shuffle really delivered out of order
        #expect(reader.dottedElements.isEmpty)
        #expect(reader.context == CausalContext(VersionVector([(r1, UInt64(Self.operations))])))
        #expect(reader == writer)
    }

    @Test("ORSet: re-adding the same element 10,000 times keeps one dot")
    func orSetReAdd() {
        var a = ORSet<Int>()
        var b = ORSet<Int>()
        for _ in 0..<Self.operations { b.merge(a.insert(7, at: r1)) }
        #expect(a.dots(of: 7).count == 1 && b.dots(of: 7).count == 1)
        #expect(a.context.dotCloud.isEmpty && b.context.dotCloud.isEmpty)
    }

    @Test("LWWMap: 10,000 distinct keys set and removed leave no key and a two-entry context")
    func lwwMap() {
        var a = LWWMap<Int, Int>()
        var b = LWWMap<Int, Int>()
        var clock = HybridLogicalClock()
        for key in 0..<Self.operations {
            let set = a.set(key, to: key, timestamp: clock.now(physicalMilliseconds: 1_000), at: r1)
            b.merge(set)
            let overwrite = b.set(key, to: -key, timestamp: clock.now(physicalMilliseconds: 1_000), at: r2)
            a.merge(overwrite)
            let remove = a.remove(key)
            b.merge(remove)
        }
        #expect(a.dottedEntries.isEmpty && b.dottedEntries.isEmpty)
        #expect(a.context.versionVector.count == 2 && a.context.dotCloud.isEmpty)
        #expect(a == b)
    }

    @Test("MVRegister: 10,000 sets and resets at two replicas keep at most one value and a two-entry context")
    func mvRegister() {
        var a = MVRegister<Int>()
        var b = MVRegister<Int>()
        for value in 0..<Self.operations {
            b.merge(a.set(value, at: r1))
            a.merge(b.set(value, at: r2))
            if value % 2 == 0 { b.merge(a.reset()) }
            #expect(a.dottedValues.count <= 1)
        }
        #expect(a.context.versionVector.count == 2 && a.context.dotCloud.isEmpty)
        #expect(a == b)
    }

    @Test("EWFlag: 10,000 enables and disables keep at most one dot and a two-entry context")
    func ewFlag() {
        var a = EWFlag()
        var b = EWFlag()
        for round in 0..<Self.operations {
            b.merge(round % 2 == 0 ? a.enable(at: r1) : a.disable())
            a.merge(b.enable(at: r2))
            #expect(a.enablingDots.count <= 1)
        }
        #expect(a.context.versionVector.count == 2 && a.context.dotCloud.isEmpty)
        #expect(a == b)
    }
}
