import MeshCRDT
import MeshRESP
import MeshReplication
import NIOCore
import StateMesh

/// What running a command asks of the connection.
enum RunOutcome {
    /// Go on with the next command (a blocking command sets `blocked` instead of answering).
    case proceed
    /// Close once what was answered has been sent (`QUIT`).
    case close
}

/// A command's failure: the whole error line, prefix included (`ERR ...`, `WRONGTYPE ...`).
struct CommandError: Error {
    let line: String
    init(_ line: String) { self.line = line }

    static let wrongType = CommandError("WRONGTYPE Operation against a key holding the wrong kind of value")
    static let notInteger = CommandError("ERR value is not an integer or out of range")
    static let syntax = CommandError("ERR syntax error")
    static let overflow = CommandError("ERR increment or decrement would overflow")
    static let notText = CommandError(
        "ERR StateMesh stores text: keys, members, fields and values must be valid UTF-8")
}

/// The commands: name → arity as Redis counts it (the command name included: `n` exactly, `-n` at least)
/// and what the name runs.
enum CommandTable {
    /// What a command name runs: `execute` switches on it, so finding a command costs one look-up of
    /// its name here (a `switch` over the names compared them one by one: about 50 comparisons for a
    /// PING, 15 for an HSET).
    enum Kind {
        case increment, decrement, incrementBy, decrementBy
        case get, set, getSet, multiGet, multiSet
        case setCommand, hashCommand
        case delete, exists, type, keys, scan, dbsize
        case wait, mesh, subscribe, unsubscribe
        case server
    }

    struct Entry {
        /// Redis's arity: the argument count with the name, or its negation for "at least".
        let arity: Int
        let kind: Kind
    }

    static let commands: [String: Entry] = {
        var table: [String: Entry] = [:]
        func add(_ kind: Kind, _ entries: KeyValuePairs<String, Int>) {
            for (name, arity) in entries {
                precondition(table[name] == nil, "command \(name) listed twice")
                table[name] = Entry(arity: arity, kind: kind)
            }
        }
        add(.server, [
            "PING": -1, "ECHO": 2, "HELLO": -1, "AUTH": -2, "SELECT": 2, "CLIENT": -2, "COMMAND": -1, "CONFIG": -2,
            "INFO": -1, "QUIT": -1, "RESET": 1,
        ])
        add(.dbsize, ["DBSIZE": 1])
        add(.get, ["GET": 2])
        add(.set, ["SET": -3])
        add(.multiGet, ["MGET": -2])
        add(.multiSet, ["MSET": -3])
        add(.getSet, ["GETSET": 3])
        add(.increment, ["INCR": 2])
        add(.decrement, ["DECR": 2])
        add(.incrementBy, ["INCRBY": 3])
        add(.decrementBy, ["DECRBY": 3])
        add(.setCommand, ["SADD": -3, "SREM": -3, "SMEMBERS": 2, "SISMEMBER": 3, "SMISMEMBER": -3, "SCARD": 2])
        add(.hashCommand, [
            "HSET": -4, "HMSET": -4, "HGET": 3, "HMGET": -3, "HDEL": -3, "HGETALL": 2, "HKEYS": 2, "HVALS": 2,
            "HLEN": 2, "HEXISTS": 3,
        ])
        add(.delete, ["DEL": -2, "UNLINK": -2])
        add(.exists, ["EXISTS": -2])
        add(.type, ["TYPE": 2])
        add(.keys, ["KEYS": 2])
        add(.scan, ["SCAN": -2])
        add(.wait, ["WAIT": 3])
        add(.subscribe, ["SUBSCRIBE": -2, "PSUBSCRIBE": -2])
        add(.unsubscribe, ["UNSUBSCRIBE": -1, "PUNSUBSCRIBE": -1])
        add(.mesh, ["MESH": -2])
        return table
    }()
    /// Commands that write (for `COMMAND`'s flags).
    static let writes: Set<String> = [
        "SET", "MSET", "GETSET", "INCR", "DECR", "INCRBY", "DECRBY", "SADD", "SREM", "HSET", "HMSET", "HDEL", "DEL",
        "UNLINK",
    ]
    /// Commands allowed while a RESP2 connection is subscribed.
    static let allowedWhileSubscribed: Set<String> = [
        "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PING", "QUIT", "RESET",
    ]
    /// Commands allowed before `AUTH` when a password is set.
    static let allowedUnauthenticated: Set<String> = ["AUTH", "HELLO", "QUIT", "RESET"]
}

extension RESPConnectionHandler {
    /// Runs one command, writing its reply (or setting `blocked`) into `out`.
    func run(_ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer) -> RunOutcome {
        let name = Self.commandName(arguments[0])
        lastCommand = name
        guard let command = CommandTable.commands[name] else {
            var line = "ERR unknown command '\(Self.printable(arguments[0]))', with args beginning with: "
            for argument in arguments.dropFirst().prefix(8) { line += "'\(Self.printable(argument))' " }
            out.writeRESPError(line)
            return .proceed
        }
        let arity = command.arity
        if arity > 0 ? arguments.count != arity : arguments.count < -arity {
            out.writeRESPError("ERR wrong number of arguments for '\(name.lowercased())' command")
            return .proceed
        }
        if !isAuthenticated && !CommandTable.allowedUnauthenticated.contains(name) {
            out.writeRESPError("NOAUTH Authentication required.")
            return .proceed
        }
        if version == .resp2 && isSubscribed && !CommandTable.allowedWhileSubscribed.contains(name) {
            out.writeRESPError(
                "ERR Can't execute '\(name.lowercased())': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
            return .proceed
        }
        do {
            return try execute(command.kind, name, arguments, node: node, into: &out)
        } catch {
            out.writeRESPError(error.line)
            return .proceed
        }
    }

    private func execute(
        _ kind: CommandTable.Kind, _ name: String, _ arguments: [ByteBuffer], node: isolated MeshNode,
        into out: inout ByteBuffer
    ) throws(CommandError) -> RunOutcome {
        switch kind {
        // Counters
        case .increment: try incrementBy(1, arguments[1], event: "incrby", node: node, into: &out)
        case .decrement: try incrementBy(-1, arguments[1], event: "decrby", node: node, into: &out)
        case .incrementBy:
            try incrementBy(try Self.integer(arguments[2]), arguments[1], event: "incrby", node: node, into: &out)
        case .decrementBy:
            let amount = try Self.integer(arguments[2])
            guard amount != .min else { throw CommandError("ERR decrement would overflow") }
            try incrementBy(-amount, arguments[1], event: "decrby", node: node, into: &out)
        // Strings
        case .get: try get(arguments[1], node: node, into: &out)
        case .set: try set(arguments, node: node, into: &out)
        case .getSet: try set([arguments[0], arguments[1], arguments[2], ByteBuffer(string: "GET")], node: node, into: &out)
        case .multiGet: try multiGet(arguments.dropFirst(), node: node, into: &out)
        case .multiSet: try multiSet(arguments, node: node, into: &out)
        // Sets and hashes
        case .setCommand: try setCommand(name, arguments, node: node, into: &out)
        case .hashCommand: try hashCommand(name, arguments, node: node, into: &out)
        // Keys
        case .delete: try delete(arguments.dropFirst(), node: node, into: &out)
        case .exists:
            var count: Int64 = 0
            for argument in arguments.dropFirst() {
                let key = try resolve(argument, node: node)
                if let object = node.object(at: key.key, in: key.domain), !object.isEmpty { count += 1 }
            }
            out.writeRESPInteger(count)
        case .type:
            let key = try resolve(arguments[1], node: node)
            out.writeRESPSimpleString(Self.typeName(node.object(at: key.key, in: key.domain)))
        case .keys:
            let pattern = try Self.text(arguments[1])
            let keys = allKeys(node: node).filter { Glob.matches(pattern: pattern, $0) }
            out.writeRESPArrayHeader(count: keys.count)
            for key in keys { out.writeRESPBulkString(key) }
        case .scan: try scan(arguments, node: node, into: &out)
        case .dbsize:
            out.writeRESPInteger(Int64(node.domainNames.reduce(0) { $0 + node.visibleKeys(in: $1).count }))
        // Replication
        case .wait: try wait(arguments, node: node, into: &out)
        case .mesh: try meshCommand(arguments, node: node, into: &out)
        // Pub/sub
        case .subscribe: try subscribe(name, arguments, into: &out)
        case .unsubscribe: try unsubscribe(name, arguments, into: &out)
        // Connection and server
        case .server: return try serverCommand(name, arguments, node: node, into: &out)
        }
        return .proceed
    }

    // MARK: Keys and arguments

    /// A key as the node addresses it.
    struct Key {
        let domain: String
        let key: String
        var address: MeshAddress { get throws(CommandError) { try Self.address(domain, key) } }

        static func address(_ domain: String, _ key: String) throws(CommandError) -> MeshAddress {
            do { return try MeshAddress(domain: domain, path: key) } catch { throw CommandError("ERR \(error.message)") }
        }
    }

    /// Resolves a key argument: plain → the default domain; `fabric://DOMAIN/PATH` → that domain.
    func resolve(_ argument: ByteBuffer, node: isolated MeshNode) throws(CommandError) -> Key {
        let text = try Self.text(argument)
        // The first byte decides for most keys: comparing through the view is a generic loop over
        // bounds-checked byte reads (2.5% of a node's time at INCR -P 16).
        if argument.readableBytes >= Self.schemeBytes.count,
            argument.getInteger(at: argument.readerIndex, as: UInt8.self) == Self.schemeBytes[0],
            argument.readableBytesView.starts(with: Self.schemeBytes)
        {
            let address: MeshAddress
            do { address = try MeshAddress(text) } catch { throw CommandError("ERR \(error.message)") }
            guard node.replicates(address.domain) else {
                throw CommandError("ERR domain '\(address.domain)' is not replicated by this node")
            }
            return Key(domain: address.domain, key: address.path)
        }
        guard !text.isEmpty else { throw CommandError("ERR empty keys are not supported") }
        return Key(domain: state.configuration.defaultDomain, key: text)
    }

    /// Publishes the keyspace notification of a command's change to `key` (one per command and key, as
    /// Redis does; the node's own observer stays silent for writes made by commands).
    func notify(_ key: Key, _ event: String) {
        // Most of the time nobody listens: no client name to build per write.
        guard state.hasSubscribers else { return }
        state.notify(
            key: KeyNaming.clientName(domain: key.domain, key: key.key, defaultDomain: state.configuration.defaultDomain),
            event: event)
    }

    /// `SREM`/`HDEL`: removes each named member or field the object holds (each once), notifies `event`
    /// if anything went, and returns how many went. The object is looked up again per name, and no copy
    /// of it is held while writing (a live copy would make each write copy the whole object).
    private func removeEach(
        _ names: ArraySlice<ByteBuffer>, from key: Key, event: String, node: isolated MeshNode,
        present: (ObjectValue?, String) -> Bool, operation: (String) -> WriteOperation
    ) throws(CommandError) -> Int64 {
        var removed: Int64 = 0
        for argument in names {
            let name = try Self.text(argument)
            guard present(node.object(at: key.key, in: key.domain), name) else { continue }
            try write(operation(name), to: key, node: node)
            removed += 1
        }
        if removed > 0 { notifyRemoval(key, event, node: node) }
        return removed
    }

    /// Notifies `event`, then `del` when the removal left the key empty (Redis deletes an emptied set or hash).
    func notifyRemoval(_ key: Key, _ event: String, node: isolated MeshNode) {
        notify(key, event)
        if Self.visibleType(node.object(at: key.key, in: key.domain)) == nil { notify(key, "del") }
    }

    /// Applies a write, remembering it for `WAIT`; a type conflict answers `WRONGTYPE`.
    func write(_ operation: WriteOperation, to key: Key, node: isolated MeshNode) throws(CommandError) {
        // `resolve` made the key a valid address (non-empty key, a replicated domain).
        do {
            let (id, _) = try node.writeLocally(operation, to: key.key, in: key.domain, requestsAcknowledgement: true)
            noteWrite(id)
            batchWrote = true
        } catch {
            if error.code == .typeMismatch { throw CommandError.wrongType }
            throw CommandError("ERR \(error.message)")
        }
    }

    static let schemeBytes = Array(MeshAddress.scheme.utf8)

    static func text(_ buffer: ByteBuffer) throws(CommandError) -> String {
        let text = buffer.withUnsafeReadableBytes { bytes -> String? in
            // ASCII, as nearly every key, member and value is: valid UTF-8 as it stands, copied without
            // `String(validating:as:)`, whose generic validator looked up its type metadata at run time
            // on every call (about 2% of the front door's CPU at `INCR -P 16`, three calls per `HSET`).
            guard isASCII(bytes) else { return String(validating: bytes, as: UTF8.self) }
            return String(unsafeUninitializedCapacity: bytes.count) { target in
                _ = target.initialize(from: bytes)
                return bytes.count
            }
        }
        guard let text else { throw CommandError.notText }
        return text
    }

    /// Whether every byte is below 0x80.
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        // Eight bytes at a time, then the rest.
        while index + 8 <= bytes.count {
            if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            index += 8
        }
        while index < bytes.count {
            if bytes[index] >= 0x80 { return false }
            index += 1
        }
        return true
    }

    /// A strict decimal integer, as Redis's `string2ll`: optional `-`, digits, no spaces, no `+`, no leading zeros.
    static func integer(_ buffer: ByteBuffer) throws(CommandError) -> Int64 {
        let value: Int64? = buffer.withUnsafeReadableBytes { bytes in
            guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
            var index = 0
            let negative = bytes[0] == UInt8(ascii: "-")
            if negative { index = 1 }
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "0") && bytes.count > index + 1 { return nil }
            if negative && bytes[index] == UInt8(ascii: "0") { return nil }
            var magnitude: UInt64 = 0
            while index < bytes.count {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                let (times, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
                let (plus, overflow2) = times.addingReportingOverflow(UInt64(digit))
                guard !overflow1, !overflow2 else { return nil }
                magnitude = plus
                index += 1
            }
            if negative {
                guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
                return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
            }
            guard magnitude <= UInt64(Int64.max) else { return nil }
            return Int64(magnitude)
        }
        guard let value else { throw CommandError.notInteger }
        return value
    }

    /// The command name in upper case.
    static func commandName(_ buffer: ByteBuffer) -> String {
        buffer.withUnsafeReadableBytes { bytes in
            String(unsafeUninitializedCapacity: bytes.count) { target in
                for (index, byte) in bytes.enumerated() {
                    target[index] = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") ? byte - 32 : byte
                }
                return bytes.count
            }
        }
    }

    /// An argument for an error message: at most 128 bytes, control characters as `?`.
    static func printable(_ buffer: ByteBuffer) -> String {
        let bytes = buffer.readableBytesView.prefix(128).map { $0 < 32 || $0 == 127 ? UInt8(ascii: "?") : $0 }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func typeName(_ object: ObjectValue?) -> String {
        guard let object, !object.isEmpty else { return "none" }
        switch object {
        case .counter, .register: return "string"
        case .set: return "set"
        case .map: return "hash"
        case .multiValueRegister: return "mvregister"
        case .flag: return "flag"
        }
    }

    /// Every visible key, named as clients name them, sorted.
    func allKeys(node: isolated MeshNode) -> [String] {
        var names: [String] = []
        let defaultDomain = state.configuration.defaultDomain
        for domain in node.domainNames {
            for key in node.visibleKeys(in: domain) {
                names.append(KeyNaming.clientName(domain: domain, key: key, defaultDomain: defaultDomain))
            }
        }
        return names.sorted()
    }

    // MARK: Counters and strings

    private func incrementBy(
        _ amount: Int64, _ keyArgument: ByteBuffer, event: String, node: isolated MeshNode, into out: inout ByteBuffer
    ) throws(CommandError) {
        let key = try resolve(keyArgument, node: node)
        var current: Int64 = 0
        switch node.object(at: key.key, in: key.domain) {
        case nil: break
        case .counter(let counter)?: current = counter.value
        case _?: throw CommandError.wrongType
        }
        let (sum, overflow) = current.addingReportingOverflow(amount)
        guard !overflow else { throw CommandError.overflow }
        if amount >= 0 {
            try write(.increment(UInt64(amount)), to: key, node: node)
        } else {
            try write(.decrement(amount.magnitude), to: key, node: node)
        }
        notify(key, event)
        out.writeRESPInteger(sum)
    }

    /// The string value of a key for `GET`/`MGET`: a register's value or a counter's decimal value.
    private func stringValue(_ object: ObjectValue?) throws(CommandError) -> String? {
        switch object {
        case nil: return nil
        case .register(let register)?: return register.value
        case .counter(let counter)?: return object!.isEmpty ? nil : String(counter.value)
        case let other?:
            if other.isEmpty { return nil }
            throw CommandError.wrongType
        }
    }

    private func get(_ keyArgument: ByteBuffer, node: isolated MeshNode, into out: inout ByteBuffer) throws(CommandError) {
        let key = try resolve(keyArgument, node: node)
        if let value = try stringValue(node.object(at: key.key, in: key.domain)) {
            state.keyspaceHits += 1
            out.writeRESPBulkString(value)
        } else {
            state.keyspaceMisses += 1
            out.writeRESPNull(version: version)
        }
    }

    private func set(_ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer) throws(CommandError) {
        let key = try resolve(arguments[1], node: node)
        let value = try Self.text(arguments[2])
        var onlyIfAbsent = false
        var onlyIfPresent = false
        var returnsOld = false
        for option in arguments.dropFirst(3) {
            switch Self.commandName(option) {
            case "NX": onlyIfAbsent = true
            case "XX": onlyIfPresent = true
            case "GET": returnsOld = true
            case "EX", "PX", "EXAT", "PXAT", "KEEPTTL":
                throw CommandError(
                    "ERR StateMesh does not support key expiry (SET \(Self.commandName(option))): replicated TTLs are not implemented")
            default: throw CommandError.syntax
            }
        }
        guard !(onlyIfAbsent && onlyIfPresent) else { throw CommandError.syntax }
        let object = node.object(at: key.key, in: key.domain)
        let old: String?
        switch object {
        case nil: old = nil
        case .register(let register)?: old = register.value
        case _?:
            // Writing another type over a key is refused: a key keeps its type in the mesh, even deleted.
            throw CommandError.wrongType
        }
        let exists = old != nil
        if (onlyIfAbsent && exists) || (onlyIfPresent && !exists) {
            if returnsOld, let old { out.writeRESPBulkString(old) } else { out.writeRESPNull(version: version) }
            return
        }
        try write(.assign(value), to: key, node: node)
        notify(key, "set")
        if returnsOld {
            if let old { out.writeRESPBulkString(old) } else { out.writeRESPNull(version: version) }
        } else {
            out.writeRESPSimpleString("OK")
        }
    }

    private func multiGet(
        _ keys: ArraySlice<ByteBuffer>, node: isolated MeshNode, into out: inout ByteBuffer
    ) throws(CommandError) {
        var values: [String?] = []
        values.reserveCapacity(keys.count)
        for argument in keys {
            let key = try resolve(argument, node: node)
            // MGET answers nil for keys of other types, as Redis does.
            values.append(try? stringValue(node.object(at: key.key, in: key.domain)))
        }
        out.writeRESPArrayHeader(count: values.count)
        for value in values {
            if let value { out.writeRESPBulkString(value) } else { out.writeRESPNull(version: version) }
        }
    }

    private func multiSet(_ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer) throws(CommandError) {
        guard arguments.count % 2 == 1 else { throw CommandError("ERR wrong number of arguments for 'mset' command") }
        var pairs: [(Key, String)] = []
        var index = 1
        while index < arguments.count {
            let key = try resolve(arguments[index], node: node)
            switch node.object(at: key.key, in: key.domain) {
            case nil, .register?: break
            case _?: throw CommandError.wrongType  // checked for every key before any is written
            }
            pairs.append((key, try Self.text(arguments[index + 1])))
            index += 2
        }
        for (key, value) in pairs {
            try write(.assign(value), to: key, node: node)
            notify(key, "set")
        }
        out.writeRESPSimpleString("OK")
    }

    private func delete(_ keys: ArraySlice<ByteBuffer>, node: isolated MeshNode, into out: inout ByteBuffer) throws(CommandError) {
        var removed: Int64 = 0
        for argument in keys {
            let key = try resolve(argument, node: node)
            guard let type = Self.visibleType(node.object(at: key.key, in: key.domain)) else { continue }
            try write(.clear(type), to: key, node: node)
            notify(key, "del")
            removed += 1
        }
        out.writeRESPInteger(removed)
    }

    // MARK: Sets

    private func setCommand(
        _ name: String, _ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer
    ) throws(CommandError) {
        let key = try resolve(arguments[1], node: node)
        switch name {
        case "SADD":
            var added: Int64 = 0
            var addedMembers = Set<String>()
            var isFirst = true
            for argument in arguments.dropFirst(2) {
                let member: String
                let isPresent: Bool
                if isFirst {
                    // The type check and the first member's look-up share one look-up of the key.
                    isFirst = false
                    (member, isPresent) = try Self.set(node.object(at: key.key, in: key.domain), typeCheckedContains: argument)
                } else {
                    member = try Self.text(argument)
                    isPresent = Self.set(node.object(at: key.key, in: key.domain), contains: member)
                }
                if !isPresent && addedMembers.insert(member).inserted {
                    added += 1
                }
                // Always written: a re-add wins over a concurrent remove elsewhere (add-wins).
                try write(.insert(member), to: key, node: node)
            }
            if added > 0 { notify(key, "sadd") }
            out.writeRESPInteger(added)
        case "SREM":
            try requireType(.set, at: key, node: node)
            let removed = try removeEach(
                arguments.dropFirst(2), from: key, event: "srem", node: node, present: Self.set(_:contains:),
                operation: WriteOperation.remove)
            out.writeRESPInteger(removed)
        default:
            try requireType(.set, at: key, node: node)
            // Reads: holding a copy of the set is fine (no write follows while it is held).
            guard case .set(let members)? = node.object(at: key.key, in: key.domain) else {
                return try emptySetReply(name, arguments, into: &out)
            }
            switch name {
            case "SMEMBERS":
                let sorted = members.elements.sorted()
                out.writeRESPSetHeader(count: sorted.count, version: version)
                for member in sorted { out.writeRESPBulkString(member) }
            case "SISMEMBER":
                out.writeRESPInteger(members.contains(try Self.text(arguments[2])) ? 1 : 0)
            case "SMISMEMBER":
                out.writeRESPArrayHeader(count: arguments.count - 2)
                for argument in arguments.dropFirst(2) {
                    out.writeRESPInteger(members.contains(try Self.text(argument)) ? 1 : 0)
                }
            default:  // SCARD
                out.writeRESPInteger(Int64(members.count))
            }
        }
    }

    /// Throws `WRONGTYPE` unless `key` is absent or holds `type`.
    private func requireType(_ type: ObjectType, at key: Key, node: isolated MeshNode) throws(CommandError) {
        if let existing = node.object(at: key.key, in: key.domain)?.type, existing != type {
            throw CommandError.wrongType
        }
    }

    /// The type of a non-empty object (`nil` when absent or empty); see `set(_:contains:)`.
    static func visibleType(_ object: ObjectValue?) -> ObjectType? {
        guard let object, !object.isEmpty else { return nil }
        return object.type
    }

    /// Whether `object` is a set holding `member`. A function of its own so the object copy dies
    /// before the caller writes: a live copy would make the write copy the whole set.
    private static func set(_ object: ObjectValue?, contains member: String) -> Bool {
        if case .set(let set)? = object { return set.contains(member) }
        return false
    }

    /// `requireType(.set, ...)` and `set(_:contains:)` of the member `argument` names in one look-up of the
    /// key: throws `WRONGTYPE` unless `object` is absent or a set, then the member's text error, as when
    /// they were two look-ups. The object copy dies on return (see `set(_:contains:)`).
    private static func set(
        _ object: ObjectValue?, typeCheckedContains argument: ByteBuffer
    ) throws(CommandError) -> (member: String, isPresent: Bool) {
        switch object {
        case nil: return (try text(argument), false)
        case .set(let set)?:
            let member = try text(argument)
            return (member, set.contains(member))
        case _?: throw CommandError.wrongType
        }
    }

    /// `set(_:typeCheckedContains:)` for a map and one of its fields.
    private static func map(
        _ object: ObjectValue?, typeCheckedContains argument: ByteBuffer
    ) throws(CommandError) -> (field: String, isPresent: Bool) {
        switch object {
        case nil: return (try text(argument), false)
        case .map(let map)?:
            let field = try text(argument)
            return (field, map.contains(field))
        case _?: throw CommandError.wrongType
        }
    }

    /// Whether `object` is a map holding `field`; see `set(_:contains:)`.
    private static func map(_ object: ObjectValue?, contains field: String) -> Bool {
        if case .map(let map)? = object { return map.contains(field) }
        return false
    }

    private func emptySetReply(_ name: String, _ arguments: [ByteBuffer], into out: inout ByteBuffer) throws(CommandError) {
        switch name {
        case "SMEMBERS": out.writeRESPSetHeader(count: 0, version: version)
        case "SMISMEMBER":
            out.writeRESPArrayHeader(count: arguments.count - 2)
            for argument in arguments.dropFirst(2) {
                _ = try Self.text(argument)
                out.writeRESPInteger(0)
            }
        default: out.writeRESPInteger(0)  // SISMEMBER, SCARD
        }
    }

    // MARK: Hashes

    private func hashCommand(
        _ name: String, _ arguments: [ByteBuffer], node: isolated MeshNode, into out: inout ByteBuffer
    ) throws(CommandError) {
        let key = try resolve(arguments[1], node: node)
        switch name {
        case "HSET", "HMSET":
            guard arguments.count % 2 == 0 else {
                // The type is checked before the argument count (the order this command has always had).
                try requireType(.map, at: key, node: node)
                throw CommandError("ERR wrong number of arguments for '\(name.lowercased())' command")
            }
            // The type check and the first field's look-up share one look-up of the key (nothing is
            // written before the first field's presence counts).
            let (firstField, firstIsPresent) = try Self.map(
                node.object(at: key.key, in: key.domain), typeCheckedContains: arguments[2])
            // Every field and value is checked as text before anything is written. The first pair is held
            // apart: nearly every HSET has one field, and needs no array of pairs.
            let firstValue = try Self.text(arguments[3])
            var laterPairs: [(String, String)] = []
            if arguments.count > 4 {
                laterPairs.reserveCapacity((arguments.count - 4) / 2)
                var index = 4
                while index < arguments.count {
                    laterPairs.append((try Self.text(arguments[index]), try Self.text(arguments[index + 1])))
                    index += 2
                }
            }
            var added: Int64 = firstIsPresent ? 0 : 1
            try write(.setField(firstField, firstValue), to: key, node: node)
            var seen: Set<String> = laterPairs.isEmpty || firstIsPresent ? [] : [firstField]
            for (field, value) in laterPairs {
                if !Self.map(node.object(at: key.key, in: key.domain), contains: field) && seen.insert(field).inserted {
                    added += 1
                }
                try write(.setField(field, value), to: key, node: node)
            }
            notify(key, "hset")
            if name == "HMSET" { out.writeRESPSimpleString("OK") } else { out.writeRESPInteger(added) }
            return
        case "HDEL":
            try requireType(.map, at: key, node: node)
            let removed = try removeEach(
                arguments.dropFirst(2), from: key, event: "hdel", node: node, present: Self.map(_:contains:),
                operation: WriteOperation.removeField)
            out.writeRESPInteger(removed)
            return
        default:
            try requireType(.map, at: key, node: node)
        }
        // Reads: holding a copy of the map is fine (no write follows while it is held).
        var map = LWWMap<String, String>()
        if case .map(let existing)? = node.object(at: key.key, in: key.domain) { map = existing }
        switch name {
        case "HGET":
            if let value = map[try Self.text(arguments[2])] {
                out.writeRESPBulkString(value)
            } else {
                out.writeRESPNull(version: version)
            }
        case "HMGET":
            out.writeRESPArrayHeader(count: arguments.count - 2)
            for argument in arguments.dropFirst(2) {
                if let value = map[try Self.text(argument)] {
                    out.writeRESPBulkString(value)
                } else {
                    out.writeRESPNull(version: version)
                }
            }
        case "HGETALL":
            let fields = map.values.sorted { $0.key < $1.key }
            out.writeRESPMapHeader(count: fields.count, version: version)
            for (field, value) in fields {
                out.writeRESPBulkString(field)
                out.writeRESPBulkString(value)
            }
        case "HKEYS":
            let fields = map.keys.sorted()
            out.writeRESPArrayHeader(count: fields.count)
            for field in fields { out.writeRESPBulkString(field) }
        case "HVALS":
            let fields = map.values.sorted { $0.key < $1.key }
            out.writeRESPArrayHeader(count: fields.count)
            for (_, value) in fields { out.writeRESPBulkString(value) }
        case "HLEN":
            out.writeRESPInteger(Int64(map.count))
        default:  // HEXISTS
            out.writeRESPInteger(map.contains(try Self.text(arguments[2])) ? 1 : 0)
        }
    }
}
