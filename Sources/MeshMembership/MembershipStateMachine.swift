import MeshCRDT
import MeshCodec
import MeshReplication

/// What the shell must do after an event: the state machine's only output.
public enum MembershipAction: Sendable, Equatable {
    /// Send an encoded `MembershipMessage` to a member (best effort: loss is expected).
    case send([UInt8], to: MemberID)
    /// Dial `address` (again), expecting the member `expected` there when it is known: seeds
    /// at start and while no live member answers there, members newly known (or again)
    /// alive, dead members every reconnect round, and ping-request targets not held live.
    /// A dial to a member already connected should be a no-op for the transport.
    case connect(MemberAddress, expected: MemberID?)
    /// A member joined (`previous == nil`), changed status, or changed address or replica
    /// with the same status; `previous` is its status before.
    case memberChanged(Member, previous: MemberStatus?)
}

/// SWIM membership and failure detection (Das, Gupta, Motivala 2002) with Lifeguard
/// (Dadgar, Phillips, Currey 2018), as a sans-IO state machine.
///
/// Events in (`start`, `sessionEstablished`, `receive`, `tick`, `decommission`, `leave`),
/// actions out (`MembershipAction`). Time arrives as an `Instant`; randomness comes from a
/// seeded `SplitMix64` owned by the value, so the same events replay the same actions.
///
/// Each probe round this member pings one member (round-robin over a shuffled list); with
/// no ack after `probeTimeout` it asks `indirectProbes` others to ping it; with no ack by
/// the end of the round it suspects it. A suspicion that is not refuted within the
/// suspicion timeout becomes a death. Claims travel piggybacked on probes and acks, in a
/// gossip message to `gossipFanout` members per round, and in full-state syncs.
///
/// Lifeguard: probe rounds and timeouts are scaled by `localHealth + 1`, which rises when
/// our probes fail without relays' nacks (our own network or CPU is the likely culprit)
/// and when we must refute a claim about ourselves, and falls with every ack; a suspicion
/// starts long and shrinks as independent members confirm it; a probe of a suspect carries
/// the suspicion first, so the suspect learns of it and refutes (buddy system).
///
/// Rejoining (memberlist issue #222): dead members are kept for `deadMemberRetention` and
/// re-dialled every reconnect round together with seed addresses not known to be live,
/// and each is sent our full state. A member that was declared dead while partitioned
/// reads its death in that state (or in a reply to it) and refutes with a higher
/// incarnation; the majority takes it back. A full state's death claims about members we
/// hold alive count only as suspicions (as memberlist's push-pull does), so a stale view
/// from a healed partition cannot kill live members, only make them refute. A join sync
/// to a peer that stays unknown is repeated each reconnect round too: re-dialling a seed
/// whose session is already open does nothing, so a lost first exchange must not strand
/// the joiner.
///
/// ### Invariants
/// - the table holds at most `maximumMembers` members, this one included;
/// - a `left` member never changes again; this member's incarnation only grows;
/// - local health stays within `0...maximumLocalHealth`.
public struct MembershipStateMachine: Sendable {
    struct Suspicion: Sendable {
        var start: Instant
        /// Distinct members that suspect it (the first accuser included), at most `expected + 1`.
        var accusers: [MemberID]
        var expected: Int
        var minimum: UInt64
        var maximum: UInt64

        /// Lifeguard's dogpile timeout: from `maximum` down to `minimum` as confirmations
        /// reach `expected`, logarithmically.
        var timeout: UInt64 {
            guard expected >= 1 else { return minimum }
            let confirmations = Double(max(accusers.count - 1, 0))
            let fraction = naturalLogarithm(confirmations + 1) / naturalLogarithm(Double(expected) + 1)
            let shrunk = Double(maximum) - Double(maximum - minimum) * fraction
            return max(minimum, UInt64(max(shrunk, 0)))
        }

        var deadline: Instant { start.advanced(by: timeout) }
    }

    struct Entry: Sendable {
        var member: Member
        var suspicion: Suspicion?
        /// When the member last changed status (dead members are forgotten after retention).
        var changedAt: Instant
        /// When it was last told, unasked, that we hold it suspect or dead.
        var toldAt: Instant?
    }

    struct Probe: Sendable {
        var target: MemberID
        var sequence: UInt64
        var indirectAt: Instant
        var deadline: Instant
        var relays: [MemberID] = []
        var nacks = 0
        var isAcknowledged = false
        var indirectSent = false
    }

    struct Relay: Sendable {
        var requester: MemberID
        var requesterSequence: UInt64
        var target: MemberID
        var deadline: Instant
    }

    struct Broadcast: Sendable {
        var update: MemberUpdate
        var transmits: Int
        var order: UInt64
    }

    /// The bounds and tunables in force.
    public let configuration: MembershipConfiguration
    /// The seed addresses this member dials to join, and re-dials while no live member answers there.
    public let seeds: [MemberAddress]
    var me: Member
    var entries: [MemberID: Entry] = [:]
    var random: SplitMix64
    var probeQueue: [MemberID] = []
    var probe: Probe?
    var relays: [UInt64: Relay] = [:]
    var broadcasts: [MemberID: Broadcast] = [:]
    var broadcastOrder: UInt64 = 0
    var nextSequence: UInt64 = 1
    var isStarted = false
    /// Set by `leave`: this machine said goodbye and does nothing more.
    var hasLeft = false
    /// Whether this member still takes part (not decommissioned, not gone after `leave`).
    var isActive: Bool { me.status != .left && !hasLeft }
    var nextProbeAt = Instant(milliseconds: 0)
    var nextReconnectAt = Instant(milliseconds: 0)
    var nextPushPullAt = Instant(milliseconds: 0)
    var reconnectCursor = 0
    /// Peers whose session came up while they were unknown to us (a seed, a joiner), until
    /// they appear live in the table: the join sync is repeated each reconnect round, as a
    /// lost first exchange would otherwise leave us alone behind an open session.
    var pendingJoins: [MemberID] = []
    /// Lifeguard's local health multiplier: 0 is healthy; timeouts scale by `localHealth + 1`.
    public private(set) var localHealth = 0
    /// What was done and refused so far.
    public private(set) var counters = MembershipCounters()
    /// The latest refused input, if any.
    public private(set) var lastError: MembershipError?

    // MARK: Creating and reading

    /// Creates the failure detector of one member.
    ///
    /// - Parameters:
    ///   - me: this member; its status is taken as `alive`; a restarted node may pass the
    ///     incarnation it had (it will refute higher claims about itself anyway).
    ///   - seeds: addresses to dial at `start` (this member's own address is ignored).
    ///   - configuration: bounds and timing.
    ///   - seed: seeds the random choices (probe order, relays, gossip targets).
    public init(
        me: Member, seeds: [MemberAddress], configuration: MembershipConfiguration = .init(), seed: UInt64
    ) {
        configuration.validate()
        var myself = me
        myself.status = .alive
        self.me = myself
        self.configuration = configuration
        var unique: [MemberAddress] = []
        for address in seeds where address != me.address && !unique.contains(address) { unique.append(address) }
        self.seeds = unique
        var mixed: UInt64 = seed
        for byte in me.id.bytes.prefix(8) { mixed = (mixed &* 0x100_0000_01B3) ^ UInt64(byte) }
        self.random = SplitMix64(seed: mixed)
    }

    /// Every member known, this one included, sorted by id.
    public var members: [Member] {
        (entries.values.map(\.member) + [me]).sorted { $0.id < $1.id }
    }

    /// This member as it currently presents itself (its incarnation grows with refutations).
    public var myself: Member { me }

    /// The member with `id`, if known.
    public func member(_ id: MemberID) -> Member? {
        id == me.id ? me : entries[id]?.member
    }

    /// The earliest instant at which `tick` has something to do, for the shell's timer
    /// (`nil` before `start` and after leaving).
    public var nextDeadline: Instant? {
        guard isStarted, isActive else { return nil }
        var earliest = min(nextProbeAt, nextReconnectAt, nextPushPullAt)
        if let probe, !probe.isAcknowledged, !probe.indirectSent { earliest = min(earliest, probe.indirectAt) }
        for relay in relays.values { earliest = min(earliest, relay.deadline) }
        for entry in entries.values {
            if let suspicion = entry.suspicion { earliest = min(earliest, suspicion.deadline) }
            if entry.member.status == .dead {
                earliest = min(earliest, entry.changedAt.advanced(by: configuration.deadMemberRetentionMilliseconds))
            }
        }
        return earliest
    }

    // MARK: Events

    /// Starts probing and dials the seeds.
    public mutating func start(now: Instant) -> [MembershipAction] {
        guard !isStarted, isActive else { return [] }
        isStarted = true
        nextProbeAt = now
        nextReconnectAt = now.advanced(by: configuration.reconnectIntervalMilliseconds)
        nextPushPullAt = now.advanced(by: configuration.pushPullIntervalMilliseconds)
        return seeds.map { .connect($0, expected: nil) }
    }

    /// The transport established a session with `peer`: say hello with our own record, or,
    /// when `peer` is new to us or not known to be alive, exchange full states (a join or a
    /// rejoin).
    public mutating func sessionEstablished(with peer: MemberID, now: Instant) -> [MembershipAction] {
        guard peer != me.id, isActive else { return [] }
        var actions: [MembershipAction] = []
        switch entries[peer]?.member.status {
        case .alive:
            var updates = [MemberUpdate(member: me)]
            updates += piggyback(for: peer, room: configuration.maximumPiggybackedUpdates - 1, excluding: me.id)
            send(.gossip(updates: updates), to: peer, into: &actions)
        case .left:
            if let entry = entries[peer] {
                send(.gossip(updates: [MemberUpdate(member: entry.member)]), to: peer, into: &actions)
            }
        case nil:
            if !pendingJoins.contains(peer) {
                // At most half the reconnect budget, so re-dialling the dead is never starved.
                if pendingJoins.count >= max(configuration.maximumReconnectsPerRound / 2, 1) {
                    pendingJoins.removeFirst()
                }
                pendingJoins.append(peer)
            }
            sendState(to: peer, requestsReply: true, into: &actions)
        case .suspect, .dead:
            sendState(to: peer, requestsReply: true, into: &actions)
        }
        return actions
    }

    /// Handles a message from `peer` (authenticated by the transport).
    ///
    /// Malformed bytes are ignored, counted in `counters.malformedMessages` and kept in
    /// `lastError`; nothing here traps on remote input.
    public mutating func receive(_ bytes: [UInt8], from peer: MemberID, now: Instant) -> [MembershipAction] {
        guard isActive else { return [] }
        let message: MembershipMessage
        do {
            message = try MembershipMessage.decode(
                bytes, maximumBytes: configuration.maximumMessageBytes, maximumRecords: configuration.maximumMembers)
        } catch {
            counters.malformedMessages += 1
            lastError = MembershipError(.malformedMessage, "message from \(peer) refused", cause: error)
            return []
        }
        var actions: [MembershipAction] = []
        switch message {
        case .ping(let sequence, let target, let updates):
            apply(updates, from: peer, now: now, into: &actions)
            guard target == me.id else {
                counters.misdirectedPings += 1
                lastError = MembershipError(.misdirectedPing, "ping from \(peer) meant for \(target)")
                return actions
            }
            if !isActive { return actions }
            send(.ack(sequence: sequence, updates: piggyback(for: peer)), to: peer, into: &actions)
        case .ack(let sequence, let updates):
            apply(updates, from: peer, now: now, into: &actions)
            if var current = probe, current.sequence == sequence, !current.isAcknowledged,
                peer == current.target || current.relays.contains(peer)
            {
                current.isAcknowledged = true
                probe = current
                adjustHealth(-1)
            } else if let relay = relays[sequence], relay.target == peer {
                relays[sequence] = nil
                send(
                    .ack(sequence: relay.requesterSequence, updates: piggyback(for: relay.requester)),
                    to: relay.requester, into: &actions)
            }
            tellIfNotAlive(peer, now: now, into: &actions)
        case .pingRequest(let sequence, let target, let address, let updates):
            apply(updates, from: peer, now: now, into: &actions)
            guard target != me.id, isActive else { return actions }
            guard relays.count < configuration.maximumRelayedProbes else {
                counters.refusedRelays += 1
                lastError = MembershipError(.relayTableFull, "ping request from \(peer) for \(target) not relayed")
                return actions
            }
            let mine = takeSequence()
            // The nack must reach the requester before its round ends, `probeInterval - probeTimeout`
            // after it asked: wait half of that, leaving the other half for the two network hops
            // (Lifeguard's relays nack at 80% of the probe timeout for the same reason).
            let wait = (configuration.probeIntervalMilliseconds - configuration.probeTimeoutMilliseconds) / 2
            relays[mine] = Relay(
                requester: peer, requesterSequence: sequence, target: target, deadline: now.advanced(by: wait))
            // A target we do not hold live may have no session here: dial it at the address given.
            if !isLive(entries[target]?.member.status) { actions.append(.connect(address, expected: target)) }
            send(.ping(sequence: mine, target: target, updates: piggyback(for: target)), to: target, into: &actions)
        case .nack(let sequence):
            if var current = probe, current.sequence == sequence, current.relays.contains(peer),
                current.nacks < current.relays.count
            {
                current.nacks += 1
                probe = current
                counters.nacksReceived += 1
            }
            tellIfNotAlive(peer, now: now, into: &actions)
        case .gossip(let updates):
            apply(updates, from: peer, now: now, into: &actions)
            tellIfNotAlive(peer, now: now, into: &actions)
        case .sync(let requestsReply, let members):
            merge(members, from: peer, now: now, into: &actions)
            if requestsReply {
                sendState(to: peer, requestsReply: false, into: &actions)
            } else {
                tellIfNotAlive(peer, now: now, into: &actions)
            }
        }
        return actions
    }

    /// Runs whatever is due at `now`: nacks for relayed probes, indirect probes, the end of
    /// the probe round and the next one, suspicion expiry, forgetting long-dead members,
    /// reconnects and the periodic full-state exchange.
    public mutating func tick(now: Instant) -> [MembershipAction] {
        guard isStarted, isActive else { return [] }
        var actions: [MembershipAction] = []
        expireRelays(now: now, into: &actions)
        if var current = probe, !current.isAcknowledged, !current.indirectSent, now >= current.indirectAt {
            current.indirectSent = true
            current.relays = chooseMembers(count: configuration.indirectProbes, excluding: [current.target])
            probe = current
            if let target = entries[current.target]?.member {
                for relay in current.relays {
                    counters.indirectProbes += 1
                    let request = MembershipMessage.pingRequest(
                        sequence: current.sequence, target: target.id, address: target.address,
                        updates: piggyback(for: relay))
                    send(request, to: relay, into: &actions)
                }
            }
        }
        if now >= nextProbeAt {
            finishProbe(now: now, into: &actions)
            startProbe(now: now, into: &actions)
            gossipRound(into: &actions)
            nextProbeAt = now.advanced(by: scaled(configuration.probeIntervalMilliseconds))
        }
        expireSuspicions(now: now, into: &actions)
        forgetDeadMembers(now: now)
        if now >= nextReconnectAt {
            reconnect(into: &actions)
            nextReconnectAt = now.advanced(by: configuration.reconnectIntervalMilliseconds)
        }
        if now >= nextPushPullAt {
            if let partner = chooseMembers(count: 1, excluding: []).first {
                sendState(to: partner, requestsReply: true, into: &actions)
            }
            nextPushPullAt = now.advanced(by: configuration.pushPullIntervalMilliseconds)
        }
        return actions
    }

    /// Marks a member as left for good and gossips it; that identity never becomes alive
    /// again. Decommissioning this member is `leave`.
    public mutating func decommission(_ id: MemberID, now: Instant) -> [MembershipAction] {
        guard id != me.id else { return leave(now: now) }
        guard isActive else { return [] }
        var actions: [MembershipAction] = []
        var record: Member
        if let entry = entries[id] {
            guard entry.member.status != .left else { return [] }
            record = entry.member
        } else {
            guard entries.count + 1 < configuration.maximumMembers else {
                counters.refusedMembers += 1
                lastError = MembershipError(.memberTableFull, "decommissioned member \(id) not recorded")
                return []
            }
            record = Member(id: id, replicaID: ReplicaID(0), address: MemberAddress(host: "", port: 0))
        }
        record.status = .left
        apply(MemberUpdate(member: record), from: me.id, isFullState: false, now: now, into: &actions)
        // Tell it too, so a running node that was decommissioned stops.
        send(.gossip(updates: [MemberUpdate(member: record)]), to: id, into: &actions)
        return actions
    }

    /// Leaves the group gracefully: tells every live member, then stops (every later event
    /// is ignored).
    public mutating func leave(now: Instant) -> [MembershipAction] {
        guard isActive else { return [] }
        hasLeft = true
        // A graceful leave announces our own death at our current incarnation: peers stop probing us at
        // once, and a restart (with a higher, persisted incarnation) rejoins. Only decommissioning
        // (`left`) is final.
        let previous = me.status
        me.status = .dead
        var actions: [MembershipAction] = [.memberChanged(me, previous: previous)]
        let goodbye = MembershipMessage.gossip(updates: [MemberUpdate(member: me)]).encoded()
        for id in entries.keys.sorted() where isLive(entries[id]?.member.status) {
            actions.append(.send(goodbye, to: id))
        }
        probe = nil
        relays = [:]
        return actions
    }

    // MARK: Applying claims

    mutating func apply(
        _ updates: [MemberUpdate], from peer: MemberID, now: Instant, into actions: inout [MembershipAction]
    ) {
        for update in updates { apply(update, from: peer, isFullState: false, now: now, into: &actions) }
    }

    /// Merges a full state (push-pull): death claims about members held live become
    /// suspicions by the sender, so they can refute (memberlist's `mergeState`).
    mutating func merge(_ members: [Member], from peer: MemberID, now: Instant, into actions: inout [MembershipAction])
    {
        for member in members {
            apply(MemberUpdate(member: member), from: peer, isFullState: true, now: now, into: &actions)
        }
    }

    mutating func apply(
        _ update: MemberUpdate, from peer: MemberID, isFullState: Bool, now: Instant,
        into actions: inout [MembershipAction]
    ) {
        let claim = update.member
        if claim.id == me.id {
            applyAboutMe(claim, into: &actions)
            return
        }
        guard var entry = entries[claim.id] else {
            admit(update, from: peer, now: now, into: &actions)
            return
        }
        let existing = entry.member
        if existing.status == .left { return }  // final
        var claimed = update
        if isFullState, claim.status == .dead, existing.status != .dead {
            claimed = MemberUpdate(
                member: Member(
                    id: claim.id, replicaID: claim.replicaID, address: claim.address, incarnation: claim.incarnation,
                    status: .suspect), accuser: peer)
        }
        let new = claimed.member
        let overrides =
            new.status == .left || new.incarnation > existing.incarnation
            || (new.incarnation == existing.incarnation && new.status.rawValue > existing.status.rawValue)
        guard overrides else {
            // An independent suspicion of the same incarnation confirms ours (Lifeguard).
            if new.status == .suspect, existing.status == .suspect, new.incarnation == existing.incarnation,
                let accuser = claimed.accuser, var suspicion = entry.suspicion,
                !suspicion.accusers.contains(accuser), suspicion.accusers.count <= suspicion.expected
            {
                suspicion.accusers.append(accuser)
                entry.suspicion = suspicion
                entries[claim.id] = entry
                enqueue(claimed)
            }
            return
        }
        entry.member = new
        if new.status != existing.status {
            entry.changedAt = now
            entry.toldAt = nil
        }
        switch new.status {
        case .suspect:
            if existing.status != .suspect || new.incarnation != existing.incarnation {
                entry.suspicion = makeSuspicion(accuser: claimed.accuser ?? peer, now: now)
            }
        case .alive:
            entry.suspicion = nil
            if existing.status == .dead {
                insertIntoProbeQueue(new.id)
                actions.append(.connect(new.address, expected: new.id))
            }
        case .dead, .left:
            entry.suspicion = nil
        }
        entries[claim.id] = entry
        if new.status != existing.status || new.address != existing.address || new.replicaID != existing.replicaID {
            actions.append(.memberChanged(new, previous: existing.status))
        }
        enqueue(claimed)
    }

    /// A claim about this member: refute suspicion and death with a higher incarnation,
    /// accept being decommissioned.
    mutating func applyAboutMe(_ claim: Member, into actions: inout [MembershipAction]) {
        switch claim.status {
        case .left:
            let previous = me.status
            me.status = .left
            probe = nil
            relays = [:]
            actions.append(.memberChanged(me, previous: previous))
        case .suspect, .dead:
            guard claim.incarnation >= me.incarnation else { return }
            refute(claim.incarnation)
            adjustHealth(1)  // Lifeguard: having to refute hints that we are the slow one
        case .alive:
            // A newer or different record of us (we restarted, or moved): supersede it.
            if claim.incarnation > me.incarnation
                || (claim.incarnation == me.incarnation
                    && (claim.address != me.address || claim.replicaID != me.replicaID))
            {
                refute(claim.incarnation)
            }
        }
    }

    mutating func refute(_ incarnation: UInt64) {
        guard incarnation < .max else { return }
        me.incarnation = max(me.incarnation, incarnation + 1)
        counters.refutations += 1
        enqueue(MemberUpdate(member: me))
    }

    /// Adds a member first heard of, within the table bound.
    mutating func admit(
        _ update: MemberUpdate, from peer: MemberID, now: Instant, into actions: inout [MembershipAction]
    ) {
        guard entries.count + 1 < configuration.maximumMembers else {
            counters.refusedMembers += 1
            lastError = MembershipError(
                .memberTableFull,
                "member \(update.member.id) from \(peer) refused: \(configuration.maximumMembers) held")
            return
        }
        let member = update.member
        var entry = Entry(member: member, changedAt: now)
        if member.status == .suspect { entry.suspicion = makeSuspicion(accuser: update.accuser ?? peer, now: now) }
        entries[member.id] = entry
        actions.append(.memberChanged(member, previous: nil))
        if isLive(member.status) {
            insertIntoProbeQueue(member.id)
            actions.append(.connect(member.address, expected: member.id))
        }
        enqueue(update)
    }

    // MARK: Probing

    mutating func startProbe(now: Instant, into actions: inout [MembershipAction]) {
        probe = nil
        guard let target = nextProbeTarget() else { return }
        let sequence = takeSequence()
        counters.probes += 1
        probe = Probe(
            target: target, sequence: sequence,
            indirectAt: now.advanced(by: scaled(configuration.probeTimeoutMilliseconds)),
            deadline: now.advanced(by: scaled(configuration.probeIntervalMilliseconds)))
        send(.ping(sequence: sequence, target: target, updates: piggyback(for: target)), to: target, into: &actions)
    }

    /// Ends the round's probe: with no ack, suspect the target (or confirm its suspicion),
    /// and raise local health by
    /// the nacks that did not come (or by one when nobody relayed), as Lifeguard does.
    mutating func finishProbe(now: Instant, into actions: inout [MembershipAction]) {
        guard let current = probe else { return }
        probe = nil
        guard !current.isAcknowledged, var target = entries[current.target]?.member, isLive(target.status) else {
            return
        }
        counters.failedProbes += 1
        if current.relays.isEmpty {
            adjustHealth(1)
        } else if current.nacks < current.relays.count {
            adjustHealth(current.relays.count - current.nacks)
        }
        // A suspect we failed to reach ourselves: our suspicion is an independent
        // confirmation of the one we heard (Lifeguard), which shortens its timeout.
        target.status = .suspect
        apply(MemberUpdate(member: target, accuser: me.id), from: me.id, isFullState: false, now: now, into: &actions)
    }

    /// The next member to probe: round-robin over a shuffled list of live members, reshuffled
    /// each pass (SWIM's bounded detection time).
    mutating func nextProbeTarget() -> MemberID? {
        while true {
            if probeQueue.isEmpty {
                probeQueue = entries.keys.sorted().filter { isLive(entries[$0]?.member.status) }
                probeQueue.shuffle(using: &random)
                if probeQueue.isEmpty { return nil }
            }
            let candidate = probeQueue.removeFirst()
            if isLive(entries[candidate]?.member.status) { return candidate }
        }
    }

    mutating func insertIntoProbeQueue(_ id: MemberID) {
        guard !probeQueue.contains(id) else { return }
        probeQueue.insert(id, at: random.below(probeQueue.count + 1))
    }

    mutating func expireRelays(now: Instant, into actions: inout [MembershipAction]) {
        for sequence in relays.keys.sorted() {
            guard let relay = relays[sequence], now >= relay.deadline else { continue }
            relays[sequence] = nil
            send(.nack(sequence: relay.requesterSequence), to: relay.requester, into: &actions)
        }
    }

    mutating func expireSuspicions(now: Instant, into actions: inout [MembershipAction]) {
        for id in entries.keys.sorted() {
            guard var entry = entries[id], let suspicion = entry.suspicion, entry.member.status == .suspect,
                now >= suspicion.deadline
            else { continue }
            let previous = entry.member.status
            entry.member.status = .dead
            entry.suspicion = nil
            entry.changedAt = now
            entry.toldAt = nil
            entries[id] = entry
            counters.declaredDead += 1
            actions.append(.memberChanged(entry.member, previous: previous))
            enqueue(MemberUpdate(member: entry.member))
        }
    }

    mutating func forgetDeadMembers(now: Instant) {
        for id in entries.keys.sorted() {
            guard let entry = entries[id], entry.member.status == .dead,
                now >= entry.changedAt.advanced(by: configuration.deadMemberRetentionMilliseconds)
            else { continue }
            entries[id] = nil
            broadcasts[id] = nil
        }
    }

    /// Repeats unanswered join syncs, re-dials seed addresses no live member answers at, and
    /// dead members (round-robin), sending each dead member our full state so it can refute
    /// its death (issue #222).
    mutating func reconnect(into actions: inout [MembershipAction]) {
        var budget = configuration.maximumReconnectsPerRound
        pendingJoins.removeAll { entries[$0] != nil }
        for peer in pendingJoins {
            sendState(to: peer, requestsReply: true, into: &actions)
            budget -= 1
        }
        let liveAddresses = Set(entries.values.filter { isLive($0.member.status) }.map(\.member.address))
        for seed in seeds where budget > 0 && !liveAddresses.contains(seed) {
            actions.append(.connect(seed, expected: nil))
            budget -= 1
        }
        let dead = entries.keys.sorted().filter { entries[$0]?.member.status == .dead }
        guard !dead.isEmpty else { return }
        for step in 0..<min(budget, dead.count) {
            let id = dead[(reconnectCursor + step) % dead.count]
            guard let member = entries[id]?.member else { continue }
            actions.append(.connect(member.address, expected: id))
            sendState(to: id, requestsReply: true, into: &actions)
        }
        reconnectCursor = (reconnectCursor + min(budget, dead.count)) % dead.count
    }

    // MARK: Gossip

    /// Queues a claim for piggybacking, replacing an older claim about the same member.
    mutating func enqueue(_ update: MemberUpdate) {
        broadcastOrder += 1
        broadcasts[update.member.id] = Broadcast(update: update, transmits: 0, order: broadcastOrder)
    }

    /// How many times each claim is piggybacked: `retransmitMultiplier × ceil(log10(n + 1))`.
    var retransmitLimit: Int {
        var digits = 0
        var remaining = entries.count + 2
        while remaining > 1 {
            digits += 1
            remaining = (remaining + 9) / 10
        }
        return configuration.retransmitMultiplier * max(digits, 1)
    }

    /// Up to `room` claims for a message to `recipient`, least transmitted (then newest)
    /// first. A claim that the recipient is not alive goes first whatever its count: the
    /// recipient must hear it to refute it (Lifeguard's buddy system).
    mutating func piggyback(for recipient: MemberID, room: Int? = nil, excluding: MemberID? = nil) -> [MemberUpdate] {
        let room = min(room ?? configuration.maximumPiggybackedUpdates, configuration.maximumPiggybackedUpdates)
        guard room > 0 else { return [] }
        var chosen: [MemberUpdate] = []
        if let entry = entries[recipient], entry.member.status == .suspect || entry.member.status == .dead {
            chosen.append(MemberUpdate(member: entry.member, accuser: entry.suspicion?.accusers.first))
        }
        let limit = retransmitLimit
        let ordered = broadcasts.values.sorted {
            $0.transmits != $1.transmits ? $0.transmits < $1.transmits : $0.order > $1.order
        }
        for broadcast in ordered where chosen.count < room {
            let id = broadcast.update.member.id
            if id == excluding || chosen.contains(where: { $0.member.id == id }) { continue }
            chosen.append(broadcast.update)
            if broadcast.transmits + 1 >= limit {
                broadcasts[id] = nil
            } else {
                broadcasts[id]?.transmits += 1
            }
        }
        return chosen
    }

    /// Sends pending claims to `gossipFanout` random live members.
    mutating func gossipRound(into actions: inout [MembershipAction]) {
        guard !broadcasts.isEmpty else { return }
        for target in chooseMembers(count: configuration.gossipFanout, excluding: []) {
            let updates = piggyback(for: target)
            if updates.isEmpty { break }
            send(.gossip(updates: updates), to: target, into: &actions)
        }
    }

    /// Tells a peer we hold suspect or dead that we do (once per probe interval), so it
    /// refutes: the peer may not know it was partitioned away.
    mutating func tellIfNotAlive(_ peer: MemberID, now: Instant, into actions: inout [MembershipAction]) {
        guard var entry = entries[peer], entry.member.status == .suspect || entry.member.status == .dead else {
            return
        }
        if let told = entry.toldAt, now < told.advanced(by: configuration.probeIntervalMilliseconds) { return }
        entry.toldAt = now
        entries[peer] = entry
        let claim = MemberUpdate(member: entry.member, accuser: entry.suspicion?.accusers.first)
        send(.gossip(updates: [claim, MemberUpdate(member: me)]), to: peer, into: &actions)
    }

    /// Sends our full table to `peer`, split into messages under `maximumMessageBytes`.
    mutating func sendState(to peer: MemberID, requestsReply: Bool, into actions: inout [MembershipAction]) {
        let all = members
        let budget = configuration.maximumMessageBytes - 16
        var chunk: [Member] = []
        var size = 0
        var first = true
        for member in all {
            let bytes = MembershipMessage.encodedByteCount(of: MemberUpdate(member: member))
            if size + bytes > budget, !chunk.isEmpty {
                send(.sync(requestsReply: requestsReply && first, members: chunk), to: peer, into: &actions)
                first = false
                chunk = []
                size = 0
            }
            chunk.append(member)
            size += bytes
        }
        send(.sync(requestsReply: requestsReply && first, members: chunk), to: peer, into: &actions)
    }

    // MARK: Helpers

    func send(_ message: MembershipMessage, to peer: MemberID, into actions: inout [MembershipAction]) {
        actions.append(.send(message.encoded(), to: peer))
    }

    mutating func takeSequence() -> UInt64 {
        defer { nextSequence &+= 1 }
        return nextSequence
    }

    func isLive(_ status: MemberStatus?) -> Bool { status == .alive || status == .suspect }

    /// `count` distinct random live members other than this one and `excluded`.
    mutating func chooseMembers(count: Int, excluding excluded: [MemberID]) -> [MemberID] {
        guard count > 0 else { return [] }
        var candidates = entries.keys.sorted().filter {
            entries[$0]?.member.status == .alive && !excluded.contains($0)
        }
        var chosen: [MemberID] = []
        while chosen.count < count, !candidates.isEmpty {
            chosen.append(candidates.remove(at: random.below(candidates.count)))
        }
        return chosen
    }

    mutating func adjustHealth(_ delta: Int) {
        localHealth = min(max(localHealth + delta, 0), configuration.maximumLocalHealth)
    }

    func scaled(_ milliseconds: UInt64) -> UInt64 {
        let (product, overflow) = milliseconds.multipliedReportingOverflow(by: UInt64(localHealth + 1))
        return overflow ? .max : product
    }

    /// A suspicion timeout pair for the current group size `n` (live members, this one
    /// included): minimum `suspicionMultiplier × max(1, log10 n) × probeInterval`, maximum
    /// `suspicionMaximumMultiplier ×` that, both within the configured floor and ceiling;
    /// `expected` independent confirmations (memberlist: `suspicionMultiplier − 2`, or none
    /// when the group is too small to provide them).
    func makeSuspicion(accuser: MemberID, now: Instant) -> Suspicion {
        let live = entries.values.filter { isLive($0.member.status) }.count + 1
        let (minimum, maximum) = suspicionTimeoutMilliseconds(liveMembers: live)
        let wanted = configuration.suspicionMultiplier - 2
        let expected = live - 2 < wanted ? 0 : max(wanted, 0)
        return Suspicion(start: now, accusers: [accuser], expected: expected, minimum: minimum, maximum: maximum)
    }

    /// The suspicion timeout of a fresh suspicion with no confirmations, for a group of
    /// `liveMembers` (this one included): what a test or an operator can expect.
    public func suspicionTimeoutMilliseconds(liveMembers: Int) -> (minimum: UInt64, maximum: UInt64) {
        let scale = max(1, naturalLogarithm(Double(max(liveMembers, 1))) / naturalLogarithm(10))
        let base = Double(configuration.suspicionMultiplier) * scale * Double(configuration.probeIntervalMilliseconds)
        let minimum = min(
            max(UInt64(base), configuration.minimumSuspicionTimeoutMilliseconds),
            configuration.maximumSuspicionTimeoutMilliseconds)
        let maximum = min(
            max(minimum * UInt64(configuration.suspicionMaximumMultiplier), minimum),
            configuration.maximumSuspicionTimeoutMilliseconds)
        return (minimum, maximum)
    }
}

/// `ln x` for `x > 0`, without Foundation: `x = m × 2^e` with `m` in `[1, 2)`, and
/// `ln m = 2 atanh((m − 1)/(m + 1))` by its series (|z| ≤ 1/3, so 20 terms are exact to
/// double precision).
func naturalLogarithm(_ x: Double) -> Double {
    guard x > 0, x.isFinite else { return x == 0 ? -.infinity : x }
    let exponent = Double(x.exponent)
    let mantissa = x.significand
    let z = (mantissa - 1) / (mantissa + 1)
    let zSquared = z * z
    var term = z
    var sum = 0.0
    var denominator = 1.0
    for _ in 0..<20 {
        sum += term / denominator
        term *= zSquared
        denominator += 2
    }
    return exponent * 0.693_147_180_559_945_3 + 2 * sum
}
