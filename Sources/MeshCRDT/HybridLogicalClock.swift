/// A hybrid logical clock timestamp: physical milliseconds plus a logical counter
/// (Kulkarni, Demirbas et al. 2014).
///
/// Ordered by physical time, then logical counter. Together with the writing
/// replica's ID it totally orders last-writer-wins writes.
public struct HLCTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch, as the clock's physical component.
    public let physicalMilliseconds: UInt64
    /// Events within the same physical millisecond.
    public let logical: UInt32

    /// The smallest timestamp.
    public static let zero = HLCTimestamp(physicalMilliseconds: 0, logical: 0)

    /// Creates a timestamp.
    @inlinable
    public init(physicalMilliseconds: UInt64, logical: UInt32) {
        self.physicalMilliseconds = physicalMilliseconds
        self.logical = logical
    }

    @inlinable
    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool {
        lhs.physicalMilliseconds != rhs.physicalMilliseconds
            ? lhs.physicalMilliseconds < rhs.physicalMilliseconds : lhs.logical < rhs.logical
    }

    /// `physical.logical`.
    public var description: String { "\(physicalMilliseconds).\(logical)" }
}

/// An error raised by the hybrid logical clock.
public struct ClockError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, extensible without breaking clients.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// A remote timestamp is further ahead of local physical time than allowed.
        public static let remoteTimestampTooFarAhead = Code(name: "remoteTimestampTooFarAhead")
        public var description: String { name }
    }

    /// What went wrong.
    public let code: Code
    /// A human-readable explanation with the values involved.
    public let message: String

    public var description: String { "\(code): \(message)" }
}

/// A hybrid logical clock whose physical time is supplied by the caller.
///
/// The clock never reads a system clock: every operation takes the current
/// physical time as a parameter, so simulations replay exactly and tests control
/// skew. It is monotonic (every timestamp it returns is greater than every one it
/// returned or observed before) and never adopts a remote timestamp further ahead
/// of local physical time than `maximumForwardOffsetMilliseconds`: such a
/// timestamp is refused with `ClockError.Code.remoteTimestampTooFarAhead`, so one
/// peer with a broken clock cannot drag every clock into the future.
public struct HybridLogicalClock: Sendable, Hashable {
    /// How far (in milliseconds) a remote timestamp may be ahead of local physical time.
    public var maximumForwardOffsetMilliseconds: UInt64
    /// The greatest timestamp issued or observed.
    public private(set) var latest: HLCTimestamp

    /// Default bound for remote timestamps: 10 minutes ahead of local physical time.
    public static let defaultMaximumForwardOffsetMilliseconds: UInt64 = 600_000

    /// Creates a clock that has issued nothing yet, or resumes one from a persisted
    /// high-water mark (`latest`) so timestamps stay monotonic across restarts.
    public init(
        latest: HLCTimestamp = .zero,
        maximumForwardOffsetMilliseconds: UInt64 = HybridLogicalClock.defaultMaximumForwardOffsetMilliseconds
    ) {
        self.latest = latest
        self.maximumForwardOffsetMilliseconds = maximumForwardOffsetMilliseconds
    }

    /// Issues a timestamp for a local event or an outgoing message.
    ///
    /// - Parameter physicalMilliseconds: the current physical time, in milliseconds.
    /// - Returns: a timestamp greater than every one issued or observed before.
    public mutating func now(physicalMilliseconds: UInt64) -> HLCTimestamp {
        if physicalMilliseconds > latest.physicalMilliseconds {
            latest = HLCTimestamp(physicalMilliseconds: physicalMilliseconds, logical: 0)
        } else {
            latest = Self.successor(of: latest)
        }
        return latest
    }

    /// Observes a remote timestamp (a received message) and returns the timestamp of
    /// the receive event, greater than both `remote` and everything seen before.
    ///
    /// - Throws: `ClockError` with code `.remoteTimestampTooFarAhead` when `remote`
    ///   is more than `maximumForwardOffsetMilliseconds` ahead of
    ///   `physicalMilliseconds`; the clock is left unchanged.
    public mutating func observe(
        _ remote: HLCTimestamp, physicalMilliseconds: UInt64
    ) throws(ClockError) -> HLCTimestamp {
        // The bound saturates one below the largest physical time, so even an
        // "unbounded" offset never admits a timestamp whose successor overflows.
        let (sum, overflow) = physicalMilliseconds.addingReportingOverflow(maximumForwardOffsetMilliseconds)
        let bound = overflow ? UInt64.max - 1 : min(sum, UInt64.max - 1)
        if remote.physicalMilliseconds > bound {
            throw ClockError(
                code: .remoteTimestampTooFarAhead,
                message:
                    "remote timestamp \(remote) is beyond \(bound), local time \(physicalMilliseconds) plus the \(maximumForwardOffsetMilliseconds) ms accepted"
            )
        }
        let physical = max(physicalMilliseconds, latest.physicalMilliseconds, remote.physicalMilliseconds)
        if physical == latest.physicalMilliseconds && physical == remote.physicalMilliseconds {
            latest = Self.successor(of: max(latest, remote))
        } else if physical == latest.physicalMilliseconds {
            latest = Self.successor(of: latest)
        } else if physical == remote.physicalMilliseconds {
            latest = Self.successor(of: remote)
        } else {
            latest = HLCTimestamp(physicalMilliseconds: physical, logical: 0)
        }
        return latest
    }

    /// The next timestamp after `timestamp`; a logical overflow carries into the
    /// physical component so monotonicity holds even then. At the very last
    /// timestamp (only reachable through a caller's own physical time of
    /// `UInt64.max` ms) it stays put rather than trap.
    static func successor(of timestamp: HLCTimestamp) -> HLCTimestamp {
        if timestamp.logical == .max {
            if timestamp.physicalMilliseconds == .max { return timestamp }
            return HLCTimestamp(physicalMilliseconds: timestamp.physicalMilliseconds + 1, logical: 0)
        }
        return HLCTimestamp(physicalMilliseconds: timestamp.physicalMilliseconds, logical: timestamp.logical + 1)
    }
}
