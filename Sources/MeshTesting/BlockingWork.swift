import Dispatch

/// Runs blocking work (waiting for a child process, a blocking socket call) on a thread of its own and
/// suspends until it finishes, so it does not hold one of Swift concurrency's cooperative threads.
///
/// The cooperative pool has one thread per core: two on a 2-core CI machine. Asynchronous code hops
/// through that pool after every suspension (a timer firing, an actor being entered), so a test that
/// blocks a pool thread for seconds stalls every node in the test process, and tests elsewhere then
/// fail on timeouts that have nothing to do with what they check.
public func runBlocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue(label: "statemesh.testing.blocking").async {
            continuation.resume(with: Result { try work() })
        }
    }
}

/// `runBlocking` for work that cannot throw.
public func runBlocking<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue(label: "statemesh.testing.blocking").async { continuation.resume(returning: work()) }
    }
}
