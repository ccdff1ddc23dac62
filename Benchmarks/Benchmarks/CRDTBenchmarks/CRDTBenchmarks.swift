// package-benchmark suite for MeshCRDT and MeshCodec: time per operation (every
// local write includes building its delta), allocations, and encode/decode
// throughput. Run: `swift package --package-path Benchmarks benchmark`.
//
// The same-run comparison with the rust `crdts` crate is `crdt-compare`
// (scripts/bench.sh); this suite is for tracking our own figures over time.
import Benchmark
import MeshCRDT
import MeshCodec

/// Sizes of the rust peer driver's workloads.
let replicaCount = 8
let setSize = 100_000

/// `setSize` elements added by `actor`, starting at `start`.
func makeSet(actor: UInt64, from start: UInt64, count: Int = setSize) -> ORSet<UInt64> {
    var set = ORSet<UInt64>()
    for element in start..<start + UInt64(count) { set.insert(element, at: ReplicaID(actor)) }
    return set
}

/// A copy of `set` that shares no storage, so a timed `merge` into it never
/// pays for copy-on-write.
func privateCopy(_ set: ORSet<UInt64>) -> ORSet<UInt64> {
    var entries = set.dottedElements
    entries.reserveCapacity(entries.count + 1)
    return ORSet(entries: consume entries, context: set.context)!
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 3,
        maxDuration: .seconds(2),
        maxIterations: 1_000
    )
    let ids = (0..<replicaCount).map { ReplicaID(UInt64($0)) }

    // MARK: Local writes, delta included (1,000 writes per iteration, 8 replicas round-robin)

    Benchmark("GCounter.increment", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var counters = [GCounter](repeating: GCounter(), count: replicaCount)
        for i in benchmark.scaledIterations {
            let r = i % replicaCount
            blackHole(counters[r].increment(at: ids[r]))
        }
    }

    Benchmark("PNCounter.increment/decrement", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var counters = [PNCounter](repeating: PNCounter(), count: replicaCount)
        for i in benchmark.scaledIterations {
            let r = i % replicaCount
            blackHole(i % 3 == 2 ? counters[r].decrement(at: ids[r]) : counters[r].increment(at: ids[r]))
        }
    }

    // Sets and maps grow across iterations (as in the rust driver: 1M adds spread
    // over 8 replicas), so each sample is 1,000 writes into a set of growing size.
    Benchmark("ORSet.insert", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var sets = [ORSet<UInt64>](repeating: ORSet(), count: replicaCount)
        var next: UInt64 = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let r = Int(next % UInt64(replicaCount))
            blackHole(sets[r].insert(next, at: ids[r]))
            next += 1
        }
        benchmark.stopMeasurement()
        blackHole(sets)
    }

    Benchmark("ORSet.remove", configuration: .init(scalingFactor: .kilo)) { benchmark in
        // Remove from a set holding every element being removed.
        var set = makeSet(actor: 1, from: 0, count: benchmark.scaledIterations.count)
        benchmark.startMeasurement()
        for element in benchmark.scaledIterations {
            blackHole(set.remove(UInt64(element)))
        }
        benchmark.stopMeasurement()
        blackHole(set)
    }

    Benchmark("LWWMap.set", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var clock = HybridLogicalClock()
        var map = LWWMap<UInt64, UInt64>()
        benchmark.startMeasurement()
        for key in benchmark.scaledIterations {
            let timestamp = clock.now(physicalMilliseconds: 1_800_000_000_000)
            blackHole(map.set(UInt64(key), to: UInt64(key), timestamp: timestamp, at: ids[1]))
        }
        benchmark.stopMeasurement()
        blackHole(map)
    }

    // MARK: Merge of two 100k-element sets overlapping by 50k

    let a = makeSet(actor: 1, from: 0)
    let b = makeSet(actor: 2, from: UInt64(setSize / 2))
    let both = a.merging(b)

    Benchmark(
        "ORSet.merge 100k x 100k (50k overlap)",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal], timeUnits: .milliseconds, maxIterations: 20)
    ) { benchmark in
        var x = privateCopy(a)
        benchmark.startMeasurement()
        x.merge(b)
        benchmark.stopMeasurement()
        blackHole(x)
    }

    Benchmark(
        "ORSet.merge identical 150k",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal], timeUnits: .milliseconds, maxIterations: 20)
    ) { benchmark in
        var x = privateCopy(both)
        benchmark.startMeasurement()
        x.merge(both)
        benchmark.stopMeasurement()
        blackHole(x)
    }

    // MARK: Encoding of a 100k-element ORSet<UInt64> (throughput = encoded MB/s)

    let encoded = MeshCodec.encode(a)
    let megabytesPerSecond = BenchmarkMetric.custom("MB/s", polarity: .prefersLarger, useScalingFactor: false)
    func recordThroughput(_ benchmark: Benchmark, since start: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        let elapsed = Double(seconds) + Double(attoseconds) * 1e-18
        benchmark.measurement(megabytesPerSecond, Int((Double(encoded.count) / 1e6 / elapsed).rounded()))
    }

    Benchmark(
        "MeshCodec.encode ORSet<UInt64> 100k",
        configuration: .init(
            metrics: [.wallClock, .mallocCountTotal, megabytesPerSecond], timeUnits: .milliseconds, maxIterations: 50)
    ) { benchmark in
        let start = ContinuousClock.now
        blackHole(MeshCodec.encode(a))
        recordThroughput(benchmark, since: start)
    }

    Benchmark(
        "MeshCodec.decode ORSet<UInt64> 100k",
        configuration: .init(
            metrics: [.wallClock, .mallocCountTotal, megabytesPerSecond], timeUnits: .milliseconds, maxIterations: 50)
    ) { benchmark in
        let start = ContinuousClock.now
        blackHole(try MeshCodec.decode(ORSet<UInt64>.self, from: encoded))
        recordThroughput(benchmark, since: start)
    }
}
