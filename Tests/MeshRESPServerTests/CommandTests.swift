import Foundation
import MeshRESP
import MeshRESPServer
import StateMesh
import Testing


/// Redis's reply to a command on a key of another type.
private let wrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"
/// How the front door's reply to bytes that are not UTF-8 text begins.
private let notText = "ERR StateMesh stores text"

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite(.serialized) struct RESPCommandTests {
    /// Counters: INCR/INCRBY/DECR/DECRBY answer the new value, GET the value as a string, overflow and
    /// non-integers are refused without writing.
    @Test func counters() async throws {
        let mesh = try await RESPMesh(count: 1)
        let client = try mesh.client(0)
        #expect(try await client.call("INCR", "c").integer == 1)
        #expect(try await client.call("INCRBY", "c", "41").integer == 42)
        #expect(try await client.call("DECR", "c").integer == 41)
        #expect(try await client.call("DECRBY", "c", "-9").integer == 50)
        #expect(try await client.call("GET", "c").text == "50")
        #expect(try await client.call("INCRBY", "c", "9223372036854775807").errorLine == "ERR increment or decrement would overflow")
        #expect(try await client.call("INCRBY", "c", "1x").errorLine == "ERR value is not an integer or out of range")
        #expect(try await client.call("INCRBY", "c", "01").errorLine == "ERR value is not an integer or out of range")
        #expect(try await client.call("GET", "c").text == "50")
        #expect(try await client.call("TYPE", "c").text == "string")
        await mesh.stop()
    }

    /// Strings: SET with NX/XX/GET, GET, GETSET, MSET/MGET (nil for keys of other types), TTL options refused.
    @Test func strings() async throws {
        let mesh = try await RESPMesh(count: 1)
        let client = try mesh.client(0)
        #expect(try await client.call("SET", "k", "v1").text == "OK")
        #expect(try await client.call("GET", "k").text == "v1")
        #expect(try await client.call("SET", "k", "v2", "NX") == .null)
        #expect(try await client.call("SET", "k", "v2", "XX", "GET").text == "v1")
        #expect(try await client.call("SET", "absent", "v", "XX") == .null)
        #expect(try await client.call("GET", "absent") == .null)
        #expect(try await client.call("GETSET", "k", "v3").text == "v2")
        #expect(try await client.call("SET", "k", "v", "NX", "XX").errorLine == "ERR syntax error")
        #expect(try await client.call("SET", "k", "v", "EX", "10").errorLine?.hasPrefix("ERR StateMesh does not support key expiry") == true)
        #expect(try await client.call("MSET", "a", "1", "b", "2").text == "OK")
        #expect(try await client.call("SADD", "s", "x").integer == 1)
        #expect(try await client.call("MGET", "a", "b", "nothing", "s").elements == [.bulkString(Array("1".utf8)), .bulkString(Array("2".utf8)), .null, .null])
        #expect(try await client.call("MSET", "a", "1", "s", "2").errorLine?.hasPrefix("WRONGTYPE") == true)
        #expect(try await client.call("GET", "a").text == "1")
        await mesh.stop()
    }

    /// Sets and hashes answer as Redis does: counts of what changed, membership, sorted listings.
    @Test func setsAndHashes() async throws {
        let mesh = try await RESPMesh(count: 1)
        let client = try mesh.client(0)
        #expect(try await client.call("SADD", "s", "a", "b", "a").integer == 2)
        #expect(try await client.call("SADD", "s", "b", "c").integer == 1)
        #expect(try await client.call("SREM", "s", "a", "zz", "a").integer == 1)
        #expect(try await client.call("SMEMBERS", "s").texts == ["b", "c"])
        #expect(try await client.call("SISMEMBER", "s", "b").integer == 1)
        #expect(try await client.call("SMISMEMBER", "s", "a", "c").elements == [.integer(0), .integer(1)])
        #expect(try await client.call("SCARD", "s").integer == 2)
        #expect(try await client.call("HSET", "h", "f1", "v1", "f2", "v2").integer == 2)
        #expect(try await client.call("HSET", "h", "f1", "w1", "f3", "v3").integer == 1)
        // One field (its own path in HSET): 1 when new, 0 when it was there; HMSET answers OK.
        #expect(try await client.call("HSET", "h1", "f", "v").integer == 1)
        #expect(try await client.call("HSET", "h1", "f", "w").integer == 0)
        #expect(try await client.call("HMSET", "h1", "g", "v").text == "OK")
        #expect(try await client.call("HGETALL", "h1").texts == ["f", "w", "g", "v"])
        #expect(try await client.call("DEL", "h1").integer == 1)
        #expect(try await client.call("HGET", "h", "f1").text == "w1")
        #expect(try await client.call("HMGET", "h", "f2", "nope").elements == [.bulkString(Array("v2".utf8)), .null])
        #expect(try await client.call("HDEL", "h", "f2", "nope").integer == 1)
        #expect(try await client.call("HGETALL", "h").texts == ["f1", "w1", "f3", "v3"])
        #expect(try await client.call("HKEYS", "h").texts == ["f1", "f3"])
        #expect(try await client.call("HVALS", "h").texts == ["w1", "v3"])
        #expect(try await client.call("HLEN", "h").integer == 2)
        #expect(try await client.call("HEXISTS", "h", "f3").integer == 1)
        #expect(try await client.call("HSET", "h", "odd").errorLine == "ERR wrong number of arguments for 'hset' command")
        #expect(try await client.call("TYPE", "s").text == "set")
        #expect(try await client.call("TYPE", "h").text == "hash")
        await mesh.stop()
    }

    /// Type conflicts answer Redis's WRONGTYPE line; unknown commands and wrong arity answer ERR naming them.
    @Test func errors() async throws {
        let mesh = try await RESPMesh(count: 1)
        let client = try mesh.client(0)
        try await client.call("SET", "str", "x")
        #expect(try await client.call("SADD", "str", "m").errorLine == wrongType)
        #expect(try await client.call("HGET", "str", "f").errorLine == wrongType)
        #expect(try await client.call("INCR", "str").errorLine == wrongType)
        try await client.call("SADD", "set", "m")
        #expect(try await client.call("GET", "set").errorLine == wrongType)
        #expect(try await client.call("SET", "set", "x").errorLine == wrongType)
        #expect(try await client.call("FLUSHALL").errorLine == "ERR unknown command 'FLUSHALL', with args beginning with: ")
        #expect(try await client.call("BLPOP", "a", "0").errorLine == "ERR unknown command 'BLPOP', with args beginning with: 'a' '0' ")
        #expect(try await client.call("GET").errorLine == "ERR wrong number of arguments for 'get' command")
        #expect(try await client.call("SELECT", "1").errorLine == "ERR DB index is out of range")
        #expect(try await client.call("SELECT", "0").text == "OK")
        #expect(try await client.call("SET", "bad", "\u{FF}").text == "OK")  // U+00FF is valid UTF-8 text
        #expect(try await client.call(bytes: [bytes("SET"), bytes("k"), [0xFF]]).errorLine?.hasPrefix(notText) == true)
        #expect(try await client.call("GET", "fabric://nowhere/k").errorLine == "ERR domain 'nowhere' is not replicated by this node")
        #expect(try await client.call("GET", "").errorLine == "ERR empty keys are not supported")
        // The connection is still fine after every error.
        #expect(try await client.call("PING").text == "PONG")
        await mesh.stop()
    }

    /// SADD and HSET on a key of another type answer WRONGTYPE before their members, fields or argument
    /// count are checked (one look-up does both); on a key of their type, bytes that are not UTF-8 answer
    /// the text error; text beyond ASCII (in and after the first eight bytes) is stored and read back as sent.
    @Test func typeCheckFirstAndTextBeyondASCII() async throws {
        let mesh = try await RESPMesh(count: 1)
        let client = try mesh.client(0)
        try await client.call("SET", "str", "x")
        #expect(try await client.call(bytes: [bytes("SADD"), bytes("str"), [0xFF]]).errorLine == wrongType)
        #expect(try await client.call(bytes: [bytes("HSET"), bytes("str"), [0xFF], bytes("v")]).errorLine == wrongType)
        #expect(try await client.call("HSET", "str", "f", "v", "g").errorLine == wrongType)
        try await client.call("SADD", "set", "m")
        try await client.call("HSET", "hash", "f", "v")
        #expect(try await client.call("HSET", "hash", "f", "v", "g").errorLine == "ERR wrong number of arguments for 'hset' command")
        #expect(try await client.call(bytes: [bytes("SADD"), bytes("set"), [0xFF]]).errorLine?.hasPrefix(notText) == true)
        // An invalid byte after eight valid ones (past the first word the ASCII check reads at once).
        let field = bytes("abcdefghi") + [0xFF]
        #expect(
            try await client.call(bytes: [bytes("HSET"), bytes("hash"), field, bytes("v")]).errorLine?.hasPrefix(notText)
                == true)
        #expect(
            try await client.call(bytes: [bytes("HSET"), bytes("hash"), bytes("g"), [0xFF]]).errorLine?.hasPrefix(notText)
                == true)
        #expect(try await client.call("HLEN", "hash").integer == 1)
        #expect(try await client.call("SADD", "sé", "mémbre", "ß", "abcdefgh-ü").integer == 3)
        #expect(try await client.call("SMEMBERS", "sé").texts == ["abcdefgh-ü", "mémbre", "ß"])
        #expect(try await client.call("HSET", "hé", "fïeld", "välue", "abcdefghijklmnop", "ωμέγα").integer == 2)
        #expect(try await client.call("HGET", "hé", "fïeld").text == "välue")
        #expect(try await client.call("HGET", "hé", "abcdefghijklmnop").text == "ωμέγα")
        #expect(try await client.call("INCR", "zähler").integer == 1)
        #expect(try await client.call("GET", "zähler").text == "1")
        await mesh.stop()
    }

    /// DEL is an observed removal: counters reset, sets and hashes empty, strings deleted; the key then
    /// does not exist, and a key keeps its type (a deleted set cannot become a string).
    @Test func deleteAndKeys() async throws {
        let mesh = try await RESPMesh(count: 1)
        let client = try mesh.client(0)
        try await client.call("INCRBY", "c", "5")
        try await client.call("SADD", "s", "a")
        try await client.call("HSET", "h", "f", "v")
        try await client.call("SET", "r", "v")
        try await client.call("SET", "fabric://fleet/agent-1/status", "up")
        #expect(try await client.call("DBSIZE").integer == 5)
        #expect(try await client.call("KEYS", "*").texts == ["c", "fabric://fleet/agent-1/status", "h", "r", "s"])
        #expect(try await client.call("KEYS", "[cs]").texts == ["c", "s"])
        #expect(try await client.call("EXISTS", "c", "s", "nope", "c").integer == 3)
        #expect(try await client.call("DEL", "c", "s", "h", "r", "nope").integer == 4)
        #expect(try await client.call("EXISTS", "c", "s", "h", "r").integer == 0)
        #expect(try await client.call("GET", "c") == .null)
        #expect(try await client.call("TYPE", "s").text == "none")
        #expect(try await client.call("DBSIZE").integer == 1)
        #expect(try await client.call("INCR", "c").integer == 1)  // counts again from the reset
        #expect(try await client.call("SET", "s", "x").errorLine?.hasPrefix("WRONGTYPE") == true)
        #expect(try await client.call("UNLINK", "fabric://fleet/agent-1/status").integer == 1)
        await mesh.stop()
    }

    /// SCAN visits every key exactly once across its cursors, honouring MATCH and TYPE.
    @Test func scanVisitsEveryKey() async throws {
        let mesh = try await RESPMesh(count: 1)
        let client = try mesh.client(0)
        for index in 0..<250 { try await client.call("SET", "key:\(index)", "v") }
        for index in 0..<20 { try await client.call("SADD", "set:\(index)", "m") }
        var seen: [String] = []
        var cursor = "0"
        repeat {
            let reply = try #require(try await client.call("SCAN", cursor, "COUNT", "37").elements)
            cursor = try #require(reply[0].text)
            seen += try #require(reply[1].texts)
        } while cursor != "0"
        #expect(seen.count == 270 && Set(seen).count == 270)
        var sets: [String] = []
        cursor = "0"
        repeat {
            let reply = try #require(try await client.call("SCAN", cursor, "MATCH", "*:1*", "TYPE", "set").elements)
            cursor = try #require(reply[0].text)
            sets += try #require(reply[1].texts)
        } while cursor != "0"
        #expect(Set(sets) == Set((10..<20).map { "set:\($0)" } + ["set:1"]))
        #expect(try await client.call("SCAN", "999").errorLine == "ERR invalid cursor")
        await mesh.stop()
    }

    /// HELLO 3 switches to RESP3 (maps, sets, nulls), AUTH gates everything when a password is set.
    @Test func helloAndAuth() async throws {
        let mesh = try await RESPMesh(count: 1) { $0.password = "s3cret" }
        let client = try mesh.client(0)
        #expect(try await client.call("GET", "k").errorLine == "NOAUTH Authentication required.")
        #expect(try await client.call("AUTH", "wrong").errorLine == "WRONGPASS invalid username-password pair or user is disabled.")
        let hello = try await client.call("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "tester")
        guard case .map(let fields) = hello else {
            Issue.record("HELLO 3 answered \(hello)")
            return
        }
        #expect(fields.count == 14 && fields[4] == .bulkString(Array("proto".utf8)) && fields[5] == .integer(3))
        #expect(try await client.call("CLIENT", "GETNAME").text == "tester")
        try await client.call("HSET", "h", "a", "1")
        #expect(try await client.call("HGETALL", "h") == .map([.bulkString(Array("a".utf8)), .bulkString(Array("1".utf8))]))
        #expect(try await client.call("GET", "nothing") == .null)
        try await client.call("SADD", "s", "x")
        #expect(try await client.call("SMEMBERS", "s") == .set([.bulkString(Array("x".utf8))]))
        #expect(try await client.call("HELLO", "4").errorLine == "NOPROTO unsupported protocol version")
        await mesh.stop()
    }

    /// INFO has the sections clients parse, with the peers and vectors of the replication section.
    @Test func infoAndCommand() async throws {
        let mesh = try await RESPMesh(count: 2)
        let client = try mesh.client(0)
        try await client.call("INCR", "c")
        let info = try #require(try await client.call("INFO").text)
        for line in ["# Server", "redis_version:", "# Clients", "connected_clients:1", "# Replication", "role:master",
            "mesh_peers:1", "peer0:node=", "state=alive", "domain_default_vector:", "# Stats", "total_commands_processed:",
            "# Keyspace", "db0:keys=1"]
        {
            #expect(info.contains(line), "INFO lacks \(line)")
        }
        let replication = try #require(try await client.call("INFO", "replication").text)
        #expect(!replication.contains("# Server") && replication.contains("# Replication"))
        #expect(try await client.call("COMMAND", "COUNT").integer ?? 0 > 40)
        #expect(try await client.call("CONFIG", "GET", "save").texts == ["save", ""])
        #expect(try await client.call("CLIENT", "ID").integer ?? 0 >= 1)
        #expect(try await client.call("ECHO", "hi").text == "hi")
        let status = await mesh.node(0).status()
        #expect(status.frontDoor?.clients == 1 && status.frontDoor?.endpoint.hasSuffix(":\(mesh.port(0))") == true)
        #expect(try await client.call("QUIT").text == "OK")
        #expect(await client.isClosedByServer())
        await mesh.stop()
    }
}
