import MeshCRDT
import PropertyBased
import Testing

/// Vectors over replicas 1...3 with counters 0...3: equal, ordered and concurrent
/// pairs are all common.
let smallVectors = Gen.uint64(in: 0...3).array(of: 3)
    .map { counters in VersionVector(counters.enumerated().map { (ReplicaID(UInt64($0.offset + 1)), $0.element) }) }

/// The pointwise reference order.
func pointwiseLessOrEqual(_ a: VersionVector, _ b: VersionVector) -> Bool {
    (1...3 as ClosedRange<UInt64>).allSatisfy { a[ReplicaID($0)] <= b[ReplicaID($0)] }
}

@Suite("VersionVector")
struct VersionVectorTests {
    @Test("compare, <=, dominates and isConcurrent agree with the pointwise order")
    func orderIsPointwise() async {
        await propertyCheck(count: casesPerLaw, input: smallVectors, smallVectors) { a, b in
            let below = pointwiseLessOrEqual(a, b)
            let above = pointwiseLessOrEqual(b, a)
            let expected: VersionVector.Ordering =
                switch (below, above) {
                case (true, true): .equal
                case (true, false): .before
                case (false, true): .after
                case (false, false): .concurrent
                }
            #expect(a.compare(b) == expected)
            #expect((a <= b) == below)
            #expect(b.dominates(a) == below)
            #expect(a.isConcurrent(with: b) == (!below && !above))
            #expect((a == b) == (below && above))
        }
    }

    @Test("merge is the pointwise maximum and a join; intersecting is the pointwise minimum")
    func mergeIsPointwiseMaximum() async {
        await propertyCheck(count: casesPerLaw, input: smallVectors, smallVectors, smallVectors) { a, b, c in
            let joined = a.merging(b)
            let met = a.intersecting(b)
            for raw in 1...3 as ClosedRange<UInt64> {
                let replica = ReplicaID(raw)
                #expect(joined[replica] == max(a[replica], b[replica]))
                #expect(met[replica] == min(a[replica], b[replica]))
            }
            #expect(a.merging(a) == a)
            #expect(joined == b.merging(a))
            #expect(joined.merging(c) == a.merging(b.merging(c)))
            #expect(a <= joined && b <= joined)
            #expect(met <= a && met <= b)
            // Canonical form: sorted, no zero entries, so equal vectors are equal values.
            #expect(VersionVector(sortedEntries: joined.entries) == joined)
            #expect(joined.entries.allSatisfy { $0.counter > 0 })
        }
    }

    @Test("increment issues consecutive dots and contains covers exactly the counters seen")
    func incrementAndContains() {
        var vector = VersionVector()
        #expect(vector.increment(r2) == Dot(replica: r2, counter: 1))
        #expect(vector.increment(r2) == Dot(replica: r2, counter: 2))
        #expect(vector.increment(r1) == Dot(replica: r1, counter: 1))
        #expect(vector.entries.map(\.replica) == [r1, r2])
        #expect(vector.contains(Dot(replica: r2, counter: 2)))
        #expect(!vector.contains(Dot(replica: r2, counter: 3)))
        #expect(!vector.contains(Dot(replica: r3, counter: 1)))
    }

    @Test("construction drops zeros, keeps the larger counter of a repeated replica, and refuses unsorted entries")
    func canonicalConstruction() {
        let vector = VersionVector([(r2, 4), (r1, 0), (r2, 6), (r3, 1)] as [(ReplicaID, UInt64)])
        #expect(vector.entries == [.init(replica: r2, counter: 6), .init(replica: r3, counter: 1)])
        #expect(VersionVector(sortedEntries: [.init(replica: r2, counter: 1), .init(replica: r1, counter: 1)]) == nil)
        #expect(VersionVector(sortedEntries: [.init(replica: r1, counter: 0)]) == nil)
        #expect(VersionVector(sortedEntries: [.init(replica: r1, counter: 1), .init(replica: r1, counter: 2)]) == nil)
        var edited = vector
        edited[r2] = 0
        #expect(edited.entries == [.init(replica: r3, counter: 1)])
    }

    @Test("exchange sets a counter and returns the one it replaced; zero removes the entry")
    func exchange() {
        var vector = VersionVector([(r1, 3)] as [(ReplicaID, UInt64)])
        #expect(vector.exchange(r3, with: 7) == 0)
        #expect(vector.exchange(r1, with: 4) == 3)
        #expect(vector.exchange(r2, with: 0) == 0)
        #expect(vector.entries == [.init(replica: r1, counter: 4), .init(replica: r3, counter: 7)])
        #expect(vector.exchange(r3, with: 0) == 7)
        #expect(vector.entries == [.init(replica: r1, counter: 4)])
    }

    /// Lookups start where an evenly spread ID would be and gallop from there: every spread of IDs
    /// must still find every entry and the right insertion point, at the ends and in between.
    @Test(
        "lookups and inserts agree with a plain model whatever the spread of replica IDs",
        arguments: ["consecutive", "random", "clustered", "extremes"])
    func lookupsAgreeWithModel(spread: String) {
        var random = SplitMix64(seed: UInt64(spread.utf8.count))
        func id(_ index: Int) -> UInt64 {
            switch spread {
            case "consecutive": UInt64(index + 1)
            case "random": random.next() | 1
            // Two dense runs far apart: a guess from the first and last ID lands far off.
            case "clustered": index % 2 == 0 ? UInt64(index + 1) : UInt64.max - 1_000 - UInt64(index)
            default: [UInt64(1), 2, UInt64.max - 1, UInt64.max][index % 4] &+ UInt64(index / 4) &* 7
            }
        }
        for size in [0, 1, 7, 8, 9, 31, 200, 1_000] {
            var model: [UInt64: UInt64] = [:]
            for index in 0..<size { model[id(index)] = UInt64(index + 1) }
            let vector = VersionVector(model.map { (ReplicaID($0.key), $0.value) })
            #expect(vector.count == model.count)
            let ids = model.keys.sorted()
            // Present IDs, their neighbours and both ends of the range.
            var probes = ids + ids.map { $0 &+ 1 } + ids.map { $0 &- 1 } + [0, 1, UInt64.max, UInt64.max - 1]
            for _ in 0..<200 { probes.append(random.next()) }
            for probe in probes {
                #expect(vector[ReplicaID(probe)] == model[probe] ?? 0, "\(spread) size \(size) probe \(probe)")
            }
            // Inserting the absent probes keeps the vector sorted and complete.
            var grown = vector
            var grownModel = model
            for probe in probes.prefix(300) where probe != 0 && grownModel[probe] == nil {
                grown[ReplicaID(probe)] = 5
                grownModel[probe] = 5
            }
            #expect(grown.entries.map(\.replica.rawValue) == grownModel.keys.sorted(), "\(spread) size \(size)")
            #expect(grown.entries.map(\.counter) == grownModel.keys.sorted().map { grownModel[$0]! })
        }
    }
}
