// crdt-compare: the workloads of the rust `crdts` peer driver
// (../shared/peers/rust-crdts/src/main.rs), run with StateMesh's MeshCRDT API.
//
// Prints one line per figure, `statemesh METRIC VALUE`, with the rust driver's
// metric names wherever the workload is the same, so `scripts/bench.sh` can put
// the two side by side. Env: REPLICAS (default 8), OPS (default 1000000),
// SET_N (default 100000), ONLY (comma-separated groups: counter, vclock,
// orset, lwwmap; default all).
//
// Differences that are in our disfavour on purpose:
// - every mutator returns its delta (a CRDT state of its own); the delta is
//   built inside the timed loop and folded into a checksum, so the optimizer
//   cannot drop it. The rust driver builds an op and applies it.
// - where rust clones a state outside the timer (its `merge` consumes the
//   argument), we make the receiving state uniquely owned outside the timer too,
//   so copy-on-write never runs inside a timed merge.
import MeshCRDT
import MeshCodec

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Output and timing

func environment(_ name: String, default value: Int) -> Int {
    guard let raw = getenv(name), let parsed = Int(String(cString: raw)) else { return value }
    return parsed
}

func emit(_ metric: String, _ value: Double) {
    if value.rounded() == value && abs(value) < 1e15 {
        print("statemesh \(metric) \(Int64(value))")
    } else {
        let scaled = (value * 1000).rounded() / 1000
        print("statemesh \(metric) \(scaled)")
    }
}

/// Wall time on the monotonic clock.
struct Stopwatch {
    let start = ContinuousClock.now

    var seconds: Double {
        let (whole, fraction) = (ContinuousClock.now - start).components
        return Double(whole) + Double(fraction) * 1e-18
    }

    var milliseconds: Double { seconds * 1e3 }

    func perSecond(_ count: Int) -> Double { (Double(count) / seconds).rounded() }
}

func median(_ values: [Double]) -> Double {
    values.sorted()[values.count / 2]
}

/// Keeps a value observable so the optimizer cannot drop the work that made it.
@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

/// Deltas are folded into this so none of them is dead code; printed at the end.
nonisolated(unsafe) var checksum: UInt64 = 0

/// A copy of `set` whose storage nobody else references, made outside a timer, so
/// a timed `merge` into it never pays for copy-on-write (the rust driver clones
/// outside its timers for the same reason).
func uniqueCopy<Element>(_ set: ORSet<Element>) -> ORSet<Element> {
    var entries = set.dottedElements
    entries.reserveCapacity(entries.count + 1)  // forces a private copy of the table
    return ORSet(entries: consume entries, context: set.context)!
}

func uniqueCopy<Key, Value>(_ map: LWWMap<Key, Value>) -> LWWMap<Key, Value> {
    var entries = map.dottedEntries
    entries.reserveCapacity(entries.count + 1)
    return LWWMap(entries: consume entries, context: map.context)!
}

// MARK: - Workloads (same order and sizes as the rust driver)

func counters(replicas n: Int, operations m: Int) {
    let ids = (0..<n).map { ReplicaID(UInt64($0)) }

    // GCounter: M increments round-robin over N replicas, delta included.
    var counters = [GCounter](repeating: GCounter(), count: n)
    var sum: UInt64 = 0
    let watch = Stopwatch()
    for i in 0..<m {
        let r = i % n
        let delta = counters[r].increment(at: ids[r])
        sum &+= delta.value
    }
    emit("gcounter_inc_per_s", watch.perSecond(m))
    checksum &+= sum

    let mergeWatch = Stopwatch()
    var merged = GCounter()
    for counter in counters { merged.merge(counter) }
    emit("gcounter_merge_n_states_us", mergeWatch.seconds * 1e6)
    precondition(merged.value == UInt64(m))
    emit("gcounter_state_bytes", Double(MeshCodec.encode(merged).count))
    // One increment's delta as a record of its own (version, kind, replica table, body).
    emit("gcounter_op_bytes", Double(MeshCodec.encode(merged.increment(at: ids[0])).count))

    // PNCounter: 2/3 increments, 1/3 decrements.
    var pn = [PNCounter](repeating: PNCounter(), count: n)
    sum = 0
    let pnWatch = Stopwatch()
    for i in 0..<m {
        let r = i % n
        let delta = i % 3 == 2 ? pn[r].decrement(at: ids[r]) : pn[r].increment(at: ids[r])
        sum &+= delta.increments.value &+ delta.decrements.value
    }
    emit("pncounter_op_per_s", pnWatch.perSecond(m))
    checksum &+= sum
    var pnMerged = PNCounter()
    for counter in pn { pnMerged.merge(counter) }
    emit("pncounter_state_bytes", Double(MeshCodec.encode(pnMerged).count))
}

func versionVectors(replicas n: Int, operations m: Int) {
    // Pointwise maximum of N-entry vectors. Rust clones each argument (its merge
    // consumes it); ours borrows, so there is no copy to make.
    let clocks: [VersionVector] = (0..<n).map { r in
        VersionVector((0..<n).map { a in (ReplicaID(UInt64(a)), UInt64(r * 1000 + a)) })
    }
    let watch = Stopwatch()
    var accumulated = VersionVector()
    for i in 0..<m {
        accumulated.merge(clocks[i % n])
    }
    emit("vclock_clone_merge_per_s", watch.perSecond(m))
    blackHole(accumulated)
}

func orSets(replicas n: Int, operations m: Int, setSize: Int) {
    let ids = (0..<n).map { ReplicaID(UInt64($0)) }

    // Adds: replica i % N adds element i.
    var sets = [ORSet<UInt64>](repeating: ORSet(), count: n)
    var sum: UInt64 = 0
    let addWatch = Stopwatch()
    for i in 0..<m {
        let r = i % n
        let delta = sets[r].insert(UInt64(i), at: ids[r])
        sum &+= UInt64(delta.count &+ delta.context.versionVector.count)
    }
    emit("orswot_add_per_s", addWatch.perSecond(m))

    // Removes: element 2i at replica (2i) % N, which added it.
    let removeCount = m / 2
    let removeWatch = Stopwatch()
    for i in 0..<removeCount {
        let r = (2 * i) % n
        let delta = sets[r].remove(UInt64(2 * i))
        sum &+= UInt64(delta.context.dotCloud.count &+ delta.context.versionVector.count)
    }
    emit("orswot_rm_per_s", removeWatch.perSecond(removeCount))
    checksum &+= sum
    // One add's delta as a record of its own (made on a copy, as the rust driver
    // makes the op without applying it).
    var probe = sets[0]
    emit("orswot_add_op_bytes", Double(MeshCodec.encode(probe.insert(1 << 40, at: ids[0])).count))

    // Converge all N replicas by state merge.
    let mergeWatch = Stopwatch()
    var converged = ORSet<UInt64>()
    for set in sets { converged.merge(set) }
    emit("orswot_merge_all_replicas_ms", mergeWatch.milliseconds)
    emit("orswot_converged_len", Double(converged.count))
    sets = []

    // Delta replication: replay SET_N add deltas made at one replica on another.
    do {
        var source = ORSet<UInt64>()
        var deltas: [ORSet<UInt64>] = []
        deltas.reserveCapacity(setSize)
        for e in 0..<UInt64(setSize) {
            deltas.append(source.insert(e, at: ReplicaID(9)))
        }
        var destination = ORSet<UInt64>()
        let watch = Stopwatch()
        for delta in deltas { destination.merge(delta) }
        emit("orswot_remote_op_apply_per_s", watch.perSecond(setSize))
        precondition(destination == source)
    }

    // Two 100k-element sets built by actors 1 and 2, overlapping by half.
    func build(_ actor: UInt64, from start: UInt64) -> ORSet<UInt64> {
        var set = ORSet<UInt64>()
        for e in start..<start + UInt64(setSize) { set.insert(e, at: ReplicaID(actor)) }
        return set
    }
    let a = build(1, from: 0)
    let b = build(2, from: UInt64(setSize / 2))

    // Encoding: one timed decode and one timed encode, as the rust driver does.
    let encoded = MeshCodec.encode(a)
    emit("orswot_100k_state_bytes", Double(encoded.count))
    let decodeWatch = Stopwatch()
    let decoded: ORSet<UInt64>
    do {
        decoded = try MeshCodec.decode(ORSet<UInt64>.self, from: encoded)
    } catch {
        fatalError("decoding our own 100k ORSet failed: \(error)")
    }
    emit("orswot_100k_deserialize_ms", decodeWatch.milliseconds)
    let encodeWatch = Stopwatch()
    blackHole(MeshCodec.encode(a))
    emit("orswot_100k_serialize_ms", encodeWatch.milliseconds)
    precondition(decoded == a)

    var times: [Double] = []
    var mergedCount = 0
    for _ in 0..<5 {
        var x = uniqueCopy(a)
        let y = b
        let watch = Stopwatch()
        x.merge(y)
        times.append(watch.milliseconds)
        mergedCount = x.count
    }
    emit("orswot_merge_100k_x2_ms", median(times))
    emit("orswot_merge_100k_x2_len", Double(mergedCount))
    let both = a.merging(b)
    precondition(both.count == setSize + setSize / 2)
    emit("orswot_merged_state_bytes", Double(MeshCodec.encode(both).count))

    // Merge of identical states (the anti-entropy no-op).
    times = []
    for _ in 0..<5 {
        var x = uniqueCopy(both)
        let y = uniqueCopy(both)
        let watch = Stopwatch()
        x.merge(y)
        times.append(watch.milliseconds)
        precondition(x.count == both.count)
    }
    emit("orswot_merge_identical_150k_ms", median(times))
}

func lwwMaps(setSize mapSize: Int) {
    // LWWMap<UInt64, UInt64>: the rust driver's nearest is Map<u64, MVReg<u64>>.
    // Each set takes a hybrid-logical-clock timestamp inside the timer.
    var clock = HybridLogicalClock()
    let physical: UInt64 = 1_800_000_000_000
    let writer = ReplicaID(1)
    var map = LWWMap<UInt64, UInt64>()
    var sum: UInt64 = 0
    let setWatch = Stopwatch()
    for i in 0..<UInt64(mapSize) {
        let delta = map.set(i, to: i, timestamp: clock.now(physicalMilliseconds: physical), at: writer)
        sum &+= UInt64(delta.count &+ delta.context.versionVector.count)
    }
    emit("lwwmap_set_per_s", setWatch.perSecond(mapSize))

    let overwriteWatch = Stopwatch()
    for i in 0..<UInt64(mapSize) {
        let value = UInt64(mapSize) + i
        let delta = map.set(i, to: value, timestamp: clock.now(physicalMilliseconds: physical), at: writer)
        sum &+= UInt64(delta.count &+ delta.context.dotCloud.count)
    }
    emit("lwwmap_overwrite_per_s", overwriteWatch.perSecond(mapSize))
    checksum &+= sum
    emit("lwwmap_100k_state_bytes", Double(MeshCodec.encode(map).count))

    var other = LWWMap<UInt64, UInt64>()
    var otherClock = HybridLogicalClock()
    for i in UInt64(mapSize / 2)..<UInt64(mapSize + mapSize / 2) {
        other.set(i, to: 7, timestamp: otherClock.now(physicalMilliseconds: physical), at: ReplicaID(2))
    }
    var times: [Double] = []
    for _ in 0..<3 {
        var x = uniqueCopy(map)
        let y = other
        let watch = Stopwatch()
        x.merge(y)
        times.append(watch.milliseconds)
        precondition(x.count == mapSize + mapSize / 2)
    }
    emit("lwwmap_merge_100k_x2_ms", median(times))
}

// MARK: - Main

func main() {
    let n = environment("REPLICAS", default: 8)
    let m = environment("OPS", default: 1_000_000)
    let setSize = environment("SET_N", default: 100_000)
    emit("replicas", Double(n))
    emit("ops", Double(m))
    emit("set_n", Double(setSize))
    // ONLY=orset,lwwmap runs some groups (for profiling); default all.
    let only = getenv("ONLY").map { String(cString: $0).split(separator: ",").map(String.init) }
    func selected(_ group: String) -> Bool { only?.contains(group) ?? true }
    if selected("counter") { counters(replicas: n, operations: m) }
    if selected("vclock") { versionVectors(replicas: n, operations: m) }
    if selected("orset") { orSets(replicas: n, operations: m, setSize: setSize) }
    if selected("lwwmap") { lwwMaps(setSize: setSize) }
    var standardError = StandardError()
    print("crdt-compare: checksum \(checksum)", to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        #if canImport(Glibc)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
        #else
        _ = bytes.withUnsafeMutableBytes { Darwin.write(2, $0.baseAddress, $0.count) }
        #endif
    }
}

main()
