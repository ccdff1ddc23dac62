import MeshCRDT
import MeshMembership
import MeshReplication

/// The member ID of test node `index` (32 bytes, all `index + 1`).
func testMemberID(_ index: Int) -> MemberID {
    MemberID(bytes: [UInt8](repeating: UInt8(truncatingIfNeeded: index + 1), count: 32))
}

/// The address of test node `index`.
func testAddress(_ index: Int) -> MemberAddress {
    MemberAddress(host: "10.0.0.\(index + 1)", port: 7946)
}

/// The member record test node `index` starts with.
func testMember(_ index: Int) -> Member {
    Member(id: testMemberID(index), replicaID: ReplicaID(UInt64(index + 1)), address: testAddress(index))
}

/// A deterministic in-memory network of membership state machines: a seeded scheduler with
/// per-message latency, seeded drops, partitions, crashes, slow members and members that
/// hear nothing. Time advances in fixed steps; every running member is ticked each step.
///
/// Sessions are modelled: `connect` succeeds only between reachable running members that
/// have no session yet, and then both ends get `sessionEstablished`; a partition or a crash
/// breaks the sessions across it, so rejoining needs the state machines to re-dial.
struct TestNetwork {
    enum Payload {
        case message([UInt8])
        case session
    }

    struct Envelope {
        var deliverAt: Instant
        var order: UInt64
        var from: Int
        var to: Int
        var payload: Payload
    }

    /// One `memberChanged` action, as the shell would see it.
    struct Change {
        var at: Instant
        var observer: Int
        var member: Member
        var previous: MemberStatus?
    }

    let configuration: MembershipConfiguration
    var machines: [MembershipStateMachine]
    var running: [Bool]
    var now = Instant(milliseconds: 1_000_000)
    var random: SplitMix64
    var dropRate = 0.0
    /// Latency of each message: uniform in `1...maximumLatency` ms.
    var maximumLatency: UInt64 = 20
    /// Group of each member; members in different groups cannot reach each other.
    var groups: [Int]
    /// Extra latency of every message to or from a member (a slow member).
    var extraLatency: [Int: UInt64] = [:]
    /// Members that receive nothing (their own network is broken inbound).
    var deaf: Set<Int> = []
    var sessions: Set<[Int]> = []
    var inFlight: [Envelope] = []
    var order: UInt64 = 0
    var changes: [Change] = []
    let stepMilliseconds: UInt64 = 10
    /// Every local health value seen, per member.
    var highestLocalHealth: [Int]

    init(count: Int, configuration: MembershipConfiguration, seed: UInt64, seeds: (Int) -> [MemberAddress]) {
        self.configuration = configuration
        self.machines = (0..<count).map {
            MembershipStateMachine(
                me: testMember($0), seeds: seeds($0), configuration: configuration, seed: seed &+ UInt64($0))
        }
        self.running = Array(repeating: false, count: count)
        self.random = SplitMix64(seed: seed)
        self.groups = Array(repeating: 0, count: count)
        self.highestLocalHealth = Array(repeating: 0, count: count)
    }

    var count: Int { machines.count }

    func index(of id: MemberID) -> Int? { (0..<count).first { testMemberID($0) == id } }

    func reachable(_ a: Int, _ b: Int) -> Bool { running[a] && running[b] && groups[a] == groups[b] }

    mutating func start(_ node: Int) {
        running[node] = true
        let actions = machines[node].start(now: now)
        handle(actions, from: node)
    }

    mutating func startAll() {
        for node in 0..<count { start(node) }
    }

    mutating func crash(_ node: Int) {
        running[node] = false
        sessions = sessions.filter { !$0.contains(node) }
    }

    /// Splits the network: `members` on one side, everyone else on the other.
    mutating func partition(_ members: Set<Int>) {
        for node in 0..<count { groups[node] = members.contains(node) ? 1 : 0 }
        sessions = sessions.filter { groups[$0[0]] == groups[$0[1]] }
    }

    mutating func heal() {
        groups = Array(repeating: 0, count: count)
    }

    mutating func latency(_ from: Int, _ to: Int) -> UInt64 {
        1 + UInt64(random.below(Int(maximumLatency))) + (extraLatency[from] ?? 0) + (extraLatency[to] ?? 0)
    }

    mutating func enqueue(_ payload: Payload, from: Int, to: Int) {
        order += 1
        let delay = latency(from, to)
        inFlight.append(
            Envelope(deliverAt: now.advanced(by: delay), order: order, from: from, to: to, payload: payload))
    }

    mutating func handle(_ actions: [MembershipAction], from node: Int) {
        for action in actions {
            switch action {
            case .send(let bytes, let id):
                guard let target = index(of: id), reachable(node, target), !random.chance(dropRate) else { continue }
                enqueue(.message(bytes), from: node, to: target)
            case .connect(let address, let expected):
                guard let target = (0..<count).first(where: { testAddress($0) == address }), target != node,
                    expected == nil || expected == testMemberID(target), reachable(node, target)
                else { continue }
                let pair = [min(node, target), max(node, target)]
                guard !sessions.contains(pair) else { continue }
                sessions.insert(pair)
                enqueue(.session, from: node, to: target)
                enqueue(.session, from: target, to: node)
            case .memberChanged(let member, let previous):
                changes.append(Change(at: now, observer: node, member: member, previous: previous))
            }
        }
    }

    /// Advances time by one step: delivers what is due, then ticks every running member.
    mutating func step() {
        now = now.advanced(by: stepMilliseconds)
        let due = inFlight.filter { $0.deliverAt <= now }.sorted {
            $0.deliverAt != $1.deliverAt ? $0.deliverAt < $1.deliverAt : $0.order < $1.order
        }
        inFlight.removeAll { $0.deliverAt <= now }
        for envelope in due {
            let (from, to) = (envelope.from, envelope.to)
            guard reachable(from, to) else { continue }
            switch envelope.payload {
            case .message(let bytes):
                guard !deaf.contains(to) else { continue }
                let actions = machines[to].receive(bytes, from: testMemberID(from), now: envelope.deliverAt)
                handle(actions, from: to)
            case .session:
                guard sessions.contains([min(from, to), max(from, to)]) else { continue }
                let actions = machines[to].sessionEstablished(with: testMemberID(from), now: envelope.deliverAt)
                handle(actions, from: to)
            }
        }
        for node in 0..<count where running[node] {
            let actions = machines[node].tick(now: now)
            handle(actions, from: node)
            highestLocalHealth[node] = max(highestLocalHealth[node], machines[node].localHealth)
        }
    }

    /// Runs for at most `milliseconds`, stopping early once `condition` holds; returns how
    /// long it ran when the condition held, `nil` when it never did.
    @discardableResult
    mutating func run(for milliseconds: UInt64, until condition: ((TestNetwork) -> Bool)? = nil) -> UInt64? {
        let start = now
        let end = now.advanced(by: milliseconds)
        while now < end {
            if let condition, condition(self) { return now.milliseconds - start.milliseconds }
            step()
        }
        if let condition, condition(self) { return now.milliseconds - start.milliseconds }
        return nil
    }

    /// What `observer` believes about `subject`.
    func status(of subject: Int, at observer: Int) -> MemberStatus? {
        machines[observer].member(testMemberID(subject))?.status
    }

    /// Whether every running member in `observers` sees exactly `expected` (subject → status)
    /// for the members in it, and knows no other member.
    func views(of observers: [Int], agree expected: [Int: MemberStatus]) -> Bool {
        observers.allSatisfy { observer in
            let members = machines[observer].members
            return members.count == expected.count
                && expected.allSatisfy { status(of: $0.key, at: observer) == $0.value }
        }
    }

    func allAlive(_ nodes: [Int]) -> [Int: MemberStatus] {
        Dictionary(uniqueKeysWithValues: nodes.map { ($0, MemberStatus.alive) })
    }
}

/// A configuration scaled for tests: defaults except where a test says otherwise.
func testConfiguration() -> MembershipConfiguration {
    var configuration = MembershipConfiguration()
    configuration.pushPullIntervalMilliseconds = 5_000
    return configuration
}
