import Foundation
import MeshCRDT
import MeshCodec
import MeshMembership
import MeshReplication
import MeshSecurity
import MeshStorage
import StateMesh
import Testing

@Suite("MeshNode over encrypted loopback", .serialized)
struct NodeTests {
    /// Three nodes that each write counters, sets and maps converge to identical state and vectors.
    @Test func threeNodesConverge() async throws {
        let cluster = try Cluster(count: 3)
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let nodes = cluster.running
        #expect(await eventually { await nodes[0].status().peers.filter { $0.state == "alive" }.count == 2 })
        for (index, node) in nodes.enumerated() {
            for step in 0..<50 {
                try await node.counter("fabric://default/requests").increment(by: UInt64(step + 1))
                try await node.set("fabric://default/tasks").insert("task-\(index)-\(step)")
                try await node.map("fabric://default/agent-\(index)").set("step", to: "\(step)")
            }
            try await node.set("fabric://default/tasks").remove("task-\(index)-0")
        }
        #expect(await eventually { await converged(nodes) })
        let total = try await nodes[1].counter("fabric://default/requests").value()
        #expect(total == 3 * (1...50).reduce(0, +))
        let tasks = try await nodes[2].set("fabric://default/tasks").elements()
        #expect(tasks.count == 3 * 49)
        #expect(try await nodes[0].map("fabric://default/agent-2").value(forField: "step") == "49")
        await cluster.stopAll()
    }

    /// A node's view of its sessions follows `block`/`unblock` and offline mode at once, not at its next
    /// tick, and a peer that stops is seen as disconnected from the transport's event.
    @Test func sessionsFollowBlocksOfflineModeAndClosedSessions() async throws {
        let cluster = try Cluster(count: 3)
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let nodes = cluster.running
        func connected(_ node: MeshNode) async -> Set<String> {
            Set(await node.status().peers.filter(\.isConnected).map(\.nodeID))
        }
        let others = Set(nodes.dropFirst().map { "\($0.nodeID)" })
        #expect(await eventually { await connected(nodes[0]) == others })
        await nodes[0].block([nodes[1].nodeID])
        #expect(await connected(nodes[0]) == ["\(nodes[2].nodeID)"])
        await nodes[0].unblock([nodes[1].nodeID])
        #expect(await connected(nodes[0]) == others)
        await nodes[0].goOffline()
        #expect(await connected(nodes[0]).isEmpty)
        await nodes[0].goOnline()
        #expect(await connected(nodes[0]) == others)
        await cluster.stop(2)
        #expect(await eventually { await connected(nodes[0]) == ["\(nodes[1].nodeID)"] })
        await cluster.stopAll()
    }

    /// A write with `.replicas(3)` returns only once all three delivered it; a concern that cannot be met times out
    /// with `.writeConcernTimeout` while the write stays durable locally.
    @Test func writeConcern() async throws {
        let cluster = try Cluster(count: 3)
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let nodes = cluster.running
        #expect(await eventually { await nodes[0].status().peers.filter { $0.state == "alive" }.count == 2 })
        let address = try MeshAddress("fabric://default/confirmed")
        let register = try nodes[0].register(address.description)
        try await register.assign("everywhere", options: WriteOptions(concern: .replicas(3), timeout: .seconds(10)))
        // The write is acknowledged only after all three delivered it, so both others hold it already.
        #expect(try await nodes[1].register(address.description).value() == "everywhere")
        #expect(try await nodes[2].register(address.description).value() == "everywhere")
        // With node 2 cut off, three replicas cannot confirm in time; the write stays here.
        await nodes[0].block([nodes[2].nodeID])
        do {
            try await register.assign("cut off", options: WriteOptions(concern: .replicas(3), timeout: .milliseconds(500)))
            Issue.record("a write concern of 3 was met with one replica cut off")
        } catch let error as MeshError {
            #expect(error.code == .writeConcernTimeout)
        }
        #expect(try await register.value() == "cut off")
        await cluster.stopAll()
    }

    /// A read from two replicas sees a write the reading node has not received yet (gossip is slow here).
    ///
    /// The writer still pushes its write on its next tick (within 25 ms), so the reader may get it before
    /// it reads: an attempt counts only when the reader's own value was still 0, and each attempt uses a
    /// new counter. The quorum read follows at once and must see the write, pushed or not by then.
    @Test func readQuorumSeesWritesNotYetGossiped() async throws {
        let cluster = try Cluster(count: 2) { $0.replication.gossipIntervalMilliseconds = 60_000 }
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let nodes = cluster.running
        #expect(await eventually { await nodes[1].status().peers.first?.state == "alive" })
        var unseenAttempts = 0
        for attempt in 0..<5 where unseenAttempts == 0 {
            let address = "fabric://default/hits-\(attempt)"
            try await nodes[0].counter(address).increment(by: 5)
            guard try await nodes[1].counter(address).value() == 0 else { continue }
            unseenAttempts += 1
            let merged = try await nodes[1].counter(address).value(options: ReadOptions(replicas: 2))
            #expect(merged == 5)
        }
        #expect(unseenAttempts == 1, "the push reached the reader before its own read in all 5 attempts")
        await cluster.stopAll()
    }

    /// A subscriber on one node sees changes written on another, marked remote, with the right origin.
    @Test func subscriptionsSeeRemoteChanges() async throws {
        let cluster = try Cluster(count: 2)
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let nodes = cluster.running
        #expect(await eventually { await nodes[1].status().peers.first?.state == "alive" })
        let stream = try await nodes[1].changes(matching: "fabric://default/fleet/**")
        try await nodes[0].set("fabric://default/fleet/a/tasks").insert("t1")
        try await nodes[0].set("fabric://default/other").insert("ignored")
        try await nodes[0].counter("fabric://default/fleet/b/hits").increment()
        let seen = try await collect(stream) { $0.count == 2 }
        let origin = await nodes[0].replicaID
        #expect(seen.map(\.address.path) == ["fleet/a/tasks", "fleet/b/hits"])
        #expect(seen.allSatisfy { $0.kind == .remote && $0.origin == origin })
        await cluster.stopAll()
    }

    /// A node that catches up by snapshot (offline while its peer's log moved past what it had) streams
    /// one event per object the snapshot changed, and none for objects it left as they were.
    @Test func subscriptionsSeeSnapshotChanges() async throws {
        let cluster = try Cluster(count: 2) { $0.replication.maximumLogDeltas = 2 }
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let nodes = cluster.running
        #expect(await eventually { await nodes[1].status().peers.first?.state == "alive" })
        try await nodes[0].counter("fabric://default/unchanged").increment()
        try await nodes[0].counter("fabric://default/changed").increment()
        #expect(await eventually { await converged(nodes) })
        await nodes[1].goOffline()
        let stream = try await nodes[1].changes(matching: "fabric://default/**")
        // Each write its own delta-group (a tick apart): the log of two keeps the last two only.
        try await nodes[0].counter("fabric://default/changed").increment()
        for index in 0..<4 {
            try await Task.sleep(for: .milliseconds(40))
            try await nodes[0].set("fabric://default/new-\(index)").insert("m")
        }
        await nodes[1].goOnline()
        #expect(await eventually { await converged(nodes) })
        let events = try await collect(stream, timeout: .seconds(2)) { _ in false }
        var seen: [String: Int] = [:]
        for event in events { seen[event.address.path, default: 0] += 1 }
        #expect(seen == ["changed": 1, "new-0": 1, "new-1": 1, "new-2": 1, "new-3": 1])
        #expect(events.contains { $0.kind == .snapshot })
        #expect(await nodes[0].status().traffic.messagesSent["snapshot"] ?? 0 > 0)
        let changed = try #require(events.first { $0.address.path == "changed" })
        if case .counter(let counter)? = changed.value { #expect(counter.value == 2) } else { Issue.record("not a counter") }
        await cluster.stopAll()
    }

    /// A subscriber that resumes from its last position after the node restarted gets every missed change once.
    @Test func subscriberResumesAfterRestart() async throws {
        let cluster = try Cluster(count: 2)
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        #expect(await eventually { await cluster.node(1).status().peers.first?.state == "alive" })
        let stream = try await cluster.node(1).changes(matching: "fabric://default/**")
        for index in 0..<5 { try await cluster.node(0).counter("fabric://default/before-\(index)").increment() }
        let before = try await collect(stream) { $0.count == 5 }
        try #require(before.count == 5)
        let position = before[4].position
        // The consumer stops; node 1 restarts; node 0 keeps writing meanwhile.
        await cluster.stop(1)
        for index in 0..<20 { try await cluster.node(0).counter("fabric://default/missed-\(index)").increment() }
        try await cluster.start(1)
        #expect(await eventually { await converged(cluster.running) })
        let resumed = try await cluster.node(1).changes(matching: "fabric://default/**", after: position)
        // Everything missed, then nothing more for a moment (no repeats).
        let events = try await collect(resumed, timeout: .seconds(3)) { _ in false }
        var missed: [String: Int] = [:]
        for event in events { missed[event.address.path, default: 0] += 1 }
        print("resumed subscriber got", events.map { "\($0.address.path):\($0.kind)" })
        #expect(missed.keys.sorted() == (0..<20).map { "missed-\($0)" }.sorted())
        #expect(missed.values.allSatisfy { $0 == 1 })
        await cluster.stopAll()
    }

    /// Own writes are journaled as one row per group commit, not one per write, and a restart recovers
    /// every one of them.
    @Test func ownWritesJournalOneRowPerCommit() async throws {
        let cluster = try Cluster(count: 1) { $0.durability = .batched(intervalMilliseconds: 1_000) }
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let counter = try cluster.node(0).counter("fabric://default/hits")
        for _ in 0..<200 { try await counter.increment() }
        await cluster.stop(0)
        let store = try MeshStore(directory: cluster.directories[0])
        let rows = try store.records(after: 0, limit: 10_000)
        store.close()
        // A row per commit (the node also commits before each gossip tick sends), not one per write.
        #expect(rows.count >= 1 && rows.count < 50, "\(rows.count) journal rows for 200 writes")
        try await cluster.start(0)
        #expect(try await cluster.node(0).counter("fabric://default/hits").value() == 200)
        await cluster.stopAll()
    }

    /// In `batched` mode a write is committed about one interval after it was journaled with nothing else
    /// happening, and an idle node does not commit (its commits are scheduled by what it journals).
    @Test func batchedWriteCommitsWithinTheIntervalAndIdleNodeDoesNot() async throws {
        let cluster = try Cluster(count: 1) { $0.durability = .batched(intervalMilliseconds: 40) }
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let node = cluster.node(0)
        try await Task.sleep(for: .milliseconds(200))
        let before = await node.status().storageCommits
        try await node.counter("fabric://default/hits").increment()
        #expect(await eventually(timeout: .seconds(20)) { await node.status().storageCommits > before })
        let settled = await node.status().storageCommits
        try await Task.sleep(for: .milliseconds(300))
        #expect(await node.status().storageCommits == settled)
        await cluster.stop(0)
        try await cluster.start(0)
        #expect(try await cluster.node(0).counter("fabric://default/hits").value() == 1)
        await cluster.stopAll()
    }

    /// A consumer resumes from the position of any single write, even one inside a journal row that gathered
    /// several writes: after a restart it gets exactly the writes after that position, once each.
    @Test func subscriberResumesInsideAJournalRow() async throws {
        let cluster = try Cluster(count: 1) { $0.durability = .batched(intervalMilliseconds: 1_000) }
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let stream = try await cluster.node(0).changes(matching: "fabric://default/**")
        for index in 0..<10 { try await cluster.node(0).counter("fabric://default/key-\(index)").increment() }
        let seen = try await collect(stream) { $0.count == 10 }
        try #require(seen.count == 10)
        let position = seen[4].position
        await cluster.stop(0)
        try await cluster.start(0)
        let resumed = try await cluster.node(0).changes(matching: "fabric://default/**", after: position)
        let events = try await collect(resumed, timeout: .seconds(2)) { _ in false }
        #expect(events.map(\.address.path) == (5..<10).map { "key-\($0)" })
        #expect(events.allSatisfy { $0.kind == .local })
        await cluster.stopAll()
    }

    /// A node partitioned for longer than the suspicion timeout is declared dead, then rejoins by itself after
    /// the partition heals, and writes made on both sides converge.
    @Test func partitionedNodeRejoins() async throws {
        let cluster = try Cluster(count: 3)
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let nodes = cluster.running
        #expect(await eventually { await nodes[0].status().peers.filter { $0.state == "alive" }.count == 2 })
        let isolated = nodes[2].nodeID
        await nodes[2].block([nodes[0].nodeID, nodes[1].nodeID])
        await nodes[0].block([isolated])
        await nodes[1].block([isolated])
        let declaredDead = await eventually(timeout: .seconds(60)) {
            await nodes[0].status().peers.first { $0.nodeID == "\(isolated)" }?.state == "dead"
        }
        #expect(declaredDead)
        try await nodes[0].counter("fabric://default/split").increment(by: 2)
        try await nodes[2].counter("fabric://default/split").increment(by: 3)
        await nodes[2].unblock([nodes[0].nodeID, nodes[1].nodeID])
        await nodes[0].unblock([isolated])
        await nodes[1].unblock([isolated])
        let rejoined = await eventually(timeout: .seconds(60)) {
            for node in nodes where !(await node.status().peers.allSatisfy { $0.state == "alive" }) {
                return false
            }
            return true
        }
        #expect(rejoined)
        #expect(await eventually { await converged(nodes) })
        #expect(try await nodes[1].counter("fabric://default/split").value() == 5)
        await cluster.stopAll()
    }

    /// An unreachable (dead) node still holds back the stable vector, so the log keeps what it lacks; once it
    /// is decommissioned it is `left` everywhere and stability advances without it.
    @Test func decommissionReleasesStability() async throws {
        let cluster = try Cluster(count: 3)
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let nodes = cluster.running
        #expect(await eventually { await nodes[0].status().peers.filter { $0.state == "alive" }.count == 2 })
        let gone = nodes[2].nodeID
        await nodes[2].block([nodes[0].nodeID, nodes[1].nodeID])
        await nodes[0].block([gone])
        await nodes[1].block([gone])
        #expect(await eventually { await nodes[0].status().peers.first { $0.nodeID == "\(gone)" }?.state == "dead" })
        try await nodes[0].counter("fabric://default/after").increment()
        let mine = try #require(await nodes[0].replicaID)
        func stableCount() async -> UInt64 {
            await nodes[0].status().domains.first?.stable["\(mine.rawValue)"] ?? 0
        }
        // Node 1 has the write, but the dead node does not: it is not stable.
        #expect(await eventually { try! await nodes[1].counter("fabric://default/after").value() == 1 })
        try await Task.sleep(for: .milliseconds(600))
        #expect(await stableCount() == 0)

        try await nodes[0].decommission(gone)
        #expect(await eventually { await nodes[1].status().peers.first { $0.nodeID == "\(gone)" }?.state == "left" })
        #expect(await eventually { await stableCount() >= 1 })
        await cluster.stopAll()
    }

    /// A data directory that cannot hold a database is a clear `.storageFailed` error at start, and a
    /// wrong object type at an address is `.typeMismatch`, never an overwrite.
    @Test func storageAndTypeErrors() async throws {
        let cluster = try Cluster(count: 1)
        defer { cluster.removeDirectories() }
        // A regular file where the data directory should be.
        let blocker = cluster.directories[0]
        try FileManager.default.createDirectory(
            atPath: (blocker as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("not a directory".utf8)))
        let broken = try MeshNode(configuration: try cluster.configuration(0, seedPort: nil))
        await #expect(throws: MeshError.self) { try await broken.run() }
        try FileManager.default.removeItem(atPath: blocker)

        let node = try await cluster.start(0)
        try await node.counter("fabric://default/x").increment()
        do {
            try await node.set("fabric://default/x").insert("y")
            Issue.record("a set write to a counter succeeded")
        } catch let error as MeshError {
            #expect(error.code == .typeMismatch)
        }
        #expect(try await node.counter("fabric://default/x").value() == 1)
        await #expect(throws: MeshError.self) { try await node.set("fabric://default/x").elements() }
        await cluster.stopAll()
    }
}

@Suite("Change positions")
struct ChangePositionTests {
    /// A position survives its encoding, and damaged encodings are refused with a CodecError.
    @Test func positionEncodingRoundTripsAndRefusesDamage() throws {
        var position = ChangePosition()
        #expect(try ChangePosition(decoding: position.encoded()) == position)
        var vector = VersionVector()
        vector[ReplicaID(7)] = 3
        vector[ReplicaID(9)] = 1
        position = try ChangePosition(decoding: [1, 1, 5] + Array("fleet".utf8) + MeshCodec.encode(vector))
        #expect(position.vectors["fleet"] == vector)
        let bytes = position.encoded()
        #expect(try ChangePosition(decoding: bytes) == position)
        #expect(throws: CodecError.self) { try ChangePosition(decoding: Array(bytes.dropLast())) }
        #expect(throws: CodecError.self) { try ChangePosition(decoding: bytes + [0]) }
        #expect(throws: CodecError.self) { try ChangePosition(decoding: [2] + bytes.dropFirst()) }
    }
}

@Suite("Durability before sending", .serialized)
struct DurableBeforeSendingTests {
    /// In batched mode (commit timer far away) a write reaches a peer only after its origin committed it:
    /// a crash can never take from the origin a write a peer holds (the origin would reissue its dots).
    @Test func ownWritesAreCommittedBeforeTheyArePushed() async throws {
        let cluster = try Cluster(count: 2) { $0.durability = .batched(intervalMilliseconds: 10_000) }
        defer { cluster.removeDirectories() }
        try await cluster.startAll()
        let writer = cluster.node(0)
        let reader = cluster.node(1)
        #expect(await eventually { await reader.status().peers.first?.state == "alive" })
        // Five writes acknowledged (batched mode acknowledges once journaled) and the commit count read,
        // all in one turn of the node's loop: no tick can commit in between.
        let address = try MeshAddress("fabric://default/c")
        let (before, after) = try await writer.eventLoop.submit {
            try writer.assumeIsolated { node in
                let before = node.status().storageCommits
                for _ in 0..<5 { _ = try node.writeLocally(.increment(1), at: address) }
                return (before, node.status().storageCommits)
            }
        }.get()
        #expect(after == before)  // acknowledged, not committed yet
        #expect(await eventually { try! await reader.counter("fabric://default/c").value() == 5 })
        #expect(await writer.status().storageCommits > before)
        await cluster.stopAll()
    }
}

@Suite("Restarts", .serialized)
struct RestartTests {
    /// A restart keeps the replica ID, every write and the clock's high-water mark (a new LWW write wins over
    /// the old one even if the wall clock went back); a wiped data directory gets a new replica ID.
    @Test func restartKeepsIdentityAndWipeGivesANewOne() async throws {
        let cluster = try Cluster(count: 1)
        defer { cluster.removeDirectories() }
        let first = try await cluster.start(0)
        let original = try #require(await first.replicaID)
        for index in 0..<20 { try await first.register("fabric://default/r").assign("v\(index)") }
        try await first.counter("fabric://default/c").increment(by: 7)
        await cluster.stop(0)

        let second = try await cluster.start(0)
        #expect(await second.replicaID == original)
        #expect(try await second.register("fabric://default/r").value() == "v19")
        #expect(try await second.counter("fabric://default/c").value() == 7)
        try await second.register("fabric://default/r").assign("after restart")
        #expect(try await second.register("fabric://default/r").value() == "after restart")
        await cluster.stop(0)

        try FileManager.default.removeItem(atPath: cluster.directories[0])
        let wiped = try await cluster.start(0)
        let fresh = try #require(await wiped.replicaID)
        #expect(fresh != original)
        #expect(try await wiped.counter("fabric://default/c").value() == 0)
        await cluster.stopAll()
    }
}
