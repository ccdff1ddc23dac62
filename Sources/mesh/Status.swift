import MeshConfigFile
import ArgumentParser
import Foundation
import StateMesh

/// `mesh status`: what a running node sees.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running node's peers, vectors, lag, buffers and traffic.",
        discussion: "Reads the node's status endpoint (status.host/status.port of its configuration)."
    )

    @Option(name: .long, help: "The node's configuration file (finds its status endpoint).")
    var config: String?

    @Option(name: .long, help: "The node's status endpoint as HOST:PORT.")
    var node: String?

    @Flag(name: .long, help: "Print the raw JSON.")
    var json = false

    func validate() throws {
        if (config == nil) == (node == nil) { throw ValidationError("give exactly one of --config or --node") }
    }

    func run() async throws {
        let host: String
        let port: Int
        if let node {
            guard let colon = node.lastIndex(of: ":"), let value = Int(node[node.index(after: colon)...]) else {
                throw ValidationError("--node must be HOST:PORT")
            }
            host = String(node[..<colon])
            port = value
        } else {
            let file = try await NodeConfigFile.load(file: config!)
            guard let endpoint = try file.statusEndpoint(), endpoint.port != 0 else {
                throw ValidationError("\(config!): status.port: the status endpoint is disabled or has no fixed port")
            }
            host = endpoint.host
            port = endpoint.port
        }
        let data = try StatusClient.fetch(host: host, port: port)
        if json {
            FileHandle.standardOutput.write(data)
            return
        }
        let status = try JSONDecoder().decode(NodeStatus.self, from: data)
        print(StatusTable.render(status))
    }
}

/// Reads a status endpoint (one JSON document per connection).
enum StatusClient {
    static func fetch(host: String, port: Int) throws -> Data {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, "\(port)", &hints, &result) == 0, let info = result else {
            throw ValidationError("cannot resolve \(host)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { throw ValidationError("cannot create a socket") }
        defer { close(fd) }
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            throw ValidationError("no node answers at \(host):\(port) (is it running, with its status endpoint there?)")
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while data.count < 16 << 20 {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            data.append(contentsOf: buffer[0..<count])
        }
        return data
    }
}

/// The human-readable status.
enum StatusTable {
    static func render(_ status: NodeStatus) -> String {
        var lines: [String] = []
        lines.append("node \(status.nodeID.prefix(16))  replica \(status.replicaID)  at \(status.address)")
        lines.append(
            "durability \(status.durability)  local health \(status.localHealth)  pending writes \(status.pendingWrites)  subscribers \(status.subscribers)"
        )
        if let door = status.frontDoor {
            lines.append("\(door.proto) front door \(door.endpoint)  clients \(door.clients)  commands \(door.commands)")
        } else {
            lines.append("no RESP front door")
        }
        lines.append("")
        lines.append(row(["PEER", "ADDRESS", "STATE", "INCARNATION", "SESSION", "LAG"]))
        for peer in status.peers {
            lines.append(
                row([
                    String(peer.nodeID.prefix(16)), peer.address, peer.state, "\(peer.incarnation)",
                    peer.isConnected ? "up" : "down", "\(peer.lag)",
                ]))
        }
        lines.append("")
        lines.append(row(["DOMAIN", "OBJECTS", "BUFFERED", "LOG", "LOG BYTES", "LAG", "VECTOR"]))
        for domain in status.domains {
            let vector = domain.vector.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
            lines.append(
                row([
                    domain.name, "\(domain.objectCount)", "\(domain.bufferedDeltas)", "\(domain.logRecords)",
                    "\(domain.logBytes)", "\(domain.replicationLag)", vector,
                ]))
        }
        lines.append("")
        let sent = status.traffic.bytesSent.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        lines.append("bytes sent: " + (sent.isEmpty ? "none" : sent.joined(separator: ", ")))
        return lines.joined(separator: "\n")
    }

    private static func row(_ cells: [String]) -> String {
        let widths = [18, 22, 9, 12, 10, 10, 0]
        return zip(cells, widths).map { cell, width in
            width == 0 || cell.count >= width ? cell + " " : cell + String(repeating: " ", count: width - cell.count)
        }.joined()
    }
}
