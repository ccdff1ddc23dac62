import ArgumentParser
import MeshReplication
import MeshSimulation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs one simulated scenario and prints its report as one JSON object.
@main
struct MeshSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh-sim",
        abstract: "Run one deterministic StateMesh replication scenario and print a JSON report.",
        discussion: "A failing run prints its seed; the same --seed (and options) replays it exactly.")

    @Option(help: "Replicas in the mesh.") var nodes = 8
    @Option(help: "Writes at random nodes during the write phase.") var writes = 1_000
    @Option(help: "Causal domains.") var domains = 1
    @Option(help: "Seed of the single random generator.") var seed: UInt64 = 1
    @Option(help: "Message loss probability during the fault phase.") var loss = 0.0
    @Option(help: "Message duplication probability.") var duplicate = 0.0
    @Option(help: "Probability a message is held back (reordered).") var reorder = 0.0
    @Option(help: "Partition episodes (symmetric, one-way, majorities ring, isolate one).") var partitions = 0
    @Option(help: "Crash-restarts from persisted state.") var crashes = 0
    @Option(name: .customLong("skew-ms"), help: "Per-node clock skew bound, ± milliseconds.") var skewMilliseconds: UInt64 = 0
    @Option(help: "Eager fan-out.") var fanout = 3
    @Option(name: .customLong("interval-ms"), help: "Gossip interval (one round), milliseconds.") var intervalMilliseconds: UInt64 = 100
    @Option(help: "plumtree or classic (join-of-buffer delta-state sync to random peers).") var mode = "plumtree"
    @Option(name: .customLong("write-intervals"), help: "Length of the write phase in rounds (0: automatic).") var writeIntervals = 0
    @Option(help: "Keys per domain (0: automatic).") var keys = 0
    @Option(name: .customLong("latency-ms"), help: "Median-ish one-way latency scale (Pareto tail), milliseconds.") var latencyMilliseconds = 10.0
    @Option(name: .customLong("flushes"), help: "Push flushes per gossip interval.") var flushes: UInt64 = 4
    @Option(name: .customLong("repair-delay"), help: "Repairs skip records delivered within this many rounds.")
    var repairDelay: UInt64 = 3
    @Option(name: .customLong("log-cap"), help: "Most deltas in each domain's log.") var logCap = 65_536
    @Option(name: .customLong("buffer-cap"), help: "Most deltas in each causal buffer.") var bufferCap = 4_096
    @Option(name: .customLong("write-concern"), help: "W for a fraction of writes (see --concern-fraction).") var writeConcern = 2
    @Option(name: .customLong("concern-fraction"), help: "Fraction of writes waiting for --write-concern replicas.") var concernFraction = 0.0
    @Flag(help: "Alternate domains between causal and eventual mode.") var eventual = false
    @Option(help: "Cut this node off for the whole fault phase (forces snapshot catch-up with a small --log-cap).")
    var isolate: Int?
    @Flag(help: "Round-trip every message through its binary encoding.") var wire = false
    @Flag(help: "Check every replica's internal invariants after every event.") var paranoid = false
    @Option(
        help:
            "Threads stepping replicas (0: one per processor from 64 nodes up). The report is the same for any count; on a shared machine one is faster."
    )
    var threads = 1
    @Option(help: "Run this many consecutive seeds from --seed and print one summary line.") var seeds = 1
    @Flag(help: "Run each seed under the CI sweep's fault mix for it (small meshes, every invariant checked each step).")
    var sweep = false
    @Flag(
        inversion: .prefixedNo,
        help:
            "Back the heap with transparent huge pages (glibc.malloc.hugetlb=1; on glibc mesh-sim restarts itself with that tunable unless GLIBC_TUNABLES sets it). A large mesh is bound by memory latency: about 14% less CPU at 1,000 nodes."
    )
    var hugePages = true
    @Flag(
        name: .customLong("share-merges"), inversion: .prefixedNo,
        help:
            "Replicas take the result another replica published for merging the same update into an identical object version, so their objects share storage (the report is the same either way)."
    )
    var sharesMergeResults = true
    @Option(
        name: .customLong("progress"),
        help:
            "Seconds between progress lines on stderr (0: none). The first comes after one interval, so a short run prints none."
    )
    var progressSeconds = 10.0
    @Flag(help: "Print JSON (the default; kept for scripts).") var json = false
    @Flag(name: .customLong("debug-tree"), help: "Print every replica's eager links to stderr.") var debugTree = false

    func scenario(seed: UInt64) throws -> Scenario {
        var scenario = Scenario()
        scenario.nodes = nodes
        scenario.writes = writes
        scenario.domains = domains
        scenario.seed = seed
        scenario.loss = loss
        scenario.duplicate = duplicate
        scenario.reorder = reorder
        scenario.partitions = partitions
        scenario.crashes = crashes
        scenario.skewMilliseconds = skewMilliseconds
        scenario.replication.fanout = fanout
        scenario.intervalMilliseconds = intervalMilliseconds
        switch mode {
        case "plumtree": scenario.replication.strategy = .plumtree
        case "classic": scenario.replication.strategy = .classic
        default: throw ValidationError("--mode must be plumtree or classic")
        }
        scenario.writeIntervals = writeIntervals
        scenario.latencyMilliseconds = latencyMilliseconds
        scenario.flushesPerInterval = flushes
        scenario.keysPerDomain = keys
        scenario.replication.maximumLogDeltas = logCap
        scenario.repairDelayIntervals = repairDelay
        scenario.replication.maximumBufferedDeltas = bufferCap
        scenario.writeConcernReplicas = writeConcern
        scenario.writeConcernFraction = concernFraction
        scenario.mixesEventualDomains = eventual
        scenario.isolatedNode = isolate
        scenario.encodesMessages = wire
        scenario.checksEveryStep = paranoid
        scenario.threads = threads
        scenario.sharesMergeResults = sharesMergeResults
        return scenario
    }

    func validate() throws {
        guard nodes >= 1, nodes <= 100_000 else { throw ValidationError("--nodes must be 1…100000") }
        guard domains >= 1, writes >= 0, seeds >= 1, threads >= 0 else { throw ValidationError("--domains, --writes, --seeds, --threads out of range") }
        guard fanout >= 1, intervalMilliseconds >= 4 else { throw ValidationError("--fanout >= 1, --interval-ms >= 4") }
        guard progressSeconds >= 0, progressSeconds.isFinite else { throw ValidationError("--progress must be >= 0 seconds") }
    }

    func run() throws {
        if hugePages { HugePages.restartWithTunableIfUnset() }
        if seeds == 1 {
            let start = monotonicSeconds()
            var simulation = Simulation(sweep ? FaultMix.forSeed(seed).scenario(seed: seed) : try scenario(seed: seed))
            if progressSeconds > 0 {
                var progressLine = ProgressLine(every: progressSeconds, start: start)
                simulation.progressObserver = { progress in
                    progressLine.printIfDue { progress.summary }
                }
            }
            var report = simulation.run()
            report.elapsedSeconds = monotonicSeconds() - start
            report.mallocHugePages = HugePages.areRequested
            print(report.json)
            if debugTree { for (node, links) in simulation.eagerLinks.enumerated() { printError("\(node): \(links)") } }
            if !report.passed {
                printError("mesh-sim: seed \(seed) FAILED: \(report.failure ?? "not converged"); replay with --seed \(seed)")
                throw ExitCode(1)
            }
            // Done: leave without tearing down every replica's state one object at a time (at
            // N=1000 that is gigabytes of small allocations, seconds of CPU); the kernel
            // reclaims it whole.
            fflush(nil)
            leave(status: 0)
        }
        let start = monotonicSeconds()
        var failed: [UInt64] = []
        var progressLine = ProgressLine(every: progressSeconds > 0 ? progressSeconds : .infinity, start: start)
        for offset in 0..<UInt64(seeds) {
            let current = seed &+ offset
            var simulation = Simulation(sweep ? FaultMix.forSeed(current).scenario(seed: current) : try scenario(seed: current))
            let report = simulation.run()
            if !report.passed {
                failed.append(current)
                let mix = sweep ? " (mix \(FaultMix.forSeed(current)))" : ""
                printError("mesh-sim: seed \(current)\(mix) FAILED: \(report.failure ?? "not converged"); replay with --seed \(current)")
            }
            let done = Int(offset) + 1
            progressLine.printIfDue {
                let rate = Double(done) / max(monotonicSeconds() - start, 1e-9)
                let left = Double(seeds - done) / max(rate, 1e-9)
                return "\(done)/\(seeds) seeds (\(failed.count) failed), \(Int(rate.rounded())) seeds/s, about "
                    + "\(left < 120 ? "\(Int(left.rounded())) s" : "\(Int((left / 60).rounded())) min") left"
            }
        }
        let elapsed = monotonicSeconds() - start
        print(
            "{\"first_seed\":\(seed),\"seeds\":\(seeds),\"failed\":\(failed.count),\"failed_seeds\":\(failed),\"elapsed_seconds\":\(elapsed),\"malloc_huge_pages\":\(HugePages.areRequested)}"
        )
        if !failed.isEmpty { throw ExitCode(1) }
    }
}

/// glibc's malloc backs its heaps with transparent huge pages when the tunable `glibc.malloc.hugetlb=1` is
/// set (`madvise(MADV_HUGEPAGE)` on what it maps; the kernel's THP mode `madvise` or `always` then applies).
/// A 1,000-node simulation holds gigabytes of small objects touched at random, so a delivery's cost is
/// mostly cache and TLB misses; with 2 MiB pages the same run took 14% less CPU (N=1000 × 10,000, paired
/// runs, identical reports). glibc reads tunables only when a process starts, so `mesh-sim` restarts itself
/// once with the tunable added to `GLIBC_TUNABLES`; a value the caller set (`glibc.malloc.hugetlb=0`
/// included) is kept as it is.
enum HugePages {
    static let tunable = "glibc.malloc.hugetlb"

    /// `current` (a `GLIBC_TUNABLES` value, `name=value` pairs joined by `:`) with `glibc.malloc.hugetlb=1`
    /// added, or `nil` when `current` sets that tunable already.
    static func tunables(adding current: String?) -> String? {
        guard let current, !current.isEmpty else { return "\(tunable)=1" }
        if setting(in: current) != nil { return nil }
        return current + ":\(tunable)=1"
    }

    /// The value `tunables` gives `glibc.malloc.hugetlb`, if any (the last one counts).
    static func setting(in tunables: String) -> String? {
        tunables.split(separator: ":").last(where: { $0.hasPrefix("\(tunable)=") }).map {
            String($0.dropFirst(tunable.count + 1))
        }
    }

    /// Whether this process's `GLIBC_TUNABLES` asks for huge pages (a value other than 0).
    static var areRequested: Bool {
        guard let value = environment("GLIBC_TUNABLES"), let setting = setting(in: value) else { return false }
        return setting != "0" && !setting.isEmpty
    }

    /// Replaces this process by itself, same arguments, with the tunable added; returns when the tunable is set
    /// already, on C libraries other than glibc, or when the restart fails (the run then goes on without).
    static func restartWithTunableIfUnset() {
        #if canImport(Glibc)
        let original = environment("GLIBC_TUNABLES")
        guard let value = tunables(adding: original), setenv("GLIBC_TUNABLES", value, 1) == 0 else { return }
        // The program's own path rather than /proc/self/exe, so the process keeps its name (ps, top).
        var path = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &path, path.count - 1)
        guard length > 0 else {
            restore(original)
            return
        }
        execv(path, CommandLine.unsafeArgv)
        // Still here: the restart failed.
        restore(original)
        #endif
    }

    /// Puts `GLIBC_TUNABLES` back as it was, so the report says no huge pages.
    private static func restore(_ original: String?) {
        #if canImport(Glibc)
        if let original { setenv("GLIBC_TUNABLES", original, 1) } else { unsetenv("GLIBC_TUNABLES") }
        #endif
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

/// Ends the process at once (no deinitialisers run).
/// Progress on stderr at most once per `every` seconds of wall-clock time, each line prefixed with
/// the time since `start`; stdout keeps the JSON report alone.
struct ProgressLine {
    let every: Double
    let start: Double
    private var next: Double

    init(every: Double, start: Double) {
        self.every = every
        self.start = start
        next = start + every
    }

    mutating func printIfDue(_ text: () -> String) {
        let now = monotonicSeconds()
        guard now >= next else { return }
        next = now + every
        printError("mesh-sim: \(Int((now - start).rounded())) s: \(text())")
    }
}

func leave(status: Int32) -> Never {
    #if canImport(Glibc)
    Glibc.exit(status)
    #else
    Darwin.exit(status)
    #endif
}

func monotonicSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { buffer in _ = write(2, buffer.baseAddress, buffer.count) }
}
