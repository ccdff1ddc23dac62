import Foundation
import MeshTransport

/// Fixes glibc's allocator thresholds for a process that runs nodes (`ProcessAllocator`), unless the
/// environment says `STATEMESH_MALLOC_DEFAULTS=1`. Called first thing by the subcommands that run nodes.
func tuneAllocatorForNodes() {
    guard ProcessInfo.processInfo.environment["STATEMESH_MALLOC_DEFAULTS"] != "1" else { return }
    ProcessAllocator.tuneForStreaming()
}
