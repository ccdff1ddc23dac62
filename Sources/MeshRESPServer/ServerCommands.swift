import MeshRESP
import MeshReplication
import NIOCore
import StateMesh

/// The version `HELLO` and `INFO` report: the Redis command set this front door follows.
let compatibleRedisVersion = "7.0.0"

extension RESPConnectionHandler {
    // MARK: SCAN

    func scan(_ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer) throws(CommandError) {
        guard let cursor = UInt64(try Self.text(arguments[1])) else { throw CommandError("ERR invalid cursor") }
        var pattern: String?
        var count = 10
        var type: String?
        var index = 2
        while index < arguments.count {
            guard index + 1 < arguments.count else { throw CommandError.syntax }
            switch Self.commandName(arguments[index]) {
            case "MATCH": pattern = try Self.text(arguments[index + 1])
            case "COUNT":
                let value = try Self.integer(arguments[index + 1])
                guard value >= 1 else { throw CommandError.syntax }
                count = Int(min(value, Int64(state.configuration.maximumScanCount)))
            case "TYPE": type = try Self.text(arguments[index + 1]).lowercased()
            default: throw CommandError.syntax
            }
            index += 2
        }
        var iteration: ScanIteration
        if cursor == 0 {
            // A snapshot of the key names: every key present for the whole iteration is returned
            // (Redis's SCAN guarantee); keys added meanwhile may be missed.
            iteration = ScanIteration(keys: allKeys(node: node), next: 0)
        } else {
            guard let open = scans.removeValue(forKey: cursor) else { throw CommandError("ERR invalid cursor") }
            iteration = open
        }
        let end = min(iteration.next + count, iteration.keys.count)
        var found: [String] = []
        for name in iteration.keys[iteration.next..<end] {
            if let pattern, !Glob.matches(pattern: pattern, name) { continue }
            let key = try resolve(ByteBuffer(string: name), node: node)
            let object = node.object(at: key.key, in: key.domain)
            guard let object, !object.isEmpty else { continue }  // deleted since the snapshot
            if let type, Self.typeName(object) != type { continue }
            found.append(name)
        }
        iteration.next = end
        var next: UInt64 = 0
        if end < iteration.keys.count {
            // At most 16 open iterations per connection: the oldest is forgotten.
            if scans.count >= 16, let oldest = scans.keys.min() { scans[oldest] = nil }
            next = nextScanCursor
            nextScanCursor += 1
            scans[next] = iteration
        }
        out.writeRESPArrayHeader(count: 2)
        out.writeRESPBulkString(String(next))
        out.writeRESPArrayHeader(count: found.count)
        for name in found { out.writeRESPBulkString(name) }
    }

    // MARK: WAIT

    /// `WAIT numreplicas timeout`: how many other nodes have delivered every write this connection
    /// made, waiting up to `timeout` ms (0: forever) for `numreplicas` of them.
    func wait(_ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer) throws(CommandError) {
        let wanted = try Self.integer(arguments[1])
        let timeout = try Self.integer(arguments[2])
        guard wanted >= 0, timeout >= 0 else { throw CommandError("ERR timeout is negative") }
        let have = replicaCount(node: node)
        if have >= wanted || wanted == 0 {
            out.writeRESPInteger(Int64(have))
            return
        }
        let deadline = timeout == 0 ? nil : NIODeadline.now() + .milliseconds(timeout)
        blocked = BlockedWait(replicas: Int(min(wanted, Int64(Int.max))), deadline: deadline, timer: nil)
        scheduleWaitCheck()
    }

    /// The peers holding all of this connection's writes (with no writes: every live peer).
    func replicaCount(node: isolated MeshNode) -> Int {
        if lastWrites.isEmpty { return node.status().peers.count { $0.state == "alive" } }
        return lastWrites.map { node.replicaCount(holding: $0) }.min() ?? 0
    }

    private func scheduleWaitCheck() {
        let loop = node.eventLoop
        blocked?.timer = loop.scheduleTask(in: .milliseconds(2)) { [weak self] in
            guard let self, let blocked = self.blocked else { return }
            let have = self.node.assumeIsolated { node in self.replicaCount(node: node) }
            if have >= blocked.replicas || (blocked.deadline.map { NIODeadline.now() >= $0 } ?? false) {
                var reply = ByteBuffer()
                reply.writeRESPInteger(Int64(have))
                self.unblock(with: reply)
            } else {
                self.scheduleWaitCheck()
            }
        }
    }

    // MARK: MESH

    /// `MESH OFFLINE|ONLINE|DOMAINS`: StateMesh's own commands.
    func meshCommand(_ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer) throws(CommandError) {
        switch Self.commandName(arguments[1]) {
        case "OFFLINE":
            node.goOffline()
            out.writeRESPSimpleString("OK")
        case "ONLINE":
            node.goOnline()
            out.writeRESPSimpleString("OK")
        case "DOMAINS":
            let names = node.domainNames
            out.writeRESPArrayHeader(count: names.count)
            for name in names { out.writeRESPBulkString(name) }
        default:
            throw CommandError("ERR unknown subcommand '\(Self.printable(arguments[1]))'. Try MESH OFFLINE, MESH ONLINE or MESH DOMAINS.")
        }
    }

    // MARK: Pub/sub

    func subscribe(_ name: String, _ arguments: [ByteBuffer], into out: inout ByteBuffer) throws(CommandError) {
        let isPattern = name == "PSUBSCRIBE"
        for argument in arguments.dropFirst() {
            let channel = try Self.text(argument)
            guard channels.count + patterns.count < state.configuration.maximumSubscriptionsPerClient
                || channels.contains(channel) || patterns.contains(channel)
            else {
                throw CommandError(
                    "ERR this client already has \(channels.count + patterns.count) subscriptions, the most allowed")
            }
            if isPattern {
                if patterns.insert(channel).inserted { state.subscribe(id, toPattern: channel) }
            } else {
                if channels.insert(channel).inserted { state.subscribe(id, to: channel) }
            }
            out.writeRESPPushHeader(count: 3, version: version)
            out.writeRESPBulkString(isPattern ? "psubscribe" : "subscribe")
            out.writeRESPBulkString(channel)
            out.writeRESPInteger(Int64(channels.count + patterns.count))
        }
    }

    func unsubscribe(_ name: String, _ arguments: [ByteBuffer], into out: inout ByteBuffer) throws(CommandError) {
        let isPattern = name == "PUNSUBSCRIBE"
        var targets: [String] = []
        for argument in arguments.dropFirst() { targets.append(try Self.text(argument)) }
        if arguments.count == 1 { targets = (isPattern ? patterns : channels).sorted() }
        let kind = isPattern ? "punsubscribe" : "unsubscribe"
        if targets.isEmpty {
            out.writeRESPPushHeader(count: 3, version: version)
            out.writeRESPBulkString(kind)
            out.writeRESPNull(version: version)
            out.writeRESPInteger(Int64(channels.count + patterns.count))
            return
        }
        for target in targets {
            if isPattern {
                if patterns.remove(target) != nil { state.unsubscribe(id, fromPattern: target) }
            } else {
                if channels.remove(target) != nil { state.unsubscribe(id, from: target) }
            }
            out.writeRESPPushHeader(count: 3, version: version)
            out.writeRESPBulkString(kind)
            out.writeRESPBulkString(target)
            out.writeRESPInteger(Int64(channels.count + patterns.count))
        }
    }

    // MARK: Connection and server

    func serverCommand(
        _ name: String, _ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer
    ) throws(CommandError) -> RunOutcome {
        switch name {
        case "PING":
            guard arguments.count <= 2 else { throw CommandError("ERR wrong number of arguments for 'ping' command") }
            if version == .resp2 && isSubscribed {
                out.writeRESPArrayHeader(count: 2)
                out.writeRESPBulkString("pong")
                out.writeRESPBulkString(arguments.count == 2 ? try Self.text(arguments[1]) : "")
            } else if arguments.count == 2 {
                var argument = arguments[1]
                out.writeRESPBulkString(argument.readBytes(length: argument.readableBytes) ?? [])
            } else {
                out.writeRESPSimpleString("PONG")
            }
        case "ECHO":
            var argument = arguments[1]
            out.writeRESPBulkString(argument.readBytes(length: argument.readableBytes) ?? [])
        case "HELLO": try hello(arguments, node: node, into: &out)
        case "AUTH":
            guard arguments.count <= 3 else { throw CommandError.syntax }
            try authenticate(
                user: arguments.count == 3 ? try Self.text(arguments[1]) : "default",
                password: try Self.text(arguments[arguments.count - 1]))
            out.writeRESPSimpleString("OK")
        case "SELECT":
            guard (try Self.integer(arguments[1])) == 0 else { throw CommandError("ERR DB index is out of range") }
            out.writeRESPSimpleString("OK")
        case "CLIENT": try client(arguments, into: &out)
        case "COMMAND": try command(arguments, into: &out)
        case "CONFIG": try config(arguments, into: &out)
        case "INFO":
            let sections = try arguments.dropFirst().map { (argument) throws(CommandError) in try Self.text(argument).lowercased() }
            out.writeRESPBulkString(info(sections: sections, node: node))
        case "RESET":
            for channel in channels { state.unsubscribe(id, from: channel) }
            for pattern in patterns { state.unsubscribe(id, fromPattern: pattern) }
            channels = []
            patterns = []
            version = .resp2
            self.name = nil
            isAuthenticated = state.configuration.password == nil
            scans = [:]
            out.writeRESPSimpleString("RESET")
        default:  // QUIT
            out.writeRESPSimpleString("OK")
            return .close
        }
        return .proceed
    }

    private func authenticate(user: String, password: String) throws(CommandError) {
        guard let expected = state.configuration.password else {
            throw CommandError(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
        }
        // Compared in constant time: the time taken says nothing about how much of it matched.
        let given = Array(password.utf8)
        let wanted = Array(expected.utf8)
        var difference = given.count ^ wanted.count
        for index in 0..<max(given.count, wanted.count) {
            let a = index < given.count ? given[index] : 0
            let b = index < wanted.count ? wanted[index] : 0
            difference |= Int(a ^ b)
        }
        guard user == "default", difference == 0 else {
            throw CommandError("WRONGPASS invalid username-password pair or user is disabled.")
        }
        isAuthenticated = true
    }

    private func hello(_ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer) throws(CommandError) {
        var requested = version
        var index = 1
        if arguments.count > 1 {
            guard let protocolVersion = try? Self.integer(arguments[1]) else {
                throw CommandError("ERR Protocol version is not an integer or out of range")
            }
            switch protocolVersion {
            case 2: requested = .resp2
            case 3: requested = .resp3
            default: throw CommandError("NOPROTO unsupported protocol version")
            }
            index = 2
        }
        var newName: String?
        while index < arguments.count {
            switch Self.commandName(arguments[index]) {
            case "AUTH" where index + 2 < arguments.count:
                try authenticate(user: try Self.text(arguments[index + 1]), password: try Self.text(arguments[index + 2]))
                index += 3
            case "SETNAME" where index + 1 < arguments.count:
                newName = try Self.text(arguments[index + 1])
                index += 2
            default:
                throw CommandError("ERR Syntax error in HELLO option '\(Self.printable(arguments[index]))'")
            }
        }
        guard isAuthenticated else {
            throw CommandError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
        }
        version = requested
        if let newName { name = newName }
        out.writeRESPMapHeader(count: 7, version: version)
        out.writeRESPBulkString("server")
        out.writeRESPBulkString("statemesh")
        out.writeRESPBulkString("version")
        out.writeRESPBulkString(compatibleRedisVersion)
        out.writeRESPBulkString("proto")
        out.writeRESPInteger(version == .resp3 ? 3 : 2)
        out.writeRESPBulkString("id")
        out.writeRESPInteger(Int64(id))
        out.writeRESPBulkString("mode")
        out.writeRESPBulkString("standalone")
        out.writeRESPBulkString("role")
        out.writeRESPBulkString("master")
        out.writeRESPBulkString("modules")
        out.writeRESPArrayHeader(count: 0)
    }

    private func client(_ arguments: [ByteBuffer], into out: inout ByteBuffer) throws(CommandError) {
        let sub = Self.commandName(arguments[1])
        switch sub {
        case "SETNAME" where arguments.count == 3:
            let newName = try Self.text(arguments[2])
            guard !newName.contains(" "), !newName.contains("\n") else {
                throw CommandError("ERR Client names cannot contain spaces, newlines or special characters.")
            }
            name = newName.isEmpty ? nil : newName
            out.writeRESPSimpleString("OK")
        case "GETNAME" where arguments.count == 2:
            if let name { out.writeRESPBulkString(name) } else { out.writeRESPNull(version: version) }
        case "ID" where arguments.count == 2:
            out.writeRESPInteger(Int64(id))
        case "SETINFO" where arguments.count == 4:
            if Self.commandName(arguments[2]) == "LIB-NAME" { libraryName = try Self.text(arguments[3]) }
            out.writeRESPSimpleString("OK")
        case "INFO" where arguments.count == 2:
            out.writeRESPBulkString(describe() + "\n")
        case "LIST":
            let lines = state.clients.keys.sorted().compactMap { state.clients[$0]?.describe() }
            out.writeRESPBulkString(lines.joined(separator: "\n") + "\n")
        default:
            throw CommandError("ERR unknown subcommand or wrong number of arguments for '\(sub.lowercased())'. Try CLIENT HELP.")
        }
    }

    /// One `CLIENT LIST` line.
    func describe() -> String {
        let age = (ContinuousClock.now - connectedAt).components.seconds
        return "id=\(id) addr=\(remoteAddress) name=\(name ?? "") age=\(age) db=0 sub=\(channels.count) psub=\(patterns.count) resp=\(version == .resp3 ? 3 : 2) lib-name=\(libraryName ?? "") cmd=\(lastCommand?.lowercased() ?? "NULL")"
    }

    private func command(_ arguments: [ByteBuffer], into out: inout ByteBuffer) throws(CommandError) {
        let names = CommandTable.commands.keys.sorted()
        func writeInfo(_ name: String) {
            let arity = CommandTable.commands[name]?.arity ?? 0
            let hasKeys = !["PING", "ECHO", "HELLO", "AUTH", "SELECT", "CLIENT", "COMMAND", "CONFIG", "INFO", "QUIT",
                "RESET", "DBSIZE", "KEYS", "SCAN", "WAIT", "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "MESH"]
                .contains(name)
            let lastKey: Int64 = ["MGET", "DEL", "UNLINK", "EXISTS"].contains(name) ? -1 : (name == "MSET" ? -1 : 1)
            out.writeRESPArrayHeader(count: 6)
            out.writeRESPBulkString(name.lowercased())
            out.writeRESPInteger(Int64(arity))
            let flags = CommandTable.writes.contains(name) ? ["write"] : ["readonly"]
            out.writeRESPSetHeader(count: flags.count, version: version)
            for flag in flags { out.writeRESPSimpleString(flag) }
            out.writeRESPInteger(hasKeys ? 1 : 0)
            out.writeRESPInteger(hasKeys ? lastKey : 0)
            out.writeRESPInteger(hasKeys ? (name == "MSET" ? 2 : 1) : 0)
        }
        guard arguments.count > 1 else {
            out.writeRESPArrayHeader(count: names.count)
            for name in names { writeInfo(name) }
            return
        }
        switch Self.commandName(arguments[1]) {
        case "COUNT": out.writeRESPInteger(Int64(names.count))
        case "DOCS": out.writeRESPMapHeader(count: 0, version: version)
        case "INFO":
            out.writeRESPArrayHeader(count: arguments.count - 2)
            for argument in arguments.dropFirst(2) {
                let name = Self.commandName(argument)
                if CommandTable.commands[name] != nil { writeInfo(name) } else { out.writeRESPNullArray(version: version) }
            }
        case "LIST":
            out.writeRESPArrayHeader(count: names.count)
            for name in names { out.writeRESPBulkString(name.lowercased()) }
        default:
            throw CommandError("ERR unknown subcommand '\(Self.printable(arguments[1]))'. Try COMMAND HELP.")
        }
    }

    private func config(_ arguments: [ByteBuffer], into out: inout ByteBuffer) throws(CommandError) {
        guard Self.commandName(arguments[1]) == "GET" else {
            throw CommandError(
                "ERR CONFIG \(Self.printable(arguments[1]).uppercased()) is not supported: configure the node with its configuration file")
        }
        // The few parameters clients and redis-benchmark look at, as this node behaves.
        let parameters: [(String, String)] = [
            ("appendonly", state.acknowledgesAfterCommit ? "yes" : "no"),
            ("appendfsync", state.acknowledgesAfterCommit ? "always" : "everysec"),
            ("databases", "1"), ("maxclients", String(state.configuration.maximumClients)), ("save", ""),
        ]
        var matched: [(String, String)] = []
        for argument in arguments.dropFirst(2) {
            let pattern = try Self.text(argument).lowercased()
            for parameter in parameters where Glob.matches(pattern: pattern, parameter.0) && !matched.contains(where: { $0.0 == parameter.0 }) {
                matched.append(parameter)
            }
        }
        out.writeRESPMapHeader(count: matched.count, version: version)
        for (key, value) in matched {
            out.writeRESPBulkString(key)
            out.writeRESPBulkString(value)
        }
    }
}
