#if canImport(Glibc)
import Glibc
import Testing

import MeshTransport

/// `ProcessAllocator` on glibc. Its effect (page faults per GiB received) is measured by the benchmarks'
/// `transport-cost` with and without `STATEMESH_MALLOC_DEFAULTS=1`, not here: inside the test process glibc
/// may already have raised its thresholds by itself (they move whenever an `mmap`-served block is freed),
/// so a fault count here would pass with or without the settings.
@Suite struct ProcessAllocatorTests {
    @Test func glibcTakesTheSettings() {
        #expect(ProcessAllocator.tuneForStreaming())
    }

    @Test func environmentOptsOut() {
        let name = ProcessAllocator.optOutEnvironmentVariable
        setenv(name, "1", 1)
        #expect(!ProcessAllocator.tuneForStreamingUnlessOptedOut())
        setenv(name, "0", 1)
        #expect(ProcessAllocator.tuneForStreamingUnlessOptedOut())
        unsetenv(name)
        #expect(ProcessAllocator.tuneForStreamingUnlessOptedOut())
    }

    @Test func refusesThresholdsGlibcCannotTake() {
        #expect(!ProcessAllocator.tuneForStreaming(trimThresholdByteCount: 0))
        #expect(!ProcessAllocator.tuneForStreaming(mmapThresholdByteCount: Int(Int32.max) + 1))
    }
}
#endif
