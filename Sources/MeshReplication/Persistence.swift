import MeshCRDT
import MeshCodec

// What a shell needs to make a replica durable: a checkpoint (the whole `PersistedReplica`,
// encoded) plus the records delivered since, replayed in delivery order on restart.
//
// Replaying is safe because every update is a join (idempotent, commutative): a record that
// the checkpoint already covers changes nothing, and records are replayed in the order they
// were delivered, which was a causal order.

extension PersistedReplica {
    /// The encoding's version byte; a checkpoint with another version is refused.
    public static let formatVersion: UInt8 = 1

    /// The last link epoch issued (a restarted replica continues above it).
    public var linkEpoch: UInt64 { lastEpoch }

    /// The domains' names, in configuration order.
    public var domainNames: [String] { domains.map(\.configuration.name) }

    /// The delivered version vector of `domain`.
    public func vector(of domain: String) -> VersionVector? {
        domains.first { $0.configuration.name == domain }?.vector
    }

    /// Encodes the checkpoint: version, replica, clock, epoch, then per domain its name, mode,
    /// vector, objects (sorted by key) and log records (per origin, in sequence order).
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.writeByte(Self.formatVersion)
        writer.writeVarint(replicaID.rawValue)
        PayloadCodec.writeTimestamp(latestTimestamp, to: &writer)
        writer.writeVarint(lastEpoch)
        writer.writeCount(domains.count)
        for domain in domains {
            writer.writeString(domain.configuration.name)
            writer.writeByte(domain.configuration.mode.rawValue)
            PayloadCodec.writeVector(domain.vector, to: &writer)
            writer.writeCount(domain.objects.count)
            for key in domain.objects.keys.sorted() {
                writer.writeString(key)
                PayloadCodec.encode(domain.objects[key]!, to: &writer)
            }
            let records = domain.log.allRecords()
            writer.writeCount(records.count)
            for record in records { record.encode(to: &writer) }
        }
        return writer.bytes
    }

    /// Decodes a checkpoint written by `encoded()`.
    ///
    /// - Throws: `CodecError` for a wrong version, truncated or inconsistent input (a record
    ///   beyond its domain's vector, duplicate domains).
    public init(decoding bytes: [UInt8], limits: CodecLimits) throws(CodecError) {
        var reader = try ByteReader(bytes, limits: limits)
        let version = try reader.readByte("checkpoint version")
        guard version == Self.formatVersion else {
            throw CodecError(.unsupportedVersion, at: 0, "checkpoint version \(version), expected \(Self.formatVersion)")
        }
        let replica = ReplicaID(try reader.readVarint("replica"))
        let timestamp = try PayloadCodec.readTimestamp(from: &reader)
        let epoch = try reader.readVarint("link epoch")
        let domainCount = try reader.readCount(limit: 1_024, minimumItemBytes: 4, "domains")
        var domains: [Domain] = []
        var names = Set<String>()
        for _ in 0..<domainCount {
            let offset = reader.offset
            let name = try reader.readString("domain name")
            guard names.insert(name).inserted else {
                throw CodecError(.invalidValue, at: offset, "domain \(name) appears twice")
            }
            let modeOffset = reader.offset
            guard let mode = DomainMode(rawValue: try reader.readByte("domain mode")) else {
                throw CodecError(.invalidValue, at: modeOffset, "unknown domain mode")
            }
            let vector = try PayloadCodec.readVector(from: &reader)
            let objectCount = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 2, "objects")
            var objects: [String: ObjectValue] = [:]
            objects.reserveCapacity(objectCount)
            for _ in 0..<objectCount {
                let keyOffset = reader.offset
                let key = try reader.readString("key")
                guard objects[key] == nil else { throw CodecError(.notCanonical, at: keyOffset, "key \(key) twice") }
                objects[key] = try PayloadCodec.decode(from: &reader)
            }
            let recordCount = try reader.readCount(limit: reader.limits.maximumElements, minimumItemBytes: 4, "records")
            var log = DeltaLog()
            for _ in 0..<recordCount {
                let recordOffset = reader.offset
                let record = try DeltaRecord.decode(from: &reader)
                guard record.lastSequence <= vector[record.origin],
                    log.last(of: record.origin).map({ $0.lastSequence < record.firstSequence }) ?? true
                else {
                    throw CodecError(.invalidValue, at: recordOffset, "logged \(record) is not within the vector")
                }
                log.append(record, at: Instant(milliseconds: 0))
            }
            domains.append(
                Domain(
                    configuration: DomainConfiguration(name: name, mode: mode), objects: objects, vector: vector,
                    log: log))
        }
        try reader.expectEnd()
        self.init(replicaID: replica, latestTimestamp: timestamp, lastEpoch: epoch, domains: domains)
    }

    /// A fresh replica's persisted form (nothing written yet): what a shell checkpoints first.
    public init(replicaID: ReplicaID, domains: [DomainConfiguration]) {
        self.init(
            replicaID: replicaID, latestTimestamp: .zero, lastEpoch: 0,
            domains: domains.map { Domain(configuration: $0, objects: [:], vector: VersionVector(), log: DeltaLog()) })
    }

    /// Re-applies a record delivered after the checkpoint: merges its updates, advances the
    /// vector, logs it and adopts its timestamp. Records of unknown domains and records the
    /// vector already covers change nothing.
    ///
    /// - Returns: whether the record was new.
    @discardableResult
    public mutating func replay(_ record: DeltaRecord, in domain: String) -> Bool {
        guard let index = domains.firstIndex(where: { $0.configuration.name == domain }) else { return false }
        guard record.lastSequence > domains[index].vector[record.origin] else { return false }
        for update in record.updates {
            if var existing = domains[index].objects.removeValue(forKey: update.key) {
                // A type conflict was reported when the record was first delivered; it is skipped again.
                _ = existing.merge(update.value)
                domains[index].objects[update.key] = existing
            } else {
                domains[index].objects[update.key] = update.value
            }
        }
        domains[index].vector[record.origin] = record.lastSequence
        if let last = domains[index].log.last(of: record.origin), last.lastSequence >= record.firstSequence {
            // Overlaps a logged group (a local group that kept growing): the log keeps what it has.
        } else {
            domains[index].log.append(record, at: Instant(milliseconds: 0))
        }
        if record.timestamp > latestTimestamp { latestTimestamp = record.timestamp }
        return true
    }

    /// Adds a domain the replica did not replicate before (a configuration that grew); no-op if present.
    public mutating func addDomain(_ configuration: DomainConfiguration) {
        guard !domains.contains(where: { $0.configuration.name == configuration.name }) else { return }
        domains.append(Domain(configuration: configuration, objects: [:], vector: VersionVector(), log: DeltaLog()))
    }

    /// Raises the HLC high-water mark (a shell that persisted a later one than its checkpoint).
    public mutating func raiseClock(to timestamp: HLCTimestamp) {
        if timestamp > latestTimestamp { latestTimestamp = timestamp }
    }

    /// Raises the link-epoch floor (a shell that persisted a later epoch than its checkpoint).
    public mutating func raiseLinkEpoch(to epoch: UInt64) {
        lastEpoch = max(lastEpoch, epoch)
    }
}

extension DeltaRecord {
    /// The record's encoding (as in a delta message), for a durable log.
    public func encoded() -> [UInt8] { encoding }

    /// Decodes a record written by `encoded()`.
    public static func decoded(_ bytes: [UInt8], limits: CodecLimits = .default) throws(CodecError) -> DeltaRecord {
        var reader = try ByteReader(bytes, limits: limits)
        let record = try decode(from: &reader)
        try reader.expectEnd()
        return record
    }
}

extension ReplicaStateMachine {
    /// The last link epoch issued; a shell persists it so a restart never reuses one.
    public var linkEpoch: UInt64 { lastEpoch }

    /// The logged records of `origin` in `domain` covering `(after, upTo]`, or `nil` when the
    /// log no longer holds all of them (compacted at stability or at its cap).
    public func loggedRecords(in domain: String, of origin: ReplicaID, after: UInt64, upTo: UInt64) -> [DeltaRecord]? {
        guard let index = domainIndex[domain] else { return nil }
        var entries: [DeltaLog.Entry] = []
        guard domains[index].log.appendRecords(of: origin, after: after, upTo: upTo, to: &entries) else { return nil }
        return entries.map(\.record)
    }

    /// What `peer` is known to have delivered in `domain` (from its digests and acknowledgements).
    public func knownVector(of peer: PeerID, in domain: String) -> VersionVector? {
        guard let index = domainIndex[domain], let known = knowledge[peer] else { return nil }
        return known[index]
    }
}
