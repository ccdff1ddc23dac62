import Dispatch
import MeshCRDT
import Testing

@testable import MeshReplication

@Suite("shared merge results")
struct SharedMergeTests {
    func identity(_ value: ObjectValue) -> ObjectIdentity? {
        var value = value
        return withUnsafeMutablePointer(to: &value) { ObjectIdentity(of: $0) }
    }

    func identity(of key: String, at machine: ReplicaStateMachine) -> ObjectIdentity? {
        machine.value(of: key, in: "d").flatMap(identity)
    }

    @Test("an identity names a value's storage: a copy has it, an equal value built apart and a changed copy do not")
    func identityIsStorage() {
        var set = ORSet<String>()
        _ = set.insert("x", at: a)
        var apart = ORSet<String>()
        _ = apart.insert("x", at: a)
        #expect(set == apart)
        let value = ObjectValue.set(set)
        #expect(identity(value) != nil)
        #expect(identity(value) == identity(value))
        #expect(identity(value) != identity(.set(apart)), "equal values in separate storage")
        var changed = value
        changed.merge(.set(ORSet<String>().inserting("y", at: b)))
        #expect(identity(changed) != identity(value))

        var counter = PNCounter()
        _ = counter.increment(by: 3, at: a)
        _ = counter.increment(by: 4, at: b)  // more than one replica: the counts leave the inline case
        let counted = ObjectValue.counter(counter)
        let copy = counted
        #expect(identity(copy) == identity(counted))
        #expect(identity(counted) != identity(value), "another case")
        #expect(identity(.register(LWWRegister<String>())) == nil, "registers are merged, not shared")
    }

    @Test("replicas that share merge results end with the state merging gives, in shared storage")
    func replicasShareStorage() throws {
        var origin = replica(a) { $0.sharesMergeResults = true }
        var records: [DeltaRecord] = []
        let writes: [(WriteOperation, String)] = [
            (.insert("x"), "set"), (.setField("f", "1"), "map"), (.increment(2), "counter"),
            (.assignMultiValue("v"), "mv"), (.enable, "flag"), (.assign("r"), "register"),
            (.insert("y"), "set"), (.setField("g", "2"), "map"), (.increment(5), "counter"),
            (.remove("x"), "set"), (.assignMultiValue("w"), "mv"), (.disable, "flag"), (.assign("s"), "register"),
        ]
        for (step, (operation, key)) in writes.enumerated() {
            _ = try origin.write(operation, to: key, in: "d", now: at(UInt64(step)))
            records.append(contentsOf: pushedRecords(origin.tick(now: at(UInt64(step)))))
        }
        #expect(records.count == writes.count)

        var first = replica(b) { $0.sharesMergeResults = true }
        var second = replica(c) { $0.sharesMergeResults = true }
        var plain = replica(c)
        for machine in [0, 1, 2] {
            for record in records {
                let message = repair([record])
                let actions: [ReplicationAction]
                switch machine {
                case 0: actions = first.receive(message, from: a, now: at(100))
                case 1: actions = second.receive(message, from: a, now: at(100))
                default: actions = plain.receive(message, from: a, now: at(100))
                }
                #expect(failures(actions).isEmpty)
            }
        }
        for key in ["set", "map", "counter", "mv", "flag", "register"] {
            let expected = origin.value(of: key, in: "d")
            #expect(first.value(of: key, in: "d") == expected, "\(key)")
            #expect(second.value(of: key, in: "d") == expected, "\(key)")
            #expect(plain.value(of: key, in: "d") == expected, "\(key)")
            if key != "register" {
                // The second replica took the first one's results: the same storage.
                let shared = identity(of: key, at: second)
                #expect(shared != nil && shared == identity(of: key, at: first), "\(key)")
            }
            if key == "set" || key == "map" {
                // Not by chance: merging built these in new storage, and the plain replica has its own.
                #expect(identity(of: key, at: plain) != identity(of: key, at: first), "\(key): the plain one merged")
            }
        }
        #expect(first.invariantViolation() == nil && second.invariantViolation() == nil)
    }

    @Test("a replica whose object is another version merges itself, and takes an equal published result")
    func missesMergeAndReadoptEqualResults() throws {
        var origin = replica(a) { $0.sharesMergeResults = true }
        var records: [DeltaRecord] = []
        for (step, element) in ["x", "y", "z"].enumerated() {
            _ = try origin.write(.insert(element), to: "s", in: "d", now: at(UInt64(step)))
            records.append(contentsOf: pushedRecords(origin.tick(now: at(UInt64(step)))))
        }
        let shared = SharedMerges()
        let base = ObjectValue.set(ORSet<String>().inserting("q", at: b))
        var merged = base
        merged.merge(records[0].updates[0].value)
        let baseIdentity = try #require(identity(base))
        // (Results are bound first: the table is noncopyable, and the expectation macros copy what they call.)
        let published = shared.publish(at: 0, identity: baseIdentity, base: base, result: merged)
        #expect(published == nil)
        let found = shared.result(at: 0, identity: baseIdentity)
        #expect(found.flatMap(identity) == identity(merged))
        let otherUpdate = shared.result(at: 1, identity: baseIdentity)
        #expect(otherUpdate == nil, "another update of the record")
        // The same merge done apart gives an equal value in other storage: the published one is taken.
        var again = ObjectValue.set(ORSet<String>().inserting("q", at: b))
        let againIdentity = try #require(identity(again))
        let missed = shared.result(at: 0, identity: againIdentity)
        #expect(missed == nil)
        again.merge(records[0].updates[0].value)
        let adopted = shared.publish(at: 0, identity: againIdentity, base: base, result: again)
        let taken = try #require(adopted)
        #expect(identity(taken) == identity(merged))

        // A replica with a local write of its own to the key misses and still ends right.
        var sharing = replica(b) { $0.sharesMergeResults = true }
        _ = try sharing.write(.insert("mine"), to: "s", in: "d", now: at(0))
        var plain = replica(b)
        _ = try plain.write(.insert("mine"), to: "s", in: "d", now: at(0))
        for record in records {
            _ = sharing.receive(repair([record]), from: a, now: at(10))
            _ = plain.receive(repair([record]), from: a, now: at(10))
        }
        #expect(sharing.value(of: "s", in: "d") == plain.value(of: "s", in: "d"))
        if case .set(let set)? = sharing.value(of: "s", in: "d") {
            #expect(set.elements == ["mine", "x", "y", "z"])
        } else {
            Issue.record("no set")
        }
    }

    @Test("replicas on several threads publish and look up at once: each finds its own result or none")
    func concurrentPublishing() throws {
        let shared = SharedMerges()
        let bases = (0..<16).map { ObjectValue.set(ORSet<String>().inserting("b\($0)", at: b)) }
        let delta = ObjectValue.set(ORSet<String>().inserting("x", at: a))
        let results = bases.map { base -> ObjectValue in
            var merged = base
            merged.merge(delta)
            return merged
        }
        let identities = try bases.map { try #require(identity($0)) }
        DispatchQueue.concurrentPerform(iterations: bases.count) { index in
            _ = shared.publish(at: 0, identity: identities[index], base: bases[index], result: results[index])
        }
        var found = 0
        for index in bases.indices {
            guard let result = shared.result(at: 0, identity: identities[index]) else { continue }
            #expect(result == results[index], "base \(index) got another base's result")
            found += 1
        }
        // A publisher counts the entries of the list it swaps in, so the bound holds under races.
        #expect(found == SharedMerges.maximumEntriesPerUpdate)
    }
}

extension ORSet {
    fileprivate func inserting(_ element: Element, at replica: ReplicaID) -> ORSet {
        var copy = self
        _ = copy.insert(element, at: replica)
        return copy
    }
}
