import MeshCRDT
import PropertyBased
import Testing

/// One clock event: a local `now` or the observation of a remote timestamp, at a
/// physical time that wanders back and forth by a few milliseconds around a base.
enum ClockEvent: Hashable, Sendable {
    case now(physical: UInt64)
    case observe(remote: HLCTimestamp, physical: UInt64)
}

let base: UInt64 = 1_700_000_000_000

/// Physical times within ±4 ms of `base`, remote timestamps within ±4 ms with small
/// logical counters, so equal milliseconds and backwards steps are common.
let clockEvents = zip(Gen.bool, Gen.int(in: -4...4), Gen.int(in: -4...4), Gen.uint32(in: 0...3))
    .map { isLocal, physicalOffset, remoteOffset, logical -> ClockEvent in
        let physical = UInt64(Int64(base) + Int64(physicalOffset))
        if isLocal { return .now(physical: physical) }
        let remote = HLCTimestamp(physicalMilliseconds: UInt64(Int64(base) + Int64(remoteOffset)), logical: logical)
        return .observe(remote: remote, physical: physical)
    }
    .array(of: 1...40)

@Suite("HybridLogicalClock")
struct HybridLogicalClockTests {
    @Test("timestamps strictly increase, exceed every observed timestamp, and never fall behind physical time")
    func monotonicAndNeverBehind() async throws {
        await propertyCheck(count: casesPerLaw, input: clockEvents) { events in
            var clock = HybridLogicalClock()
            var previous = HLCTimestamp.zero
            var greatestSeen = HLCTimestamp.zero
            for event in events {
                let issued: HLCTimestamp
                let physical: UInt64
                switch event {
                case .now(let time):
                    physical = time
                    issued = clock.now(physicalMilliseconds: time)
                case .observe(let remote, let time):
                    physical = time
                    do {
                        issued = try clock.observe(remote, physicalMilliseconds: time)
                    } catch {
                        Issue.record("a remote timestamp 4 ms ahead was refused: \(error)")
                        return
                    }
                    #expect(issued > remote)
                    greatestSeen = max(greatestSeen, remote)
                }
                #expect(issued > previous)
                #expect(issued > greatestSeen)
                #expect(issued.physicalMilliseconds >= physical)
                #expect(clock.latest == issued)
                previous = issued
            }
        }
    }

    @Test("two events in the same millisecond differ in the logical counter only")
    func sameMillisecondTicksLogical() {
        var clock = HybridLogicalClock()
        #expect(clock.now(physicalMilliseconds: 5) == ts(5, 0))
        #expect(clock.now(physicalMilliseconds: 5) == ts(5, 1))
        #expect(clock.now(physicalMilliseconds: 3) == ts(5, 2))  // physical time went backwards
        #expect(clock.now(physicalMilliseconds: 6) == ts(6, 0))
    }

    @Test("observing a remote timestamp ahead of local time adopts it and ticks past it")
    func observeAdoptsRemote() throws {
        var clock = HybridLogicalClock()
        _ = clock.now(physicalMilliseconds: 100)
        #expect(try clock.observe(ts(150, 7), physicalMilliseconds: 100) == ts(150, 8))
        #expect(clock.now(physicalMilliseconds: 120) == ts(150, 9))
        #expect(try clock.observe(ts(10, 0), physicalMilliseconds: 200) == ts(200, 0))
    }

    @Test(
        "a remote timestamp beyond the bound is refused with remoteTimestampTooFarAhead and leaves the clock unchanged")
    func refusesTimestampsTooFarAhead() throws {
        var clock = HybridLogicalClock(maximumForwardOffsetMilliseconds: 1_000)
        _ = clock.now(physicalMilliseconds: base)
        let before = clock
        #expect {
            try clock.observe(ts(base + 1_001), physicalMilliseconds: base)
        } throws: { error in
            (error as? ClockError)?.code == .remoteTimestampTooFarAhead
        }
        #expect(clock == before)
        // Exactly at the bound is accepted.
        #expect(try clock.observe(ts(base + 1_000), physicalMilliseconds: base) == ts(base + 1_000, 1))
    }

    @Test("a logical counter at its maximum carries into the physical component")
    func logicalOverflowCarries() throws {
        var clock = HybridLogicalClock(latest: ts(50, .max))
        #expect(clock.now(physicalMilliseconds: 50) == ts(51, 0))
        var observer = HybridLogicalClock()
        #expect(try observer.observe(ts(70, .max), physicalMilliseconds: 70) == ts(71, 0))
    }

    @Test("an unbounded clock refuses a remote timestamp at the end of time instead of trapping on its successor")
    func remoteTimestampAtTheEndOfTimeIsRefused() throws {
        var clock = HybridLogicalClock(maximumForwardOffsetMilliseconds: .max)
        #expect(throws: ClockError.self) {
            try clock.observe(ts(.max, .max), physicalMilliseconds: base)
        }
        #expect(clock.latest == .zero)
        // The largest admissible remote timestamp leaves room for every successor.
        let adopted = try clock.observe(ts(.max - 1, .max), physicalMilliseconds: base)
        #expect(adopted == ts(.max, 0))
        #expect(clock.now(physicalMilliseconds: base) > adopted)
    }

    @Test("a clock resumed from a persisted high-water mark never issues a timestamp at or below it")
    func resumesAboveHighWaterMark() {
        var clock = HybridLogicalClock(latest: ts(base + 60_000, 4))
        #expect(clock.now(physicalMilliseconds: base) == ts(base + 60_000, 5))
    }
}
