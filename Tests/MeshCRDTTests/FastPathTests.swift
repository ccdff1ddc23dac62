import MeshCRDT
import MeshTesting
import PropertyBased
import Testing

/// A few dots over three replicas: the size of a local write's delta context, the case
/// `CausalContext.merge` handles dot by dot.
let fewDots = zip(Gen.uint64(in: 1...3), Gen.uint64(in: 1...6))
    .map { Dot(replica: ReplicaID($0), counter: $1) }
    .array(of: 0...3)

/// Every dot a context covers (vector entries expanded; counters are small in these tests).
func allDots(of context: CausalContext) -> Set<Dot> {
    var dots = Set(context.dotCloud)
    for entry in context.versionVector.entries {
        for counter in 1...max(entry.counter, 1) where entry.counter > 0 {
            dots.insert(Dot(replica: entry.replica, counter: counter))
        }
    }
    return dots
}

/// The join of two dot maps from its definition (Almeida et al. 2018): per key, the entries
/// both sides hold plus each side's entries the other side has not seen; contexts unite.
func definitionJoin(_ a: LWWMap<UInt8, UInt8>, _ b: LWWMap<UInt8, UInt8>) -> LWWMap<UInt8, UInt8>? {
    var entries: [UInt8: [LWWMap<UInt8, UInt8>.Entry]] = [:]
    for key in Set(a.dottedEntries.keys).union(b.dottedEntries.keys) {
        let left = a.dottedEntries[key] ?? []
        let right = b.dottedEntries[key] ?? []
        var kept = left.filter { entry in right.contains { $0.dot == entry.dot } || !b.context.contains(entry.dot) }
        kept += right.filter { entry in !left.contains { $0.dot == entry.dot } && !a.context.contains(entry.dot) }
        if !kept.isEmpty { entries[key] = kept.sorted { $0.dot < $1.dot } }
    }
    return LWWMap(entries: entries, context: CausalContext(dots: allDots(of: a.context).union(allDots(of: b.context))))
}

/// `definitionJoin` for observed-remove sets.
func definitionJoin(_ a: ORSet<UInt8>, _ b: ORSet<UInt8>) -> ORSet<UInt8>? {
    var entries: [UInt8: DotSet] = [:]
    for element in Set(a.dottedElements.keys).union(b.dottedElements.keys) {
        let left = a.dots(of: element)
        let right = b.dots(of: element)
        var kept = left.filter { right.contains($0) || !b.context.contains($0) }
        kept += right.filter { !left.contains($0) && !a.context.contains($0) }
        if !kept.isEmpty { entries[element] = DotSet(kept) }
    }
    return ORSet(entries: entries, context: CausalContext(dots: allDots(of: a.context).union(allDots(of: b.context))))
}

/// The shortcuts a local write takes (small context merges, the two-dot delta context of a write
/// that replaces one, the one-entry-per-side map join) give exactly what the general algorithms
/// give, on random and on reachable states.
@Suite("Fast paths equal the general join")
struct FastPathTests {
    @Test("merging a context of a few dots (and at most one vector entry) is the union of the dots")
    func smallContextMergeIsUnion() async {
        await propertyCheck(count: casesPerLaw * 5, input: smallDots, fewDots, Gen.uint64(in: 0...4)) {
            big, few, covered in
            var small = CausalContext(dots: few)
            var expectedDots = big + few
            // Sometimes a vector entry too (a delta whose first dot was counter 1).
            if covered > 0 {
                small.merge(CausalContext(VersionVector([(r2, covered)])))
                expectedDots += (1...covered).map { Dot(replica: r2, counter: $0) }
            }
            var merged = CausalContext(dots: big)
            merged.merge(small)
            #expect(merged == CausalContext(dots: expectedDots))
            #expect(CausalContext(versionVector: merged.versionVector, dotCloud: merged.dotCloud) == merged)
        }
    }

    @Test("an ORSet re-add and an LWWMap field set make the delta context of exactly the two dots")
    func replacingWriteDeltaContext() async {
        await propertyCheck(count: casesPerLaw, input: fewDots, Gen.uint64(in: 1...3)) { previous, replica in
            // A state whose element 1 / key 1 is kept alive by the first of `previous` (if any).
            guard let old = previous.first else { return }
            var set = ORSet<UInt8>(entries: [1: DotSet(old)], context: CausalContext(dots: previous))!
            let setDelta = set.insert(1, at: ReplicaID(replica))
            let dot = set.dots(of: 1).sorted[0]
            #expect(setDelta.context == CausalContext(dots: [old, dot]))
            let write = LWWWrite<UInt8>(value: 7, timestamp: ts(1), replica: old.replica)
            var map = LWWMap<UInt8, UInt8>(
                entries: [1: [LWWMap.Entry(dot: old, write: write)]], context: CausalContext(dots: previous))!
            let mapDelta = map.set(1, to: 8, timestamp: ts(2), at: ReplicaID(replica))
            let mapDot = map.dottedEntries[1]![0].dot
            #expect(mapDelta.context == CausalContext(dots: [old, mapDot]))
        }
    }

    @Test("LWWMap merge equals the dot-map join's definition on reachable states and deltas")
    func mapMergeMatchesDefinition() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            let pool = statePool(Simulation<LWWMap<UInt8, UInt8>>(running: script))
            for a in pool {
                for b in pool {
                    let expected = definitionJoin(a, b)
                    #expect(expected != nil)
                    #expect(a.merging(b) == expected)
                }
            }
        }
    }

    @Test("ORSet merge equals the dot-set join's definition on reachable states and deltas")
    func setMergeMatchesDefinition() async {
        await propertyCheck(count: casesPerLaw, input: OperationScript.generator()) { script in
            let pool = statePool(Simulation<ORSet<UInt8>>(running: script))
            for a in pool {
                for b in pool {
                    let expected = definitionJoin(a, b)
                    #expect(expected != nil)
                    #expect(a.merging(b) == expected)
                }
            }
        }
    }
}
