#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MeshRESP
import MeshRESPServer
import NIOCore
import StateMesh
import Testing

@Suite(.serialized) struct RESPMeshBehaviourTests {
    /// A write through one node is read through another; WAIT counts the peers that delivered it.
    @Test func writesReplicateAndWaitCountsPeers() async throws {
        let mesh = try await RESPMesh(count: 3)
        let a = try mesh.client(0)
        let b = try mesh.client(1)
        try await a.call("SADD", "s", "x", "y")
        try await a.call("HSET", "fabric://fleet/agent-7", "status", "up")
        #expect(try await a.call("WAIT", "2", "30000").integer == 2)
        #expect(try await b.call("SMEMBERS", "s").texts == ["x", "y"])
        #expect(try await b.call("HGET", "fabric://fleet/agent-7", "status").text == "up")
        // With one peer offline, WAIT 2 gives up after its timeout and answers 1.
        let c = try mesh.client(2)
        #expect(try await c.call("MESH", "OFFLINE").text == "OK")
        try await a.call("INCR", "n")
        #expect(try await a.call("WAIT", "1", "30000").integer == 1)  // B has it (a loaded machine may take a while)
        let started = ContinuousClock.now
        #expect(try await a.call("WAIT", "2", "300").integer == 1)
        #expect(ContinuousClock.now - started >= .milliseconds(250))
        #expect(try await c.call("MESH", "ONLINE").text == "OK")
        #expect(try await a.call("WAIT", "2", "30000").integer == 2)
        await mesh.stop()
    }

    /// Concurrent writes on disconnected nodes merge by the CRDT rules: add-wins sets, observed-reset
    /// counters, one LWW value everywhere.
    @Test func concurrentWritesMerge() async throws {
        let mesh = try await RESPMesh(count: 2)
        let a = try mesh.client(0)
        let b = try mesh.client(1)
        try await a.call("SADD", "s", "x")
        try await a.call("INCRBY", "c", "10")
        #expect(try await a.call("WAIT", "1", "30000").integer == 1)
        #expect(try await b.call("MESH", "OFFLINE").text == "OK")
        #expect(try await a.call("SREM", "s", "x").integer == 1)  // A removes the x it saw...
        #expect(try await b.call("SADD", "s", "x").integer == 0)  // ...while B re-adds it: the add wins.
        #expect(try await a.call("DEL", "c").integer == 1)  // A resets the 10 it saw...
        #expect(try await b.call("INCRBY", "c", "3").integer == 13)  // ...while B adds 3: 3 survives.
        try await a.call("SET", "r", "from-a")
        try await b.call("SET", "r", "from-b")
        #expect(try await b.call("MESH", "ONLINE").text == "OK")
        let converged = await eventually(timeout: .seconds(60)) {
            let left = try await [a.call("SMEMBERS", "s"), a.call("GET", "c"), a.call("GET", "r")]
            let right = try await [b.call("SMEMBERS", "s"), b.call("GET", "c"), b.call("GET", "r")]
            return left == right && left[1].text == "3"
        }
        #expect(converged)
        #expect(try await a.call("SMEMBERS", "s").texts == ["x"])
        #expect(["from-a", "from-b"].contains(try await a.call("GET", "r").text ?? ""))
        await mesh.stop()
    }

    /// A PSUBSCRIBE on one node receives keyspace and keyevent notifications of writes made on
    /// another node (remote) and on its own node (local).
    @Test func keyspaceNotificationsOfRemoteChanges() async throws {
        let mesh = try await RESPMesh(count: 2)
        let subscriber = try mesh.client(1)
        let reply = try await subscriber.call("PSUBSCRIBE", "__keyspace@0__:*")
        #expect(reply.texts == ["psubscribe", "__keyspace@0__:*"])
        try await subscriber.send(RESPClient.encode(["SUBSCRIBE", "__keyevent@0__:sadd"]))
        #expect(try await subscriber.read().texts == ["subscribe", "__keyevent@0__:sadd"])
        let writer = try mesh.client(0)
        try await writer.call("SADD", "remote-set", "m")
        var got: [[String]] = []
        while got.count < 2 { got.append(try #require(try await subscriber.read().texts)) }
        #expect(got.contains(["pmessage", "__keyspace@0__:*", "__keyspace@0__:remote-set", "sadd"]))
        #expect(got.contains(["message", "__keyevent@0__:sadd", "remote-set"]))
        // Only subscription commands (and PING) are allowed in RESP2 subscribed mode.
        try await subscriber.send(RESPClient.encode(["GET", "x"]))
        #expect(try await subscriber.read().errorLine?.hasPrefix("ERR Can't execute 'get'") == true)
        // A write through the subscriber's own node is notified too, once per command.
        let local = try mesh.client(1)
        try await local.call("INCR", "local-counter")
        #expect(try await subscriber.read().texts == ["pmessage", "__keyspace@0__:*", "__keyspace@0__:local-counter", "incrby"])
        try await local.call("SADD", "local-set", "a", "b", "c")
        try await local.call("SREM", "local-set", "a", "b", "c")
        var events: [String] = []
        while events.count < 3 {
            let message = try #require(try await subscriber.read().texts)
            if message.first == "pmessage" { events.append(message[3]) }  // the keyevent channel also sees the sadd
        }
        #expect(events == ["sadd", "srem", "del"])
        // A DEL on another node arrives as `del`, whatever the type.
        try await writer.call("DEL", "remote-set")
        #expect(try await subscriber.read().texts == ["pmessage", "__keyspace@0__:*", "__keyspace@0__:remote-set", "del"])
        await mesh.stop()
    }

    /// Keys that reach a node in a snapshot (it was offline while its peer's log moved past what it
    /// had) are notified too, each once, named as a remote delta of the peer's object would be.
    @Test func keyspaceNotificationsOfASnapshot() async throws {
        let mesh = try await RESPMesh(count: 2, nodeTuning: { $0.replication.maximumLogDeltas = 2 })
        let writer = try mesh.client(0)
        let reader = try mesh.client(1)
        try await writer.call("SET", "before", "1")
        try await writer.call("SET", "unchanged", "1")
        let arrived = await eventually(timeout: .seconds(30)) {
            (try? await reader.call("GET", "unchanged").text) == "1"
        }
        try #require(arrived)
        #expect(try await reader.call("MESH", "OFFLINE").text == "OK")
        let subscriber = try mesh.client(1)
        #expect(try await subscriber.call("PSUBSCRIBE", "__keyspace@0__:*").texts == ["psubscribe", "__keyspace@0__:*"])
        // Each write its own delta-group (a tick apart), so the log of two keeps the last two only.
        for index in 0..<5 {
            try await writer.call("SADD", "set-\(index)", "m")
            try await Task.sleep(for: .milliseconds(40))
        }
        try await writer.call("DEL", "before")
        try await Task.sleep(for: .milliseconds(40))
        try await writer.call("HSET", "hash", "f", "v")
        #expect(try await reader.call("MESH", "ONLINE").text == "OK")
        var got: Set<[String]> = []
        while got.count < 7 { got.insert(try #require(try await subscriber.read().texts)) }
        let expected = (0..<5).map { ["pmessage", "__keyspace@0__:*", "__keyspace@0__:set-\($0)", "sadd"] } + [
            ["pmessage", "__keyspace@0__:*", "__keyspace@0__:before", "del"],
            ["pmessage", "__keyspace@0__:*", "__keyspace@0__:hash", "hset"],
        ]
        #expect(got == Set(expected))
        let sent = await mesh.node(0).status().traffic.messagesSent["snapshot"] ?? 0
        #expect(sent > 0, "the catch-up was not a snapshot")
        // Nothing more: "unchanged" was not in it as a change, and no key came twice.
        try await reader.call("SET", "marker", "1")
        #expect(try await subscriber.read().texts == ["pmessage", "__keyspace@0__:*", "__keyspace@0__:marker", "set"])
        await mesh.stop()
    }

    /// Changes from another node are notified again after the last subscription went and a new one came
    /// (the server has the node report deliveries only while someone is subscribed).
    @Test func remoteNotificationsAfterResubscribing() async throws {
        let mesh = try await RESPMesh(count: 2)
        let subscriber = try mesh.client(1)
        #expect(try await subscriber.call("SUBSCRIBE", "__keyevent@0__:incrby").texts == ["subscribe", "__keyevent@0__:incrby"])
        let writer = try mesh.client(0)
        try await writer.call("INCR", "first")
        #expect(try await subscriber.read().texts == ["message", "__keyevent@0__:incrby", "first"])
        #expect(try await subscriber.call("UNSUBSCRIBE").texts == ["unsubscribe", "__keyevent@0__:incrby"])
        try await writer.call("INCR", "unheard")
        #expect(try await writer.call("WAIT", "1", "30000").integer == 1)  // delivered there while nobody listened
        #expect(try await subscriber.call("PSUBSCRIBE", "__keyevent@0__:*").texts == ["psubscribe", "__keyevent@0__:*"])
        try await writer.call("INCR", "second")
        #expect(try await subscriber.read().texts == ["pmessage", "__keyevent@0__:*", "__keyevent@0__:incrby", "second"])
        await mesh.stop()
    }

    /// Requests split into single bytes, and 1,000 commands pipelined in one send, are answered in order.
    @Test func byteAtATimeAndPipelined() async throws {
        let mesh = try await RESPMesh(count: 1)
        let client = try mesh.client(0)
        for byte in RESPClient.encode(["SET", "k", "value"]) + Array("PING\r\n".utf8) { try await client.send([byte]) }
        #expect(try await client.read().text == "OK")
        #expect(try await client.read().text == "PONG")
        var pipeline: [UInt8] = []
        for _ in 0..<1_000 { pipeline += RESPClient.encode(["INCR", "p"]) }
        try await client.send(pipeline)
        for expected in 1...1_000 { #expect(try await client.read().integer == Int64(expected)) }
        await mesh.stop()
    }

    /// A malformed request gets a protocol error and closes only its own connection.
    @Test func protocolErrorClosesOnlyThatConnection() async throws {
        let mesh = try await RESPMesh(count: 1) { $0.maximumPipelineBytes = 1 << 20 }
        let good = try mesh.client(0)
        try await good.call("SET", "k", "v")
        for garbage in ["*abc\r\n", "*1\r\n+oops\r\n", "*2000000000\r\n", "*1\r\n$99999999999\r\n", "\"unbalanced\r\n"] {
            let bad = try mesh.client(0)
            try await bad.send(Array(garbage.utf8))
            #expect(try await bad.read().errorLine?.hasPrefix("ERR Protocol error") == true, "\(garbage.debugDescription)")
            #expect(await bad.isClosedByServer())
        }
        // More unexecuted bytes than the query buffer limit: refused, connection closed.
        let flood = try mesh.client(0)
        try? await flood.send(Array("*2\r\n$3\r\nGET\r\n$4000000\r\n".utf8) + [UInt8](repeating: 120, count: 1_200_000))
        #expect(try await flood.read().errorLine?.contains("query buffer limit") == true)
        #expect(try await good.call("GET", "k").text == "v")
        await mesh.stop()
    }

    /// 10,000 pipelined garbage and oversized requests on several connections neither crash the node
    /// nor disturb another client's writes, which all succeed in order.
    @Test func tenThousandGarbageRequestsDoNotDisturbOtherClients() async throws {
        let mesh = try await RESPMesh(count: 1) { $0.limits.maximumBulkBytes = 1 << 16 }
        let port = mesh.port(0)
        let writer = Task.detached { () throws -> [Int64] in
            let client = try RESPClient(port: port)
            var values: [Int64] = []
            for _ in 0..<500 { values.append(try await client.call("INCR", "steady").integer ?? -1) }
            return values
        }
        var generator = SystemRandomNumberGenerator()
        var requests = 0
        var connections = 0
        while requests < 10_000 {
            let bad = try RESPClient(port: port)
            connections += 1
            var bytes: [UInt8] = []
            // A pipeline of requests, each garbage in its own way; the first malformed one ends the connection.
            for index in 0..<250 {
                switch (index + connections) % 6 {
                case 0: bytes += (0..<Int.random(in: 1...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                case 1: bytes += Array("*999999999\r\n".utf8)
                case 2: bytes += Array("*1\r\n$99999999999\r\n".utf8)
                case 3: bytes += Array("*1\r\n$70000\r\n".utf8) + [UInt8](repeating: 65, count: 70_000) + [13, 10]
                case 4: bytes += Array("SET \"a\\xZZ\" b\r\n".utf8) + [UInt8](repeating: 66, count: 70_000)
                default: bytes += RESPClient.encode(["NOSUCHCOMMAND", String(index)])
                }
                requests += 1
            }
            try? await bad.send(bytes)
            _ = await bad.isClosedByServer()
        }
        let values = try await writer.value
        #expect(values == Array(1...500))
        let check = try mesh.client(0)
        #expect(try await check.call("GET", "steady").text == "500")
        let info = try #require(try await check.call("INFO", "stats").text)
        #expect(info.contains("protocol_errors:"))
        #expect(await mesh.node(0).status().storageFailed == false)
        await mesh.stop()
    }

    /// A client's subscriptions are bounded: past the limit SUBSCRIBE answers an error and the client
    /// keeps the ones it has (and may still resubscribe to them).
    @Test func subscriptionsAreBounded() async throws {
        let mesh = try await RESPMesh(count: 1) { $0.maximumSubscriptionsPerClient = 3 }
        let client = try mesh.client(0)
        try await client.send(RESPClient.encode(["HELLO", "3"]))
        _ = try await client.read()
        for channel in ["a", "b", "c"] {
            #expect(try await client.call("SUBSCRIBE", channel).texts == ["subscribe", channel])
        }
        #expect(try await client.call("PSUBSCRIBE", "d*").errorLine?.hasPrefix("ERR this client already has 3 subscriptions") == true)
        #expect(try await client.call("SUBSCRIBE", "a").texts == ["subscribe", "a"])
        #expect(try await client.call("PING").text == "PONG")
        await mesh.stop()
    }

    /// More clients than `maximumClients` are refused with Redis's error; the others keep working.
    @Test func clientLimit() async throws {
        let mesh = try await RESPMesh(count: 1) { $0.maximumClients = 2 }
        let first = try mesh.client(0)
        let second = try mesh.client(0)
        #expect(try await first.call("PING").text == "PONG")
        #expect(try await second.call("PING").text == "PONG")
        let third = try mesh.client(0)
        #expect(try await third.read().errorLine == "ERR max number of clients reached")
        #expect(try await first.call("PING").text == "PONG")
        await mesh.stop()
    }
}
