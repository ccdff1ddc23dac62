#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MeshConfigFile
import MeshMembership
import MeshSecurity
import MeshTesting
import StateMesh
import Testing

/// Runs `mesh` with `arguments` to completion; returns its status, stdout and stderr.
func runMesh(_ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String, String) {
    let result = try await runToCompletion(
        try builtExecutable(named: "mesh"), arguments: arguments, environment: environment.mapValues { Optional($0) })
    return (result.status, result.standardOutput, result.standardError)
}

/// A directory with an identity, a cluster key and a valid configuration file for one node.
struct ConfigFixture {
    let directory: String
    let file: String
    let identity: NodeIdentity

    init(port: Int = 0, extra: [String: Any] = [:], allowed: [String] = [], seeds: [String] = []) throws {
        directory = NSTemporaryDirectory() + "statemesh-config-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        identity = try NodeIdentity.generate()
        try identity.save(to: "\(directory)/identity.key")
        #expect(
            FileManager.default.createFile(
                atPath: "\(directory)/cluster.key", contents: Data(repeating: 9, count: 32),
                attributes: [.posixPermissions: 0o600]))
        var object: [String: Any] = [
            "identity_file": "identity.key",
            "cluster": ["key_file": "cluster.key", "epoch": 1, "allowed_peers": allowed],
            "listen": ["host": "127.0.0.1", "port": port],
            "data_directory": "data",
            "seeds": seeds,
            "status": ["port": -1],
            "resp": ["port": -1],
        ]
        for (key, value) in extra {
            if let nested = value as? [String: Any], var existing = object[key] as? [String: Any] {
                existing.merge(nested) { $1 }
                object[key] = existing
            } else {
                object[key] = value
            }
        }
        file = "\(directory)/node.json"
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        #expect(FileManager.default.createFile(atPath: file, contents: data))
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// The key a configuration error names, or nil when the file loads and converts without error.
func rejectedKey(_ fixture: ConfigFixture, environment: [String: String] = [:]) async -> String? {
    do {
        let file = try await NodeConfigFile.load(file: fixture.file, environment: environment)
        _ = try file.nodeConfiguration()
        _ = try file.respConfiguration()
        return nil
    } catch let error as ConfigurationError {
        #expect(error.file == fixture.file)
        return error.key
    } catch {
        Issue.record("unexpected error \(error)")
        return "?"
    }
}

@Suite("The mesh command", .serialized)
struct CommandTests {
    /// A valid file loads, relative paths resolve next to it, and an environment variable overrides a key.
    @Test func validConfigurationAndOverrides() async throws {
        let fixture = try ConfigFixture(port: 7411, extra: ["durability": ["mode": "batched", "interval_ms": 7]])
        defer { fixture.remove() }
        let configuration = try await NodeConfigFile.load(file: fixture.file).nodeConfiguration()
        #expect(configuration.transport.port == 7411)
        #expect(configuration.durability == .batched(intervalMilliseconds: 7))
        #expect(configuration.dataDirectory == "\(fixture.directory)/data")
        #expect(configuration.identity.nodeID == fixture.identity.nodeID)
        let overridden = try await NodeConfigFile.load(
            file: fixture.file, environment: ["STATEMESH_LISTEN_PORT": "7412"]
        ).nodeConfiguration()
        #expect(overridden.transport.port == 7412)
    }

    /// The RESP keys load with their documented defaults (port listen.port + 2, loopback, no password,
    /// the first domain), -1 disables the front door, and the environment overrides a key.
    @Test func respConfiguration() async throws {
        let fixture = try ConfigFixture(
            port: 7411,
            extra: ["domains": ["fleet", "default"], "resp": ["port": 6500, "password": "pw", "max_clients": 5]])
        defer { fixture.remove() }
        let resp = try #require(try await NodeConfigFile.load(file: fixture.file).respConfiguration())
        #expect(resp.port == 6500 && resp.host == "127.0.0.1" && resp.password == "pw" && resp.maximumClients == 5)
        #expect(resp.defaultDomain == "fleet")
        let overridden = try #require(
            try await NodeConfigFile.load(file: fixture.file, environment: ["STATEMESH_RESP_PASSWORD": "other"])
                .respConfiguration())
        #expect(overridden.password == "other")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture.file))) as! [String: Any]
        object["resp"] = nil
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: fixture.file))
        let defaults = try #require(try await NodeConfigFile.load(file: fixture.file).respConfiguration())
        #expect(defaults.port == 7413 && defaults.password == nil)
        let disabled = try await NodeConfigFile.load(file: fixture.file, environment: ["STATEMESH_RESP_PORT": "-1"])
        #expect(try disabled.respConfiguration() == nil)
    }

    /// Each documented rejection names the key at fault: bad port, missing key file, unusable data
    /// directory, unknown option, wrongly typed value (in the file and in the environment), missing option.
    @Test func rejectionsNameTheKey() async throws {
        let badPort = try ConfigFixture(port: 70_000)
        defer { badPort.remove() }
        #expect(await rejectedKey(badPort) == "listen.port")

        let missingKey = try ConfigFixture()
        defer { missingKey.remove() }
        try FileManager.default.removeItem(atPath: "\(missingKey.directory)/identity.key")
        #expect(await rejectedKey(missingKey) == "identity_file")

        let fileAsDirectory = try ConfigFixture()
        defer { fileAsDirectory.remove() }
        #expect(FileManager.default.createFile(atPath: "\(fileAsDirectory.directory)/data", contents: Data([1])))
        #expect(await rejectedKey(fileAsDirectory) == "data_directory")

        let unknown = try ConfigFixture(extra: ["colour": "blue"])
        defer { unknown.remove() }
        #expect(await rejectedKey(unknown) == "colour")
        let unknownNested = try ConfigFixture(extra: ["listen": ["prot": 1]])
        defer { unknownNested.remove() }
        #expect(await rejectedKey(unknownNested) == "listen.prot")

        let wrongType = try ConfigFixture(extra: ["replication": ["fanout": "three"]])
        defer { wrongType.remove() }
        #expect(await rejectedKey(wrongType) == "replication.fanout")
        let valid = try ConfigFixture()
        defer { valid.remove() }
        #expect(await rejectedKey(valid) == nil)
        #expect(
            await rejectedKey(valid, environment: ["STATEMESH_LISTEN_PORT": "seventy"])
                == "STATEMESH_LISTEN_PORT (environment)")

        let badRESPPort = try ConfigFixture(extra: ["resp": ["port": 70_000]])
        defer { badRESPPort.remove() }
        #expect(await rejectedKey(badRESPPort) == "resp.port")
        let foreignDomain = try ConfigFixture(extra: ["resp": ["default_domain": "fleet"]])
        defer { foreignDomain.remove() }
        #expect(await rejectedKey(foreignDomain) == "resp.default_domain")
        let emptyPassword = try ConfigFixture(extra: ["resp": ["password": ""]])
        defer { emptyPassword.remove() }
        #expect(await rejectedKey(emptyPassword) == "resp.password")

        let insecureKey = try ConfigFixture()
        defer { insecureKey.remove() }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: "\(insecureKey.directory)/cluster.key")
        #expect(await rejectedKey(insecureKey) == "cluster.key_file")

        let noData = try ConfigFixture()
        defer { noData.remove() }
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: noData.file))) as! [String: Any]
        object["data_directory"] = nil
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: noData.file))
        #expect(await rejectedKey(noData) == "data_directory")
    }

    /// `mesh node` refuses a bad file before starting anything, naming file, key and reason, with a failure status.
    @Test func nodeCommandRefusesBadConfiguration() async throws {
        let fixture = try ConfigFixture(port: 99_999)
        defer { fixture.remove() }
        let (status, _, errors) = try await runMesh(["node", "--config", fixture.file])
        #expect(status != 0)
        #expect(errors.contains("\(fixture.file): listen.port:"))
        #expect(!FileManager.default.fileExists(atPath: "\(fixture.directory)/data"))
    }

    /// `mesh keygen` writes a 0600 identity (and cluster key) and prints the public key for allow-lists.
    @Test func keygenWritesPrivateKeyFiles() async throws {
        let directory = NSTemporaryDirectory() + "statemesh-keygen-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (status, output, _) = try await runMesh(["keygen", "--out", directory, "--cluster-key"])
        #expect(status == 0)
        let identity = try NodeIdentity.load(from: "\(directory)/identity.key")
        #expect(output.contains("public key: \(identity.publicKey.hex)"))
        for name in ["identity.key", "cluster.key"] {
            let mode = try FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
        let (again, _, errors) = try await runMesh(["keygen", "--out", directory])
        #expect(again != 0 && errors.contains("exists"))
    }

    /// Three `mesh node` processes started from configuration files form a mesh with an in-process node,
    /// converge on its writes (same vector and object count in `mesh status --json`), and stop gracefully on SIGTERM.
    @Test func threeNodeProcessesFormAMeshAndConverge() async throws {
        // Free ports: bind port 0 briefly.
        func freePort() -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return Int(UInt16(bigEndian: address.sin_port))
        }
        let writerIdentity = try NodeIdentity.generate()
        let identities = try (0..<3).map { _ in try NodeIdentity.generate() }
        let everyone = ([writerIdentity] + identities).map(\.publicKey.hex)
        let ports = (0..<3).map { _ in (freePort(), freePort()) }
        let respPorts = (0..<3).map { _ in freePort() }
        var fixtures: [ConfigFixture] = []
        for index in 0..<3 {
            let fixture = try ConfigFixture(
                port: ports[index].0,
                extra: ["status": ["port": ports[index].1], "resp": ["port": respPorts[index]],
                        "replication": ["gossip_interval_ms": 50],
                        "membership": ["probe_interval_ms": 200, "probe_timeout_ms": 100]],
                allowed: everyone, seeds: index == 0 ? [] : ["127.0.0.1:\(ports[0].0)"])
            try identities[index].save(to: "\(fixture.directory)/identity.key")
            fixtures.append(fixture)
        }
        defer { for fixture in fixtures { fixture.remove() } }
        var processes: [Process] = []
        defer { for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        for fixture in fixtures {
            let process = Process()
            process.executableURL = try builtExecutable(named: "mesh")
            process.arguments = ["node", "--config", fixture.file]
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            processes.append(process)
        }

        // The writer: an in-process node with the same cluster key, seeded with the first process.
        let admission = try AdmissionPolicy(
            allowedPeers: Set(([writerIdentity] + identities).map(\.nodeID)), epoch: 1,
            clusterKey: [UInt8](repeating: 9, count: 32))
        var configuration = MeshNodeConfiguration(
            identity: writerIdentity, admission: admission, dataDirectory: "\(fixtures[0].directory)/writer")
        configuration.replication.gossipIntervalMilliseconds = 50
        configuration.membership.probeIntervalMilliseconds = 200
        configuration.membership.probeTimeoutMilliseconds = 100
        configuration.seeds = [MemberAddress(host: "127.0.0.1", port: ports[0].0)]
        let writer = try MeshNode(configuration: configuration)
        let runner = Task { try await writer.run() }
        try await writer.waitUntilRunning()
        for index in 0..<30 {
            try await writer.counter("fabric://default/c\(index % 5)").increment(by: UInt64(index))
            try await writer.set("fabric://default/s").insert("e\(index)")
        }
        let expected = await writer.status().domains.first { $0.name == "default" }
        func statuses() async throws -> [NodeStatus] {
            var all: [NodeStatus] = []
            for (_, statusPort) in ports {
                let (status, output, _) = try await runMesh(["status", "--node", "127.0.0.1:\(statusPort)", "--json"])
                guard status == 0 else { throw MeshError(.notRunning, "status failed") }
                all.append(try JSONDecoder().decode(NodeStatus.self, from: Data(output.utf8)))
            }
            return all
        }
        let converged = await eventually(timeout: .seconds(60), every: .milliseconds(300)) {
            guard let all = try? await statuses() else { return false }
            return all.allSatisfy { status in
                let domain = status.domains.first { $0.name == "default" }
                return domain?.vector == expected?.vector && domain?.objectCount == expected?.objectCount
                    && status.peers.filter { $0.state == "alive" }.count == 3
            }
        }
        #expect(converged)
        // The human-readable table names the peers and the domain.
        let (tableStatus, table, _) = try await runMesh(["status", "--node", "127.0.0.1:\(ports[1].1)"])
        #expect(tableStatus == 0 && table.contains("DOMAIN") && table.contains("default"))
        // ...and the node's Redis front door.
        #expect(table.contains("resp front door 127.0.0.1:\(respPorts[1])  clients 0"))

        await writer.shutdown()
        _ = try? await runner.value
        for process in processes { kill(process.processIdentifier, SIGTERM) }
        let exitStatuses = await runBlocking { [processes] in
            processes.map { process in
                process.waitUntilExit()
                return process.terminationStatus
            }
        }
        #expect(exitStatuses.allSatisfy { $0 == 0 })
    }
}
