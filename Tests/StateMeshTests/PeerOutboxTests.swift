import MeshCRDT
import StateMesh
import Testing

@Suite("Peer outbox")
struct PeerOutboxTests {
    private func message(_ number: Int) -> [UInt8] { [UInt8(number & 0xFF), UInt8(number >> 8)] }

    /// Messages of one turn leave as one burst; while it is in flight later ones wait (no second write is
    /// scheduled) and leave, in order, as the next burst once the first is written.
    @Test func burstsInOrderOneInFlight() {
        var outbox = PeerOutbox(generation: 1, capacity: 10)
        #expect(outbox.enqueue(message(1)) == .queuedScheduleWrite)
        #expect(outbox.enqueue(message(2)) == .queued)
        #expect(outbox.takeBurst() == [message(1), message(2)])
        #expect(outbox.isWriting)
        #expect(outbox.enqueue(message(3)) == .queued)
        #expect(outbox.enqueue(message(4)) == .queued)
        #expect(outbox.takeBurst() == [], "a second burst while one is in flight")
        outbox.burstEnded()
        #expect(outbox.takeBurst() == [message(3), message(4)])
        outbox.burstEnded()
        #expect(outbox.takeBurst() == [])
        #expect(!outbox.isWriting)
        #expect(outbox.enqueue(message(5)) == .queuedScheduleWrite, "an idle outbox schedules a write again")
    }

    /// At most `capacity` messages wait; a full outbox refuses, and takes again once a burst left.
    @Test func boundedQueue() {
        var outbox = PeerOutbox(generation: 1, capacity: 3)
        #expect(outbox.enqueue(message(1)) == .queuedScheduleWrite)
        #expect(outbox.enqueue(message(2)) == .queued)
        #expect(outbox.enqueue(message(3)) == .queued)
        #expect(outbox.isFull)
        #expect(outbox.enqueue(message(4)) == .refused)
        #expect(outbox.queued == [message(1), message(2), message(3)])
        #expect(outbox.takeBurst().count == 3)
        #expect(!outbox.isFull)
        #expect(outbox.enqueue(message(5)) == .queued, "the burst in flight is written first")
    }

    /// A burst the transport refused (no session) is dropped and nothing stays in flight.
    @Test func refusedBurstLeavesNothingInFlight() {
        var outbox = PeerOutbox(generation: 7, capacity: 4)
        _ = outbox.enqueue(message(1))
        #expect(outbox.takeBurst() == [message(1)])
        outbox.burstEnded()
        #expect(!outbox.isWriting && outbox.queued.isEmpty)
        #expect(outbox.enqueue(message(2)) == .queuedScheduleWrite)
        #expect(outbox.generation == 7)
    }

    /// Any interleaving of enqueues, scheduled writes and completions, driven the way `MeshNode` drives
    /// the outbox: the bursts written, in order, are exactly the accepted messages in order; never two
    /// bursts in flight; a write is scheduled whenever accepted messages would otherwise be stranded;
    /// and no more than `capacity` messages wait.
    @Test(arguments: 0..<200) func anyScheduleKeepsOrderAndLosesNothingAccepted(seed: Int) {
        var random = SplitMix64(seed: UInt64(seed))
        let capacity = 1 + Int.random(in: 0..<6, using: &random)
        var outbox = PeerOutbox(generation: 1, capacity: capacity)
        var accepted: [[UInt8]] = []
        var written: [[UInt8]] = []
        var scheduledWrites = 0
        var inFlight: [[UInt8]]?
        var next = 0
        func fireWrite() {
            let burst = outbox.takeBurst()
            guard !burst.isEmpty else { return }
            #expect(inFlight == nil, "two bursts in flight")
            inFlight = burst
        }
        for _ in 0..<300 {
            switch Int.random(in: 0..<3, using: &random) {
            case 0:
                let candidate = message(next)
                next += 1
                switch outbox.enqueue(candidate) {
                case .queuedScheduleWrite:
                    accepted.append(candidate)
                    scheduledWrites += 1
                case .queued: accepted.append(candidate)
                case .refused: #expect(outbox.queued.count == capacity)
                }
            case 1 where scheduledWrites > 0:
                scheduledWrites -= 1
                fireWrite()
            case 2 where inFlight != nil:
                written += inFlight!
                inFlight = nil
                outbox.burstEnded()
                fireWrite()
            default: break
            }
            #expect(outbox.queued.count <= capacity)
            // Messages waiting with nothing in flight always have a write coming.
            if !outbox.queued.isEmpty && inFlight == nil { #expect(scheduledWrites > 0) }
        }
        // Drain: scheduled writes fire, bursts complete.
        while scheduledWrites > 0 || inFlight != nil {
            if let burst = inFlight {
                written += burst
                inFlight = nil
                outbox.burstEnded()
                fireWrite()
            } else {
                scheduledWrites -= 1
                fireWrite()
            }
        }
        #expect(outbox.queued.isEmpty)
        #expect(written == accepted)
    }
}
