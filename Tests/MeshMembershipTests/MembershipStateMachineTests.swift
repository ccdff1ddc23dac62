import MeshCRDT
import MeshCodec
import MeshMembership
import MeshReplication
import Testing

/// Decodes every message a machine sent to `peer` in `actions`.
func messages(in actions: [MembershipAction], to peer: MemberID) -> [MembershipMessage] {
    actions.compactMap {
        guard case .send(let bytes, let target) = $0, target == peer else { return nil }
        return try? MembershipMessage.decode(bytes)
    }
}

func gossip(_ members: Member..., accuser: MemberID? = nil) -> [UInt8] {
    MembershipMessage.gossip(updates: members.map { MemberUpdate(member: $0, accuser: accuser) }).encoded()
}

func with(_ member: Member, incarnation: UInt64, status: MemberStatus) -> Member {
    var copy = member
    copy.incarnation = incarnation
    copy.status = status
    return copy
}

@Suite("Membership state machine, one member at a time")
struct MembershipUnitTests {
    let now = Instant(milliseconds: 10_000)

    @Test("claims follow SWIM precedence: incarnation first, then alive < suspect < dead, and left is final")
    func precedence() {
        var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: testConfiguration(), seed: 1)
        _ = machine.start(now: now)
        let other = testMember(1)
        let sender = testMemberID(2)
        // (claim incarnation, claim status, expected incarnation, expected status) in sequence
        let steps: [(UInt64, MemberStatus, UInt64, MemberStatus)] = [
            (0, .alive, 0, .alive),  // joins
            (0, .suspect, 0, .suspect),  // suspect overrides alive at an equal incarnation
            (0, .alive, 0, .suspect),  // alive does not override suspect at an equal incarnation
            (1, .alive, 1, .alive),  // a refutation (higher incarnation) overrides the suspicion
            (0, .dead, 1, .alive),  // a stale death claim is ignored
            (1, .dead, 1, .dead),  // dead overrides alive at an equal incarnation
            (1, .alive, 1, .dead),  // alive at the same incarnation cannot resurrect it
            (1, .suspect, 1, .dead),  // nor can a suspicion
            (2, .alive, 2, .alive),  // a dead member that refutes with a higher incarnation is back
            (0, .left, 0, .left),  // left overrides anything at any incarnation...
            (9, .alive, 0, .left),  // ...and is final
            (9, .dead, 0, .left),
        ]
        for (index, (incarnation, status, expectedIncarnation, expectedStatus)) in steps.enumerated() {
            let claim = with(other, incarnation: incarnation, status: status)
            _ = machine.receive(gossip(claim, accuser: sender), from: sender, now: now)
            let held = machine.member(other.id)
            #expect(held?.status == expectedStatus, "step \(index)")
            #expect(held?.incarnation == expectedIncarnation, "step \(index)")
        }
    }

    @Test("a rumour of our own suspicion or death is refuted with a higher incarnation, and local health rises")
    func refutesOwnDeath() {
        var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: testConfiguration(), seed: 1)
        _ = machine.start(now: now)
        let peer = testMemberID(1)
        _ = machine.receive(gossip(testMember(1)), from: peer, now: now)
        _ = machine.receive(gossip(with(testMember(0), incarnation: 3, status: .dead)), from: peer, now: now)
        #expect(machine.myself.incarnation == 4)
        #expect(machine.myself.status == .alive)
        #expect(machine.localHealth == 1)
        #expect(machine.counters.refutations == 1)
        // The refutation is piggybacked on the next message: an ack to a ping.
        let ping = MembershipMessage.ping(sequence: 7, target: testMemberID(0), updates: []).encoded()
        let answer = messages(in: machine.receive(ping, from: peer, now: now), to: peer)
        guard case .ack(7, let updates)? = answer.first else {
            Issue.record("no ack: \(answer)")
            return
        }
        #expect(updates.contains(MemberUpdate(member: with(testMember(0), incarnation: 4, status: .alive))))
        // A stale suspicion (older incarnation) is not refuted again.
        _ = machine.receive(gossip(with(testMember(0), incarnation: 2, status: .suspect)), from: peer, now: now)
        #expect(machine.myself.incarnation == 4)
    }

    @Test("a ping meant for another member is not acknowledged")
    func misdirectedPing() {
        var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: testConfiguration(), seed: 1)
        let ping = MembershipMessage.ping(sequence: 1, target: testMemberID(5), updates: []).encoded()
        #expect(messages(in: machine.receive(ping, from: testMemberID(1), now: now), to: testMemberID(1)).isEmpty)
        #expect(machine.counters.misdirectedPings == 1)
    }

    @Test("a relay pings the target for the requester, relays its ack, and nacks in time when none comes")
    func relayAndNack() throws {
        var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: testConfiguration(), seed: 1)
        _ = machine.start(now: now)
        let requester = testMemberID(1)
        let target = testMember(2)  // unknown here: the relay must dial it
        func request(_ sequence: UInt64) -> [UInt8] {
            MembershipMessage.pingRequest(sequence: sequence, target: target.id, address: target.address, updates: [])
                .encoded()
        }
        let first = machine.receive(request(40), from: requester, now: now)
        #expect(first.first == .connect(target.address, expected: target.id))
        guard case .ping(let relayed, target.id, _)? = messages(in: first, to: target.id).first else {
            Issue.record("no ping to the target: \(first)")
            return
        }
        let ack = MembershipMessage.ack(sequence: relayed, updates: []).encoded()
        let forwarded = messages(in: machine.receive(ack, from: target.id, now: now), to: requester)
        #expect(forwarded.contains { if case .ack(40, _) = $0 { true } else { false } })

        // No answer this time: a nack reaches the requester before its round ends.
        _ = machine.receive(request(41), from: requester, now: now)
        let configuration = testConfiguration()
        let window = configuration.probeIntervalMilliseconds - configuration.probeTimeoutMilliseconds
        var nackAt: UInt64?
        for elapsed in stride(from: UInt64(10), through: window, by: 10) {
            let sent = messages(in: machine.tick(now: now.advanced(by: elapsed)), to: requester)
            if sent.contains(.nack(sequence: 41)) {
                nackAt = elapsed
                break
            }
        }
        #expect(nackAt.map { $0 <= window / 2 } == true, "nack after \(String(describing: nackAt)) ms")
    }

    @Test("independent confirmations shorten a suspicion towards its minimum (Lifeguard dogpile)")
    func dogpile() {
        var configuration = testConfiguration()
        configuration.pushPullIntervalMilliseconds = 1_000_000
        configuration.reconnectIntervalMilliseconds = 1_000_000
        func timeToDeath(confirmations: Int) -> UInt64? {
            var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: configuration, seed: 3)
            _ = machine.start(now: now)
            for index in 1...7 { _ = machine.receive(gossip(testMember(index)), from: testMemberID(1), now: now) }
            let suspect = with(testMember(7), incarnation: 0, status: .suspect)
            for accuser in 1...(1 + confirmations) {
                _ = machine.receive(
                    gossip(suspect, accuser: testMemberID(accuser)), from: testMemberID(accuser), now: now)
            }
            var time = now
            while time.milliseconds < now.milliseconds + 120_000 {
                time = time.advanced(by: 10)
                for action in machine.tick(now: time) {
                    if case .memberChanged(let member, _) = action, member.id == suspect.id, member.status == .dead {
                        return time.milliseconds - now.milliseconds
                    }
                    // Every ping is answered (the suspect too: an ack is no refutation), so this
                    // member never confirms the suspicion itself and only the accusers above count.
                    guard case .send(let bytes, let target) = action,
                        case .ping(let sequence, _, _)? = try? MembershipMessage.decode(bytes)
                    else { continue }
                    let ack = MembershipMessage.ack(sequence: sequence, updates: []).encoded()
                    _ = machine.receive(ack, from: target, now: time)
                }
            }
            return nil
        }
        let bounds = MembershipStateMachine(me: testMember(0), seeds: [], configuration: configuration, seed: 3)
            .suspicionTimeoutMilliseconds(liveMembers: 8)
        let alone = timeToDeath(confirmations: 0)
        let confirmed = timeToDeath(confirmations: 2)
        #expect(bounds == (minimum: 2_000, maximum: 12_000))
        #expect(alone.map { $0 >= bounds.maximum && $0 <= bounds.maximum + 20 } == true, "\(String(describing: alone))")
        #expect(
            confirmed.map { $0 >= bounds.minimum && $0 <= bounds.minimum + 20 } == true,
            "\(String(describing: confirmed))")
    }

    @Test("the member table never exceeds maximumMembers under a flood of fake members")
    func boundedTable() {
        var configuration = testConfiguration()
        configuration.maximumMembers = 32
        var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: configuration, seed: 1)
        _ = machine.start(now: now)
        var random = SplitMix64(seed: 99)
        var time = now
        for round in 0..<200 {
            let fakes = (0..<32).map { _ in MemberUpdate(member: randomMember(&random)) }
            let kind = round % 3
            let bytes =
                kind == 0
                ? MembershipMessage.gossip(updates: fakes).encoded()
                : kind == 1
                    ? MembershipMessage.sync(
                        requestsReply: true, members: fakes.map(\.member).sorted { $0.id < $1.id }
                    ).encoded()
                    : MembershipMessage.ping(sequence: 1, target: testMemberID(0), updates: fakes).encoded()
            _ = machine.receive(bytes, from: testMemberID(1), now: time)
            time = time.advanced(by: 50)
            _ = machine.tick(now: time)
            #expect(machine.members.count <= 32)
        }
        #expect(machine.members.count == 32)
        #expect(machine.counters.refusedMembers > 6_000)
        #expect(machine.lastError?.code == .memberTableFull)
        #expect(machine.member(testMemberID(0))?.status == .alive)
    }
}

@Suite("Membership full-state sync and timers")
struct MembershipSyncTests {
    let now = Instant(milliseconds: 50_000)

    @Test("a full state larger than one message is split into messages under the bound that together hold every member")
    func syncIsChunked() throws {
        var configuration = testConfiguration()
        configuration.maximumMessageBytes = 4_000
        var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: configuration, seed: 1)
        var random = SplitMix64(seed: 4)
        let others = (0..<300).map { _ in MemberUpdate(member: randomMember(&random)) }
        for start in stride(from: 0, to: others.count, by: 10) {
            let batch = MembershipMessage.gossip(updates: Array(others[start..<min(start + 10, others.count)]))
            _ = machine.receive(batch.encoded(), from: testMemberID(1), now: now)
        }
        #expect(machine.members.count == 301)
        let peer = testMemberID(9)
        let actions = machine.sessionEstablished(with: peer, now: now)  // unknown peer: full state
        var received: [Member] = []
        var replyRequests = 0
        for action in actions {
            guard case .send(let bytes, let target) = action else { continue }
            #expect(target == peer)
            #expect(bytes.count <= configuration.maximumMessageBytes)
            guard case .sync(let requestsReply, let members) = try MembershipMessage.decode(bytes) else {
                Issue.record("not a sync")
                continue
            }
            replyRequests += requestsReply ? 1 : 0
            received += members
        }
        #expect(actions.count > 5)
        #expect(replyRequests == 1)
        #expect(received == machine.members)
    }

    @Test("nextDeadline names when tick has work: now at start, then within one probe round")
    func nextDeadline() {
        var machine = MembershipStateMachine(me: testMember(0), seeds: [], configuration: testConfiguration(), seed: 1)
        #expect(machine.nextDeadline == nil)
        _ = machine.start(now: now)
        #expect(machine.nextDeadline == now)
        _ = machine.receive(gossip(testMember(1)), from: testMemberID(1), now: now)
        let actions = machine.tick(now: now)
        #expect(!messages(in: actions, to: testMemberID(1)).isEmpty)  // the probe
        // The indirect-probe stage of the round is the next thing to do.
        #expect(machine.nextDeadline == now.advanced(by: testConfiguration().probeTimeoutMilliseconds))
        _ = machine.leave(now: now)
        #expect(machine.nextDeadline == nil)
    }
}

@Suite("Membership in a simulated network")
struct MembershipNetworkTests {
    /// A network of `count` members that all start from member 0's address as their seed.
    func joinedNetwork(count: Int, seed: UInt64, configuration: MembershipConfiguration = testConfiguration())
        -> TestNetwork
    {
        var network = TestNetwork(count: count, configuration: configuration, seed: seed) {
            $0 == 0 ? [] : [testAddress(0)]
        }
        network.startAll()
        let everyone = Array(0..<count)
        let joined = network.run(for: 30_000) { $0.views(of: everyone, agree: $0.allAlive(everyone)) }
        #expect(joined != nil, "seed \(seed): the members never agreed on the full list")
        return network
    }

    @Test(
        "members that know only a seed address converge to the full member list",
        arguments: [1, 2, 3, 23, 26] as [UInt64])
    func joinViaSeed(seed: UInt64) {
        var network = TestNetwork(count: 12, configuration: testConfiguration(), seed: seed) {
            $0 == 0 ? [] : [testAddress(0)]
        }
        network.dropRate = 0.05
        network.startAll()
        let everyone = Array(0..<12)
        let time = network.run(for: 30_000) { $0.views(of: everyone, agree: $0.allAlive(everyone)) }
        #expect(time != nil, "seed \(seed): no agreement")
        print("join via seed, 12 members, 5% loss, seed \(seed): agreed after \(time ?? 0) ms")
        // Nobody was ever suspected in a healthy (if lossy) join.
        #expect(!network.changes.contains { $0.member.status == .dead })
    }

    @Test(
        "a crashed member is suspected, then declared dead by everyone within the documented bound",
        arguments: [1, 2, 3, 4] as [UInt64])
    func crashDetected(seed: UInt64) {
        let count = 8
        var network = joinedNetwork(count: count, seed: seed)
        network.dropRate = 0.01
        network.run(for: 2_000)
        let victim = count - 1
        let crashedAt = network.now
        network.crash(victim)
        let survivors = Array(0..<victim)
        let configuration = network.configuration
        let interval = configuration.probeIntervalMilliseconds
        let bounds = network.machines[0].suspicionTimeoutMilliseconds(liveMembers: count)
        // Round-robin: each survivor probes the victim within 2(n − 1) rounds; then at most the
        // maximum suspicion timeout; plus a round of slack for dissemination.
        let bound = 2 * UInt64(count - 1) * interval + bounds.maximum + 2 * interval
        let allDead = network.run(for: bound + 10_000) { net in
            survivors.allSatisfy { net.status(of: victim, at: $0) == .dead }
        }
        let firstSuspect = network.changes.first {
            $0.member.id == testMemberID(victim) && $0.member.status == .suspect && $0.at >= crashedAt
        }
        #expect(firstSuspect != nil)
        #expect(allDead != nil)
        let suspectAfter = (firstSuspect?.at.milliseconds ?? 0) - crashedAt.milliseconds
        print(
            "crash detection, 8 members, seed \(seed): first suspicion after \(suspectAfter) ms"
                + " (\(Double(suspectAfter) / Double(interval)) probe intervals), dead at every survivor after"
                + " \(allDead ?? 0) ms (\(Double(allDead ?? 0) / Double(interval)) intervals); bound \(bound) ms")
        #expect((allDead ?? .max) <= bound)
        // Healthy survivors whose probes of the victim were answered by relays' nacks keep
        // their local health low (Lifeguard blames the target, not themselves).
        #expect(survivors.allSatisfy { network.machines[$0].localHealth <= 1 })
    }

    @Test("a member that is merely slow for a while is suspected, refutes, and is never declared dead")
    func slowMemberRefutes() {
        let count = 6
        var network = joinedNetwork(count: count, seed: 11)
        let slow = 3
        let slowFrom = network.now
        // 350 ms each way: its acks come after the probe round ends, so probes of it fail.
        network.extraLatency[slow] = 350
        network.run(for: 2_500)
        network.extraLatency[slow] = nil
        let everyone = Array(0..<count)
        let settled = network.run(for: 20_000) { $0.views(of: everyone, agree: $0.allAlive(everyone)) }
        let suspected = network.changes.contains {
            $0.member.id == testMemberID(slow) && $0.member.status == .suspect && $0.at >= slowFrom
        }
        #expect(suspected, "the slow member was never suspected: the test proves nothing")
        #expect(!network.changes.contains { $0.member.id == testMemberID(slow) && $0.member.status == .dead })
        #expect(network.machines[slow].myself.incarnation >= 1, "it never refuted")
        #expect(settled != nil)
    }

    @Test("local health rises when our own acks are missed, and recovers once we hear again")
    func localHealthRises() {
        let count = 5
        var network = joinedNetwork(count: count, seed: 5)
        #expect(network.machines.allSatisfy { $0.localHealth == 0 })
        let deaf = 2
        network.deaf = [deaf]
        network.run(for: 6_000)
        let sick = network.machines[deaf].localHealth
        #expect(sick >= 3, "local health only reached \(sick)")
        // The others' probes of the deaf member were relayed and nacked: their health stays low.
        #expect((0..<count).filter { $0 != deaf }.allSatisfy { network.highestLocalHealth[$0] <= 1 })
        network.deaf = []
        network.run(for: 60_000) { $0.machines[deaf].localHealth == 0 }
        #expect(network.machines[deaf].localHealth == 0)
    }

    @Test(
        "a member partitioned longer than the suspicion timeout rejoins by itself once healed (memberlist #222)",
        arguments: [1, 2, 3] as [UInt64])
    func partitionedMemberRejoins(seed: UInt64) {
        let count = 5
        var network = joinedNetwork(count: count, seed: seed)
        let isolated = 4
        let majority = Array(0..<isolated)
        network.partition([isolated])
        let bounds = network.machines[0].suspicionTimeoutMilliseconds(liveMembers: count)
        let interval = network.configuration.probeIntervalMilliseconds
        let split = network.run(for: 4 * bounds.maximum) { net in
            majority.allSatisfy { net.status(of: isolated, at: $0) == .dead }
                && majority.allSatisfy { net.status(of: $0, at: isolated) == .dead }
        }
        #expect(split != nil, "the partition never made both sides declare the other dead")
        network.run(for: 10_000)  // well past the suspicion timeout
        #expect(network.sessions.allSatisfy { !$0.contains(isolated) })
        network.heal()
        let everyone = Array(0..<count)
        let rejoined = network.run(for: 60_000) { $0.views(of: everyone, agree: $0.allAlive(everyone)) }
        #expect(rejoined != nil, "seed \(seed): the partitioned member never rejoined")
        #expect(network.machines[isolated].myself.incarnation >= 1)
        print(
            "rejoin after partition, seed \(seed): all views alive \(rejoined ?? 0) ms after healing"
                + " (\(Double(rejoined ?? 0) / Double(interval)) probe intervals)")
        // And it stays that way.
        network.run(for: 10_000)
        #expect(network.views(of: everyone, agree: network.allAlive(everyone)))
    }

    @Test("a minority partition of two, under 2% loss, rejoins and all views agree", arguments: [4, 5, 6] as [UInt64])
    func minorityPartitionRejoins(seed: UInt64) {
        let count = 6
        var network = joinedNetwork(count: count, seed: seed)
        network.dropRate = 0.02
        let minority: Set<Int> = [3, 4]
        network.partition(minority)
        let majority = (0..<count).filter { !minority.contains($0) }
        let split = network.run(for: 60_000) { net in
            majority.allSatisfy { observer in minority.allSatisfy { net.status(of: $0, at: observer) == .dead } }
                && minority.allSatisfy { observer in majority.allSatisfy { net.status(of: $0, at: observer) == .dead } }
        }
        #expect(split != nil, "seed \(seed): the sides never declared each other dead")
        // The minority never declared each other dead (a lost probe may make them suspect).
        #expect(
            !network.changes.contains {
                minority.contains($0.observer) && minority.contains(Int($0.member.id.bytes[0]) - 1)
                    && $0.member.status == .dead
            })
        network.heal()
        let everyone = Array(0..<count)
        let rejoined = network.run(for: 60_000) { $0.views(of: everyone, agree: $0.allAlive(everyone)) }
        #expect(rejoined != nil, "seed \(seed): no agreement after healing")
        print("minority of 2 of 6 rejoins, 2% loss, seed \(seed): all views alive \(rejoined ?? 0) ms after healing")
    }

    @Test("a crashed member declared dead restarts with incarnation 0 and rejoins by refuting its death")
    func restartedMemberRejoins() {
        let count = 5
        var network = joinedNetwork(count: count, seed: 41)
        let victim = 1
        network.crash(victim)
        let others = (0..<count).filter { $0 != victim }
        let dead = network.run(for: 60_000) { net in others.allSatisfy { net.status(of: victim, at: $0) == .dead } }
        #expect(dead != nil)
        // A fresh process: same identity, no memory, incarnation 0, knows only the seed.
        network.machines[victim] = MembershipStateMachine(
            me: testMember(victim), seeds: [testAddress(0)], configuration: network.configuration, seed: 77)
        network.start(victim)
        let everyone = Array(0..<count)
        let rejoined = network.run(for: 30_000) { $0.views(of: everyone, agree: $0.allAlive(everyone)) }
        #expect(rejoined != nil)
        #expect(network.machines[victim].myself.incarnation >= 1)
        print("restart after death: all views alive \(rejoined ?? 0) ms after the restart")
    }

    @Test("a decommissioned member is gossiped as left everywhere and never comes back alive")
    func decommissionIsFinal() {
        let count = 5
        var network = joinedNetwork(count: count, seed: 21)
        let gone = 4
        let actions = network.machines[0].decommission(testMemberID(gone), now: network.now)
        network.handle(actions, from: 0)
        let spread = network.run(for: 10_000) { net in
            (0..<count).allSatisfy { net.status(of: gone, at: $0) == .left }
        }
        #expect(spread != nil)
        #expect(network.machines[gone].myself.status == .left)
        let leftAt = network.now
        // A forged resurrection with a higher incarnation is ignored.
        var forged = testMember(gone)
        forged.incarnation = 99
        let forgedActions = network.machines[1].receive(gossip(forged), from: testMemberID(2), now: network.now)
        network.handle(forgedActions, from: 1)
        network.run(for: 15_000)
        #expect((0..<count).allSatisfy { network.status(of: gone, at: $0) == .left })
        #expect(!network.changes.contains { $0.at > leftAt && $0.member.id == testMemberID(gone) })
        // The others carry on: still all alive among themselves.
        let rest = Array(0..<gone)
        #expect(rest.allSatisfy { observer in rest.allSatisfy { network.status(of: $0, at: observer) == .alive } })
    }

    @Test("a member that leaves gracefully is seen as dead by all within a probe interval, without suspicion")
    func gracefulLeave() {
        let count = 5
        var network = joinedNetwork(count: count, seed: 31)
        let leaver = 2
        let actions = network.machines[leaver].leave(now: network.now)
        #expect(
            actions.contains(
                .memberChanged(
                    with(
                        network.machines[leaver].myself, incarnation: network.machines[leaver].myself.incarnation,
                        status: .dead), previous: .alive)))
        network.handle(actions, from: leaver)
        let seen = network.run(for: 5_000) { net in
            (0..<count).filter { $0 != leaver }.allSatisfy { net.status(of: leaver, at: $0) == .dead }
        }
        #expect(seen != nil)
        #expect((seen ?? .max) <= network.configuration.probeIntervalMilliseconds)
        #expect(network.machines[leaver].tick(now: network.now.advanced(by: 10_000)).isEmpty)
        network.run(for: 20_000)
        #expect(!network.changes.contains { $0.member.id == testMemberID(leaver) && $0.member.status == .suspect })
    }
}
