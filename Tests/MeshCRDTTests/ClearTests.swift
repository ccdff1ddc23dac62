import MeshCRDT
import MeshTesting
import Testing

/// Whole-object removal (Redis `DEL`): observed resets, observed removals of every
/// element, and last-writer-wins deletions. One behaviour per test, concrete values.
@Suite("clear: observed reset and removal")
struct ClearTests {
    // MARK: PNCounter reset

    @Test("PNCounter: an increment concurrent with a reset survives it on both replicas")
    func resetKeepsConcurrentIncrement() {
        var a = PNCounter()
        a.increment(by: 5, at: r1)
        var b = a
        let reset = a.reset()
        let increment = b.increment(by: 3, at: r2)
        a.merge(increment)
        b.merge(reset)
        #expect(a == b)
        #expect(a.value == 3)
        #expect(!a.isEmpty)
    }

    @Test("PNCounter: a reset covers only the counts it observed; a replica's counts beyond them remain")
    func resetCoversOnlyObservedCounts() {
        var a = PNCounter()
        a.increment(by: 5, at: r1)
        var b = a
        b.increment(by: 2, at: r2)
        let reset = a.reset()  // observes r1:5 only
        b.increment(by: 1, at: r2)  // r2 now 3, none of it observed by the reset
        b.merge(reset)
        #expect(b.value == 3)
        #expect(b.resetIncrements == GCounter(counts: [(r1, UInt64(5))]))
    }

    @Test("PNCounter: two concurrent resets give 0, not minus the value")
    func concurrentResetsGiveZero() {
        var a = PNCounter()
        a.increment(by: 7, at: r1)
        a.decrement(by: 2, at: r2)
        var b = a
        let resetA = a.reset()
        let resetB = b.reset()
        a.merge(resetB)
        b.merge(resetA)
        #expect(a == b)
        #expect(a.value == 0)
        #expect(a.isEmpty)
    }

    @Test("PNCounter: a reset that arrives before the counts it covers hides them (each difference saturates at 0)")
    func resetBeforeItsCounts() {
        var writer = PNCounter()
        let increment = writer.increment(by: 4, at: r1)
        let reset = writer.reset()
        var eventual = PNCounter()
        eventual.merge(reset)
        #expect(eventual.value == 0)
        #expect(eventual.isEmpty)
        eventual.merge(increment)
        #expect(eventual.value == 0)
        #expect(eventual == writer)
    }

    @Test("PNCounter: a reset never lowers a baseline that arrived before the counts it covers")
    func resetNeverLowersBaselines() {
        var writer = PNCounter()
        let increment = writer.increment(by: 4, at: r1)
        let firstReset = writer.reset()  // baseline r1: 4
        var other = PNCounter()
        other.increment(by: 1, at: r2)
        other.merge(firstReset)  // the baseline, without r1's counts
        other.reset()  // counts only r2: 1
        #expect(other.resetIncrements == GCounter(counts: [(r1, UInt64(4)), (r2, UInt64(1))]))
        other.merge(increment)
        #expect(other.value == 0)
    }

    @Test("PNCounter: the reset delta holds only the baselines and reproduces the reset")
    func resetDeltaShape() {
        var counter = PNCounter()
        counter.increment(by: 3, at: r1)
        counter.decrement(by: 1, at: r2)
        let before = counter
        let delta = counter.reset()
        #expect(delta.increments.isBottom && delta.decrements.isBottom)
        #expect(delta.resetIncrements == before.increments && delta.resetDecrements == before.decrements)
        #expect(before.merging(delta) == counter)
        #expect(counter.value == 0)
        var fresh = PNCounter()
        #expect(fresh.reset().isBottom)
    }

    @Test("PNCounter: incremented then decremented to 0 is not empty; reset it is; incremented after, it counts again")
    func counterIsEmpty() {
        var counter = PNCounter()
        #expect(counter.isEmpty)
        counter.increment(by: 2, at: r1)
        counter.decrement(by: 2, at: r1)
        #expect(counter.value == 0)
        #expect(!counter.isEmpty)
        counter.reset()
        #expect(counter.isEmpty && !counter.isBottom)
        counter.increment(by: 1, at: r1)
        #expect(counter.value == 1 && !counter.isEmpty)
    }

    @Test("the law scripts reach reset counters, cleared registers and emptied maps, so the law properties cover them")
    func scriptsReachClears() {
        var random = SplitMix64(seed: 11)
        var resets = 0
        var clears = 0
        var emptied = 0
        for _ in 0..<50 {
            let script = OperationScript(bytes: (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            resets += Simulation<PNCounter>(running: script).states.filter(\.hasResets).count
            clears += Simulation<LWWRegister<UInt8>>(running: script).states.filter(\.isCleared).count
            emptied +=
                Simulation<LWWMap<UInt8, UInt8>>(running: script).states.filter { $0.isEmpty && !$0.isBottom }.count
        }
        #expect(resets > 0)
        #expect(clears > 0)
        #expect(emptied > 0)
    }

    // MARK: ORSet and LWWMap removeAll

    @Test("ORSet: a clear concurrent with an add of a new element keeps that element, and only it")
    func setClearKeepsConcurrentAdd() {
        var a = ORSet<String>()
        a.insert("x", at: r1)
        a.insert("y", at: r1)
        var b = a
        let clear = a.removeAll()
        let add = b.insert("z", at: r2)
        a.merge(add)
        b.merge(clear)
        #expect(a == b)
        #expect(a.elements == ["z"])
        #expect(clear.dottedElements.isEmpty)
    }

    @Test("LWWMap: removeAll removes every observed field, keeps a concurrent set, and its delta has no entries")
    func mapRemoveAllKeepsConcurrentSet() {
        var a = LWWMap<String, String>()
        a.set("f", to: "1", timestamp: ts(1), at: r1)
        a.set("g", to: "2", timestamp: ts(2), at: r1)
        var b = a
        let clear = a.removeAll()
        let set = b.set("h", to: "3", timestamp: ts(3), at: r2)
        #expect(clear.dottedEntries.isEmpty)
        #expect(a.isEmpty && !a.isBottom)
        a.merge(set)
        b.merge(clear)
        #expect(a == b)
        #expect(a.values == ["h": "3"])
    }

    // MARK: LWWRegister deletion

    @Test("LWWRegister: a deletion later than a set wins on both replicas, and the register is cleared, not bottom")
    func registerDeleteAfterSet() {
        var a = LWWRegister<String>()
        var b = LWWRegister<String>()
        let set = a.set("v", timestamp: ts(10), at: r1)
        let delete = b.clear(timestamp: ts(11), at: r2)
        a.merge(delete)
        b.merge(set)
        #expect(a == b)
        #expect(a.value == nil && a.write == nil)
        #expect(a.isCleared && !a.isBottom)
        #expect(a.lastWrite == LWWWrite(value: nil, timestamp: ts(11), replica: r2))
    }

    @Test("LWWRegister: a set later than a deletion wins on both replicas")
    func registerSetAfterDelete() {
        var a = LWWRegister<String>()
        var b = LWWRegister<String>()
        let delete = a.clear(timestamp: ts(10), at: r1)
        let set = b.set("v", timestamp: ts(11), at: r2)
        a.merge(set)
        b.merge(delete)
        #expect(a == b)
        #expect(a.value == "v" && !a.isCleared)
    }

    @Test("LWWRegister: a set and a deletion on one timestamp are ordered by replica")
    func registerTieBrokenByReplica() {
        var a = LWWRegister<String>()
        a.set("v", timestamp: ts(5), at: r2)
        a.clear(timestamp: ts(5), at: r1)
        #expect(a.value == "v")
        var b = LWWRegister<String>()
        b.set("v", timestamp: ts(5), at: r1)
        b.clear(timestamp: ts(5), at: r2)
        #expect(b.value == nil && b.isCleared)
    }

    // MARK: Multi-value register and flag

    @Test("MVRegister reset and EWFlag disable remove what they observed and keep a concurrent write")
    func multiValueAndFlagClear() {
        var a = MVRegister<String>()
        a.set("x", at: r1)
        var b = a
        let reset = a.reset()
        let set = b.set("y", at: r2)
        a.merge(set)
        b.merge(reset)
        #expect(a == b && a.values == ["y"])

        var f = EWFlag()
        f.enable(at: r1)
        var g = f
        let disable = f.disable()
        let enable = g.enable(at: r2)
        f.merge(enable)
        g.merge(disable)
        #expect(f == g && f.isEnabled)
    }
}
