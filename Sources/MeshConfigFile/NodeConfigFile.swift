import Configuration
import Foundation
import Logging
import MeshMembership
import MeshRESPServer
import MeshReplication
import MeshSecurity
import MeshStorage
import StateMesh
import SystemPackage

/// A configuration problem: which file, which key, and what is wrong with it.
public struct ConfigurationError: Error, CustomStringConvertible {
    /// The configuration file.
    public let file: String
    /// The key (or environment variable) at fault; `-` for the whole file.
    public let key: String
    /// What is wrong.
    public let reason: String

    public var description: String { "\(file): \(key): \(reason)" }
}

/// The `mesh node` configuration file: JSON, every key documented in the README, each overridable by
/// the environment variable `STATEMESH_` + the key in upper case with `.` as `_`
/// (e.g. `listen.port` ← `STATEMESH_LISTEN_PORT`; arrays are comma-separated).
public struct NodeConfigFile: Sendable {
    /// The type of an option.
    public enum Kind: String, Sendable { case string, integer, strings = "list of strings" }

    /// One documented option.
    public struct Option: Sendable {
        public let key: String
        public let kind: Kind
        public let required: Bool
        public let summary: String
    }

    /// Every option, in README order.
    public static let options: [Option] = [
        Option(key: "identity_file", kind: .string, required: true, summary: "identity key file from `mesh keygen` (mode 0600)"),
        Option(key: "cluster.key_file", kind: .string, required: true, summary: "32-byte cluster pre-shared key file (mode 0600)"),
        Option(key: "cluster.epoch", kind: .integer, required: false, summary: "epoch of that cluster key (default 1)"),
        Option(key: "cluster.allowed_peers", kind: .strings, required: false, summary: "public keys (hex) of the nodes admitted (default: none)"),
        Option(key: "listen.host", kind: .string, required: false, summary: "address to listen on (default 127.0.0.1)"),
        Option(key: "listen.port", kind: .integer, required: false, summary: "port to listen on (default 7400)"),
        Option(key: "advertise.host", kind: .string, required: false, summary: "host other nodes dial (default listen.host)"),
        Option(key: "seeds", kind: .strings, required: false, summary: "HOST:PORT of nodes to meet the mesh through (default none)"),
        Option(key: "data_directory", kind: .string, required: true, summary: "where the SQLite database lives (created 0700)"),
        Option(key: "durability.mode", kind: .string, required: false, summary: "`always` (default) or `batched`"),
        Option(key: "durability.interval_ms", kind: .integer, required: false, summary: "group-commit interval in batched mode (default 5)"),
        Option(key: "domains", kind: .strings, required: false, summary: "causal domains replicated (default `default`)"),
        Option(key: "eventual_domains", kind: .strings, required: false, summary: "domains merged on arrival without causal buffering (default none)"),
        Option(key: "status.host", kind: .string, required: false, summary: "status endpoint address (default 127.0.0.1)"),
        Option(key: "status.port", kind: .integer, required: false, summary: "status endpoint port (default listen.port + 1; -1 disables)"),
        Option(key: "replication.gossip_interval_ms", kind: .integer, required: false, summary: "gossip round (default 100)"),
        Option(key: "replication.fanout", kind: .integer, required: false, summary: "eager push peers (default 3)"),
        Option(key: "replication.max_buffered_deltas", kind: .integer, required: false, summary: "causal buffer bound (default 4096)"),
        Option(key: "replication.max_log_deltas", kind: .integer, required: false, summary: "delta log bound, records (default 65536)"),
        Option(key: "replication.max_log_bytes", kind: .integer, required: false, summary: "delta log bound, bytes (default 16 MiB)"),
        Option(key: "replication.write_concern_timeout_ms", kind: .integer, required: false, summary: "default write-concern wait (default 10000)"),
        Option(key: "membership.probe_interval_ms", kind: .integer, required: false, summary: "SWIM probe period (default 500)"),
        Option(key: "membership.probe_timeout_ms", kind: .integer, required: false, summary: "SWIM probe timeout (default 300)"),
        Option(key: "checkpoint_records", kind: .integer, required: false, summary: "journaled deltas between checkpoints (default 10000)"),
        Option(key: "resp.host", kind: .string, required: false, summary: "RESP (Redis protocol) front door address (default 127.0.0.1)"),
        Option(key: "resp.port", kind: .integer, required: false, summary: "RESP port (default listen.port + 2; -1 disables)"),
        Option(key: "resp.password", kind: .string, required: false, summary: "password clients give with AUTH (default none: no AUTH)"),
        Option(key: "resp.default_domain", kind: .string, required: false, summary: "domain of plain keys (default: the first of domains)"),
        Option(key: "resp.max_clients", kind: .integer, required: false, summary: "connected RESP clients at most (default 10000)"),
        Option(key: "resp.max_arguments", kind: .integer, required: false, summary: "arguments per command at most (default 65536)"),
        Option(key: "resp.max_bulk_bytes", kind: .integer, required: false, summary: "bytes per argument at most (default 8 MiB)"),
        Option(key: "resp.max_pipeline_bytes", kind: .integer, required: false, summary: "unexecuted bytes a client may send ahead (default 64 MiB)"),
        Option(key: "log.level", kind: .string, required: false, summary: "trace, debug, info (default), notice, warning, error, critical"),
    ]

    /// The file read.
    public let file: String
    let values: [String: ConfigValue]

    enum ConfigValue: Sendable {
        case string(String)
        case integer(Int)
        case strings([String])
    }

    /// Reads `file` and the environment; reports the first problem with its file, key and reason.
    public static func load(file: String, environment: [String: String] = ProcessInfo.processInfo.environment) async throws
        -> NodeConfigFile
    {
        guard FileManager.default.fileExists(atPath: file) else {
            throw ConfigurationError(file: file, key: "-", reason: "the configuration file does not exist")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError(file: file, key: "-", reason: "the configuration file cannot be read")
        }
        let raw: Any
        do {
            raw = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigurationError(file: file, key: "-", reason: "not valid JSON: \(error.localizedDescription)")
        }
        guard let root = raw as? [String: Any] else {
            throw ConfigurationError(file: file, key: "-", reason: "the top level must be a JSON object")
        }
        var present = Set<String>()
        try collectKeys(root, prefix: "", into: &present, file: file)

        let fileProvider = try await FileProvider<JSONSnapshot>(filePath: FilePath(file))
        let environmentProvider = EnvironmentVariablesProvider(environmentVariables: environment)
            .prefixKeys(with: ["statemesh"])
        let reader = ConfigReader(providers: [environmentProvider, fileProvider])
        var values: [String: ConfigValue] = [:]
        for option in options {
            let variable = environmentName(option.key)
            let isSet = present.contains(option.key) || environment[variable] != nil
            guard isSet else {
                if option.required {
                    throw ConfigurationError(file: file, key: option.key, reason: "missing (\(option.summary))")
                }
                continue
            }
            let source = environment[variable] != nil ? "\(variable) (environment)" : option.key
            do {
                switch option.kind {
                case .string: values[option.key] = .string(try reader.requiredString(forKey: ConfigKey(option.key)))
                case .integer: values[option.key] = .integer(try reader.requiredInt(forKey: ConfigKey(option.key)))
                case .strings:
                    values[option.key] = .strings(try reader.requiredStringArray(forKey: ConfigKey(option.key)))
                }
            } catch {
                throw ConfigurationError(file: file, key: source, reason: "expected a \(option.kind.rawValue)")
            }
        }
        return NodeConfigFile(file: file, values: values)
    }

    /// The environment variable that overrides `key`.
    public static func environmentName(_ key: String) -> String {
        "STATEMESH_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    private static func collectKeys(_ object: [String: Any], prefix: String, into keys: inout Set<String>, file: String)
        throws
    {
        let known = Set(options.map(\.key))
        for (name, value) in object {
            let key = prefix.isEmpty ? name : "\(prefix).\(name)"
            if let nested = value as? [String: Any] {
                guard known.contains(where: { $0.hasPrefix(key + ".") }) else {
                    throw ConfigurationError(file: file, key: key, reason: "unknown option")
                }
                try collectKeys(nested, prefix: key, into: &keys, file: file)
            } else {
                guard known.contains(key) else {
                    throw ConfigurationError(file: file, key: key, reason: "unknown option")
                }
                keys.insert(key)
            }
        }
    }

    func string(_ key: String) -> String? { if case .string(let value)? = values[key] { value } else { nil } }
    func integer(_ key: String) -> Int? { if case .integer(let value)? = values[key] { value } else { nil } }
    func strings(_ key: String) -> [String]? { if case .strings(let value)? = values[key] { value } else { nil } }

    func problem(_ key: String, _ reason: String) -> ConfigurationError {
        ConfigurationError(file: file, key: key, reason: reason)
    }

    /// A path relative to the configuration file's directory.
    func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(path).path
    }

    var listenPort: Int { integer("listen.port") ?? 7400 }

    /// The status endpoint, or `nil` when disabled.
    public func statusEndpoint() throws -> MemberAddress? {
        let port = integer("status.port") ?? (listenPort == 0 ? 0 : listenPort + 1)
        if port == -1 { return nil }
        guard (0...65_535).contains(port) else { throw problem("status.port", "\(port) is not a port (0...65535, or -1)") }
        return MemberAddress(host: string("status.host") ?? "127.0.0.1", port: port)
    }

    /// The RESP front door's configuration, or `nil` when `resp.port` is -1.
    public func respConfiguration() throws -> RESPServerConfiguration? {
        let port = integer("resp.port") ?? (listenPort == 0 ? 0 : listenPort + 2)
        guard (-1...65_535).contains(port) else { throw problem("resp.port", "\(port) is not a port (0...65535, or -1)") }
        let domains = strings("domains") ?? ["default"]
        let defaultDomain = string("resp.default_domain") ?? domains.first ?? "default"
        guard domains.contains(defaultDomain) else {
            throw problem("resp.default_domain", "\(defaultDomain) is not listed in domains")
        }
        if let password = string("resp.password"), password.isEmpty {
            throw problem("resp.password", "empty; leave it out for no authentication")
        }
        var configuration = RESPServerConfiguration(
            host: string("resp.host") ?? "127.0.0.1", port: port, password: string("resp.password"),
            defaultDomain: defaultDomain)
        func positive(_ key: String, _ apply: (Int) -> Void) throws {
            guard let value = integer(key) else { return }
            guard value >= 1 else { throw problem(key, "\(value) must be at least 1") }
            apply(value)
        }
        try positive("resp.max_clients") { configuration.maximumClients = $0 }
        try positive("resp.max_arguments") { configuration.limits.maximumArguments = $0 }
        try positive("resp.max_bulk_bytes") { configuration.limits.maximumBulkBytes = $0 }
        try positive("resp.max_pipeline_bytes") { configuration.maximumPipelineBytes = $0 }
        // Every key is checked even when the front door is off: a mistake shows before it is turned on.
        return port == -1 ? nil : configuration
    }

    /// The configured log level (default info).
    public var logLevel: Logger.Level { string("log.level").flatMap(Logger.Level.init(rawValue:)) ?? .info }

    /// The node configuration, with every value checked; nothing is started.
    public func nodeConfiguration() throws -> MeshNodeConfiguration {
        let identityPath = resolve(string("identity_file")!)
        let identity: NodeIdentity
        do {
            identity = try NodeIdentity.load(from: identityPath)
        } catch {
            throw problem("identity_file", "\(error)")
        }
        let keyPath = resolve(string("cluster.key_file")!)
        let clusterKey = try Self.readClusterKey(keyPath, problem: { problem("cluster.key_file", $0) })
        let epoch = integer("cluster.epoch") ?? 1
        guard (0...Int(UInt32.max)).contains(epoch) else { throw problem("cluster.epoch", "\(epoch) is not a UInt32") }
        var allowed = Set<NodeID>()
        for (index, text) in (strings("cluster.allowed_peers") ?? []).enumerated() {
            guard let bytes = Self.hexBytes(text), bytes.count == 32, let id = try? NodeID(ed25519PublicKey: bytes) else {
                throw problem("cluster.allowed_peers[\(index)]", "\"\(text)\" is not a 64-digit hex public key")
            }
            allowed.insert(id)
        }
        let admission: AdmissionPolicy
        do {
            admission = try AdmissionPolicy(allowedPeers: allowed, epoch: UInt32(epoch), clusterKey: clusterKey)
        } catch {
            throw problem("cluster.key_file", "\(error)")
        }
        let dataDirectory = resolve(string("data_directory")!)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dataDirectory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw problem("data_directory", "\(dataDirectory) exists and is not a directory") }
            guard FileManager.default.isWritableFile(atPath: dataDirectory),
                FileManager.default.isReadableFile(atPath: dataDirectory)
            else { throw problem("data_directory", "\(dataDirectory) is not readable and writable") }
        } else {
            let parent = URL(fileURLWithPath: dataDirectory).deletingLastPathComponent().path
            var parentIsDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: parent, isDirectory: &parentIsDirectory), parentIsDirectory.boolValue
            else { throw problem("data_directory", "the parent \(parent) of \(dataDirectory) is not a directory") }
        }

        var configuration = MeshNodeConfiguration(identity: identity, admission: admission, dataDirectory: dataDirectory)
        let port = listenPort
        guard (0...65_535).contains(port) else { throw problem("listen.port", "\(port) is not a port (0...65535)") }
        configuration.transport.host = string("listen.host") ?? "127.0.0.1"
        configuration.transport.port = port
        configuration.advertisedHost = string("advertise.host")
        configuration.statusEndpoint = try statusEndpoint()
        configuration.seeds = try (strings("seeds") ?? []).enumerated().map { index, text in
            guard let colon = text.lastIndex(of: ":"), let seedPort = Int(text[text.index(after: colon)...]),
                (1...65_535).contains(seedPort), colon != text.startIndex
            else { throw problem("seeds[\(index)]", "\"\(text)\" is not HOST:PORT") }
            return MemberAddress(host: String(text[..<colon]), port: seedPort)
        }
        switch string("durability.mode") ?? "always" {
        case "always": configuration.durability = .always
        case "batched":
            let interval = integer("durability.interval_ms") ?? 5
            guard (1...10_000).contains(interval) else {
                throw problem("durability.interval_ms", "\(interval) is not in 1...10000")
            }
            configuration.durability = .batched(intervalMilliseconds: interval)
        case let other: throw problem("durability.mode", "\"\(other)\" is neither always nor batched")
        }
        let eventual = Set(strings("eventual_domains") ?? [])
        let names = strings("domains") ?? ["default"]
        for name in eventual where !names.contains(name) {
            throw problem("eventual_domains", "\(name) is not listed in domains")
        }
        configuration.domains = names.map { DomainConfiguration(name: $0, mode: eventual.contains($0) ? .eventual : .causal) }
        func positive(_ key: String, _ apply: (Int) -> Void) throws {
            guard let value = integer(key) else { return }
            guard value >= 1 else { throw problem(key, "\(value) must be at least 1") }
            apply(value)
        }
        try positive("replication.gossip_interval_ms") { configuration.replication.gossipIntervalMilliseconds = UInt64($0) }
        try positive("replication.fanout") {
            configuration.replication.fanout = $0
            configuration.replication.maximumEagerPeers = max(configuration.replication.maximumEagerPeers, $0)
        }
        try positive("replication.max_buffered_deltas") { configuration.replication.maximumBufferedDeltas = $0 }
        try positive("replication.max_log_deltas") { configuration.replication.maximumLogDeltas = $0 }
        try positive("replication.max_log_bytes") { configuration.replication.maximumLogBytes = $0 }
        try positive("replication.write_concern_timeout_ms") {
            configuration.replication.writeConcernTimeoutMilliseconds = UInt64($0)
        }
        try positive("membership.probe_interval_ms") { configuration.membership.probeIntervalMilliseconds = UInt64($0) }
        try positive("membership.probe_timeout_ms") { configuration.membership.probeTimeoutMilliseconds = UInt64($0) }
        try positive("checkpoint_records") { configuration.checkpointRecordCount = $0 }
        if let level = string("log.level"), Logger.Level(rawValue: level) == nil {
            throw problem("log.level", "\"\(level)\" is not a log level")
        }
        do {
            try configuration.validate()
        } catch {
            throw problem("-", "\(error)")
        }
        return configuration
    }

    /// Reads a cluster key file: exactly 32 bytes, no group or other permissions.
    static func readClusterKey(_ path: String, problem: (String) -> ConfigurationError) throws -> [UInt8] {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw problem("\(path) does not exist or cannot be read")
        }
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw problem("\(path) has mode \(String(mode, radix: 8)); group/other must have no access (chmod 600)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw problem("\(path) cannot be read") }
        guard data.count == 32 else { throw problem("\(path) holds \(data.count) bytes, expected 32") }
        return Array(data)
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hex digits.
    public var hex: String { map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }
}
