import MeshCRDT
import MeshCodec
import MeshReplication

/// Where a change subscriber is: per domain, the version vector of the changes it has seen.
///
/// Store the `position` of the last event handled; `changes(matching:after:)` with it
/// resumes without missing or repeating a change, across restarts of the consumer or the node.
public struct ChangePosition: Sendable, Hashable {
    /// Per domain, what has been seen.
    public internal(set) var vectors: [String: VersionVector]

    /// The start: nothing seen.
    public init() { vectors = [:] }

    /// The encoding of the position (for a consumer to store): a version byte, then per domain (sorted
    /// by name) its name and its vector as a `MeshCodec` record.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.writeByte(1)
        writer.writeCount(vectors.count)
        for name in vectors.keys.sorted() {
            writer.writeString(name)
            MeshCodec.encode(vectors[name]!, to: &writer)
        }
        return writer.bytes
    }

    /// Decodes `encoded()`.
    ///
    /// - Throws: `CodecError` for anything else.
    public init(decoding bytes: [UInt8]) throws(CodecError) {
        var reader = try ByteReader(bytes)
        let version = try reader.readByte("position version")
        guard version == 1 else { throw CodecError(.unsupportedVersion, at: 0, "position version \(version)") }
        let count = try reader.readCount(limit: 1_024, minimumItemBytes: 2, "domains")
        var vectors: [String: VersionVector] = [:]
        for _ in 0..<count {
            let offset = reader.offset
            let name = try reader.readString("domain")
            guard vectors[name] == nil else { throw CodecError(.notCanonical, at: offset, "domain \(name) twice") }
            vectors[name] = try MeshCodec.decode(VersionVector.self, from: &reader)
        }
        try reader.expectEnd()
        self.vectors = vectors
    }
}

/// One change to an object, local or from another node.
public struct ChangeEvent: Sendable {
    /// How the change reached this node.
    public enum Kind: Sendable, Hashable {
        /// A write on this node.
        case local
        /// A delta from another node.
        case remote
        /// A snapshot from another node (state that was compacted out of every log it could come from).
        case snapshot
        /// Catch-up after `changes(matching:after:)`: the log no longer holds every missed delta, so the
        /// object's current value stands for all of its missed changes (one event per object).
        case resynchronized
    }

    /// The object's address.
    public let address: MeshAddress
    /// The object's value after the change (its value now, for catch-up events).
    public let value: ObjectValue?
    /// The replica whose write this is (this node's replica for local writes; for snapshot and
    /// resynchronized events, the replica of the latest write covered).
    public let origin: ReplicaID
    /// How it arrived.
    public let kind: Kind
    /// The position after this event: resume from it to get the next change.
    public let position: ChangePosition
}
