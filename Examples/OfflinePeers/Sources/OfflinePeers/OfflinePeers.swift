import Foundation
import Logging
import MeshMembership
import MeshReplication
import MeshSecurity
import MeshStorage
import StateMesh
import Synchronization

// OfflinePeers: three peers (A, B, C), each a separate process with its own StateMesh node and
// SQLite data directory, keep writing while disconnected from each other. B is killed with
// SIGKILL in the middle of a stream of writes and restarted from its data directory. Then all
// three go online, meet again and converge. Every write a peer acknowledged (printed `ack`
// after the node returned from it) must be present on every peer at the end: PASS or FAIL.
//
// One executable plays both roles: run without arguments it is the coordinator, which starts
// itself again as `OfflinePeers peer NAME DIRECTORY [SEED_PORT...]` for each peer and talks to it
// over stdin/stdout, one command per line:
//
//   write PREFIX FIRST COUNT [PAUSE_MS]   insert PREFIX-FIRST ... into fabric://notebook/notes, `ack ELEMENT`
//                              after each, pausing PAUSE_MS between writes; `ok write` at the end
//   offline | online           MeshNode.goOffline() / goOnline(), answered `ok offline` / `ok online`
//   peers                      `peers N`: members this node sees alive and connected
//   members                    `members B=alive,C=dead`: how this node sees the others
//   dump                       `notes E1,E2,...` (sorted) and `vector R=C,...` (delivered version vector)
//   quit                       graceful shutdown, `bye`
#if canImport(Glibc)
    import Glibc
#endif

let notesAddress = "fabric://notebook/notes"
let peerNames = ["A", "B", "C"]

@main
enum OfflinePeers {
    static func main() async {
        let arguments = CommandLine.arguments
        if arguments.count >= 4, arguments[1] == "peer" {
            do {
                try await Peer.run(
                    name: arguments[2], directory: arguments[3],
                    seedPorts: arguments.dropFirst(4).compactMap { Int($0) })
                exit(0)
            } catch {
                FileHandle.standardError.write(Data("peer \(arguments[2]): \(error)\n".utf8))
                exit(1)
            }
        }
        do {
            exit(try await Coordinator().run() ? 0 : 1)
        } catch {
            show("FAIL: \(error)")
            exit(1)
        }
    }
}

// MARK: Peer mode (a child process)

enum Peer {
    /// Runs one node from `directory` (its identity, the allow-list, the cluster key, its data)
    /// and serves commands from stdin until `quit` or end of input.
    static func run(name: String, directory: String, seedPorts: [Int]) async throws {
        var logger = Logger(label: "peer-\(name)")
        logger.logLevel = .error
        let identity = try NodeIdentity.load(from: "\(directory)/keys/\(name).key")
        // `NAME PUBLIC-KEY-HEX` per line: the allow-list, and names for the members' node IDs.
        var names: [String: String] = [:]
        var allowed: [NodeID] = []
        for line in try String(contentsOfFile: "\(directory)/keys/allowed", encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ")
            let id = try NodeID(ed25519PublicKey: hexBytes(fields[1]))
            allowed.append(id)
            names["\(id)"] = String(fields[0])
        }
        let clusterKey = hexBytes(try String(contentsOfFile: "\(directory)/keys/cluster", encoding: .utf8))
        let admission = try AdmissionPolicy(allowedPeers: Set(allowed), epoch: 1, clusterKey: clusterKey)
        var configuration = MeshNodeConfiguration(
            identity: identity, admission: admission, dataDirectory: "\(directory)/data-\(name)")
        configuration.transport.host = "127.0.0.1"
        configuration.domains = [DomainConfiguration(name: "notebook")]
        // A write is acknowledged only after its commit reached the disk: a SIGKILL loses none of them.
        configuration.durability = .always
        configuration.replication.gossipIntervalMilliseconds = 50
        configuration.membership.probeIntervalMilliseconds = 200
        configuration.membership.probeTimeoutMilliseconds = 100
        configuration.seeds = seedPorts.map { MemberAddress(host: "127.0.0.1", port: $0) }
        let node = try MeshNode(configuration: configuration, logger: logger)
        // Peers start disconnected: nothing is exchanged until the coordinator says `online`.
        await node.goOffline()
        let runner = Task { try await node.run() }
        try await node.waitUntilRunning()
        let notes = try node.set(notesAddress)
        let recovered = try await notes.elements().count
        reply(
            "ready \(await node.listeningPort ?? 0) replica \(await node.replicaID.map { "\($0)" } ?? "?") notes \(recovered)"
        )

        for await line in standardInputLines() {
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "write" where words.count == 4 || words.count == 5:
                guard let first = Int(words[2]), let count = Int(words[3]) else {
                    reply("error bad write")
                    continue
                }
                let pause = words.count == 5 ? Int(words[4]) ?? 0 : 0
                for index in first..<(first + count) {
                    let element = "\(words[1])-\(index)"
                    try await notes.insert(element)
                    reply("ack \(element)")  // only after the node acknowledged the write (durable on disk)
                    if pause > 0 { try await Task.sleep(for: .milliseconds(pause)) }
                }
                reply("ok write")
            case "offline":
                await node.goOffline()
                reply("ok offline")
            case "online":
                await node.goOnline()
                reply("ok online")
            case "peers":
                let alive = await node.status().peers.filter { $0.state == "alive" && $0.isConnected }.count
                reply("peers \(alive)")
            case "members":
                let states = await node.status().peers.map { "\(names[$0.nodeID] ?? $0.nodeID)=\($0.state)" }
                reply("members " + states.sorted().joined(separator: ","))
            case "dump":
                reply("notes " + (try await notes.elements()).sorted().joined(separator: ","))
                let vector = await node.status().domains.first { $0.name == "notebook" }?.vector ?? [:]
                reply(
                    "vector " + vector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                )
            case "quit":
                await node.shutdown()
                _ = try? await runner.value
                reply("bye")
                return
            default:
                reply("error unknown command \(line)")
            }
        }
        await node.shutdown()
        _ = try? await runner.value
    }

    /// One line on stdout, unbuffered: once it is written the coordinator may rely on it.
    static func reply(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Lines of stdin, read on a thread of their own (blocking reads stay off Swift's cooperative pool).
    static func standardInputLines() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let thread = Thread {
            while let line = readLine() { continuation.yield(line) }
            continuation.finish()
        }
        thread.start()
        return stream
    }
}

func hexBytes(_ text: some StringProtocol) -> [UInt8] {
    let digits = Array(text.utf8).compactMap { byte -> UInt8? in
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
    return stride(from: 0, to: digits.count - 1, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

// MARK: Coordinator mode

/// Prints a line at once (unbuffered, so progress shows as it happens even through a pipe).
func show(_ line: String = "") {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Everything a child process printed, line by line, kept for the whole run.
final class OutputLines: Sendable {
    private let state = Mutex<(lines: [String], isClosed: Bool)>(([], false))

    func append(_ line: String) { state.withLock { $0.lines.append(line) } }
    func close() { state.withLock { $0.isClosed = true } }
    var lines: [String] { state.withLock { $0.lines } }
    var isClosed: Bool { state.withLock { $0.isClosed } }
}

struct PeerError: Error, CustomStringConvertible {
    let description: String
}

/// One running peer process and its output.
final class PeerProcess {
    let name: String
    let process = Process()
    private let input = Pipe()
    let output = OutputLines()
    /// Lines before this index have been consumed by `expect`.
    private var cursor = 0

    init(name: String, directory: String, seedPorts: [Int]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: Self.executablePath)
        process.arguments = ["peer", name, directory] + seedPorts.map(String.init)
        process.standardInput = input
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = self.output
        let reader = pipe.fileHandleForReading
        Thread {
            var pending = Data()
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                pending.append(data)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    output.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            output.close()
        }.start()
    }

    /// This program's own executable (to start it again in peer mode).
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    func send(_ command: String) throws {
        try input.fileHandleForWriting.write(contentsOf: Data((command + "\n").utf8))
    }

    /// Waits for the next line starting with `prefix` (after those already consumed) and returns it.
    func expect(_ prefix: String, timeout: Duration = .seconds(20)) async throws -> String {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let lines = output.lines
            if let index = lines[cursor...].firstIndex(where: { $0.hasPrefix(prefix) }) {
                cursor = index + 1
                return String(lines[index].dropFirst(prefix.count))
            }
            if let error = lines[cursor...].first(where: { $0.hasPrefix("error") }) {
                throw PeerError(description: "peer \(name): \(error)")
            }
            if output.isClosed { throw PeerError(description: "peer \(name) exited while we waited for \"\(prefix)\"") }
            guard ContinuousClock.now < deadline else {
                throw PeerError(description: "peer \(name) did not answer \"\(prefix)\" in time")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Sends `command` and waits for its answer.
    func ask(_ command: String, expecting prefix: String) async throws -> String {
        try send(command)
        return try await expect(prefix)
    }

    /// The elements this process printed `ack` for: acknowledged writes, durable on its disk.
    var acknowledged: [String] {
        output.lines.compactMap { $0.hasPrefix("ack ") ? String($0.dropFirst(4)) : nil }
    }

    /// The notes and the version vector the peer holds now.
    func dump() async throws -> (notes: Set<String>, vector: String) {
        try send("dump")
        let notes = try await expect("notes ")
        let vector = try await expect("vector ")
        return (Set(notes.split(separator: ",").map(String.init)), vector)
    }

    /// SIGKILLs the process and waits until everything it printed before dying has been read.
    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        while !output.isClosed { usleep(1_000) }
    }
}

final class Coordinator {
    let started = ContinuousClock.now

    func say(_ text: String) {
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        let tenths = seconds * 10 + attoseconds / 100_000_000_000_000_000
        let stamp = "\(tenths / 10).\(tenths % 10)s"
        show("[\(String(repeating: " ", count: max(0, 6 - stamp.count)))\(stamp)] \(text)")
    }

    /// Runs the scenario; returns whether every acknowledged write ended up on every peer.
    func run() async throws -> Bool {
        show("OfflinePeers: three peer processes (A, B, C), each a StateMesh node with its own SQLite data directory\n")
        var template = Array("/tmp/statemesh-offline-peers-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // Keys: an identity file per peer, the allow-list of public keys, one cluster key.
        try FileManager.default.createDirectory(atPath: "\(directory)/keys", withIntermediateDirectories: true)
        var publicKeys: [String] = []
        for name in peerNames {
            let identity = try NodeIdentity.generate()
            try identity.save(to: "\(directory)/keys/\(name).key")
            publicKeys.append("\(name) \(hexString(identity.publicKey))")
        }
        try publicKeys.joined(separator: "\n").write(
            toFile: "\(directory)/keys/allowed", atomically: true, encoding: .utf8)
        var generator = SystemRandomNumberGenerator()
        let clusterKey = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try hexString(clusterKey).write(toFile: "\(directory)/keys/cluster", atomically: true, encoding: .utf8)

        // Start the peers; each one after the first is given the ports of those before it as seeds.
        var peers: [String: PeerProcess] = [:]
        var ports: [String: Int] = [:]
        defer {
            for peer in peers.values where peer.process.isRunning { peer.kill() }
        }
        for name in peerNames {
            let peer = try PeerProcess(name: name, directory: directory, seedPorts: peerNames.compactMap { ports[$0] })
            peers[name] = peer
            let ready = try await peer.expect("ready ")
            ports[name] = Int(ready.split(separator: " ")[0])
            say("peer \(name) started (pid \(peer.process.processIdentifier)): port, replica, notes on disk: \(ready)")
        }
        let all = peerNames.map { peers[$0]! }

        // 1. Online: meet and write a little.
        for peer in all { _ = try await peer.ask("online", expecting: "ok online") }
        guard try await waitUntil("the peers meet", timeout: .seconds(20), { try await self.allMet(all) }) else {
            say("FAIL: the peers did not meet")
            return false
        }
        for peer in all { try peer.send("write \(peer.name) 1 10") }
        for peer in all { _ = try await peer.expect("ok write") }
        say("online: each peer wrote 10 notes")
        guard try await waitUntil("the peers converge", timeout: .seconds(20), { try await self.converged(all) }) else {
            say("FAIL: the peers did not converge while online")
            return false
        }

        // 2. Offline: everybody keeps writing; B is SIGKILLed in the middle of a stream of writes.
        for peer in all { _ = try await peer.ask("offline", expecting: "ok offline") }
        say("all three peers go offline (goOffline): no messages in or out; writes go on locally")
        // A and C write a note every 100 ms for 3 s; B writes as fast as its disk allows until it is
        // killed, so the SIGKILL lands in the middle of a write (often after its commit, before its `ack`).
        let b = peers["B"]!
        let acknowledgedBeforeStream = b.acknowledged.count
        try b.send("write B 11 1000")
        try peers["A"]!.send("write A 11 30 100")
        try peers["C"]!.send("write C 11 30 100")
        while b.acknowledged.count < acknowledgedBeforeStream + 30 {
            if b.output.isClosed { throw PeerError(description: "peer B exited before it was killed") }
            try await Task.sleep(for: .milliseconds(5))
        }
        b.kill()
        let acknowledgedByOldB = b.acknowledged
        say(
            "offline: B was SIGKILLed (pid \(b.process.processIdentifier)) in the middle of its writes, after "
                + "acknowledging \(acknowledgedByOldB.count - acknowledgedBeforeStream) of them "
                + "(\(acknowledgedByOldB.count) in all, the last \(acknowledgedByOldB.last ?? "-"))")

        let restarted = try PeerProcess(
            name: "B", directory: directory, seedPorts: ["A", "C"].compactMap { ports[$0] })
        peers["B"] = restarted
        let ready = try await restarted.expect("ready ")
        say("peer B restarted from its data directory (pid \(restarted.process.processIdentifier)): \(ready)")
        let recovered = try await restarted.dump().notes
        let lostAtRestart = Set(acknowledgedByOldB).subtracting(recovered)
        say(
            "B recovered \(recovered.count) notes from disk; of its \(acknowledgedByOldB.count) acknowledged ones "
                + "\(lostAtRestart.isEmpty ? "none is" : "\(lostAtRestart.count) are") missing")
        let nextB = (acknowledgedByOldB.compactMap { Int($0.split(separator: "-")[1]) }.max() ?? 10) + 1_000
        try restarted.send("write B \(nextB) 15 50")
        _ = try await restarted.expect("ok write")
        _ = try await peers["A"]!.expect("ok write")
        _ = try await peers["C"]!.expect("ok write")
        say("offline: A and C wrote 30 notes each, the restarted B 15 more, all still disconnected")

        // 3. Online again: they meet and converge.
        let current = peerNames.map { peers[$0]! }
        for peer in current {
            let notes = try await peer.dump().notes
            let members = try await peer.ask("members", expecting: "members ")
            say(
                "before reconnecting, \(peer.name) holds \(notes.count) notes; its view of the others: "
                    + (members.isEmpty ? "none met since it started" : members))
        }
        for peer in current { _ = try await peer.ask("online", expecting: "ok online") }
        say("all three peers go online")
        let reconnected = ContinuousClock.now
        let met = try await waitUntil("the peers meet again", timeout: .seconds(20)) { try await self.allMet(current) }
        let converged = try await waitUntil("the peers converge", timeout: .seconds(20)) {
            try await self.converged(current)
        }
        let (seconds, attoseconds) = (ContinuousClock.now - reconnected).components
        if met && converged {
            say("met and converged \(seconds * 1_000 + attoseconds / 1_000_000_000_000_000) ms after going online")
        }

        // The check: every acknowledged write, from every process that ever ran, is on every peer.
        var acknowledged: [String: [String]] = [:]
        for name in peerNames { acknowledged[name] = peers[name]!.acknowledged }
        acknowledged["B", default: []] += acknowledgedByOldB
        let everything = Set(acknowledged.values.joined())
        show("")
        var problems: [String] = []
        var states: [String: (notes: Set<String>, vector: String)] = [:]
        for peer in current {
            let state = try await peer.dump()
            states[peer.name] = state
            let missing = everything.subtracting(state.notes)
            let counts = peerNames.map { name in
                "\(acknowledged[name]!.filter(state.notes.contains).count)/\(acknowledged[name]!.count) of \(name)'s"
            }
            show(
                "peer \(peer.name) holds \(state.notes.count) notes: \(counts.joined(separator: ", ")) acknowledged writes"
            )
            if !missing.isEmpty {
                problems.append(
                    "\(peer.name) lacks \(missing.count) acknowledged notes: \(missing.sorted().prefix(8).joined(separator: ", "))"
                )
            }
        }
        if Set(states.values.map { $0.notes }).count != 1 || Set(states.values.map { $0.vector }).count != 1 {
            problems.append("the peers do not hold identical state")
        }
        for peer in current { _ = try? await peer.ask("quit", expecting: "bye") }
        for peer in current { peer.process.waitUntilExit() }

        if problems.isEmpty && met && converged {
            show(
                "PASS: all \(everything.count) acknowledged writes (B's from before the SIGKILL included) are on every peer"
            )
            return true
        }
        for problem in problems { show("  - \(problem)") }
        show(
            "FAIL: \(met ? "" : "the peers did not meet again; ")\(converged ? "" : "the peers did not converge; ")\(problems.count) problem(s)"
        )
        return false
    }

    func allMet(_ peers: [PeerProcess]) async throws -> Bool {
        for peer in peers {
            let alive = try await peer.ask("peers", expecting: "peers ")
            if alive != "\(peers.count - 1)" { return false }
        }
        return true
    }

    func converged(_ peers: [PeerProcess]) async throws -> Bool {
        var reference: (notes: Set<String>, vector: String)?
        for peer in peers {
            let state = try await peer.dump()
            if let reference, reference.notes != state.notes || reference.vector != state.vector { return false }
            reference = state
        }
        return true
    }

    /// Polls `condition` every 200 ms for up to `timeout`, printing a dot each second; returns whether it held.
    func waitUntil(_ what: String, timeout: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
        let start = ContinuousClock.now
        FileHandle.standardOutput.write(Data("         waiting: \(what) ".utf8))
        var lastDot = start
        while ContinuousClock.now - start < timeout {
            if try await condition() {
                show("done")
                return true
            }
            if ContinuousClock.now - lastDot >= .seconds(1) {
                FileHandle.standardOutput.write(Data(".".utf8))
                lastDot = ContinuousClock.now
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        show("timed out")
        return false
    }
}
