import MeshCRDT
import PropertyBased

/// A replayable history of writes and message deliveries among a few replicas,
/// independent of the CRDT type it is run against.
///
/// Scripts are how MeshTesting builds *reachable* states: property tests generate
/// them, the merge-laws fuzzer decodes them from its input bytes
/// (`init(bytes:)`), and a `Simulation` runs one against any `ScriptableCRDT`.
/// Indices in steps are raw and resolved when the step runs (modulo the number of
/// replicas or of deltas produced so far), so every byte string is a valid script.
///
/// The space is kept tiny on purpose: 2 to 8 replicas with identifiers drawn from
/// `1...8`, elements and values in `0..<8`, clocks that start on the same
/// millisecond with at most 3 ms of skew. Writes collide, run concurrently, and
/// tie on timestamps far more often than in production, which is what the laws
/// must survive. Each replica has its own identifier, because a `ReplicaID` names
/// one history: two live replicas sharing one would issue the same dots.
public struct OperationScript: Hashable, Sendable, CustomStringConvertible {
    /// One event of the history.
    public enum Step: Hashable, Sendable, CustomStringConvertible {
        /// Replica `replica` (modulo the replica count) performs a local write.
        case mutate(replica: Int, mutation: Mutation)
        /// The delta with index `delta` (modulo the deltas produced so far) is
        /// delivered to `to`: out of order, again, or back to its origin.
        case sendDelta(delta: Int, to: Int)
        /// The join of `count` consecutive deltas starting at `first` (a delta group)
        /// is delivered to `to`.
        case sendDeltaGroup(first: Int, count: Int, to: Int)
        /// The whole current state of `from` is delivered to `to`.
        case sendState(from: Int, to: Int)
        /// Simulated physical time moves forward (zero keeps every clock on the same
        /// millisecond, so timestamps tie).
        case advanceTime(milliseconds: Int)

        /// A compact form such as `r1 #3(5, 2)` or `d7 -> r0`.
        public var description: String {
            switch self {
            case .mutate(let replica, let mutation): return "r\(replica) \(mutation)"
            case .sendDelta(let delta, let to): return "d\(delta) -> r\(to)"
            case .sendDeltaGroup(let first, let count, let to): return "d\(first)+\(count) -> r\(to)"
            case .sendState(let from, let to): return "r\(from) -> r\(to)"
            case .advanceTime(let milliseconds): return "+\(milliseconds)ms"
            }
        }
    }

    /// The replicas' identifiers, distinct; between 1 and 8 of them make sense.
    public var replicaIDs: [ReplicaID]
    /// Each replica's clock skew in milliseconds (added to the shared simulated time).
    public var clockSkews: [UInt64]
    /// The history, in order.
    public var steps: [Step]
    /// Seeds the order in which `Simulation.deliverEverything()` delivers messages.
    public var deliverySeed: UInt64

    /// Physical time, in milliseconds, at which every simulated clock starts.
    public static let startMilliseconds: UInt64 = 1_700_000_000_000

    /// Creates a script from its parts.
    ///
    /// - Precondition: `replicaIDs` is non-empty and free of repeats, and
    ///   `clockSkews` has one entry per replica.
    public init(replicaIDs: [ReplicaID], clockSkews: [UInt64]? = nil, steps: [Step], deliverySeed: UInt64 = 0) {
        precondition(!replicaIDs.isEmpty && Set(replicaIDs).count == replicaIDs.count, "replica IDs must be distinct")
        let skews = clockSkews ?? Array(repeating: 0, count: replicaIDs.count)
        precondition(skews.count == replicaIDs.count, "one clock skew per replica")
        self.replicaIDs = replicaIDs
        self.clockSkews = skews
        self.steps = steps
        self.deliverySeed = deliverySeed
    }

    /// Decodes a script from arbitrary bytes; every byte string is a valid script.
    ///
    /// Layout: byte 0 picks the replica count (2 to 8), byte 1 which identifiers in
    /// `1...8` they get and in which order, bytes 2 and 3 the clock skews (2 bits
    /// each, 0 to 3 ms). Then each 3-byte group `[t, x, y]` is one step, chosen by
    /// `t % 16`: 0 to 7 a write (`x % n` the replica, `x >> 3` the mutator, `y & 7`
    /// the element, `y >> 3 & 7` the value); 8 to 10 a delta delivery; 11 a
    /// delta-group delivery; 12 and 13 a whole-state delivery; 14 and 15 a clock
    /// advance of `x % 4` ms. Missing bytes read as zero; the delivery seed is a hash
    /// of all bytes. The fuzzer and the property tests share this decoding.
    public init(bytes: some Collection<UInt8>) {
        let input = Array(bytes)
        func byte(_ index: Int) -> UInt8 { index < input.count ? input[index] : 0 }

        let replicaCount = 2 + Int(byte(0) % 7)
        // A Fisher-Yates shuffle of 1...8 driven by byte 1, so which identifier is
        // greater (the LWW tie-breaker) varies between scripts.
        var identifiers: [UInt64] = Array(1...8)
        var state = UInt64(byte(1)) &+ 0x9E37_79B9_7F4A_7C15
        for index in stride(from: identifiers.count - 1, to: 0, by: -1) {
            state = SplitMix64.mix(state &+ 0x9E37_79B9_7F4A_7C15)
            identifiers.swapAt(index, Int(state % UInt64(index + 1)))
        }
        let skewBits = UInt16(byte(2)) | UInt16(byte(3)) << 8
        var skews: [UInt64] = []
        for index in 0..<replicaCount { skews.append(UInt64(skewBits >> UInt16(2 * index) & 3)) }

        var steps: [Step] = []
        var offset = 4
        while offset < input.count {
            let (t, x, y) = (byte(offset), byte(offset + 1), byte(offset + 2))
            offset += 3
            let high = Int(t >> 4)
            switch t % 16 {
            case 0..<8:
                let mutation = Mutation(kind: Int(x >> 3), element: Int(y & 7), value: Int(y >> 3 & 7))
                steps.append(.mutate(replica: Int(x) % replicaCount, mutation: mutation))
            case 8..<11:
                steps.append(.sendDelta(delta: Int(x) | high << 8, to: Int(y) % replicaCount))
            case 11:
                steps.append(.sendDeltaGroup(first: Int(x), count: 2 + high % 4, to: Int(y) % replicaCount))
            case 12, 13:
                steps.append(.sendState(from: Int(x) % replicaCount, to: Int(y) % replicaCount))
            default:
                steps.append(.advanceTime(milliseconds: Int(x % 4)))
            }
        }

        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a
        for value in input { hash = (hash ^ UInt64(value)) &* 0x0000_0100_0000_01B3 }

        self.init(
            replicaIDs: identifiers.prefix(replicaCount).map(ReplicaID.init),
            clockSkews: skews,
            steps: steps,
            deliverySeed: hash
        )
    }

    /// `replicas [ids] skews [..]: step; step; …`.
    public var description: String {
        "replicas \(replicaIDs.map(\.rawValue)) skews \(clockSkews) seed \(deliverySeed): "
            + steps.map(\.description).joined(separator: "; ")
    }

    /// A property-test generator of scripts, through `init(bytes:)`.
    ///
    /// - Parameter steps: how many steps a script has; keep it small (tens) so
    ///   hundreds of cases per law stay fast. Shrinking removes bytes.
    public static func generator(steps: ClosedRange<Int> = 0...30) -> Generator<
        OperationScript, some SendableSequenceType
    > {
        Gen.uint8().array(of: (4 + 3 * steps.lowerBound)...(4 + 3 * steps.upperBound))
            .map { OperationScript(bytes: $0) }
    }
}
