import MeshCRDT
import MeshCodec

/// What a replica stores durably: enough to restart after a crash with the same
/// `ReplicaID` (objects, vectors, log, clock high-water mark). Buffers, peer
/// knowledge and the gossip tree are volatile and rebuilt by the protocol.
public struct PersistedReplica: Sendable {
    struct Domain: Sendable {
        var configuration: DomainConfiguration
        var objects: [String: ObjectValue]
        var vector: VersionVector
        var log: DeltaLog
    }

    /// The replica's identity.
    public let replicaID: ReplicaID
    /// The HLC high-water mark.
    public internal(set) var latestTimestamp: HLCTimestamp
    /// The last link epoch issued: a restart must never reuse one, or a receiver would splice
    /// the new link onto the old one.
    var lastEpoch: UInt64
    var domains: [Domain]

    /// The encoded bytes of the persisted log records (what a disk would hold for them).
    public var logByteCount: Int { domains.reduce(0) { $0 + $1.log.byteCount } }
}

/// The sans-IO replication core of one replica: several causal domains, each with its
/// objects, delivered version vector `V`, delta log, causal buffer and what peers are
/// known to have delivered.
///
/// Events in (`write`, `receive`, `tick`, `peerJoined`, `peerLeft`, `read`), actions out
/// (`ReplicationAction`). Time arrives as an `Instant`; randomness comes from a seeded
/// `SplitMix64` owned by the value, so the same events replay the same actions.
///
/// Gossip follows Plumtree (Leitão, Pereira, Rodrigues 2007): new deltas are pushed
/// on eager links, a duplicate push prunes its link, lazy peers get batched IHAVE
/// announcements each round, and a gap left open for `graftTimeout` is pulled with a
/// GRAFT that also re-activates the link. Every round a digest (the vectors) goes to a
/// random peer; each side sends what the other lacks from its log, in bounded batches,
/// or a chunked snapshot when the log no longer holds it.
///
/// ### Invariants
/// - per domain, `V[me]` counts this replica's writes; each local write gets dot `(me, V[me] + 1)`;
/// - a record is delivered at most once and (causal mode) only when `V[origin] + 1 >= first`
///   and every dependency is `<= V`;
/// - buffer and log stay within `ReplicationConfiguration` bounds.
public struct ReplicaStateMachine: Sendable {
    /// A gap to pull if it is still open at `deadline`; `later` holds newer announced
    /// sequences that get their own grace period once this gap closes.
    struct Missing: Sendable {
        var upTo: UInt64
        var peer: PeerID
        var deadline: Instant
        var later: UInt64
    }

    struct Staging: Sendable {
        var peer: PeerID
        var identifier: UInt64
        var total: Int
        var vector: VersionVector
        var chunks: [Int: [KeyedDelta]]
        var byteCount: Int
    }

    /// A pushed batch waiting for its turn on its link or for its dependencies.
    struct PendingBatch: Sendable {
        var dependencies: [VersionVector.Entry]
        var records: [DeltaRecord]
        var byteCount: Int
    }

    /// The receiving end of a sender's link.
    struct IncomingLink: Sendable {
        var epoch: UInt64
        var expected: UInt64 = 0
        var pending: [UInt64: PendingBatch] = [:]
    }

    /// The sending end of a link to a peer.
    struct OutgoingLink: Sendable {
        var epoch: UInt64
        var nextSequence: UInt64 = 0
        /// Entries delivered outside links since the last batch (or the start vector).
        var dependencies: VersionVector
    }

    struct Domain: Sendable {
        let configuration: DomainConfiguration
        var objects: [String: ObjectValue] = [:]
        var vector = VersionVector()
        var announced = VersionVector()
        var stable = VersionVector()
        var log = DeltaLog()
        var missing: [ReplicaID: Missing] = [:]
        var isGroupOpen = false
        /// The open delta-group's writes, joined in place; its record in the log lags behind
        /// until `materializeOpenGroup` (at close, or when the log is read as a whole).
        var openGroup: DeltaGroup?
        /// Whether writes joined the open group since its record in the log was made.
        var isOpenGroupAheadOfLog = false
        var pendingPush: [(record: DeltaRecord, sender: PeerID?)] = []
        /// `V` at the last flush, and what was delivered outside links since (repairs, snapshots).
        var lastFlushVector = VersionVector()
        var pendingExtras = VersionVector()
        var outgoing: [PeerID: OutgoingLink] = [:]
        var incoming: [PeerID: IncomingLink] = [:]
        var standalone: [(batch: PendingBatch, sender: PeerID)] = []
        /// When a link with a gap (or unmet dependencies) gets resynchronised by a GRAFT.
        var stalledLinks: [PeerID: Instant] = [:]
        var bufferedCount = 0
        var bufferedBytes = 0
        var staging: Staging?
        var duplicates = 0
        var bufferOverflows = 0
        var snapshotsInstalled = 0
        var snapshotChunksSent = 0
        var outOfOrderDrops = 0

        init(configuration: DomainConfiguration) { self.configuration = configuration }
    }

    struct PendingWrite: Sendable {
        var id: WriteID
        var domain: Int
        var required: Int
        var deadline: Instant
    }

    struct PendingRead: Sendable {
        var domain: Int
        var key: String
        var value: ObjectValue?
        var asked: [PeerID]
        var contributors: Int
        var deadline: Instant
    }

    /// This replica's identity.
    public let replicaID: ReplicaID
    /// The bounds and tunables in force.
    public let configuration: ReplicationConfiguration
    var clock: HybridLogicalClock
    var random: SplitMix64
    var domains: [Domain]
    var domainIndex: DomainIndex
    /// Known peers, sorted.
    public private(set) var peers: [PeerID]
    /// Plumtree eager links, sorted.
    public private(set) var eagerPeers: [PeerID] = []
    /// Plumtree lazy links, sorted.
    public private(set) var lazyPeers: [PeerID] = []
    /// What each peer is known to have delivered, per domain index (from digests).
    var knowledge: [PeerID: [VersionVector]] = [:]
    /// Unreachable peers and what they were known to have delivered: they still hold back stability.
    var unreachable: [PeerID: [VersionVector]] = [:]
    var knowledgeChanged = false
    /// Acknowledgements the message being received has asked for so far (`receive` keeps the newest).
    var acknowledgementsOwed = 0
    /// The highest sequence of my writes each peer acknowledged, per domain index.
    var acknowledged: [PeerID: [UInt64]] = [:]
    var pendingWrites: [PendingWrite] = []
    var pendingReads: [UInt64: PendingRead] = [:]
    var snapshotSentAt: [PeerID: Instant] = [:]
    var nextRoundAt: Instant?
    var lastEpoch: UInt64 = 0
    var roundNumber: UInt64 = 0
    var epochFloor: [PeerID: UInt64] = [:]
    /// The highest beacon round seen from the tree root, and the link it first came on.
    var beaconRound: UInt64 = 0
    var treeParent: PeerID?
    var lastBeaconAt: Instant?
    /// The vector announced at the previous round (IHAVE lags a round behind pushes).
    var announcementLag: [VersionVector] = []

    /// The root of the gossip tree: the lowest replica ID known.
    var treeRoot: ReplicaID { peers.first.map { min($0, replicaID) } ?? replicaID }

    // MARK: Creating

    /// Creates a replica with no history.
    ///
    /// - Parameters:
    ///   - replicaID: a fresh identity (never reuse one whose history was lost).
    ///   - domains: the causal domains replicated here (names must be distinct).
    ///   - peers: the initial membership (this replica is ignored if listed).
    ///   - seed: seeds the replica's random choices (peer selection).
    public init(
        replicaID: ReplicaID, domains: [DomainConfiguration], peers: [PeerID] = [],
        configuration: ReplicationConfiguration = .default, seed: UInt64
    ) {
        configuration.validate()
        self.replicaID = replicaID
        self.configuration = configuration
        self.clock = HybridLogicalClock(maximumForwardOffsetMilliseconds: configuration.maximumClockOffsetMilliseconds)
        self.random = SplitMix64(seed: seed ^ (replicaID.rawValue &* 0x9E37_79B9_7F4A_7C15))
        self.domains = domains.map { Domain(configuration: $0) }
        self.domainIndex = DomainIndex(domains.map(\.name))
        self.peers = Array(Set(peers.filter { $0 != replicaID })).sorted()
        chooseInitialLinks()
    }

    /// Restarts a replica from what it persisted (after a crash).
    public init(
        restoring persisted: PersistedReplica, peers: [PeerID] = [],
        configuration: ReplicationConfiguration = .default, seed: UInt64
    ) {
        self.init(
            replicaID: persisted.replicaID, domains: persisted.domains.map(\.configuration), peers: peers,
            configuration: configuration, seed: seed)
        clock = HybridLogicalClock(
            latest: persisted.latestTimestamp,
            maximumForwardOffsetMilliseconds: configuration.maximumClockOffsetMilliseconds)
        lastEpoch = persisted.lastEpoch
        for (position, stored) in persisted.domains.enumerated() {
            domains[position].objects = stored.objects
            domains[position].vector = stored.vector
            domains[position].announced = stored.vector
            domains[position].lastFlushVector = stored.vector
            domains[position].log = stored.log
        }
    }

    /// What this replica would have on disk now.
    public var persisted: PersistedReplica {
        PersistedReplica(
            replicaID: replicaID, latestTimestamp: clock.latest, lastEpoch: lastEpoch,
            domains: domains.map {
                // The open group's writes joined since its record was made belong in the log too.
                var log = $0.log
                if let group = $0.openGroup, $0.isOpenGroupAheadOfLog,
                    log.last(of: replicaID)?.firstSequence == group.firstSequence
                {
                    log.replaceLast(of: replicaID, with: group.record(origin: replicaID))
                }
                return PersistedReplica.Domain(
                    configuration: $0.configuration, objects: $0.objects, vector: $0.vector, log: log)
            })
    }

    private mutating func chooseInitialLinks() {
        eagerPeers = sample(from: peers, count: configuration.fanout).sorted()
        lazyPeers = []
    }

    private mutating func sample(from candidates: [PeerID], count: Int) -> [PeerID] {
        if candidates.count <= count { return candidates }
        var chosen: [PeerID] = []
        var taken = Set<Int>()
        while chosen.count < count {
            let index = random.below(candidates.count)
            if taken.insert(index).inserted { chosen.append(candidates[index]) }
        }
        return chosen
    }

    // MARK: Inspecting

    /// The names of the domains replicated here, in configuration order.
    public var domainNames: [String] { domains.map(\.configuration.name) }

    /// The delivered version vector of `domain`.
    public func vector(of domain: String) -> VersionVector? {
        domainIndex[domain].map { domains[$0].vector }
    }

    /// Every object of `domain`.
    public func objects(in domain: String) -> [String: ObjectValue]? {
        domainIndex[domain].map { domains[$0].objects }
    }

    /// One object of `domain`.
    public func value(of key: String, in domain: String) -> ObjectValue? {
        domainIndex[domain].flatMap { domains[$0].objects[key] }
    }

    /// Sizes and counters of `domain`.
    public func metrics(of domain: String) -> DomainMetrics? {
        guard let index = domainIndex[domain] else { return nil }
        let state = domains[index]
        return DomainMetrics(
            bufferedCount: state.bufferedCount, bufferedBytes: state.bufferedBytes, logCount: state.log.count,
            logBytes: state.log.byteCount, logEvictions: state.log.evictedCount, duplicates: state.duplicates,
            bufferOverflows: state.bufferOverflows, snapshotsInstalled: state.snapshotsInstalled,
            snapshotChunksSent: state.snapshotChunksSent, stable: state.stable)
    }

    /// The causal buffer's and the log's sizes of the domain at `index` (in configuration order):
    /// what a simulator checks against the caps after every step, without `metrics(of:)`'s lookup
    /// by name and copy of the stable vector.
    package func sizes(ofDomainAt index: Int) -> (bufferedCount: Int, bufferedBytes: Int, logCount: Int, logBytes: Int) {
        (domains[index].bufferedCount, domains[index].bufferedBytes, domains[index].log.count, domains[index].log.byteCount)
    }

    /// The HLC high-water mark.
    public var latestTimestamp: HLCTimestamp { clock.latest }

    /// Checks internal consistency; returns the first violation found, `nil` when sound.
    public func invariantViolation() -> String? {
        for state in domains {
            let name = state.configuration.name
            if let problem = state.log.violation() { return "\(name): \(problem)" }
            if state.log.count > configuration.maximumLogDeltas || state.log.byteCount > configuration.maximumLogBytes {
                return "\(name): log over its cap"
            }
            if state.bufferedCount > configuration.maximumBufferedDeltas
                || state.bufferedBytes > configuration.maximumBufferedBytes
            {
                return "\(name): buffer over its cap"
            }
            var count = 0
            var bytes = 0
            for link in state.incoming.values {
                for batch in link.pending.values {
                    count += batch.records.count
                    bytes += batch.byteCount
                }
            }
            for item in state.standalone {
                count += item.batch.records.count
                bytes += item.batch.byteCount
            }
            if count != state.bufferedCount || bytes != state.bufferedBytes {
                return "\(name): buffer accounting \(state.bufferedCount)/\(state.bufferedBytes) but holds \(count)/\(bytes)"
            }
            if let last = state.log.last(of: replicaID), last.lastSequence > state.vector[replicaID] {
                return "\(name): own log ahead of own vector"
            }
            for last in state.log.newestRecords where last.lastSequence > state.vector[last.origin] {
                return "\(name): log of \(last.origin) beyond V"
            }
        }
        return nil
    }

    // MARK: Membership

    /// A peer joined the membership (or became reachable again).
    public mutating func peerJoined(_ peer: PeerID) {
        guard peer != replicaID else { return }
        let position = insertionPoint(of: peer, in: peers)
        if position < peers.count && peers[position] == peer { return }
        peers.insert(peer, at: position)
        if let held = unreachable.removeValue(forKey: peer) {
            knowledge[peer] = held
            knowledgeChanged = true
        }
        if configuration.strategy == .plumtree && eagerPeers.count < configuration.fanout {
            insertSorted(peer, into: &eagerPeers)
        }
    }

    /// A peer became unreachable (the failure detector declared it dead) but may come back: gossip
    /// stops, and what it is known to have delivered keeps holding back stability, so the log keeps
    /// (within its caps) what the peer lacks for a cheap catch-up. `peerLeft` releases it for good.
    public mutating func peerUnreachable(_ peer: PeerID) -> [ReplicationAction] {
        guard peer != replicaID, unreachable[peer] == nil else { return [] }
        let held = knowledge[peer] ?? Array(repeating: VersionVector(), count: domains.count)
        let actions = peerLeft(peer)
        unreachable[peer] = held
        knowledgeChanged = true
        return actions
    }

    /// A peer left the membership for good (decommissioned): forget what it knew and stop waiting for it.
    public mutating func peerLeft(_ peer: PeerID) -> [ReplicationAction] {
        if unreachable.removeValue(forKey: peer) != nil { knowledgeChanged = true }
        let position = insertionPoint(of: peer, in: peers)
        guard position < peers.count && peers[position] == peer else { return [] }
        peers.remove(at: position)
        removeSorted(peer, from: &eagerPeers)
        removeSorted(peer, from: &lazyPeers)
        knowledge[peer] = nil
        acknowledged[peer] = nil
        snapshotSentAt[peer] = nil
        epochFloor[peer] = nil
        for index in domains.indices {
            domains[index].outgoing[peer] = nil
            dropIncoming(peer, domain: index)
        }
        knowledgeChanged = true
        if eagerPeers.count < configuration.fanout, !peers.isEmpty {
            let candidates = peers.filter { !eagerPeers.contains($0) }
            for candidate in sample(from: candidates, count: configuration.fanout - eagerPeers.count) {
                removeSorted(candidate, from: &lazyPeers)
                insertSorted(candidate, into: &eagerPeers)
            }
        }
        var actions: [ReplicationAction] = []
        checkPendingWrites(into: &actions)
        return actions
    }

    // MARK: Writing and reading

    /// Applies `operation` to `key` in `domain` as a local write.
    ///
    /// The write gets dot `(me, V[me] + 1)`, is delivered locally at once, joins the open
    /// delta-group or opens one, and is pushed at the next `tick`.
    ///
    /// - Parameter requestsAcknowledgement: ask receivers to acknowledge the delta at once even
    ///   when `concern` is `.local` (so `replicaCount(holding:)` learns promptly who has it).
    /// - Throws: `.unknownDomain`, `.typeMismatch` (the key holds another type),
    ///   `.limitExceeded` (too many writes waiting for their concern).
    public mutating func write(
        _ operation: WriteOperation, to key: String, in domain: String, concern: WriteConcern = .local,
        requestsAcknowledgement: Bool = false, now: Instant
    ) throws(ReplicationError) -> WriteOutcome {
        guard let index = domainIndex[domain] else {
            throw ReplicationError(.unknownDomain, "domain \(domain) is not replicated here")
        }
        // The key is hashed once: an existing object is swapped out of its slot (in place, so it is
        // uniquely referenced while written: reading `domains[index].objects[key]` in a condition
        // copied the whole `Domain` value) and swapped back; only a new key is hashed again, to insert.
        // Taking it out with `removeValue` and inserting it again hashed every key twice per write.
        let position = domains[index].objects.index(forKey: key)
        var existing: ObjectValue?
        if let position {
            var taken = ObjectValue.flag(EWFlag())
            swap(&taken, &domains[index].objects.values[position])
            existing = taken
        }
        if let failure = refusal(of: operation, on: existing, key: key, domain: index, concern: concern) {
            if let position, let existing { domains[index].objects.values[position] = existing }
            throw failure
        }
        let timestamp = clock.now(physicalMilliseconds: now.milliseconds)
        var object = existing.take() ?? .bottom(of: operation.objectType)
        let delta = operation.apply(to: &object, at: replicaID, timestamp: timestamp)
        if let position {
            domains[index].objects.values[position] = object
        } else {
            domains[index].objects[key] = object
        }
        let sequence = domains[index].vector.increment(replicaID).counter
        let wantsAcknowledgement = concern != .local || requestsAcknowledgement
        let update = KeyedDelta(key: key, value: delta)
        // The record's timestamp is the one its LWW value carries (none for removes, counters,
        // sets...): receivers' clocks observe it, and the wire need not repeat it.
        let recordTimestamp = DeltaRecord.impliedTimestamp(of: update)

        // Join the open delta-group only if nothing was delivered since it opened: a group
        // must not jump ahead of a remote delta one of its writes observed. The group is joined
        // in place; its record is made when it closes or the log is read (`materializeOpenGroup`),
        // and a write that joins it needs no record of its own (its delivery carries the write).
        if configuration.joinsLocalWrites, domains[index].isGroupOpen,
            let group = domains[index].openGroup, group.lastSequence == sequence - 1,
            group.writeCount < UInt64(configuration.maximumGroupWrites),
            domains[index].log.isNewestOverall(replicaID, firstSequence: group.firstSequence)
        {
            domains[index].openGroup!.join(
                update, sequence: sequence, timestamp: recordTimestamp, requestsAcknowledgement: wantsAcknowledgement)
            domains[index].isOpenGroupAheadOfLog = true
        } else {
            if domains[index].isGroupOpen, let open = materializeOpenGroup(domain: index) {
                // The open group is closed by this write: it still has to be pushed.
                domains[index].pendingPush.append((open, nil))
            }
            // The write as a delta of its own: the log's newest record, and the group it opens.
            let single = DeltaRecord(
                origin: replicaID, firstSequence: sequence, lastSequence: sequence, timestamp: recordTimestamp,
                requestsAcknowledgement: wantsAcknowledgement, updates: [update])
            domains[index].log.append(single, at: now)
            domains[index].isGroupOpen = true
            if configuration.joinsLocalWrites {
                domains[index].openGroup = DeltaGroup(single)
                domains[index].isOpenGroupAheadOfLog = false
            }
        }
        domains[index].log.enforce(
            maximumCount: configuration.maximumLogDeltas, maximumBytes: configuration.maximumLogBytes)

        let id = WriteID(domain: domain, replica: replicaID, sequence: sequence)
        let delivery = Delivery(
            localWrite: update, sequence: sequence, requestsAcknowledgement: wantsAcknowledgement,
            domain: domain, origin: replicaID)
        let required = requiredReplicas(for: concern)
        if required > 1 {
            pendingWrites.append(
                PendingWrite(
                    id: id, domain: index, required: required,
                    deadline: now.advanced(by: configuration.writeConcernTimeoutMilliseconds)))
        }
        return WriteOutcome(id: id, timestamp: timestamp, update: update, delivery: delivery, isAcknowledged: required <= 1)
    }

    /// Why `operation` may not be written over `existing` (the object at `key` of domain `index`), or `nil`.
    private func refusal(
        of operation: WriteOperation, on existing: ObjectValue?, key: String, domain index: Int, concern: WriteConcern
    ) -> ReplicationError? {
        // The domain's name only on a refusal (reading it on every write costs a copy of it).
        var domain: String { domains[index].configuration.name }
        if let existing, existing.type != operation.objectType {
            return ReplicationError(
                .typeMismatch, "\(domain)/\(key) holds a \(existing.type), not a \(operation.objectType)")
        }
        if concern != .local && pendingWrites.count >= configuration.maximumPendingWrites {
            return ReplicationError(.limitExceeded, "\(pendingWrites.count) writes already wait for their concern")
        }
        if let existing, operation.wouldOverflow(existing, at: replicaID) {
            return ReplicationError(.limitExceeded, "\(domain)/\(key) has no events of this replica left to issue")
        }
        if domains[index].vector[replicaID] == UInt64.max {
            return ReplicationError(.limitExceeded, "domain \(domain) has no sequence numbers left for this replica")
        }
        return nil
    }

    /// Reads `key` of `domain` from `replicas` replicas (this one included), joining their states.
    ///
    /// With `replicas <= 1` (or no peers) the local value is returned at once. Otherwise
    /// requests go to `replicas - 1` random peers and `.completeRead` follows when they all
    /// answered, or `.fail(.readTimeout)` after `readTimeoutMilliseconds`.
    ///
    /// - Throws: `.unknownDomain`, `.invalidRequest` (the id is in use), `.limitExceeded`.
    public mutating func read(
        _ key: String, in domain: String, replicas: Int = 1, id: UInt64, now: Instant
    ) throws(ReplicationError) -> [ReplicationAction] {
        guard let index = domainIndex[domain] else {
            throw ReplicationError(.unknownDomain, "domain \(domain) is not replicated here")
        }
        let local = domains[index].objects[key]
        let others = min(max(replicas - 1, 0), peers.count)
        if others == 0 {
            return [.completeRead(ReadResult(id: id, domain: domain, key: key, value: local, replicaCount: 1))]
        }
        guard pendingReads[id] == nil else { throw ReplicationError(.invalidRequest, "read \(id) is already pending") }
        guard pendingReads.count < configuration.maximumPendingReads else {
            throw ReplicationError(.limitExceeded, "\(pendingReads.count) reads already pending")
        }
        let targets = sample(from: peers, count: others).sorted()
        pendingReads[id] = PendingRead(
            domain: index, key: key, value: local, asked: targets, contributors: 1,
            deadline: now.advanced(by: configuration.readTimeoutMilliseconds))
        return targets.map { .send(.readRequest(id: id, domain: domain, key: key), to: $0) }
    }

    // MARK: Receiving

    /// Handles encoded bytes from `peer`; undecodable input becomes a `.malformedMessage` failure.
    public mutating func receive(_ bytes: [UInt8], from peer: PeerID, now: Instant) -> [ReplicationAction] {
        let message: ReplicationMessage
        do {
            message = try ReplicationMessage.decode(bytes, limits: configuration.codecLimits)
        } catch {
            return [.fail(ReplicationError(.malformedMessage, "message from \(peer) rejected", cause: error))]
        }
        return receive(message, from: peer, now: now)
    }

    /// Handles a message from `peer`.
    public mutating func receive(_ message: ReplicationMessage, from peer: PeerID, now: Instant) -> [ReplicationAction] {
        var actions: [ReplicationAction] = []
        acknowledgementsOwed = 0
        guard peer != replicaID else {
            return [.fail(ReplicationError(.invalidRequest, "message claims to come from this replica"))]
        }
        peerJoined(peer)
        switch message {
        case .deltas(let domain, let link, let records):
            guard let index = domainIndex[domain] else { return [] }
            receiveDeltas(records, link: link, domain: index, from: peer, now: now, into: &actions)
        case .announce(let domain, let ranges):
            guard let index = domainIndex[domain] else { return [] }
            for range in ranges.prefix(configuration.codecLimits.maximumReplicas)
            where range.origin != replicaID && range.last > domains[index].vector[range.origin] {
                noteMissing(domain: index, origin: range.origin, upTo: range.last, peer: peer, now: now)
            }
        case .graft(let domain, let vector, let minimumEpoch, let joinsTree):
            guard let index = domainIndex[domain] else { return [] }
            guard vector[replicaID] <= domains[index].vector[replicaID] else {
                return [.fail(ReplicationError(.invalidDelta, "\(peer) claims writes of this replica not issued"))]
            }
            if joinsTree && configuration.strategy == .plumtree { makeEager(peer) }
            // Restart the link: the peer lost its place in it.
            domains[index].outgoing[peer] = nil
            epochFloor[peer] = max(epochFloor[peer] ?? 0, minimumEpoch)
            noteKnowledge(vector, of: peer, domain: index)
            sendMissing(to: peer, theirs: knowledge[peer]?[index] ?? vector, domain: index, cutoff: nil, now: now, into: &actions)
            checkPendingWrites(into: &actions)
        case .prune:
            if removeSorted(peer, from: &eagerPeers) { insertSorted(peer, into: &lazyPeers) }
            for index in domains.indices { domains[index].outgoing[peer] = nil }
        case .beacon(let root, let round):
            guard configuration.strategy == .plumtree, root == treeRoot, root != replicaID else { return [] }
            if round > beaconRound {
                beaconRound = round
                lastBeaconAt = now
                treeParent = peer
                makeEager(peer)
                for other in eagerPeers where other != peer {
                    actions.append(.send(.beacon(root: root, round: round), to: other))
                }
            } else if round == beaconRound && peer != treeParent {
                // A second copy of this round: the link closes a cycle (Plumtree PRUNE).
                if removeSorted(peer, from: &eagerPeers) { insertSorted(peer, into: &lazyPeers) }
                for index in domains.indices { domains[index].outgoing[peer] = nil }
                actions.append(.send(.prune, to: peer))
            }
        case .digest(let isReply, let vectors):
            receiveDigest(vectors, isReply: isReply, from: peer, now: now, into: &actions)
        case .snapshot(let chunk):
            receiveSnapshot(chunk, from: peer, now: now, into: &actions)
        case .acknowledge(let domain, let sequence):
            guard let index = domainIndex[domain] else { return [] }
            guard sequence <= domains[index].vector[replicaID] else {
                return [.fail(ReplicationError(.invalidDelta, "\(peer) acknowledges writes not issued yet"))]
            }
            var known = acknowledged[peer] ?? Array(repeating: 0, count: domains.count)
            if sequence > known[index] {
                known[index] = sequence
                acknowledged[peer] = known
                checkPendingWrites(into: &actions)
            }
        case .readRequest(let id, let domain, let key):
            guard let index = domainIndex[domain] else { return [] }
            actions.append(
                .send(.readReply(id: id, domain: domain, key: key, value: domains[index].objects[key]), to: peer))
        case .readReply(let id, let domain, let key, let value):
            guard var pending = pendingReads[id], domainIndex[domain] == pending.domain, key == pending.key,
                let position = pending.asked.firstIndex(of: peer)
            else { return [] }
            pending.asked.remove(at: position)
            if let value {
                if pending.value == nil {
                    pending.value = value
                } else if pending.value?.merge(value) == false {
                    actions.append(.fail(ReplicationError(.typeMismatch, "read reply for \(key) holds another type")))
                }
            }
            pending.contributors += 1
            if pending.asked.isEmpty {
                pendingReads[id] = nil
                actions.append(
                    .completeRead(
                        ReadResult(
                            id: id, domain: domain, key: key, value: pending.value,
                            replicaCount: pending.contributors)))
            } else {
                pendingReads[id] = pending
            }
        }
        if acknowledgementsOwed > 1 { Self.keepNewestAcknowledgements(in: &actions) }
        return actions
    }

    /// Drops every acknowledgement in `actions` but the last to each replica in each domain.
    ///
    /// Acknowledgements are cumulative (`acknowledge(domain, sequence)` says every write of the
    /// receiver up to `sequence` is delivered here, and a replica delivers each origin's writes in
    /// order), so the last one sent to a replica says all the earlier ones do. One message that
    /// delivers many records asking for acknowledgement (a push of a RESP client's write groups:
    /// up to 64 writes a group, dozens of groups a push) answers with one acknowledgement instead
    /// of one per record, each of which the origin had to receive, decode and handle.
    static func keepNewestAcknowledgements(in actions: inout [ReplicationAction]) {
        struct Target: Hashable {
            let replica: ReplicaID
            let domain: String
        }
        var seen = Set<Target>()
        var kept = [Bool](repeating: true, count: actions.count)
        for position in actions.indices.reversed() {
            guard case .send(.acknowledge(let domain, _), let replica) = actions[position] else { continue }
            kept[position] = seen.insert(Target(replica: replica, domain: domain)).inserted
        }
        var newest: [ReplicationAction] = []
        newest.reserveCapacity(actions.count)
        for position in actions.indices where kept[position] { newest.append(actions[position]) }
        actions = newest
    }

    private mutating func receiveDeltas(
        _ records: [DeltaRecord], link: LinkHeader?, domain index: Int, from peer: PeerID, now: Instant,
        into actions: inout [ReplicationAction]
    ) {
        for record in records where record.origin == replicaID && record.lastSequence > domains[index].vector[replicaID] {
            actions.append(.fail(ReplicationError(.invalidDelta, "\(peer) sent \(record) of this replica, beyond its writes")))
            return
        }
        for dependency in link?.dependencies ?? []
        where dependency.replica == replicaID && dependency.counter > domains[index].vector[replicaID] {
            actions.append(.fail(ReplicationError(.invalidDelta, "a batch from \(peer) depends on writes not issued here")))
            return
        }
        if domains[index].configuration.mode == .eventual {
            // Merge on arrival; `V` still advances only in order, through the pipeline below.
            for record in records where record.lastSequence > domains[index].vector[record.origin] {
                mergeUpdates(record, domain: index, into: &actions)
            }
        }
        guard let link else {
            // A repair: records in the sender's delivery order, starting from what this replica reported.
            var delivered = false
            repair: for record in records {
                // Relayed down the tree: the links below lost it too, most likely.
                switch deliverInOrder(record, domain: index, sender: peer, now: now, into: &actions) {
                case .delivered: delivered = true
                case .duplicate: continue
                // Nothing after a gap may be delivered: it could depend on what is missing.
                case .gap: break repair
                }
            }
            if delivered { drainLinks(domain: index, now: now, into: &actions) }
            return
        }
        let batch = PendingBatch(
            dependencies: link.dependencies, records: records, byteCount: records.reduce(0) { $0 + $1.encodedByteCount })
        if link.epoch == 0 {
            guard reserveBuffer(for: batch, domain: index) else {
                domains[index].bufferOverflows += records.count
                return
            }
            domains[index].standalone.append((batch, peer))
        } else {
            var incoming = domains[index].incoming[peer] ?? IncomingLink(epoch: link.epoch)
            if link.epoch < incoming.epoch {
                // A stale epoch (or the sender forgot its epochs): resynchronise so that the
                // GRAFT's minimumEpoch lifts the sender above the epoch held here.
                domains[index].duplicates += records.count
                if domains[index].stalledLinks[peer] == nil {
                    domains[index].stalledLinks[peer] = now.advanced(by: configuration.graftTimeoutMilliseconds)
                }
                return
            }
            if link.epoch > incoming.epoch {
                dropIncoming(peer, domain: index)
                incoming = IncomingLink(epoch: link.epoch)
            }
            if link.sequence < incoming.expected || incoming.pending[link.sequence] != nil {
                domains[index].duplicates += records.count
                domains[index].incoming[peer] = incoming
                return
            }
            guard incoming.pending.count < configuration.maximumBufferedDeltas, reserveBuffer(for: batch, domain: index)
            else {
                // Full: drop the batch; the link now has a gap and is resynchronised by a GRAFT.
                domains[index].bufferOverflows += records.count
                domains[index].incoming[peer] = incoming
                if domains[index].stalledLinks[peer] == nil { domains[index].stalledLinks[peer] = now }
                return
            }
            // Drop the table's reference first, so the insert below does not copy `pending`.
            domains[index].incoming[peer] = nil
            incoming.pending[link.sequence] = batch
            domains[index].incoming[peer] = incoming
            if configuration.strategy == .plumtree, binarySearch(peer, in: eagerPeers) == nil,
                eagerPeers.count < configuration.maximumEagerPeers
            {
                // The peer treats this link as eager: make it symmetric, as a tree link must be.
                makeEager(peer)
            }
        }
        drainLinks(domain: index, now: now, into: &actions)
    }

    private mutating func reserveBuffer(for batch: PendingBatch, domain index: Int) -> Bool {
        guard domains[index].bufferedCount + batch.records.count <= configuration.maximumBufferedDeltas,
            domains[index].bufferedBytes + batch.byteCount <= configuration.maximumBufferedBytes
        else { return false }
        domains[index].bufferedCount += batch.records.count
        domains[index].bufferedBytes += batch.byteCount
        return true
    }

    private mutating func releaseBuffer(for batch: PendingBatch, domain index: Int) {
        domains[index].bufferedCount -= batch.records.count
        domains[index].bufferedBytes -= batch.byteCount
    }

    private mutating func dropIncoming(_ peer: PeerID, domain index: Int) {
        guard let link = domains[index].incoming.removeValue(forKey: peer) else { return }
        for batch in link.pending.values { releaseBuffer(for: batch, domain: index) }
        domains[index].stalledLinks[peer] = nil
    }

    /// Processes every link's next batches, and standalone batches, until nothing moves.
    private mutating func drainLinks(domain index: Int, now: Instant, into actions: inout [ReplicationAction]) {
        var progress = true
        while progress {
            progress = false
            for peer in domains[index].incoming.keys.sorted() {
                // No copy of the link is held while it is mutated: a held copy would make every
                // removal copy the link's whole pending table (copy-on-write).
                while let expected = domains[index].incoming[peer]?.expected,
                    let dependencies = domains[index].incoming[peer]?.pending[expected]?.dependencies
                {
                    guard dependenciesMet(dependencies, in: index) else {
                        for dependency in dependencies where domains[index].vector[dependency.replica] < dependency.counter {
                            noteMissing(domain: index, origin: dependency.replica, upTo: dependency.counter, peer: peer, now: now)
                        }
                        break
                    }
                    guard let batch = domains[index].incoming[peer]?.pending.removeValue(forKey: expected) else { break }
                    domains[index].incoming[peer]?.expected += 1
                    releaseBuffer(for: batch, domain: index)
                    progress = true
                    var broken = false
                    for record in batch.records
                    where deliverInOrder(record, domain: index, sender: peer, now: now, into: &actions) == .gap {
                        // The link broke its promise (it should be impossible): stop using it and
                        // resynchronise, rather than deliver anything that might depend on the gap.
                        broken = true
                        break
                    }
                    if broken {
                        dropIncoming(peer, domain: index)
                        domains[index].stalledLinks[peer] = now
                        break
                    }
                }
                if let link = domains[index].incoming[peer], !link.pending.isEmpty {
                    if link.pending[link.expected] == nil, domains[index].stalledLinks[peer] == nil {
                        // A gap in the link: give the missing batch a graft timeout to arrive.
                        domains[index].stalledLinks[peer] = now.advanced(by: configuration.graftTimeoutMilliseconds)
                    }
                } else {
                    domains[index].stalledLinks[peer] = nil
                }
            }
            var position = 0
            while position < domains[index].standalone.count {
                let (batch, sender) = domains[index].standalone[position]
                if dependenciesMet(batch.dependencies, in: index) {
                    domains[index].standalone.remove(at: position)
                    releaseBuffer(for: batch, domain: index)
                    for record in batch.records
                    where deliverInOrder(record, domain: index, sender: sender, now: now, into: &actions) == .gap {
                        break
                    }
                    progress = true
                } else {
                    for dependency in batch.dependencies where domains[index].vector[dependency.replica] < dependency.counter {
                        noteMissing(domain: index, origin: dependency.replica, upTo: dependency.counter, peer: sender, now: now)
                    }
                    position += 1
                }
            }
        }
    }

    private func dependenciesMet(_ dependencies: [VersionVector.Entry], in index: Int) -> Bool {
        let vector = domains[index].vector
        for dependency in dependencies where vector[dependency.replica] < dependency.counter { return false }
        return true
    }

    /// Delivers `record` if it extends `V[origin]`; a duplicate is counted, a record past a gap
    /// is dropped (it cannot be delivered in order; anti-entropy brings it back).
    enum InOrder { case delivered, duplicate, gap }

    private mutating func deliverInOrder(
        _ record: DeltaRecord, domain index: Int, sender: PeerID, now: Instant, into actions: inout [ReplicationAction]
    ) -> InOrder {
        let delivered = domains[index].vector[record.origin]
        if record.origin == replicaID || record.lastSequence <= delivered {
            domains[index].duplicates += 1
            return .duplicate
        }
        if record.firstSequence > delivered + 1 {
            domains[index].outOfOrderDrops += 1
            noteMissing(domain: index, origin: record.origin, upTo: record.lastSequence, peer: sender, now: now)
            return .gap
        }
        deliver(record, domain: index, sender: sender, after: delivered, now: now, into: &actions)
        return .delivered
    }

    private mutating func mergeUpdates(_ record: DeltaRecord, domain index: Int, into actions: inout [ReplicationAction]) {
        // The updates are read in place through a buffer pointer, not bound to a loop variable
        // or read through the array's subscript: a copy of an update retains its key and payload,
        // whose reference counts every replica of a simulation (on several threads) shares.
        record.updates.withUnsafeBufferPointer { updates in
            mergeUpdates(updates, of: record, domain: index, into: &actions)
        }
    }

    private mutating func mergeUpdates(
        _ updates: UnsafeBufferPointer<KeyedDelta>, of record: DeltaRecord, domain index: Int,
        into actions: inout [ReplicationAction]
    ) {
        // Updates go on by pointer: an argument read out of the buffer would be a copy, retaining the
        // update's key and payload (shared by every replica of a simulation, on several threads).
        guard let first = updates.baseAddress else { return }
        let mayClaimOwnEvents = record.claimedReplicas.mayContain(replicaID)
        for position in updates.indices {
            let update = first + position
            if mayClaimOwnEvents, let problem = forgedClaim(update, domain: index) {
                actions.append(.fail(ReplicationError(.invalidDelta, "\(record) \(problem); the update is ignored")))
                continue
            }
            let merged: Bool?
            if configuration.sharesMergeResults {
                merged = mergeSharing(update, at: position, of: record, domain: index)
            } else {
                // One hash lookup, merged in place (no copy of the object).
                merged = domains[index].objects[update.pointee.key]?.merge(update.pointee.value)
            }
            switch merged {
            case nil: domains[index].objects[update.pointee.key] = update.pointee.value
            case true?: break
            case false?:
                let update = update.pointee
                let existing = domains[index].objects[update.key]?.type.description ?? "?"
                actions.append(
                    .fail(
                        ReplicationError(
                            .typeMismatch,
                            "\(record) writes a \(update.value.type) to \(update.key), which holds a \(existing); the update is ignored"
                        )))
            }
        }
    }

    /// Merges `update` (number `position` of its record) into its object, taking the result another
    /// replica of this process published for an identical version of the object, or publishing
    /// this one's (`SharedMerges`). `nil` when the key has no object yet, `false` (and no change)
    /// when its object has another type.
    private mutating func mergeSharing(
        _ update: UnsafePointer<KeyedDelta>, at position: Int, of record: DeltaRecord, domain index: Int
    ) -> Bool? {
        guard let slot = domains[index].objects.index(forKey: update.pointee.key) else { return nil }
        let identity = withUnsafeMutablePointer(to: &domains[index].objects.values[slot]) { ObjectIdentity(of: $0) }
        guard let identity else { return domains[index].objects.values[slot].merge(update.pointee.value) }
        if let result = record.sharedMerges.result(at: position, identity: identity) {
            domains[index].objects.values[slot] = result
            return true
        }
        let base = domains[index].objects.values[slot]
        var merged = base
        guard merged.merge(update.pointee.value) else { return false }
        domains[index].objects.values[slot] =
            record.sharedMerges.publish(at: position, identity: identity, base: base, result: merged) ?? merged
        return true
    }

    /// Why `update` (remote input; by pointer, so that reading it copies nothing) cannot be merged
    /// into this replica's state: it claims more of this replica's own events (counts or dots)
    /// than this replica issued. `nil` when sound.
    private func forgedClaim(_ update: UnsafePointer<KeyedDelta>, domain index: Int) -> String? {
        let claimed = update.pointee.value.highestEvents(of: replicaID)
        guard claimed.first > 0 || claimed.second > 0 else { return nil }
        let issued = domains[index].objects[update.pointee.key]?.highestEvents(of: replicaID) ?? (first: 0, second: 0)
        guard claimed.first > issued.first || claimed.second > issued.second else { return nil }
        return "claims events \(claimed) of this replica on \(update.pointee.key), which issued \(issued)"
    }

    /// Delivers `record`, which extends `V[origin] == delivered`, and queues it to be relayed
    /// (every delivered record is: a repaired one is most likely missing further down the tree too).
    private mutating func deliver(
        _ record: DeltaRecord, domain index: Int, sender: PeerID, after delivered: UInt64, now: Instant,
        into actions: inout [ReplicationAction]
    ) {
        let origin = record.origin
        let first = max(record.firstSequence, delivered + 1)
        mergeUpdates(record, domain: index, into: &actions)
        domains[index].vector[origin] = record.lastSequence
        domains[index].log.append(record, at: now)
        domains[index].log.enforce(
            maximumCount: configuration.maximumLogDeltas, maximumBytes: configuration.maximumLogBytes)
        if record.timestamp != .zero {
            do {
                _ = try clock.observe(record.timestamp, physicalMilliseconds: now.milliseconds)
            } catch {
                actions.append(.fail(ReplicationError(.clockSkew, "timestamp of \(record) not adopted", cause: error)))
            }
        }
        let name = domains[index].configuration.name
        actions.append(
            .deliver(
                Delivery(
                    domain: name, origin: origin, firstSequence: first, lastSequence: record.lastSequence,
                    source: .remote, record: record)))
        if record.requestsAcknowledgement {
            actions.append(.send(.acknowledge(domain: name, sequence: record.lastSequence), to: origin))
            acknowledgementsOwed += 1
        }
        domains[index].pendingPush.append((record, sender))
    }

    private mutating func noteMissing(domain index: Int, origin: ReplicaID, upTo: UInt64, peer: PeerID, now: Instant) {
        guard origin != replicaID else { return }
        let deadline = now.advanced(by: configuration.graftTimeoutMilliseconds)
        if var missing = domains[index].missing[origin] {
            if domains[index].vector[origin] >= missing.upTo {
                // The gap this entry timed was filled: time the new one from now.
                domains[index].missing[origin] = Missing(upTo: upTo, peer: peer, deadline: deadline, later: 0)
            } else if upTo > missing.upTo {
                // The timed gap is still open; newer sequences get their own grace period later.
                missing.later = max(missing.later, upTo)
                domains[index].missing[origin] = missing
            }
        } else {
            guard domains[index].missing.count < configuration.codecLimits.maximumReplicas else { return }
            domains[index].missing[origin] = Missing(upTo: upTo, peer: peer, deadline: deadline, later: 0)
        }
    }

    // MARK: Anti-entropy

    private mutating func noteKnowledge(_ vector: VersionVector, of peer: PeerID, domain index: Int) {
        // Knowledge feeds stability; it is kept only for memberships small enough to track.
        guard peers.count <= configuration.maximumStabilityPeers else { return }
        var known = knowledge[peer] ?? Array(repeating: VersionVector(), count: domains.count)
        known[index].merge(vector)
        knowledge[peer] = known
        knowledgeChanged = true
    }

    private mutating func receiveDigest(
        _ vectors: [DomainVector], isReply: Bool, from peer: PeerID, now: Instant,
        into actions: inout [ReplicationAction]
    ) {
        var peerIsAhead = false
        for entry in vectors.prefix(domains.count) {
            guard let index = domainIndex[entry.domain] else { continue }
            let reported = entry.vector
            if reported[replicaID] > domains[index].vector[replicaID] {
                actions.append(.fail(ReplicationError(.invalidDelta, "\(peer) claims writes of this replica not issued")))
                continue
            }
            if !(reported <= domains[index].vector) { peerIsAhead = true }
            noteKnowledge(reported, of: peer, domain: index)
            // A digest may arrive late: what the peer is known to hold is the join of its reports.
            let theirs = knowledge[peer]?[index] ?? reported
            // Records delivered here very recently are probably still being pushed to the
            // peer: repairing them would double the traffic. They wait for the next digest.
            let cutoff = Instant(milliseconds: now.milliseconds &- min(now.milliseconds, configuration.repairDelayMilliseconds))
            sendMissing(to: peer, theirs: theirs, domain: index, cutoff: cutoff, now: now, into: &actions)
            if let known = acknowledged[peer], reported[replicaID] > known[index] {
                acknowledged[peer]?[index] = reported[replicaID]
            } else if acknowledged[peer] == nil, reported[replicaID] > 0 {
                var known = Array(repeating: UInt64(0), count: domains.count)
                known[index] = reported[replicaID]
                acknowledged[peer] = known
            }
        }
        checkPendingWrites(into: &actions)
        if peerIsAhead && !isReply {
            actions.append(.send(.digest(isReply: true, vectors: digestVectors()), to: peer))
        }
    }

    /// Sends `peer` what it lacks relative to `theirs` (its own report, so it holds at least
    /// that): log records in delivery order, a causally closed prefix of at most
    /// `maximumRepairDeltas`, or a snapshot when the log no longer holds them.
    private mutating func sendMissing(
        to peer: PeerID, theirs: VersionVector, domain index: Int, cutoff: Instant?, now: Instant,
        into actions: inout [ReplicationAction]
    ) {
        // The open delta-group leaves here now: close it, so it is pushed ahead of anything a
        // peer writes after seeing it (a later join would reorder it behind such writes).
        closeOpenGroup(domain: index)
        var entries: [DeltaLog.Entry] = []
        // Both vectors are sorted by replica: walk them together (a lookup per entry made a
        // digest of N entries cost N log N at large N).
        let theirEntries = theirs.entries
        var other = 0
        for mine in domains[index].vector.entries {
            while other < theirEntries.count && theirEntries[other].replica < mine.replica { other += 1 }
            let known =
                other < theirEntries.count && theirEntries[other].replica == mine.replica
                ? theirEntries[other].counter : 0
            guard mine.counter > known else { continue }
            guard
                domains[index].log.appendRecords(
                    of: mine.replica, after: known, upTo: mine.counter, deliveredBy: cutoff, to: &entries)
            else {
                sendSnapshot(domain: index, to: peer, now: now, into: &actions)
                return
            }
        }
        guard !entries.isEmpty else { return }
        // Delivery order is a causal order, and a prefix of it is causally closed.
        entries.sort { $0.deliveryIndex < $1.deliveryIndex }
        // One message only: messages may be reordered, and only a prefix of the delivery order
        // is causally closed. The rest follows at the next digest or graft.
        var records: [DeltaRecord] = []
        var bytes = 0
        for entry in entries {
            if records.count >= min(configuration.maximumRepairDeltas, configuration.maximumBatchDeltas)
                || (!records.isEmpty && bytes + entry.record.encodedByteCount > configuration.maximumBatchBytes)
            {
                break
            }
            records.append(entry.record)
            bytes += entry.record.encodedByteCount
        }
        appendBatches(records, domain: index, link: nil, to: peer, into: &actions)
    }

    private func digestVectors() -> [DomainVector] {
        domains.map { DomainVector(domain: $0.configuration.name, vector: $0.vector) }
    }

    /// Splits `records` into bounded messages. With a link, each message takes the next
    /// sequence number and only the first carries the dependencies.
    @discardableResult
    private func appendBatches(
        _ records: [DeltaRecord], domain index: Int, link: LinkHeader?, to peer: PeerID,
        into actions: inout [ReplicationAction]
    ) -> UInt64 {
        let name = domains[index].configuration.name
        var header = link
        var used: UInt64 = 0
        var batch: [DeltaRecord] = []
        var bytes = 0
        func emit() {
            actions.append(.send(.deltas(domain: name, link: header, records: batch), to: peer))
            used += 1
            if var next = header {
                if next.epoch != 0 {
                    next.sequence += 1
                    next.dependencies = []
                } else {
                    // A standalone batch stands alone: it depends on the ones before it.
                    var vector = VersionVector(sortedEntries: next.dependencies) ?? VersionVector()
                    for record in batch { vector[record.origin] = max(vector[record.origin], record.lastSequence) }
                    next.dependencies = vector.entries
                }
                header = next
            }
            batch = []
            bytes = 0
        }
        for record in records {
            if !batch.isEmpty
                && (batch.count >= configuration.maximumBatchDeltas
                    || bytes + record.encodedByteCount > configuration.maximumBatchBytes)
            {
                emit()
            }
            batch.append(record)
            bytes += record.encodedByteCount
        }
        if !batch.isEmpty { emit() }
        return used
    }

    private mutating func sendSnapshot(
        domain index: Int, to peer: PeerID, now: Instant, into actions: inout [ReplicationAction]
    ) {
        let cooldown = configuration.gossipIntervalMilliseconds * configuration.snapshotCooldownRounds
        if let last = snapshotSentAt[peer], now < last.advanced(by: cooldown) { return }
        snapshotSentAt[peer] = now
        closeOpenGroup(domain: index)
        let name = domains[index].configuration.name
        var chunks: [(objects: [KeyedDelta], byteCount: Int)] = []
        var current: [KeyedDelta] = []
        var bytes = 0
        let objects = domains[index].objects
        for key in objects.keys.sorted() {
            guard let value = objects[key] else { continue }
            let object = KeyedDelta(key: key, value: value)
            let size = object.encodedByteCount
            if !current.isEmpty && bytes + size > configuration.snapshotChunkBytes {
                chunks.append((current, bytes))
                current = []
                bytes = 0
            }
            current.append(object)
            bytes += size
        }
        chunks.append((current, bytes))
        let identifier = random.next()
        let vector = domains[index].vector
        for (position, chunk) in chunks.enumerated() {
            actions.append(
                .send(
                    .snapshot(
                        SnapshotChunk(
                            domain: name, identifier: identifier, index: position, total: chunks.count, vector: vector,
                            objects: chunk.objects, objectsByteCount: chunk.byteCount)), to: peer))
        }
        domains[index].snapshotChunksSent += chunks.count
    }

    private mutating func receiveSnapshot(
        _ chunk: SnapshotChunk, from peer: PeerID, now: Instant, into actions: inout [ReplicationAction]
    ) {
        guard let index = domainIndex[chunk.domain] else { return }
        guard chunk.vector[replicaID] <= domains[index].vector[replicaID] else {
            actions.append(.fail(ReplicationError(.invalidDelta, "snapshot from \(peer) claims writes of this replica")))
            return
        }
        var staging = domains[index].staging
        if staging == nil || staging?.peer != peer || staging?.identifier != chunk.identifier {
            staging = Staging(
                peer: peer, identifier: chunk.identifier, total: chunk.total, vector: chunk.vector, chunks: [:],
                byteCount: 0)
        }
        guard var current = staging, current.total == chunk.total, current.vector == chunk.vector,
            chunk.index < current.total
        else {
            actions.append(.fail(ReplicationError(.invalidDelta, "snapshot chunk from \(peer) contradicts its snapshot")))
            return
        }
        let size = ReplicationMessage.snapshot(chunk).encodedByteCount
        if current.chunks[chunk.index] == nil {
            guard current.byteCount + size <= configuration.maximumSnapshotBytes else {
                domains[index].staging = nil
                actions.append(.fail(ReplicationError(.limitExceeded, "snapshot from \(peer) exceeds the snapshot bound")))
                return
            }
            current.chunks[chunk.index] = chunk.objects
            current.byteCount += size
        }
        guard current.chunks.count == current.total else {
            domains[index].staging = current
            return
        }
        domains[index].staging = nil
        // Every chunk is here: merge the objects, then (only then) advance V. The objects that change
        // this replica's state go with the snapshot's delivery (subscribers hear of each key it changed).
        var changed: [KeyedDelta] = []
        for position in 0..<current.total {
            for object in current.chunks[position] ?? [] {
                if let problem = withUnsafePointer(to: object, { forgedClaim($0, domain: index) }) {
                    actions.append(
                        .fail(ReplicationError(.invalidDelta, "snapshot from \(peer) \(problem); the object is ignored")))
                    continue
                }
                guard let slot = domains[index].objects.index(forKey: object.key) else {
                    domains[index].objects[object.key] = object.value
                    if !object.value.isEmpty { changed.append(object) }
                    continue
                }
                // Merged into a copy, compared with the object it replaces: a snapshot is rare, and this
                // is its one look-up per key.
                var merged = domains[index].objects.values[slot]
                guard merged.merge(object.value) else {
                    actions.append(
                        .fail(ReplicationError(.typeMismatch, "snapshot object \(object.key) holds another type")))
                    continue
                }
                if merged != domains[index].objects.values[slot] {
                    domains[index].objects.values[slot] = merged
                    changed.append(object)
                }
            }
        }
        let before = domains[index].vector
        domains[index].vector.merge(current.vector)
        domains[index].pendingExtras.merge(current.vector)
        domains[index].snapshotsInstalled += 1
        let name = domains[index].configuration.name
        let advanced = domains[index].vector.entries.filter { $0.counter > before[$0.replica] }
        for (position, entry) in advanced.enumerated() {
            actions.append(
                .deliver(
                    Delivery(
                        snapshotOf: name, origin: entry.replica, firstSequence: before[entry.replica] + 1,
                        lastSequence: entry.counter, changed: position == advanced.count - 1 ? changed : [])))
        }
        drainLinks(domain: index, now: now, into: &actions)
    }

    // MARK: Ticking

    /// Advances time: flushes pushes; once per gossip interval runs a round (announcements,
    /// digest, grafts, stability, timeouts).
    public mutating func tick(now: Instant) -> [ReplicationAction] {
        var actions: [ReplicationAction] = []
        flush(now: now, into: &actions)
        for index in domains.indices where !domains[index].missing.isEmpty || !domains[index].stalledLinks.isEmpty {
            graftMissing(domain: index, now: now, into: &actions)
        }
        if let next = nextRoundAt, now < next { return actions }
        nextRoundAt = now.advanced(by: configuration.gossipIntervalMilliseconds)
        if configuration.strategy == .plumtree {
            announce(into: &actions)
            if treeRoot == replicaID {
                // Round numbers come from this replica's clock: monotonic across its restarts.
                beaconRound = max(beaconRound + 1, now.milliseconds)
                for peer in eagerPeers { actions.append(.send(.beacon(root: replicaID, round: beaconRound), to: peer)) }
            } else if !peers.isEmpty, !domains.isEmpty {
                let silence = 3 * configuration.gossipIntervalMilliseconds
                if let last = lastBeaconAt, now < last.advanced(by: silence) {
                    // In the tree.
                } else if lastBeaconAt == nil {
                    lastBeaconAt = now
                } else {
                    // No beacon for three rounds: cut off from the tree; rejoin through a random peer.
                    lastBeaconAt = now
                    let peer = peers[random.below(peers.count)]
                    makeEager(peer)
                    actions.append(
                        .send(
                            .graft(
                                domain: domains[0].configuration.name, vector: domains[0].vector,
                                minimumEpoch: (domains[0].incoming[peer]?.epoch ?? 0) + 1, joinsTree: true), to: peer))
                }
            }
        }
        roundNumber += 1
        if !peers.isEmpty && roundNumber % UInt64(configuration.antiEntropyRounds) == 0 {
            let target = peers[random.below(peers.count)]
            actions.append(.send(.digest(isReply: false, vectors: digestVectors()), to: target))
        }
        updateStability()
        expire(now: now, into: &actions)
        return actions
    }

    /// The last of this replica's writes `after...through` that no own record of `pending` covers,
    /// or 0 when every one is covered.
    static func lastUnpushedOwnSequence(
        after flushed: UInt64, through written: UInt64,
        pending: [(record: DeltaRecord, sender: PeerID?)], replica: ReplicaID
    ) -> UInt64 {
        guard written > flushed else { return 0 }
        var covered = flushed
        var unpushed: UInt64 = 0
        // Own records enter `pending` in sequence order (a group is pushed when it closes).
        for item in pending where item.record.origin == replica && item.record.lastSequence > covered {
            if item.record.firstSequence > covered + 1 { unpushed = item.record.firstSequence - 1 }
            covered = item.record.lastSequence
        }
        return written > covered ? written : unpushed
    }

    private mutating func closeOpenGroup(domain index: Int) {
        guard domains[index].isGroupOpen else { return }
        domains[index].isGroupOpen = false
        if let open = materializeOpenGroup(domain: index) {
            domains[index].pendingPush.append((open, nil))
        }
    }

    /// Brings the log's record of the open delta-group up to date with the writes joined since
    /// it was made, forgets the group, and returns this replica's newest record in the log (the
    /// group's, unless the log's cap evicted it, as before groups were joined in place).
    private mutating func materializeOpenGroup(domain index: Int) -> DeltaRecord? {
        guard let group = domains[index].openGroup else { return domains[index].log.last(of: replicaID) }
        let isAheadOfLog = domains[index].isOpenGroupAheadOfLog
        domains[index].openGroup = nil
        domains[index].isOpenGroupAheadOfLog = false
        guard isAheadOfLog, domains[index].log.last(of: replicaID)?.firstSequence == group.firstSequence else {
            return domains[index].log.last(of: replicaID)
        }
        let record = group.record(origin: replicaID)
        domains[index].log.replaceLast(of: replicaID, with: record)
        domains[index].log.enforce(
            maximumCount: configuration.maximumLogDeltas, maximumBytes: configuration.maximumLogBytes)
        return domains[index].log.last(of: replicaID)
    }

    private mutating func flush(now: Instant, into actions: inout [ReplicationAction]) {
        for index in domains.indices {
            closeOpenGroup(domain: index)
            let pending = domains[index].pendingPush
            var extras = domains[index].pendingExtras
            domains[index].pendingPush = []
            domains[index].pendingExtras = VersionVector()
            // Own writes whose group the log evicted before it could be pushed (a tiny log cap)
            // never travel on a link: like deliveries outside links, they are a dependency of the
            // next batch on every link, or a receiver could deliver a relayed record that depends on
            // them before them (a causal violation FuzzSchedule found).
            let unpushedOwn = Self.lastUnpushedOwnSequence(
                after: domains[index].lastFlushVector[replicaID], through: domains[index].vector[replicaID],
                pending: pending, replica: replicaID)
            if unpushedOwn > extras[replicaID] { extras[replicaID] = unpushedOwn }
            // `V` at the last flush plus what was delivered outside links since: the start of a
            // new link. Only a new link needs it, so it is computed on first use.
            var base: VersionVector?
            switch configuration.strategy {
            case .plumtree:
                for peer in domains[index].outgoing.keys.sorted() where binarySearch(peer, in: eagerPeers) == nil {
                    domains[index].outgoing[peer] = nil
                }
                for peer in eagerPeers {
                    let records = pending.compactMap { $0.sender == peer ? nil : $0.record }
                    var link: OutgoingLink
                    if let existing = domains[index].outgoing[peer] {
                        link = existing
                        link.dependencies.merge(extras)
                    } else {
                        if records.isEmpty { continue }
                        // Small counters: a receiver holding a higher epoch from before a restart
                        // answers with a GRAFT whose minimumEpoch lifts the floor.
                        lastEpoch = max(lastEpoch + 1, epochFloor[peer] ?? 0)
                        let start = base ?? domains[index].lastFlushVector.merging(extras)
                        base = start
                        link = OutgoingLink(epoch: lastEpoch, dependencies: start)
                    }
                    if !records.isEmpty {
                        let header = LinkHeader(
                            epoch: link.epoch, sequence: link.nextSequence, dependencies: link.dependencies.entries)
                        link.nextSequence += appendBatches(records, domain: index, link: header, to: peer, into: &actions)
                        link.dependencies = VersionVector()
                    }
                    domains[index].outgoing[peer] = link
                }
            case .classic:
                if !pending.isEmpty {
                    let records = pending.map(\.record)
                    let start = domains[index].lastFlushVector.merging(extras)
                    let header = LinkHeader(epoch: 0, sequence: 0, dependencies: start.entries)
                    for peer in sample(from: peers, count: configuration.fanout).sorted() {
                        appendBatches(records, domain: index, link: header, to: peer, into: &actions)
                    }
                }
            }
            // Advance `lastFlushVector` to `V` in place by what changed since the last flush (every
            // change of `V` is a pushed record or an extra), rather than copying `V`: an N-entry
            // copy per replica per flush. Nothing else holds the vector now, so no copy-on-write.
            base = nil
            domains[index].lastFlushVector.merge(extras)
            for item in pending {
                let origin = item.record.origin
                if domains[index].lastFlushVector[origin] < item.record.lastSequence {
                    domains[index].lastFlushVector[origin] = item.record.lastSequence
                }
            }
            // Own writes advance `V` at once (an open group evicted at a tiny log cap is never pushed).
            let own = domains[index].vector[replicaID]
            if domains[index].lastFlushVector[replicaID] < own { domains[index].lastFlushVector[replicaID] = own }
            assert(domains[index].lastFlushVector == domains[index].vector, "lastFlushVector drifted from V")
        }
    }

    private mutating func graftMissing(domain index: Int, now: Instant, into actions: inout [ReplicationAction]) {
        var targets = Set<PeerID>()
        for origin in domains[index].missing.keys.sorted() {
            guard var missing = domains[index].missing[origin] else { continue }
            let have = domains[index].vector[origin]
            if have >= missing.upTo {
                if missing.later > have {
                    missing.upTo = missing.later
                    missing.later = 0
                    missing.deadline = now.advanced(by: configuration.graftTimeoutMilliseconds)
                    domains[index].missing[origin] = missing
                } else {
                    domains[index].missing[origin] = nil
                }
                continue
            }
            guard now >= missing.deadline else { continue }
            targets.insert(missing.peer)
            missing.deadline = now.advanced(by: 2 * configuration.graftTimeoutMilliseconds)
            domains[index].missing[origin] = missing
        }
        for peer in domains[index].stalledLinks.keys.sorted() {
            guard let deadline = domains[index].stalledLinks[peer], now >= deadline else { continue }
            targets.insert(peer)
            domains[index].stalledLinks[peer] = now.advanced(by: 2 * configuration.graftTimeoutMilliseconds)
        }
        let name = domains[index].configuration.name
        for peer in targets.sorted() {
            let floor = (domains[index].incoming[peer]?.epoch ?? 0) + 1
            actions.append(
                .send(
                    .graft(domain: name, vector: domains[index].vector, minimumEpoch: floor, joinsTree: false), to: peer))
        }
    }

    private mutating func announce(into actions: inout [ReplicationAction]) {
        guard configuration.lazyFanout > 0 else { return }
        var candidates = lazyPeers
        if candidates.isEmpty {
            candidates = peers.filter { binarySearch($0, in: eagerPeers) == nil }
        }
        guard !candidates.isEmpty else { return }
        if announcementLag.count != domains.count { announcementLag = domains.map(\.vector) }
        for index in domains.indices {
            // Announce what was delivered a round ago: fresher deltas are still on the tree.
            let lagged = announcementLag[index]
            announcementLag[index] = domains[index].vector
            let ranges = changedEntries(lagged, since: domains[index].announced).map {
                SequenceRange(origin: $0.replica, first: 1, last: $0.counter)
            }
            guard !ranges.isEmpty else { continue }
            domains[index].announced = lagged
            let name = domains[index].configuration.name
            for peer in sample(from: candidates, count: configuration.lazyFanout).sorted() {
                actions.append(.send(.announce(domain: name, ranges: ranges), to: peer))
            }
        }
    }

    private mutating func updateStability() {
        guard knowledgeChanged, !peers.isEmpty || !unreachable.isEmpty, knowledge.count >= peers.count else { return }
        knowledgeChanged = false
        for index in domains.indices {
            var stable = domains[index].vector
            for peer in peers {
                guard let known = knowledge[peer] else { return }
                stable = stable.intersecting(known[index])
                if stable.isEmpty { break }
            }
            for held in unreachable.values where !stable.isEmpty {
                stable = stable.intersecting(held[index])
            }
            domains[index].stable = stable
            domains[index].log.truncate(atStable: stable)
        }
    }

    private mutating func expire(now: Instant, into actions: inout [ReplicationAction]) {
        if !pendingWrites.isEmpty {
            var kept: [PendingWrite] = []
            for pending in pendingWrites {
                if now >= pending.deadline {
                    actions.append(
                        .fail(
                            ReplicationError(
                                .writeConcernTimeout,
                                "write \(pending.id) reached fewer than \(pending.required) replicas in time",
                                write: pending.id)))
                } else {
                    kept.append(pending)
                }
            }
            pendingWrites = kept
        }
        for id in pendingReads.keys.sorted() {
            guard let pending = pendingReads[id], now >= pending.deadline else { continue }
            pendingReads[id] = nil
            actions.append(
                .fail(
                    ReplicationError(
                        .readTimeout, "read \(id) of \(pending.key) got \(pending.contributors) replies", readID: id)))
        }
    }

    /// How many peers are known to have delivered write `id` of this replica (acknowledged it, or
    /// reported a vector covering it in a digest); this replica is not counted.
    public func replicaCount(holding id: WriteID) -> Int {
        guard id.replica == replicaID, let index = domainIndex[id.domain] else { return 0 }
        var count = 0
        for peer in peers {
            let acked = acknowledged[peer]?[index] ?? 0
            let known = knowledge[peer]?[index][replicaID] ?? 0
            if max(acked, known) >= id.sequence { count += 1 }
        }
        return count
    }

    private mutating func checkPendingWrites(into actions: inout [ReplicationAction]) {
        guard !pendingWrites.isEmpty else { return }
        var kept: [PendingWrite] = []
        for pending in pendingWrites {
            var count = 1
            for peer in peers {
                let acked = acknowledged[peer]?[pending.domain] ?? 0
                let known = knowledge[peer]?[pending.domain][replicaID] ?? 0
                if max(acked, known) >= pending.id.sequence { count += 1 }
                if count >= pending.required { break }
            }
            if count >= pending.required {
                actions.append(.acknowledge(pending.id))
            } else {
                kept.append(pending)
            }
        }
        pendingWrites = kept
    }

    private func requiredReplicas(for concern: WriteConcern) -> Int {
        switch concern {
        case .local: 1
        case .replicas(let count): max(1, min(count, peers.count + 1))
        case .majority: (peers.count + 1) / 2 + 1
        }
    }

    // MARK: Helpers

    private mutating func makeEager(_ peer: PeerID) {
        removeSorted(peer, from: &lazyPeers)
        insertSorted(peer, into: &eagerPeers)
    }

    /// Entries of `vector` (other than this replica's) above `previous`.
    private func changedEntries(_ vector: VersionVector, since previous: VersionVector) -> [VersionVector.Entry] {
        let current = vector.entries
        let old = previous.entries
        var result: [VersionVector.Entry] = []
        var other = 0
        for entry in current where entry.replica != replicaID {
            while other < old.count && old[other].replica < entry.replica { other += 1 }
            let before = other < old.count && old[other].replica == entry.replica ? old[other].counter : 0
            if entry.counter > before { result.append(entry) }
        }
        return result
    }
}

func insertionPoint(of peer: PeerID, in sorted: [PeerID]) -> Int {
    var low = 0
    var high = sorted.count
    while low < high {
        let mid = (low + high) / 2
        if sorted[mid] < peer { low = mid + 1 } else { high = mid }
    }
    return low
}

func binarySearch(_ peer: PeerID, in sorted: [PeerID]) -> Int? {
    let position = insertionPoint(of: peer, in: sorted)
    return position < sorted.count && sorted[position] == peer ? position : nil
}

func insertSorted(_ peer: PeerID, into sorted: inout [PeerID]) {
    let position = insertionPoint(of: peer, in: sorted)
    if position < sorted.count && sorted[position] == peer { return }
    sorted.insert(peer, at: position)
}

@discardableResult
func removeSorted(_ peer: PeerID, from sorted: inout [PeerID]) -> Bool {
    guard let position = binarySearch(peer, in: sorted) else { return false }
    sorted.remove(at: position)
    return true
}
