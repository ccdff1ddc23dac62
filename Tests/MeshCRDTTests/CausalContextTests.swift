import MeshCRDT
import MeshTesting
import PropertyBased
import Testing

/// Dots over three replicas with small counters, so gaps, repeats and fills are common.
let smallDots = zip(Gen.uint64(in: 1...3), Gen.uint64(in: 1...6))
    .map { Dot(replica: ReplicaID($0), counter: $1) }
    .array(of: 0...14)

@Suite("CausalContext")
struct CausalContextTests {
    @Test("inserting dots in any order gives the canonical context of the set, containing exactly those dots")
    func insertOrderDoesNotMatter() async {
        await propertyCheck(count: casesPerLaw, input: smallDots, Gen.uint64()) { dots, seed in
            var random = TestRandom(seed: seed)
            var forward = CausalContext()
            for dot in dots { forward.insert(dot) }
            var shuffled = CausalContext()
            for dot in dots.shuffled(using: &random) { shuffled.insert(dot) }
            #expect(forward == shuffled)
            #expect(forward == CausalContext(dots: dots))
            for replica in 1...3 as ClosedRange<UInt64> {
                for counter in 1...8 as ClosedRange<UInt64> {
                    let dot = Dot(replica: ReplicaID(replica), counter: counter)
                    #expect(forward.contains(dot) == dots.contains(dot))
                }
            }
            // Canonical: the decoder initialiser accepts the parts and rebuilds the same context.
            #expect(CausalContext(versionVector: forward.versionVector, dotCloud: forward.dotCloud) == forward)
            // Compacted: no cloud dot could be folded into the vector.
            for dot in forward.dotCloud { #expect(dot.counter >= forward.versionVector[dot.replica] + 2) }
        }
    }

    @Test("merging contexts is the union of their dots, and is idempotent, commutative and associative")
    func mergeIsUnion() async {
        await propertyCheck(count: casesPerLaw, input: smallDots, smallDots, smallDots) { a, b, c in
            let (x, y, z) = (CausalContext(dots: a), CausalContext(dots: b), CausalContext(dots: c))
            #expect(x.merging(y) == CausalContext(dots: a + b))
            #expect(x.merging(x) == x)
            #expect(x.merging(y) == y.merging(x))
            #expect(x.merging(y).merging(z) == x.merging(y.merging(z)))
        }
    }

    @Test("the cloud folds into the vector when the gaps fill")
    func cloudFoldsWhenGapsFill() {
        var context = CausalContext()
        context.insert(Dot(replica: r1, counter: 3))
        context.insert(Dot(replica: r1, counter: 5))
        context.insert(Dot(replica: r2, counter: 2))
        #expect(context.versionVector.isEmpty)
        #expect(context.dotCloud.count == 3)
        context.insert(Dot(replica: r1, counter: 1))
        #expect(context.versionVector[r1] == 1)
        context.insert(Dot(replica: r1, counter: 2))
        #expect(context.versionVector[r1] == 3)
        #expect(context.dotCloud == [Dot(replica: r1, counter: 5), Dot(replica: r2, counter: 2)])
        context.merge(CausalContext(vv((r1, 4), (r2, 1))))
        #expect(context.versionVector == vv((r1, 5), (r2, 2)))
        #expect(context.dotCloud.isEmpty)
    }

    @Test("issueDot takes the dot after every dot of the replica seen so far, cloud included")
    func issueDotSkipsPastTheCloud() {
        var context = CausalContext(vv((r1, 2)))
        context.insert(Dot(replica: r1, counter: 7))
        #expect(context.nextDot(for: r1) == Dot(replica: r1, counter: 8))
        #expect(context.issueDot(for: r1) == Dot(replica: r1, counter: 8))
        #expect(context.issueDot(for: r2) == Dot(replica: r2, counter: 1))
        #expect(context.contains(Dot(replica: r1, counter: 8)))
        #expect(!context.contains(Dot(replica: r1, counter: 3)))
    }

    @Test("the decoder initialiser refuses unsorted, repeated, covered or adjacent cloud dots")
    func fromPartsRefusesNonCanonicalClouds() {
        let vector = vv((r1, 2))
        #expect(CausalContext(versionVector: vector, dotCloud: [Dot(replica: r1, counter: 2)]) == nil)
        #expect(CausalContext(versionVector: vector, dotCloud: [Dot(replica: r1, counter: 3)]) == nil)
        #expect(CausalContext(versionVector: vector, dotCloud: [Dot(replica: r1, counter: 4)]) != nil)
        let five = Dot(replica: r1, counter: 5)
        #expect(CausalContext(versionVector: vector, dotCloud: [five, five]) == nil)
        #expect(CausalContext(versionVector: vector, dotCloud: [five, Dot(replica: r1, counter: 4)]) == nil)
        #expect(CausalContext(versionVector: vector, dotCloud: [Dot(replica: r2, counter: 1)]) == nil)
    }

    // Regression (found by this suite): `init?(versionVector:dotCloud:)` computed
    // `vector[replica] + 1`, which trapped at UInt64.max instead of returning nil.
    @Test("the decoder initialiser returns nil, not a trap, for a cloud dot beside a saturated counter")
    func fromPartsDoesNotOverflow() {
        let saturated = vv((r1, .max))
        #expect(CausalContext(versionVector: saturated, dotCloud: [Dot(replica: r1, counter: 5)]) == nil)
        #expect(CausalContext(versionVector: saturated, dotCloud: [Dot(replica: r1, counter: .max)]) == nil)
    }

    // Regression (found by this suite): compaction compared `dot.counter == counter + 1`,
    // which trapped when a replica's counter was UInt64.max and the other side's cloud
    // held a dot of that replica: two well-formed (decodable) contexts crashed merge.
    @Test("merging a saturated vector with a cloud of the same replica drops the covered dots instead of trapping")
    func mergeWithSaturatedCounterDoesNotOverflow() throws {
        let saturated = CausalContext(vv((r1, .max)))
        let withCloud = try #require(
            CausalContext(versionVector: vv((r1, 3)), dotCloud: [Dot(replica: r1, counter: 5)]))
        #expect(saturated.merging(withCloud) == saturated)
        #expect(withCloud.merging(saturated) == saturated)
    }
}
