import MeshCRDT
import MeshTesting
import Testing

/// Hand-written cases, one behaviour each, with concrete values.
@Suite("CRDT semantics")
struct SemanticsTests {
    // MARK: Add-wins and observed remove

    @Test("ORSet: a re-add concurrent with a remove survives the remove on both replicas (add-wins)")
    func orSetAddWins() {
        var a = ORSet<String>()
        a.insert("x", at: r1)
        var b = a
        let remove = a.remove("x")
        let readd = b.insert("x", at: r2)
        a.merge(readd)
        b.merge(remove)
        #expect(a == b)
        #expect(a.contains("x"))
        #expect(Array(a.dots(of: "x")) == [Dot(replica: r2, counter: 1)])
    }

    @Test("ORSet: a remove deletes the observed dots everywhere and its delta carries no elements")
    func orSetRemoveLeavesNoDots() {
        var a = ORSet<String>()
        let add1 = a.insert("x", at: r1)
        var b = ORSet<String>()
        b.merge(add1)
        let add2 = b.insert("x", at: r2)  // b saw r1's add; its dot replaces it
        a.merge(add2)
        let remove = a.remove("x")
        #expect(remove.dottedElements.isEmpty)
        #expect(remove.context == CausalContext(dots: [Dot(replica: r2, counter: 1)]))
        b.merge(remove)
        #expect(!a.contains("x") && !b.contains("x"))
        #expect(a.dottedElements.isEmpty && b.dottedElements.isEmpty)
        #expect(a == b)
    }

    @Test("ORSet: removing an absent element returns bottom and changes nothing")
    func orSetRemoveAbsent() {
        var set = ORSet<Int>()
        set.insert(1, at: r1)
        let before = set
        #expect(set.remove(2).isBottom)
        #expect(set == before)
    }

    @Test("ORSet: removeAll keeps a concurrent add made elsewhere")
    func orSetRemoveAllIsObservedRemove() {
        var a = ORSet<Int>()
        a.insert(1, at: r1)
        a.insert(2, at: r1)
        var b = a
        let add3 = b.insert(3, at: r2)
        let clear = a.removeAll()
        a.merge(add3)
        b.merge(clear)
        #expect(a == b)
        #expect(a.elements == [3])
    }

    @Test("EWFlag: an enable concurrent with a disable leaves the flag enabled (enable-wins)")
    func ewFlagEnableWins() {
        var a = EWFlag()
        a.enable(at: r1)
        var b = a
        let disable = a.disable()
        let enable = b.enable(at: r2)
        a.merge(enable)
        b.merge(disable)
        #expect(a == b)
        #expect(a.isEnabled)
        let disableAll = a.disable()
        b.merge(disableAll)
        #expect(!a.isEnabled && !b.isEnabled && a == b)
    }

    @Test("LWWMap: a set concurrent with a remove of the same key wins, whatever the timestamps")
    func lwwMapSetWinsOverConcurrentRemove() {
        var a = LWWMap<String, Int>()
        a.set("k", to: 1, timestamp: ts(10), at: r1)
        var b = a
        let remove = a.remove("k")
        let set = b.set("k", to: 2, timestamp: ts(5), at: r2)  // older timestamp, still wins
        a.merge(set)
        b.merge(remove)
        #expect(a == b)
        #expect(a["k"] == 2)
    }

    @Test("LWWMap: concurrent sets of one key read as the greatest (timestamp, replica); the next set collapses them")
    func lwwMapConcurrentSets() {
        var a = LWWMap<String, Int>()
        var b = LWWMap<String, Int>()
        let fromA = a.set("k", to: 1, timestamp: ts(7), at: r1)
        let fromB = b.set("k", to: 2, timestamp: ts(7), at: r2)
        a.merge(fromB)
        b.merge(fromA)
        #expect(a == b)
        #expect(a["k"] == 2)  // equal timestamps: r2 > r1
        #expect(a.dottedEntries["k"]?.count == 2)
        let collapse = a.set("k", to: 3, timestamp: ts(8), at: r1)
        #expect(collapse.context.contains(Dot(replica: r2, counter: 1)))
        b.merge(collapse)
        #expect(b.dottedEntries["k"]?.count == 1)
        #expect(b["k"] == 3)
        #expect(a == b)
    }

    // MARK: Last-writer-wins ties

    @Test("LWWRegister: equal timestamps are won by the greater replica, whichever side merges")
    func lwwRegisterTieBrokenByReplica() {
        var low = LWWRegister<String>()
        var high = LWWRegister<String>()
        let fromLow = low.set("low", timestamp: ts(100, 3), at: r1)
        let fromHigh = high.set("high", timestamp: ts(100, 3), at: r2)
        low.merge(fromHigh)
        high.merge(fromLow)
        #expect(low.value == "high")
        #expect(high.value == "high")
        #expect(low == high)
    }

    @Test(
        "LWWRegister: a later timestamp beats a greater replica, and an older local write does not replace a newer value"
    )
    func lwwRegisterOrdersByTimestampFirst() {
        var register = LWWRegister<String>()
        register.set("new", timestamp: ts(200), at: r1)
        let stale = register.set("old", timestamp: ts(100), at: r3)
        #expect(register.value == "new")
        #expect(stale.value == "old")  // the delta is the write, even when it loses
        var other = LWWRegister<String>()
        other.merge(stale)
        other.merge(register)
        #expect(other == register)
    }

    // MARK: Multi-value register

    @Test("MVRegister: keeps both concurrent values in dot order; a later set replaces both; reset clears what it saw")
    func mvRegisterKeepsConcurrentValues() {
        var a = MVRegister<String>()
        var b = MVRegister<String>()
        let fromA = a.set("a", at: r1)
        let fromB = b.set("b", at: r2)
        a.merge(fromB)
        b.merge(fromA)
        #expect(a.values == ["a", "b"])
        #expect(a == b)
        let overwrite = a.set("c", at: r1)
        b.merge(overwrite)
        #expect(b.values == ["c"])
        let concurrent = a.set("d", at: r1)
        let reset = b.reset()
        b.merge(concurrent)
        a.merge(reset)
        #expect(a.values == ["d"])
        #expect(a == b)
    }

    // MARK: Counters

    @Test("PNCounter: after merging, the value is the sum of increments minus decrements at every replica")
    func pnCounterValue() {
        var a = PNCounter()
        var b = PNCounter()
        var c = PNCounter()
        var deltas: [PNCounter] = []
        deltas.append(a.increment(by: 5, at: r1))
        deltas.append(a.decrement(by: 2, at: r1))
        deltas.append(b.increment(by: 7, at: r2))
        deltas.append(c.decrement(by: 20, at: r3))
        deltas.append(b.decrement(at: r2))
        for delta in deltas {
            a.merge(delta)
            b.merge(delta)
            c.merge(delta)
        }
        #expect(a.value == 5 - 2 + 7 - 20 - 1)
        #expect(a == b && b == c)
        #expect(a.increments.value == 12)
        #expect(a.decrements.value == 23)
    }

    @Test("GCounter: an increment's delta is the replica's one new entry, and merge keeps per-replica maxima")
    func gCounterDeltaIsOneEntry() {
        var a = GCounter()
        a.increment(by: 3, at: r1)
        let delta = a.increment(by: 4, at: r1)
        #expect(delta.counts == [VersionVector.Entry(replica: r1, counter: 7)])
        var b = GCounter()
        b.increment(by: 2, at: r2)
        b.merge(delta)
        b.merge(delta)
        #expect(b.value == 9)
        #expect(b[r1] == 7 && b[r2] == 2)
    }

    @Test("PNCounter: the value clamps to Int64 instead of trapping when the totals exceed it")
    func pnCounterValueClamps() {
        var counter = PNCounter()
        counter.increment(by: UInt64.max, at: r1)
        counter.increment(by: 5, at: r2)
        #expect(counter.value == .max)
        var negative = PNCounter()
        negative.decrement(by: UInt64(Int64.max) + 10, at: r1)
        #expect(negative.value == .min)
    }
}
