#if canImport(Glibc)
import CMalloc
import Glibc
#endif

/// Process-wide settings of glibc's allocator for a node that streams large messages.
///
/// Every message the transport opens is a fresh array of up to one frame (64 KiB) or more, allocated on the
/// session's event-loop thread and freed wherever the consumer drops it. With glibc's defaults, freeing such
/// arrays often leaves more than the trim threshold (128 KiB, raised only when an `mmap`-served block
/// happens to be freed) free at the top of the thread's heap, so glibc returns those pages to the kernel
/// and the next messages fault them back in: up to ~100,000 page faults per GiB received, varying from run
/// to run with the allocation history (in our 2-core VM ~3% of a 64 KiB stream's CPU when the machine is
/// quiet, 10–15% when it is busy; `transport-cost` in Benchmarks measures both). Fixing the thresholds
/// keeps freed message memory in the heap for reuse.
///
/// This is a process-wide decision, so the library never makes it by itself: the `mesh` command applies
/// it when it runs nodes, and so do the transport and node benchmarks, which measure the node's
/// configuration; all of them through `tuneForStreamingUnlessOptedOut()`, so `STATEMESH_MALLOC_DEFAULTS=1`
/// keeps glibc's defaults everywhere. An application embedding `MeshTransport` may call either once at
/// startup, before its threads allocate much.
public enum ProcessAllocator {
    /// Free memory glibc may keep at the top of each heap before returning it to the kernel. Default 16 MiB
    /// (the cost: up to this much resident memory per malloc arena that is not in use).
    public static let defaultTrimThresholdByteCount = 16 << 20
    /// Allocations from this size up are served by their own `mmap` (and unmapped when freed). Default
    /// 4 MiB, above the transport's default message cap (1 MiB), so messages come from the heap.
    public static let defaultMmapThresholdByteCount = 4 << 20

    /// The environment variable that, set to `1`, keeps glibc's defaults (`tuneForStreamingUnlessOptedOut`).
    public static let optOutEnvironmentVariable = "STATEMESH_MALLOC_DEFAULTS"

    /// `tuneForStreaming()` with the default thresholds, unless the environment sets
    /// `STATEMESH_MALLOC_DEFAULTS=1`; returns whether the settings were applied.
    @discardableResult
    public static func tuneForStreamingUnlessOptedOut() -> Bool {
        #if canImport(Glibc)
        if let value = getenv(optOutEnvironmentVariable), String(cString: value) == "1" { return false }
        #endif
        return tuneForStreaming()
    }

    /// Applies the thresholds (glibc only). Returns false on other C libraries and for a value outside
    /// 1...Int32.max (changing nothing then), or when glibc refuses one (the mmap threshold must be at
    /// most 32 MiB on 64-bit systems; the first is applied first).
    @discardableResult
    public static func tuneForStreaming(
        trimThresholdByteCount: Int = defaultTrimThresholdByteCount,
        mmapThresholdByteCount: Int = defaultMmapThresholdByteCount
    ) -> Bool {
        #if canImport(Glibc)
        guard let trim = Int32(exactly: trimThresholdByteCount), let mmap = Int32(exactly: mmapThresholdByteCount),
            trim > 0, mmap > 0
        else { return false }
        // mallopt returns 1 on success. Setting either threshold also turns off glibc's dynamic adjustment.
        return mallopt(M_MMAP_THRESHOLD, mmap) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1
        #else
        return false
        #endif
    }
}
