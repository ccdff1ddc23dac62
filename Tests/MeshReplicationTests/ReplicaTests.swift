import MeshCRDT
import MeshCodec
import Testing

@testable import MeshReplication

// MARK: Helpers

let a = ReplicaID(1)
let b = ReplicaID(2)
let c = ReplicaID(3)
let t0 = Instant(milliseconds: 1_000_000)

func at(_ milliseconds: UInt64) -> Instant { t0.advanced(by: milliseconds) }

func replica(
    _ id: ReplicaID, peers: [ReplicaID] = [a, b, c], domains: [DomainConfiguration] = [DomainConfiguration(name: "d")],
    configure: (inout ReplicationConfiguration) -> Void = { _ in }
) -> ReplicaStateMachine {
    var configuration = ReplicationConfiguration()
    configuration.repairDelayMilliseconds = 0
    configure(&configuration)
    return ReplicaStateMachine(replicaID: id, domains: domains, peers: peers, configuration: configuration, seed: 7)
}

func sends(_ actions: [ReplicationAction]) -> [(ReplicationMessage, PeerID)] {
    actions.compactMap { if case .send(let message, let peer) = $0 { return (message, peer) } else { return nil } }
}

func deliveries(_ actions: [ReplicationAction]) -> [Delivery] {
    actions.compactMap { if case .deliver(let delivery) = $0 { return delivery } else { return nil } }
}

/// A push batch on link epoch `epoch`, position `sequence`.
func push(
    _ records: [DeltaRecord], sequence: UInt64 = 0, epoch: UInt64 = 1, dependencies: [VersionVector.Entry] = []
) -> ReplicationMessage {
    .deltas(domain: "d", link: LinkHeader(epoch: epoch, sequence: sequence, dependencies: dependencies), records: records)
}

/// A repair batch (no link).
func repair(_ records: [DeltaRecord]) -> ReplicationMessage {
    .deltas(domain: "d", link: nil, records: records)
}

func failures(_ actions: [ReplicationAction]) -> [ReplicationError] {
    actions.compactMap { if case .fail(let error) = $0 { return error } else { return nil } }
}

func acknowledgements(_ actions: [ReplicationAction]) -> [WriteID] {
    actions.compactMap { if case .acknowledge(let id) = $0 { return id } else { return nil } }
}

/// The delta records a replica pushes on its next flush, as one list.
func pushedRecords(_ actions: [ReplicationAction], to peer: PeerID? = nil) -> [DeltaRecord] {
    sends(actions).flatMap { message, target -> [DeltaRecord] in
        guard peer == nil || peer == target, case .deltas(_, .some, let records) = message else { return [] }
        return records
    }.reduce(into: [DeltaRecord]()) { list, record in if !list.contains(where: { $0 === record }) { list.append(record) } }
}

func counterValue(_ machine: ReplicaStateMachine, _ key: String, in domain: String = "d") -> Int64? {
    if case .counter(let counter)? = machine.value(of: key, in: domain) { return counter.value }
    return nil
}

/// Writes `count` increments at `machine` and returns the records of each write as its own delta
/// (the replica is ticked after every write so no delta-group forms).
func writeIncrements(_ machine: inout ReplicaStateMachine, count: Int, key: String = "k", start: UInt64 = 0) throws
    -> [DeltaRecord]
{
    var records: [DeltaRecord] = []
    for step in 0..<count {
        _ = try machine.write(.increment(1), to: key, in: "d", now: at(start + UInt64(step)))
        let actions = machine.tick(now: at(start + UInt64(step)))
        records.append(contentsOf: pushedRecords(actions))
    }
    return records
}

// MARK: Local writes

@Suite("local writes")
struct LocalWriteTests {
    @Test("a local write is delivered at once, gets the next dot and is acknowledged under the local concern")
    func localWrite() throws {
        var machine = replica(a)
        let first = try machine.write(.increment(5), to: "hits", in: "d", now: t0)
        let second = try machine.write(.increment(2), to: "hits", in: "d", now: t0)
        #expect(first.id.sequence == 1 && second.id.sequence == 2)
        #expect(machine.vector(of: "d")?[a] == 2)
        #expect(counterValue(machine, "hits") == 7)
        #expect(acknowledgements(first.actions) == [first.id])
        #expect(deliveries(first.actions).map(\.source) == [.local])
    }

    @Test("writing another type to a key is a typed error and changes nothing")
    func typeMismatch() throws {
        var machine = replica(a)
        _ = try machine.write(.increment(1), to: "k", in: "d", now: t0)
        #expect(throws: ReplicationError.self) { try machine.write(.insert("x"), to: "k", in: "d", now: t0) }
        do {
            _ = try machine.write(.insert("x"), to: "k", in: "d", now: t0)
        } catch {
            #expect(error.code == .typeMismatch)
        }
        #expect(machine.vector(of: "d")?[a] == 1)
        // The refused write left the object as it was, and it takes writes of its own type.
        guard case .counter(let counter)? = machine.value(of: "k", in: "d") else {
            Issue.record("the counter is gone after a refused write")
            return
        }
        #expect(counter.value == 1)
        _ = try machine.write(.increment(2), to: "k", in: "d", now: t0)
        guard case .counter(let after)? = machine.value(of: "k", in: "d") else {
            Issue.record("the counter is gone")
            return
        }
        #expect(after.value == 3)
    }

    @Test("a write to a domain not replicated here is refused with unknownDomain")
    func unknownDomain() {
        var machine = replica(a)
        do {
            _ = try machine.write(.increment(1), to: "k", in: "nope", now: t0)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .unknownDomain)
        }
    }

    @Test("domains are found by name with few domains (compared one by one) and many (hashed)", arguments: [3, 12])
    func domainLookup(count: Int) throws {
        let names = (0..<count).map { "domain-\($0)" }
        var machine = replica(a, domains: names.map { DomainConfiguration(name: $0) })
        for position in names.indices {
            // A name equal to the configured one but made anew (not the same string storage).
            let key = String("domain-\(position)".utf8.map { Character(UnicodeScalar($0)) })
            _ = try machine.write(.increment(UInt64(position + 1)), to: "k", in: key, now: t0)
        }
        for (position, name) in names.enumerated() {
            #expect(machine.vector(of: name)?[a] == 1)
            guard case .counter(let counter)? = machine.value(of: "k", in: name) else {
                Issue.record("no counter in \(name)")
                continue
            }
            #expect(counter.value == Int64(position + 1))
        }
        for unknown in ["", "domain-", "domain-\(count)", "Domain-0", "domain-0 "] {
            #expect(machine.vector(of: unknown) == nil)
            #expect(throws: ReplicationError.self) { try machine.write(.increment(1), to: "k", in: unknown, now: t0) }
        }
    }

    @Test("writes between two flushes join into one delta-group covering their sequence range")
    func deltaGroup() throws {
        var machine = replica(a, peers: [b])
        _ = try machine.write(.increment(1), to: "x", in: "d", now: t0)
        _ = try machine.write(.insert("e"), to: "s", in: "d", now: t0)
        _ = try machine.write(.increment(4), to: "x", in: "d", now: t0)
        let records = pushedRecords(machine.tick(now: t0))
        #expect(records.count == 1)
        #expect(records.first?.firstSequence == 1 && records.first?.lastSequence == 3)
        #expect(records.first?.updates.map(\.key) == ["s", "x"])
        var other = replica(b, peers: [a])
        let actions = other.receive(push(records), from: a, now: t0)
        #expect(deliveries(actions).map(\.lastSequence) == [3])
        #expect(counterValue(other, "x") == 5)
    }

    @Test("a delta-group joined in place is whole in the log when read before its flush: checkpoint and repair")
    func openGroupIsWholeWhenRead() throws {
        var machine = replica(a, peers: [b])
        for member in ["e", "f", "g"] { _ = try machine.write(.insert(member), to: "s", in: "d", now: t0) }
        _ = try machine.write(.setField("f", "1"), to: "m", in: "d", now: t0)
        // A checkpoint of the open group holds all four writes.
        let logged = machine.persisted.domains[0].log.allRecords()
        #expect(logged.count == 1)
        #expect(logged.first?.firstSequence == 1 && logged.first?.lastSequence == 4)
        guard case .set(let members)? = logged.first?.updates.first(where: { $0.key == "s" })?.value else {
            Issue.record("the group's set delta is missing")
            return
        }
        #expect(members.elements.sorted() == ["e", "f", "g"])
        // A replica restored from that checkpoint serves the whole group to a peer that lacks it.
        var restored = ReplicaStateMachine(restoring: machine.persisted, peers: [b], seed: 1)
        var reader = replica(b, peers: [a])
        let repair = sends(
            restored.receive(
                .graft(domain: "d", vector: VersionVector(), minimumEpoch: 0, joinsTree: false), from: b, now: at(1)))
        for (message, _) in repair { _ = reader.receive(message, from: a, now: at(2)) }
        #expect(reader.objects(in: "d") == machine.objects(in: "d"))
        // A repair of the open group itself carries all four writes too.
        var other = replica(c, peers: [a])
        let repaired = sends(
            machine.receive(
                .graft(domain: "d", vector: VersionVector(), minimumEpoch: 0, joinsTree: false), from: c, now: t0))
        for (message, _) in repaired { _ = other.receive(message, from: a, now: t0) }
        #expect(other.objects(in: "d") == machine.objects(in: "d"))
        #expect(other.vector(of: "d") == machine.vector(of: "d"))
        #expect(machine.invariantViolation() == nil)
    }

    @Test("a delta-group keeps joining writes of one key in place and is pushed whole, up to the group bound")
    func groupBound() throws {
        var machine = replica(a, peers: [b]) { $0.maximumGroupWrites = 4 }
        for step in 0..<10 { _ = try machine.write(.setField("f\(step % 3)", "\(step)"), to: "m", in: "d", now: t0) }
        let records = pushedRecords(machine.tick(now: t0))
        #expect(records.map(\.firstSequence) == [1, 5, 9])
        #expect(records.map(\.lastSequence) == [4, 8, 10])
        var reader = replica(b, peers: [a])
        _ = reader.receive(push(records), from: a, now: t0)
        #expect(reader.objects(in: "d") == machine.objects(in: "d"))
        #expect(machine.invariantViolation() == nil)
    }

    @Test("every object type takes its operations and a remote replica converges to the same values")
    func everyType() throws {
        var writer = replica(a, peers: [b])
        let operations: [(String, WriteOperation)] = [
            ("c", .increment(3)), ("c", .decrement(1)), ("s", .insert("x")), ("s", .insert("y")), ("s", .remove("x")),
            ("m", .setField("f", "1")), ("m", .setField("g", "2")), ("m", .removeField("g")), ("r", .assign("v1")),
            ("r", .assign("v2")), ("mv", .assignMultiValue("a")), ("f", .enable), ("f", .disable), ("f", .enable),
        ]
        var records: [DeltaRecord] = []
        for (step, (key, operation)) in operations.enumerated() {
            _ = try writer.write(operation, to: key, in: "d", now: at(UInt64(step)))
            records += pushedRecords(writer.tick(now: at(UInt64(step))))
        }
        var reader = replica(b, peers: [a])
        _ = reader.receive(push(records), from: a, now: at(100))
        #expect(reader.objects(in: "d") == writer.objects(in: "d"))
        #expect(reader.vector(of: "d") == writer.vector(of: "d"))
        guard case .register(let register)? = reader.value(of: "r", in: "d") else {
            Issue.record("register missing")
            return
        }
        #expect(register.value == "v2")
    }
}

// MARK: Receiving deltas

@Suite("causal delivery")
struct CausalDeliveryTests {
    @Test("a duplicate delta is dropped, counted, and not delivered again")
    func duplicate() throws {
        var writer = replica(a)
        let records = try writeIncrements(&writer, count: 1)
        var reader = replica(b)
        let first = reader.receive(repair(records), from: a, now: t0)
        let second = reader.receive(repair(records), from: c, now: t0)
        #expect(deliveries(first).count == 1)
        #expect(deliveries(second).isEmpty)
        #expect(reader.metrics(of: "d")?.duplicates == 1)
        #expect(counterValue(reader, "k") == 1)
    }

    @Test("link batches arriving out of order are buffered and delivered in link order")
    func outOfOrder() throws {
        var writer = replica(a)
        let records = try writeIncrements(&writer, count: 3)
        #expect(records.count == 3)
        var reader = replica(b)
        let early = reader.receive(push([records[2]], sequence: 2), from: a, now: t0)
        _ = reader.receive(push([records[1]], sequence: 1), from: a, now: t0)
        #expect(deliveries(early).isEmpty)
        #expect(reader.metrics(of: "d")?.bufferedCount == 2)
        let late = reader.receive(push([records[0]], sequence: 0), from: a, now: t0)
        #expect(deliveries(late).map(\.firstSequence) == [1, 2, 3])
        #expect(reader.metrics(of: "d")?.bufferedCount == 0)
        #expect(reader.vector(of: "d")?[a] == 3)
    }

    @Test("a batch waits until the dependencies its link header names are delivered")
    func linkDependencies() throws {
        var first = replica(a)
        let fromA = try writeIncrements(&first, count: 1)
        var second = replica(c)
        _ = try second.write(.increment(10), to: "k", in: "d", now: t0)
        let fromC = pushedRecords(second.tick(now: t0))
        var reader = replica(b)
        let waiting = reader.receive(
            push(fromC, dependencies: [VersionVector.Entry(replica: a, counter: 1)]), from: c, now: t0)
        #expect(deliveries(waiting).isEmpty)
        let both = reader.receive(repair(fromA), from: a, now: t0)
        #expect(deliveries(both).map(\.origin) == [a, c])
        #expect(counterValue(reader, "k") == 11)
    }

    @Test("a relay's batch carries what it relayed before its own write, so order holds across origins")
    func relayedCausality() throws {
        var first = replica(a, peers: [c])
        let fromA = try writeIncrements(&first, count: 1)
        var relay = replica(c, peers: [a, b]) { $0.fanout = 2 }
        _ = relay.receive(push(fromA), from: a, now: t0)
        _ = try relay.write(.increment(10), to: "k", in: "d", now: t0)
        let toB = sends(relay.tick(now: t0)).filter { $0.1 == b && $0.0.kind == "push" }.map(\.0)
        #expect(toB.count == 1)
        guard case .deltas(_, let link?, let records)? = toB.first else {
            Issue.record("no push to b")
            return
        }
        #expect(records.map(\.origin) == [a, c])
        #expect(link.sequence == 0)
        var reader = replica(b)
        #expect(deliveries(reader.receive(toB[0], from: c, now: t0)).map(\.origin) == [a, c])
    }

    @Test("an open delta-group repaired to a peer is closed, so it is pushed ahead of what that peer writes after it")
    func repairedGroupKeepsOrder() throws {
        // Found by mesh-sim at N=256/1000 (causal violation): a GRAFT answered with the open
        // group, the grafting peer wrote on top of it and pushed that back before our flush.
        var origin = replica(a, peers: [b, c]) { $0.fanout = 2 }
        _ = try origin.write(.increment(1), to: "k", in: "d", now: t0)
        let repaired = sends(
            origin.receive(.graft(domain: "d", vector: VersionVector(), minimumEpoch: 0, joinsTree: false), from: b, now: t0))
        var other = replica(b, peers: [a, c])
        for (message, _) in repaired { _ = other.receive(message, from: a, now: t0) }
        _ = try other.write(.increment(2), to: "k", in: "d", now: at(1))
        let fromB = pushedRecords(other.tick(now: at(1))).filter { $0.origin == b }
        _ = origin.receive(push(fromB), from: b, now: at(2))
        let toC = pushedRecords(origin.tick(now: at(3)), to: c)
        #expect(toC.map(\.origin) == [a, b])
        var last = replica(c)
        for (message, peer) in sends(origin.tick(now: at(3))) where peer == c { _ = last.receive(message, from: a, now: at(4)) }
        #expect(origin.invariantViolation() == nil)
    }

    @Test("a batch from an older link epoch is dropped; a newer epoch replaces the link")
    func epochs() throws {
        var writer = replica(a)
        let records = try writeIncrements(&writer, count: 2)
        var reader = replica(b)
        _ = reader.receive(push([records[1]], sequence: 1, epoch: 5), from: a, now: t0)
        #expect(reader.metrics(of: "d")?.bufferedCount == 1)
        let stale = reader.receive(push([records[0]], sequence: 0, epoch: 4), from: a, now: t0)
        #expect(deliveries(stale).isEmpty)
        let fresh = reader.receive(push(records, sequence: 0, epoch: 6), from: a, now: t0)
        #expect(deliveries(fresh).map(\.lastSequence) == [1, 2])
        #expect(reader.metrics(of: "d")?.bufferedCount == 0)
        #expect(reader.invariantViolation() == nil)
    }

    @Test("a link left with a gap past the graft timeout is resynchronised with a GRAFT carrying V")
    func gapGrafts() throws {
        var writer = replica(a, peers: [b])
        let records = try writeIncrements(&writer, count: 2)
        var reader = replica(b, peers: [a]) { $0.graftTimeoutMilliseconds = 50 }
        _ = reader.receive(push([records[1]], sequence: 1), from: a, now: t0)
        #expect(sends(reader.tick(now: at(10))).allSatisfy { $0.0.kind != "graft" })
        let grafts = sends(reader.tick(now: at(100))).filter { $0.0.kind == "graft" }
        #expect(grafts.count == 1)
        guard case .graft(_, let vector, let floor, let joins)? = grafts.first?.0 else { return }
        #expect(vector == VersionVector() && floor == 2 && !joins)
        for (message, _) in sends(writer.receive(grafts[0].0, from: b, now: at(100))) {
            _ = reader.receive(message, from: a, now: at(101))
        }
        #expect(reader.vector(of: "d")?[a] == 2)
    }

    @Test("a full causal buffer drops what it cannot hold, counts it, and anti-entropy fetches it later")
    func bufferOverflow() throws {
        var writer = replica(a)
        let records = try writeIncrements(&writer, count: 5)
        var reader = replica(b) { $0.maximumBufferedDeltas = 2 }
        for (position, record) in records.enumerated().dropFirst() {
            _ = reader.receive(push([record], sequence: UInt64(position)), from: a, now: t0)
        }
        #expect(reader.metrics(of: "d")?.bufferedCount == 2)
        #expect(reader.metrics(of: "d")?.bufferOverflows == 2)
        #expect(reader.invariantViolation() == nil)
        // Anti-entropy: the reader's digest makes the writer send everything it lacks.
        let digest = ReplicationMessage.digest(isReply: false, vectors: [DomainVector(domain: "d", vector: reader.vector(of: "d")!)])
        let answer = writer.receive(digest, from: b, now: at(1_000))
        for (message, _) in sends(answer) { _ = reader.receive(message, from: a, now: at(1_000)) }
        #expect(reader.vector(of: "d")?[a] == 5)
        #expect(counterValue(reader, "k") == 5)
    }

    @Test("a delta claiming this replica's own future writes is refused as invalid")
    func foreignClaim() {
        var reader = replica(b)
        let forged = DeltaRecord(
            origin: b, firstSequence: 1, lastSequence: 1, timestamp: .zero,
            requestsAcknowledgement: false, updates: [KeyedDelta(key: "k", value: .counter(PNCounter()))])
        let actions = reader.receive(push([forged]), from: a, now: t0)
        #expect(failures(actions).map(\.code) == [.invalidDelta])
        #expect(reader.vector(of: "d")?[b] == 0)
    }

    @Test("a delta whose CRDT payload claims this replica's events at UInt64.max is refused, and the next local write still works")
    func forgedOwnEventAtEndOfTime() throws {
        var target = replica(a)
        let forgedSet = try #require(
            ORSet<String>(entries: [:], context: CausalContext(VersionVector([(a, UInt64.max)]))))
        let forgedCounter = PNCounter(increments: GCounter(counts: [(a, UInt64.max)]), decrements: GCounter())
        let record = DeltaRecord(
            origin: b, firstSequence: 1, lastSequence: 1, timestamp: .zero, requestsAcknowledgement: false,
            updates: [KeyedDelta(key: "c", value: .counter(forgedCounter)), KeyedDelta(key: "s", value: .set(forgedSet))])
        let actions = target.receive(push([record]), from: b, now: t0)
        #expect(failures(actions).map(\.code) == [.invalidDelta, .invalidDelta])
        #expect(target.vector(of: "d")?[b] == 1)
        #expect(target.value(of: "s", in: "d") == nil && target.value(of: "c", in: "d") == nil)
        // Before the fix these writes trapped in VersionVector.increment / the counter's addition.
        _ = try target.write(.insert("x"), to: "s", in: "d", now: t0)
        _ = try target.write(.increment(1), to: "c", in: "d", now: t0)
        #expect(target.value(of: "c", in: "d") == .counter(PNCounter(increments: GCounter(counts: [(a, UInt64(1))]), decrements: GCounter())))
        // A legitimate remote delta mentioning this replica's issued events is still merged.
        var other = replica(b)
        _ = try other.write(.insert("y"), to: "s", in: "d", now: t0)
        let pushed = pushedRecords(other.tick(now: t0))
        _ = try target.write(.remove("x"), to: "s", in: "d", now: t0)
        #expect(failures(target.receive(push(pushed, sequence: 0, epoch: 2), from: b, now: t0)).isEmpty)
    }

    /// A record's updates are checked for forged claims only by receivers its filter may name
    /// (`DeltaRecord.claimedReplicas`): each place a payload can claim a replica's events must
    /// put that replica in the filter, or a forged claim there would be merged unchecked.
    @Test("every kind of forged claim is refused: the record's filter names each replica whose events a payload claims")
    func forgedClaimsInEveryField() throws {
        let forged = UInt64.max / 2
        let context = CausalContext(VersionVector([(a, forged)]))
        let cloud = try #require(CausalContext(versionVector: VersionVector(), dotCloud: [Dot(replica: a, counter: forged)]))
        let claims: [(String, ObjectValue)] = [
            ("increments", .counter(PNCounter(increments: GCounter(counts: [(a, forged)]), decrements: GCounter()))),
            ("decrements", .counter(PNCounter(increments: GCounter(), decrements: GCounter(counts: [(a, forged)])))),
            (
                "reset increments",
                .counter(
                    PNCounter(
                        increments: GCounter(), decrements: GCounter(), resetIncrements: GCounter(counts: [(a, forged)]),
                        resetDecrements: GCounter()))
            ),
            (
                "reset decrements",
                .counter(
                    PNCounter(
                        increments: GCounter(), decrements: GCounter(), resetIncrements: GCounter(),
                        resetDecrements: GCounter(counts: [(a, forged)])))
            ),
            ("set context", .set(try #require(ORSet<String>(entries: [:], context: context)))),
            ("set dot cloud", .set(try #require(ORSet<String>(entries: [:], context: cloud)))),
            ("map context", .map(try #require(LWWMap<String, String>(entries: [:], context: context)))),
            ("multi-value register context", .multiValueRegister(try #require(MVRegister<String>(values: [], context: cloud)))),
            ("flag context", .flag(try #require(EWFlag(dots: DotSet(), context: context)))),
        ]
        for (field, value) in claims {
            let record = DeltaRecord(
                origin: b, firstSequence: 1, lastSequence: 1, timestamp: .zero, requestsAcknowledgement: false,
                updates: [KeyedDelta(key: "k", value: value)])
            #expect(record.claimedReplicas.mayContain(a), "\(field)")
            var target = replica(a)
            let actions = target.receive(push([record]), from: b, now: t0)
            #expect(failures(actions).map(\.code) == [.invalidDelta], "\(field)")
            #expect(target.value(of: "k", in: "d") == nil, "\(field)")
        }
        // The filter names nothing else here: most receivers skip the check.
        let counter = DeltaRecord(
            origin: b, firstSequence: 1, lastSequence: 1, timestamp: .zero, requestsAcknowledgement: false,
            updates: [KeyedDelta(key: "k", value: claims[0].1)])
        #expect((2...64).map { ReplicaID(UInt64($0)) }.filter { counter.claimedReplicas.mayContain($0) }.count < 3)
    }

    @Test("a remote delta writing another type to a key is reported and ignored, the vector still advances")
    func remoteTypeConflict() throws {
        var left = replica(a)
        var right = replica(b)
        _ = try left.write(.increment(1), to: "k", in: "d", now: t0)
        _ = try right.write(.insert("x"), to: "k", in: "d", now: t0)
        let records = pushedRecords(left.tick(now: t0))
        let actions = right.receive(push(records), from: a, now: t0)
        #expect(failures(actions).map(\.code) == [.typeMismatch])
        #expect(right.vector(of: "d")?[a] == 1)
        #expect(right.value(of: "k", in: "d")?.type == .set)
    }

    @Test("an LWW timestamp too far ahead is not adopted by the clock, but the delta is delivered")
    func clockSkew() throws {
        var writer = replica(a)
        _ = try writer.write(.assign("future"), to: "r", in: "d", now: at(3_600_000))
        let records = pushedRecords(writer.tick(now: at(3_600_000)))
        var reader = replica(b)
        let actions = reader.receive(push(records), from: a, now: t0)
        #expect(failures(actions).map(\.code) == [.clockSkew])
        #expect(deliveries(actions).count == 1)
        #expect(reader.latestTimestamp.physicalMilliseconds < at(3_600_000).milliseconds)
    }

    @Test("eventual mode merges an out-of-order delta on arrival; V advances only when the gap fills")
    func eventualMode() throws {
        var writer = replica(a, domains: [DomainConfiguration(name: "d", mode: .eventual)])
        _ = try writer.write(.increment(1), to: "k", in: "d", now: t0)
        let one = pushedRecords(writer.tick(now: t0))
        _ = try writer.write(.increment(2), to: "k", in: "d", now: at(1))
        let two = pushedRecords(writer.tick(now: at(1)))
        var reader = replica(b, domains: [DomainConfiguration(name: "d", mode: .eventual)])
        let early = reader.receive(push(two, sequence: 1), from: a, now: t0)
        #expect(counterValue(reader, "k") == 3)  // GCounter entry carries the running count
        #expect(reader.vector(of: "d")?[a] == 0)
        #expect(deliveries(early).isEmpty)
        let late = reader.receive(push(one, sequence: 0), from: a, now: t0)
        #expect(deliveries(late).map(\.lastSequence) == [1, 2])
        #expect(reader.vector(of: "d")?[a] == 2)
    }

    @Test("each domain has its own vector, log and buffer")
    func multipleDomains() throws {
        let domains = [DomainConfiguration(name: "x"), DomainConfiguration(name: "y")]
        var machine = replica(a, domains: domains)
        _ = try machine.write(.increment(1), to: "k", in: "x", now: t0)
        _ = try machine.write(.increment(1), to: "k", in: "x", now: t0)
        _ = try machine.write(.insert("e"), to: "k", in: "y", now: t0)
        #expect(machine.vector(of: "x")?[a] == 2)
        #expect(machine.vector(of: "y")?[a] == 1)
        #expect(machine.metrics(of: "x")?.logCount == 1)  // one delta-group
        #expect(machine.value(of: "k", in: "y")?.type == .set)
    }
}

// MARK: Gossip and anti-entropy

@Suite("gossip")
struct GossipTests {
    @Test("a digest makes the receiver send what the sender lacks, and reply with its own digest when behind")
    func digestExchange() throws {
        var left = replica(a, peers: [b])
        var right = replica(b, peers: [a])
        _ = try writeIncrements(&left, count: 2)
        _ = try writeIncrements(&right, count: 1, key: "other")
        let digest = ReplicationMessage.digest(
            isReply: false, vectors: [DomainVector(domain: "d", vector: right.vector(of: "d")!)])
        let answer = left.receive(digest, from: b, now: at(1_000))
        let kinds = sends(answer).map(\.0.kind)
        #expect(kinds.contains("repair") && kinds.contains("digest"))
        for (message, _) in sends(answer) {
            let back = right.receive(message, from: a, now: at(1_000))
            for (reply, _) in sends(back) { _ = left.receive(reply, from: b, now: at(1_000)) }
        }
        #expect(left.vector(of: "d") == right.vector(of: "d"))
        #expect(left.objects(in: "d") == right.objects(in: "d"))
    }

    @Test("a repair is one message holding a prefix of the delivery order (split messages could be reordered)")
    func repairIsOneMessage() throws {
        // Found by mesh-sim at N=256: the second half of a split repair overtook the first.
        var writer = replica(a, peers: [b]) { $0.maximumBatchDeltas = 2 }
        _ = try writeIncrements(&writer, count: 5)
        let digest = ReplicationMessage.digest(isReply: true, vectors: [DomainVector(domain: "d", vector: VersionVector())])
        let repairs = sends(writer.receive(digest, from: b, now: at(1_000))).filter { $0.0.kind == "repair" }
        #expect(repairs.count == 1)
        guard case .deltas(_, nil, let records)? = repairs.first?.0 else { return }
        #expect(records.map(\.firstSequence) == [1, 2])
    }

    @Test("a reply digest is not answered with another digest (no ping-pong)")
    func replyNotAnswered() throws {
        var left = replica(a, peers: [b])
        let ahead = VersionVector([(b, UInt64(3))])
        let actions = left.receive(.digest(isReply: true, vectors: [DomainVector(domain: "d", vector: ahead)]), from: b, now: t0)
        #expect(sends(actions).isEmpty)
    }

    @Test("an announcement of a gap that stays open past the graft timeout is pulled with a GRAFT")
    func announceThenGraft() throws {
        var writer = replica(a, peers: [b])
        _ = try writeIncrements(&writer, count: 2)
        var reader = replica(b, peers: [a]) { $0.graftTimeoutMilliseconds = 50 }
        _ = reader.receive(.announce(domain: "d", ranges: [SequenceRange(origin: a, first: 1, last: 2)]), from: a, now: t0)
        #expect(sends(reader.tick(now: at(10))).allSatisfy { $0.0.kind != "graft" })
        let grafts = sends(reader.tick(now: at(60))).filter { $0.0.kind == "graft" }
        #expect(grafts.count == 1)
        guard let (graft, _) = grafts.first else { return }
        let answer = writer.receive(graft, from: b, now: at(60))
        for (message, _) in sends(answer) { _ = reader.receive(message, from: a, now: at(61)) }
        #expect(reader.vector(of: "d")?[a] == 2)
    }

    @Test("a GRAFT that joins the tree makes the link eager on the receiving side")
    func graftJoinsTree() {
        var node = replica(a, peers: [b, c]) { $0.fanout = 1 }
        let outsider = node.eagerPeers.contains(b) ? c : b
        _ = node.receive(
            .graft(domain: "d", vector: VersionVector(), minimumEpoch: 0, joinsTree: true), from: outsider, now: t0)
        #expect(node.eagerPeers.contains(outsider))
    }

    @Test("plumtree relays a pushed delta to its other eager peers but never back to the sender")
    func relayNotBack() throws {
        var writer = replica(a, peers: [b])
        let records = try writeIncrements(&writer, count: 1)
        var relay = replica(b, peers: [a, c]) { $0.fanout = 2 }
        #expect(relay.eagerPeers == [a, c])
        _ = relay.receive(push(records), from: a, now: t0)
        let targets = sends(relay.tick(now: at(1))).filter { $0.0.kind == "push" }.map(\.1)
        #expect(targets == [c])
    }

    @Test("a repaired delta is relayed down the tree (the links below lost it too) but not back to its sender")
    func repairRelayed() throws {
        var writer = replica(a, peers: [b])
        let records = try writeIncrements(&writer, count: 1)
        var relay = replica(b, peers: [a, c]) { $0.fanout = 2 }
        _ = relay.receive(repair(records), from: a, now: t0)
        #expect(sends(relay.tick(now: at(1))).filter { $0.0.kind == "push" }.map(\.1) == [c])
    }

    @Test("the root's beacon arriving twice in one round prunes the second link; PRUNE demotes the link")
    func beaconPrunes() {
        var node = replica(c, peers: [a, b]) { $0.fanout = 2 }
        #expect(node.eagerPeers == [a, b])
        let first = node.receive(.beacon(root: a, round: 5), from: a, now: t0)
        #expect(sends(first).map(\.1) == [b])  // forwarded on the other eager link
        let second = node.receive(.beacon(root: a, round: 5), from: b, now: t0)
        #expect(sends(second).map(\.0) == [.prune])
        #expect(node.eagerPeers == [a] && node.lazyPeers == [b])
        var other = replica(b, peers: [a, c]) { $0.fanout = 2 }
        _ = other.receive(.prune, from: c, now: t0)
        #expect(other.eagerPeers == [a] && other.lazyPeers == [c])
    }

    @Test("classic mode ships the deltas delivered since the last flush to fan-out random peers")
    func classicMode() throws {
        var machine = replica(a, peers: [b, c, ReplicaID(4), ReplicaID(5)]) {
            $0.strategy = .classic
            $0.fanout = 2
        }
        _ = try machine.write(.increment(1), to: "k", in: "d", now: t0)
        let pushes = sends(machine.tick(now: t0)).filter { $0.0.kind == "push" }
        #expect(pushes.count == 2)
        #expect(Set(pushes.map(\.1)).count == 2)
    }

    @Test("peerLeft forgets the peer and refills the eager links")
    func peerLeft() {
        var machine = replica(a, peers: [b, c, ReplicaID(4)]) { $0.fanout = 1 }
        let eager = machine.eagerPeers
        #expect(eager.count == 1)
        _ = machine.peerLeft(eager[0])
        #expect(!machine.peers.contains(eager[0]))
        #expect(machine.eagerPeers.count == 1 && machine.eagerPeers != eager)
    }
}

// MARK: Snapshots and stability

@Suite("snapshots and stability")
struct SnapshotTests {
    @Test("a peer lacking compacted deltas gets a chunked snapshot; its vector advances only when complete")
    func chunkedSnapshot() throws {
        var writer = replica(a, peers: [b]) {
            $0.maximumLogDeltas = 2
            $0.snapshotChunkBytes = 16
        }
        for step in 0..<6 {
            _ = try writer.write(.increment(1), to: "k\(step)", in: "d", now: at(UInt64(step)))
            _ = writer.tick(now: at(UInt64(step)))
        }
        #expect(writer.metrics(of: "d")?.logCount == 2)
        var reader = replica(b, peers: [a])
        let digest = ReplicationMessage.digest(isReply: false, vectors: [DomainVector(domain: "d", vector: VersionVector())])
        let chunks = sends(writer.receive(digest, from: b, now: at(1_000))).map(\.0)
        #expect(chunks.count > 1)
        #expect(chunks.allSatisfy { $0.kind == "snapshot" })
        for chunk in chunks.dropLast() {
            _ = reader.receive(chunk, from: a, now: at(1_001))
            #expect(reader.vector(of: "d")?[a] == 0)
        }
        let done = reader.receive(chunks.last!, from: a, now: at(1_001))
        #expect(deliveries(done).map(\.source) == [.snapshot])
        #expect(reader.vector(of: "d") == writer.vector(of: "d"))
        #expect(reader.objects(in: "d") == writer.objects(in: "d"))
        #expect(reader.metrics(of: "d")?.snapshotsInstalled == 1)
    }

    @Test("an own write the log evicted before it was pushed is a dependency of the next batch on an existing link")
    func evictedOwnWriteIsALinkDependency() throws {
        var writer = replica(a, peers: [b, c]) { $0.maximumLogDeltas = 2 }
        var third = replica(c, peers: [a, b])
        _ = try writer.write(.increment(1), to: "k", in: "d", now: at(0))
        #expect(pushedRecords(writer.tick(now: at(0)), to: b).map(\.lastSequence) == [1], "the link to b is open")
        _ = try writer.write(.increment(1), to: "k", in: "d", now: at(10))
        // Three records of c arrive outside the links and push a's second write out of the log of two.
        var records: [DeltaRecord] = []
        for step in 0..<3 {
            _ = try third.write(.increment(1), to: "c\(step)", in: "d", now: at(11 + UInt64(step)))
            records += pushedRecords(third.tick(now: at(11 + UInt64(step))), to: a)
        }
        #expect(records.count == 3)
        _ = writer.receive(repair(records), from: c, now: at(15))
        _ = try writer.write(.increment(1), to: "k", in: "d", now: at(20))
        let batches = sends(writer.tick(now: at(20))).compactMap { message, peer -> (LinkHeader, [DeltaRecord])? in
            guard peer == b, case .deltas(_, let link?, let records) = message else { return nil }
            return (link, records)
        }
        let (link, pushed) = try #require(batches.first)
        // a:2 went nowhere: b must not deliver what follows on the link (here a:3) before it has a:2.
        #expect(!pushed.contains { $0.origin == a && $0.firstSequence <= 2 })
        #expect(pushed.contains { $0.origin == a && $0.lastSequence == 3 })
        #expect(link.dependencies.contains { $0.replica == a && $0.counter == 2 })
    }

    @Test("the last own write not covered by a pushed record: none, a gap before a pushed record, the newest")
    func lastUnpushedOwnSequence() {
        func record(_ origin: ReplicaID, _ first: UInt64, _ last: UInt64) -> (record: DeltaRecord, sender: PeerID?) {
            (
                DeltaRecord(
                    origin: origin, firstSequence: first, lastSequence: last, timestamp: .zero,
                    requestsAcknowledgement: false, updates: []), nil
            )
        }
        let check = ReplicaStateMachine.lastUnpushedOwnSequence
        #expect(check(4, 4, [], a) == 0)
        #expect(check(4, 6, [record(a, 5, 6)], a) == 0)
        #expect(check(4, 6, [record(b, 1, 9), record(a, 5, 5), record(a, 6, 6)], a) == 0)
        #expect(check(4, 6, [], a) == 6)
        #expect(check(4, 6, [record(a, 6, 6)], a) == 5)
        #expect(check(4, 9, [record(a, 6, 6), record(a, 8, 8)], a) == 9)
        #expect(check(4, 8, [record(a, 6, 6), record(a, 8, 8)], a) == 7)
        #expect(check(4, 6, [record(a, 5, 5)], a) == 6)
    }

    @Test("a snapshot's deliveries name the objects it changed, once, on the last origin it advanced")
    func snapshotNamesItsChanges() throws {
        var writer = replica(a, peers: [b, c]) { $0.maximumLogDeltas = 2 }
        var reader = replica(b, peers: [a, c])
        var third = replica(c, peers: [a, b])
        // The reader holds "same" and "changed" as the writer does now.
        _ = try writer.write(.increment(1), to: "same", in: "d", now: at(0))
        _ = try writer.write(.insert("x"), to: "changed", in: "d", now: at(0))
        for record in pushedRecords(writer.tick(now: at(0)), to: b) {
            _ = reader.receive(repair([record]), from: a, now: at(1))
        }
        #expect(reader.vector(of: "d")?[a] == 2)
        // Then the writer changes one of them, writes a new key, takes a write of a third replica and
        // compacts its log past what the reader has.
        _ = try writer.write(.insert("y"), to: "changed", in: "d", now: at(10))
        _ = writer.tick(now: at(10))
        _ = try writer.write(.assign("v"), to: "new", in: "d", now: at(20))
        _ = writer.tick(now: at(20))
        _ = try third.write(.increment(3), to: "from-c", in: "d", now: at(25))
        for record in pushedRecords(third.tick(now: at(25)), to: a) {
            _ = writer.receive(repair([record]), from: c, now: at(26))
        }
        _ = try writer.write(.assign("w"), to: "new", in: "d", now: at(30))
        _ = writer.tick(now: at(30))
        #expect(writer.metrics(of: "d")?.logCount == 2)
        let digest = ReplicationMessage.digest(
            isReply: false, vectors: [DomainVector(domain: "d", vector: reader.vector(of: "d")!)])
        let chunks = sends(writer.receive(digest, from: b, now: at(1_000))).map(\.0)
        #expect(!chunks.isEmpty && chunks.allSatisfy { $0.kind == "snapshot" })
        var delivered: [Delivery] = []
        for chunk in chunks { delivered += deliveries(reader.receive(chunk, from: a, now: at(1_001))) }
        #expect(reader.objects(in: "d") == writer.objects(in: "d"))
        // One delivery per origin it advanced (a and c); the changes ride on the last one only.
        #expect(Set(delivered.map(\.origin)) == [a, c] && delivered.count == 2)
        #expect(delivered.allSatisfy { $0.source == .snapshot && !$0.hasRecord && $0.record == nil })
        #expect(delivered.dropLast().allSatisfy { $0.snapshotUpdates.isEmpty && $0.keys == [] })
        let changes = delivered.last!.snapshotUpdates
        #expect(Set(changes.map(\.key)) == ["changed", "new", "from-c"] && changes.count == 3)
        #expect(delivered.last!.keys.map(Set.init) == ["changed", "new", "from-c"])
        // Each as received: the writer's whole object.
        for change in changes { #expect(change.value == writer.value(of: change.key, in: "d")) }
        // A snapshot of nothing new changes nothing: the same objects again name no key.
        let again = SnapshotChunk(
            domain: "d", identifier: 99, index: 0, total: 1,
            vector: writer.vector(of: "d")!.merging(VersionVector([(a, UInt64(9))])),
            objects: changes)
        let repeated = deliveries(reader.receive(.snapshot(again), from: a, now: at(1_002)))
        #expect(repeated.count == 1 && repeated[0].snapshotUpdates.isEmpty)
    }

    @Test("a snapshot larger than the staging bound is refused with limitExceeded and leaves V alone")
    func snapshotBound() {
        var reader = replica(b) { $0.maximumSnapshotBytes = 64 }
        let objects = (0..<20).map { KeyedDelta(key: "key-\($0 + 10)", value: .register(LWWRegister<String>())) }
        let vector = VersionVector([(a, UInt64(20))])
        let first = SnapshotChunk(domain: "d", identifier: 1, index: 0, total: 2, vector: vector, objects: objects)
        let actions = reader.receive(.snapshot(first), from: a, now: t0)
        #expect(failures(actions).map(\.code) == [.limitExceeded])
        #expect(reader.vector(of: "d")?[a] == 0)
    }

    @Test("a snapshot claiming writes of the receiver it never issued is refused")
    func forgedSnapshot() {
        var reader = replica(b)
        let chunk = SnapshotChunk(
            domain: "d", identifier: 1, index: 0, total: 1, vector: VersionVector([(b, UInt64(9))]), objects: [])
        #expect(failures(reader.receive(.snapshot(chunk), from: a, now: t0)).map(\.code) == [.invalidDelta])
        #expect(reader.vector(of: "d")?[b] == 0)
    }

    @Test("when every peer's digest covers a delta, it is stable and leaves the log")
    func stabilityTruncates() throws {
        var left = replica(a, peers: [b])
        var right = replica(b, peers: [a])
        let records = try writeIncrements(&left, count: 3)
        _ = right.receive(push(records), from: a, now: t0)
        #expect(left.metrics(of: "d")?.logCount == 3)
        let digest = ReplicationMessage.digest(isReply: true, vectors: [DomainVector(domain: "d", vector: right.vector(of: "d")!)])
        _ = left.receive(digest, from: b, now: at(10))
        _ = left.tick(now: at(10_000))
        #expect(left.metrics(of: "d")?.stable == VersionVector([(a, UInt64(3))]))
        #expect(left.metrics(of: "d")?.logCount == 0)
    }

    @Test("the log is bounded by bytes too, evicting the oldest deltas")
    func logByteCap() throws {
        var machine = replica(a) { $0.maximumLogBytes = 100 }
        for step in 0..<50 {
            _ = try machine.write(.insert("element-\(step)"), to: "s", in: "d", now: at(UInt64(step)))
            _ = machine.tick(now: at(UInt64(step)))
        }
        let metrics = try #require(machine.metrics(of: "d"))
        #expect(metrics.logBytes <= 100 && metrics.logEvictions > 0)
        #expect(machine.invariantViolation() == nil)
    }

    @Test("a replica restored from its persisted state keeps its vector, objects and log and continues its dots")
    func restore() throws {
        var machine = replica(a)
        _ = try writeIncrements(&machine, count: 3)
        let stored = machine.persisted
        var restored = ReplicaStateMachine(restoring: stored, peers: [b, c], seed: 9)
        #expect(restored.vector(of: "d") == machine.vector(of: "d"))
        #expect(restored.objects(in: "d") == machine.objects(in: "d"))
        #expect(restored.metrics(of: "d")?.logCount == 3)
        let next = try restored.write(.increment(1), to: "k", in: "d", now: at(100))
        #expect(next.id.sequence == 4)
        #expect(restored.latestTimestamp >= machine.latestTimestamp)
    }
}

// MARK: Write concern and reads

@Suite("write concern and reads")
struct ConcernTests {
    @Test("a write waiting for two replicas is acknowledged when the other replica's acknowledgement arrives")
    func writeConcern() throws {
        var writer = replica(a, peers: [b])
        let outcome = try writer.write(.increment(1), to: "k", in: "d", concern: .replicas(2), now: t0)
        #expect(acknowledgements(outcome.actions).isEmpty)
        let records = pushedRecords(writer.tick(now: t0))
        #expect(records.first?.requestsAcknowledgement == true)
        var other = replica(b, peers: [a])
        let reply = sends(other.receive(push(records), from: a, now: t0))
            .filter { $0.0.kind == "ack" }
        #expect(reply.count == 1)
        let done = writer.receive(reply[0].0, from: b, now: at(1))
        #expect(acknowledgements(done) == [outcome.id])
    }

    @Test("a push of many records asking for acknowledgement is answered once per origin, for the newest")
    func oneAcknowledgementPerOriginAndMessage() throws {
        // Each write waits for two replicas and is ticked on its own: three records asking for acknowledgement.
        var writer = replica(a, peers: [b, c])
        var outcomes: [WriteOutcome] = []
        var records: [DeltaRecord] = []
        for step in 0..<3 {
            outcomes.append(try writer.write(.increment(1), to: "k\(step)", in: "d", concern: .replicas(2), now: at(UInt64(step))))
            records += pushedRecords(writer.tick(now: at(UInt64(step))), to: b)
        }
        #expect(records.count == 3 && records.allSatisfy(\.requestsAcknowledgement))
        // A record of another origin in the same message, asking too.
        var third = replica(c, peers: [a, b])
        _ = try third.write(.increment(1), to: "j", in: "d", concern: .replicas(2), now: t0)
        let theirs = pushedRecords(third.tick(now: t0), to: b)
        #expect(theirs.count == 1)

        var receiver = replica(b, peers: [a, c])
        let actions = receiver.receive(push(records + theirs), from: a, now: at(5))
        #expect(deliveries(actions).count == 4)
        let answers = sends(actions).compactMap { message, peer -> (String, UInt64, PeerID)? in
            guard case .acknowledge(let domain, let sequence) = message else { return nil }
            return (domain, sequence, peer)
        }
        #expect(answers.map(\.2) == [a, c])
        #expect(answers.map(\.1) == [3, 1])
        // The one acknowledgement covers every write before it: all three concerns are met.
        let done = writer.receive(.acknowledge(domain: "d", sequence: answers[0].1), from: b, now: at(6))
        #expect(Set(acknowledgements(done)) == Set(outcomes.map(\.id)))
        // A message delivering one such record still answers it (nothing to coalesce).
        var single = replica(b, peers: [a, c])
        let one = sends(single.receive(push([records[0]]), from: a, now: at(5))).filter { $0.0.kind == "ack" }
        #expect(one.count == 1)
    }

    @Test("a majority concern counts digests as evidence of delivery")
    func majorityByDigest() throws {
        var writer = replica(a, peers: [b, c])
        let outcome = try writer.write(.increment(1), to: "k", in: "d", concern: .majority, now: t0)
        let digest = ReplicationMessage.digest(isReply: true, vectors: [DomainVector(domain: "d", vector: VersionVector([(a, UInt64(1))]))])
        #expect(acknowledgements(writer.receive(digest, from: c, now: at(1))) == [outcome.id])
    }

    @Test("a write concern not met in time fails with writeConcernTimeout")
    func concernTimeout() throws {
        var writer = replica(a, peers: [b]) { $0.writeConcernTimeoutMilliseconds = 100 }
        _ = try writer.write(.increment(1), to: "k", in: "d", concern: .replicas(2), now: t0)
        _ = writer.tick(now: t0)
        #expect(failures(writer.tick(now: at(500))).map(\.code) == [.writeConcernTimeout])
    }

    @Test("an acknowledgement of writes never issued is refused")
    func forgedAcknowledgement() {
        var writer = replica(a, peers: [b])
        #expect(failures(writer.receive(.acknowledge(domain: "d", sequence: 5), from: b, now: t0)).map(\.code) == [.invalidDelta])
    }

    @Test("a read from two replicas joins the remote state with the local one")
    func readTwo() throws {
        var left = replica(a, peers: [b])
        var right = replica(b, peers: [a])
        _ = try left.write(.insert("x"), to: "s", in: "d", now: t0)
        _ = try right.write(.insert("y"), to: "s", in: "d", now: t0)
        let request = sends(try left.read("s", in: "d", replicas: 2, id: 1, now: t0))
        #expect(request.count == 1)
        let reply = sends(right.receive(request[0].0, from: a, now: t0))
        let done = left.receive(reply[0].0, from: b, now: t0)
        let result = done.compactMap { if case .completeRead(let result) = $0 { return result } else { return nil } }
        guard case .set(let set)? = result.first?.value else {
            Issue.record("no set in \(result)")
            return
        }
        #expect(set.elements == ["x", "y"])
        #expect(result.first?.replicaCount == 2)
    }

    @Test("reads and writes waiting on peers are bounded: one too many is refused with limitExceeded")
    func pendingBounds() throws {
        var machine = replica(a, peers: [b]) {
            $0.maximumPendingReads = 1
            $0.maximumPendingWrites = 1
        }
        _ = try machine.read("s", in: "d", replicas: 2, id: 1, now: t0)
        do {
            _ = try machine.read("s", in: "d", replicas: 2, id: 2, now: t0)
            Issue.record("expected limitExceeded")
        } catch {
            #expect(error.code == .limitExceeded)
        }
        _ = try machine.write(.increment(1), to: "k", in: "d", concern: .replicas(2), now: t0)
        do {
            _ = try machine.write(.increment(1), to: "k", in: "d", concern: .replicas(2), now: t0)
            Issue.record("expected limitExceeded")
        } catch {
            #expect(error.code == .limitExceeded)
        }
        #expect(machine.vector(of: "d")?[a] == 1)
    }

    @Test("a local read completes at once; a read waiting for absent replicas times out; ids are unique")
    func readLocalAndTimeout() throws {
        var machine = replica(a, peers: [b]) { $0.readTimeoutMilliseconds = 50 }
        let local = try machine.read("s", in: "d", replicas: 1, id: 1, now: t0)
        #expect(local.count == 1)
        _ = try machine.read("s", in: "d", replicas: 2, id: 2, now: t0)
        #expect(throws: ReplicationError.self) { try machine.read("s", in: "d", replicas: 2, id: 2, now: t0) }
        _ = machine.tick(now: t0)
        #expect(failures(machine.tick(now: at(1_000))).map(\.code) == [.readTimeout])
    }
}

// MARK: Wire format

@Suite("wire format")
struct WireTests {
    static func sampleMessages() throws -> [ReplicationMessage] {
        var machine = replica(a)
        _ = try machine.write(.insert("x"), to: "s", in: "d", now: t0)
        _ = try machine.write(.setField("f", "v"), to: "m", in: "d", now: t0)
        _ = try machine.write(.assign("r"), to: "r", in: "d", now: t0)
        _ = try machine.write(.assignMultiValue("mv"), to: "mv", in: "d", now: t0)
        _ = try machine.write(.enable, to: "f", in: "d", now: t0)
        _ = try machine.write(.decrement(3), to: "c", in: "d", now: t0)
        let records = pushedRecords(machine.tick(now: t0))
        let objects = machine.objects(in: "d")!.sorted { $0.key < $1.key }.map { KeyedDelta(key: $0.key, value: $0.value) }
        return [
            push(records, sequence: 3, epoch: 9, dependencies: [VersionVector.Entry(replica: c, counter: 4)]),
            repair(records),
            .deltas(domain: "d", link: LinkHeader(epoch: 0, sequence: 0, dependencies: []), records: []),
            .announce(domain: "d", ranges: [SequenceRange(origin: a, first: 1, last: 9)]),
            .graft(domain: "d", vector: VersionVector([(b, UInt64(3))]), minimumEpoch: 4, joinsTree: true),
            .prune,
            .digest(isReply: true, vectors: [DomainVector(domain: "d", vector: VersionVector([(a, UInt64(3)), (c, UInt64(1))]))]),
            .snapshot(
                SnapshotChunk(
                    domain: "d", identifier: 77, index: 1, total: 2, vector: machine.vector(of: "d")!, objects: objects)),
            .acknowledge(domain: "d", sequence: 12),
            .readRequest(id: 5, domain: "d", key: "k"),
            .readReply(id: 5, domain: "d", key: "k", value: objects.first?.value),
            .readReply(id: 6, domain: "d", key: "k", value: nil),
            .beacon(root: a, round: 1234),
        ]
    }

    @Test("every message kind round-trips through its encoding, and encodedByteCount matches")
    func roundTrip() throws {
        for message in try Self.sampleMessages() {
            let bytes = message.encoded()
            #expect(message.encodedByteCount == bytes.count)
            let decoded = try ReplicationMessage.decode(bytes)
            #expect(decoded == message)
            #expect(decoded.encoded() == bytes)
        }
    }

    @Test("every strict prefix of an encoded message is refused with a typed error, never a trap")
    func truncations() throws {
        for message in try Self.sampleMessages() {
            let bytes = message.encoded()
            for length in 0..<bytes.count {
                #expect(throws: CodecError.self) { try ReplicationMessage.decode(Array(bytes[..<length])) }
            }
        }
    }

    @Test("undecodable bytes from a peer become a malformedMessage failure and leave the state untouched")
    func malformedBytes() throws {
        var machine = replica(a)
        _ = try machine.write(.increment(1), to: "k", in: "d", now: t0)
        let before = machine.vector(of: "d")
        let actions = machine.receive([1, 99, 0, 0], from: b, now: t0)
        #expect(failures(actions).map(\.code) == [.malformedMessage])
        #expect(machine.vector(of: "d") == before)
        #expect(machine.invariantViolation() == nil)
    }
}
