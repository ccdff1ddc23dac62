import MeshCRDT
import MeshReplication

/// A change subscriber: its pattern and where its events go.
struct Subscriber {
    let pattern: AddressPattern
    let continuation: AsyncThrowingStream<ChangeEvent, any Error>.Continuation
}

extension MeshNode {
    /// Every change to objects matching `pattern`, local or remote, in delivery order.
    ///
    /// With `position` (the `position` of the last event a consumer handled, perhaps before a
    /// restart), the stream first replays what the consumer missed since, once, then continues
    /// live with no gap and no repeat. Missed deltas still in the log come as one event each;
    /// where the log was compacted, each matching object comes once with its current value
    /// (`.resynchronized`).
    ///
    /// A consumer that lets `maximumSubscriberBacklog` events queue up is ended with
    /// `MeshError(.subscriberTooSlow)`; it resubscribes from its last position and misses nothing.
    ///
    /// - Throws: `MeshError(.notRunning)`, `.limitExceeded` (too many subscribers).
    public func changes(
        matching pattern: AddressPattern, after position: ChangePosition? = nil
    ) throws(MeshError) -> AsyncThrowingStream<ChangeEvent, any Error> {
        guard phase == .running, let machine = replica else { throw MeshError(.notRunning, "the node is not running") }
        guard subscribers.count < configuration.maximumSubscribers else {
            throw MeshError(.limitExceeded, "\(subscribers.count) change subscribers already")
        }
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: ChangeEvent.self, bufferingPolicy: .bufferingOldest(configuration.maximumSubscriberBacklog))
        let id = nextSubscriberID
        nextSubscriberID += 1
        continuation.onTermination = { _ in Task { await self.removeSubscriber(id) } }
        let subscriber = Subscriber(pattern: pattern, continuation: continuation)
        if let position {
            // Catch-up and registration happen in one actor turn: nothing slips between them.
            for event in catchUp(machine, pattern: pattern, from: position) where !offer(event, to: subscriber, id: id) {
                return stream
            }
        }
        subscribers[id] = subscriber
        return stream
    }

    /// Convenience: `changes(matching:)` with a pattern string such as `"fabric://fleet/**"`.
    public func changes(
        matching pattern: String, after position: ChangePosition? = nil
    ) throws(MeshError) -> AsyncThrowingStream<ChangeEvent, any Error> {
        try changes(matching: try AddressPattern(pattern), after: position)
    }

    func removeSubscriber(_ id: UInt64) { subscribers[id] = nil }

    /// Hands an event to a subscriber; ends a subscriber whose backlog is full.
    @discardableResult
    private func offer(_ event: ChangeEvent, to subscriber: Subscriber, id: UInt64) -> Bool {
        if case .dropped = subscriber.continuation.yield(event) {
            subscriber.continuation.finish(
                throwing: MeshError(
                    .subscriberTooSlow,
                    "\(configuration.maximumSubscriberBacklog) change events queued; resubscribe from the last position"))
            subscribers[id] = nil
            return false
        }
        return true
    }

    /// The position of this node now (every domain's delivered vector).
    public var position: ChangePosition {
        var position = ChangePosition()
        guard let machine = replica else { return position }
        for name in machine.domainNames { position.vectors[name] = machine.vector(of: name) }
        return position
    }

    func publish(_ delivery: Delivery) {
        guard !subscribers.isEmpty, let machine = replica else { return }
        let interested = subscribers.filter { $0.value.pattern.matches(domain: delivery.domain) }
        guard !interested.isEmpty else { return }
        var position = self.position
        position.vectors[delivery.domain] = machine.vector(of: delivery.domain)
        let kind: ChangeEvent.Kind =
            switch delivery.source {
            case .local: .local
            case .remote: .remote
            case .snapshot: .snapshot
            }
        // A record's keys, or a snapshot's changed objects (`Delivery.keys`); a delivery made without
        // either (the public initializer) stands for every object of the domain.
        let keys: [String] =
            if let keys = delivery.keys { keys } else {
                (machine.objects(in: delivery.domain)?.keys).map { $0.sorted() } ?? []
            }
        for key in keys {
            guard let address = try? MeshAddress(domain: delivery.domain, path: key) else { continue }
            let event = ChangeEvent(
                address: address, value: machine.value(of: key, in: delivery.domain), origin: delivery.origin,
                kind: kind, position: position)
            for (id, subscriber) in interested where subscriber.pattern.matches(address) {
                offer(event, to: subscriber, id: id)
            }
        }
    }

    /// The events a consumer at `start` missed, in delivery order, each with a position it can resume from.
    ///
    /// They come from the change history (the journal in storage, which keeps the newest
    /// `changeHistoryRecords` deliveries); a domain whose history no longer reaches back to `start`
    /// (or that took a snapshot since) is resynchronized: each matching object once, with its value now.
    private func catchUp(_ machine: ReplicaStateMachine, pattern: AddressPattern, from start: ChangePosition)
        -> [ChangeEvent]
    {
        var events: [ChangeEvent] = []
        var position = start
        let journal = history()
        for domain in machine.domainNames where pattern.matches(domain: domain) {
            guard let vector = machine.vector(of: domain) else { continue }
            let seen = start.vectors[domain] ?? VersionVector()
            guard vector.excess(over: seen) > 0 else { continue }
            var covered = seen
            var missed: [JournalEntry] = []
            var complete = journal != nil
            for (name, entry) in journal ?? [] where name == domain {
                let record = entry.record
                guard record.lastSequence > covered[record.origin] else { continue }
                guard record.firstSequence <= covered[record.origin] + 1 else {
                    complete = false  // the history starts after what the consumer saw
                    break
                }
                covered[record.origin] = record.lastSequence
                missed.append(entry)
            }
            complete = complete && vector.excess(over: covered) == 0
            if complete {
                var current = seen
                func append(_ key: String, origin: ReplicaID) {
                    guard let address = try? MeshAddress(domain: domain, path: key), pattern.matches(address) else {
                        return
                    }
                    events.append(
                        ChangeEvent(
                            address: address, value: machine.value(of: key, in: domain), origin: origin,
                            kind: origin == machine.replicaID ? .local : .remote, position: position))
                }
                for entry in missed {
                    let record = entry.record
                    if let writeKeys = entry.writeKeys {
                        // Own writes joined in a group row: one event per write after the consumer's position.
                        let seenThrough = current[record.origin]
                        for (offset, key) in writeKeys.enumerated() {
                            let sequence = record.firstSequence + UInt64(offset)
                            guard sequence > seenThrough else { continue }
                            current[record.origin] = sequence
                            position.vectors[domain] = current
                            append(key, origin: record.origin)
                        }
                    } else {
                        current[record.origin] = record.lastSequence
                        position.vectors[domain] = current
                        for update in record.updates { append(update.key, origin: record.origin) }
                    }
                }
            } else {
                position.vectors[domain] = vector
                let latest = vector.entries.max { $0.counter < $1.counter }?.replica ?? machine.replicaID
                for key in (machine.objects(in: domain)?.keys).map({ $0.sorted() }) ?? [] {
                    guard let address = try? MeshAddress(domain: domain, path: key), pattern.matches(address) else {
                        continue
                    }
                    events.append(
                        ChangeEvent(
                            address: address, value: machine.value(of: key, in: domain), origin: latest,
                            kind: .resynchronized, position: position))
                }
            }
            position.vectors[domain] = vector
        }
        return events
    }

    /// The change history (journaled deliveries, oldest first), or `nil` when storage cannot be read.
    private func history() -> [(domain: String, entry: JournalEntry)]? {
        guard let store, storageFailure == nil else { return nil }
        var limits = configuration.replication.codecLimits
        limits.maximumInputBytes = Int.max
        var result: [(domain: String, entry: JournalEntry)] = []
        var after: Int64 = 0
        do {
            // Own writes not yet in the store are part of the history too.
            try flushJournalBatch()
            while true {
                let page = try store.records(after: after, limit: 4_096)
                guard let last = page.last else { break }
                for stored in page {
                    let row = try JournalRow.entries(domain: stored.domain, bytes: stored.bytes, limits: limits)
                    for entry in row.entries { result.append((row.domain, entry)) }
                }
                after = last.sequence
            }
        } catch {
            logger.error("reading the change history failed: \(error)")
            return nil
        }
        return result
    }
}
