import Synchronization

/// A thread-safe tally of security events by reason code (session closes, rejected handshakes).
///
/// MeshTransport increments one of these per node and mirrors every increment into swift-metrics;
/// tests read it to assert that a hostile input was rejected for the right reason.
public final class SecurityCounters: Sendable {
    private let storage = Mutex<[SecurityError.Code: Int]>([:])

    /// Creates an empty set of counters.
    public init() {}

    /// Adds one to the counter for `code`.
    public func increment(_ code: SecurityError.Code) {
        storage.withLock { $0[code, default: 0] += 1 }
    }

    /// The current count for `code` (zero if never incremented).
    public func count(_ code: SecurityError.Code) -> Int {
        storage.withLock { $0[code, default: 0] }
    }

    /// A snapshot of all non-zero counters, sorted by code name.
    public var snapshot: [(code: SecurityError.Code, count: Int)] {
        storage.withLock { $0.map { (code: $0.key, count: $0.value) } }.sorted { $0.code.name < $1.code.name }
    }
}
