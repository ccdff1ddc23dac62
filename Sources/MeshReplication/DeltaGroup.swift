import MeshCRDT

/// One origin's consecutive writes in one domain, joined write by write in place into one
/// delta-group (Almeida, Shoker, Baquero 2018): the replication core's open group, and the node's
/// own writes gathered for one journal row.
///
/// Joining in place costs a look-up and a merge per write; re-encoding and re-joining the whole
/// group into a new immutable `DeltaRecord` on every write cost O(group) per write (a set or map
/// group carries a dot per write). The record is made once, by `record(origin:)`.
///
/// ### Invariants
/// The group covers exactly the sequences `firstSequence...lastSequence`, each joined once.
package struct DeltaGroup: Sendable {
    package private(set) var firstSequence: UInt64
    package private(set) var lastSequence: UInt64
    /// The greatest timestamp the group's writes imply (`DeltaRecord.impliedTimestamp(of:)`).
    package private(set) var timestamp: HLCTimestamp
    package private(set) var requestsAcknowledgement: Bool
    /// Sorted by key; `values[i]` is the joined delta of `keys[i]`.
    private var keys: [String]
    private var values: [ObjectValue]

    /// A group of the writes of `record`.
    package init(_ record: DeltaRecord) {
        firstSequence = record.firstSequence
        lastSequence = record.lastSequence
        timestamp = record.timestamp
        requestsAcknowledgement = record.requestsAcknowledgement
        keys = record.updates.map(\.key)
        values = record.updates.map(\.value)
    }

    /// A group of one write, `sequence`.
    package init(_ update: KeyedDelta, sequence: UInt64, requestsAcknowledgement: Bool) {
        firstSequence = sequence
        lastSequence = sequence
        timestamp = DeltaRecord.impliedTimestamp(of: update)
        self.requestsAcknowledgement = requestsAcknowledgement
        keys = [update.key]
        values = [update.value]
    }

    package var writeCount: UInt64 { lastSequence - firstSequence + 1 }

    /// How many keys the group's writes changed.
    package var keyCount: Int { keys.count }

    /// Joins the next write (sequence `lastSequence + 1`) into the group, in place.
    package mutating func join(
        _ update: KeyedDelta, sequence: UInt64, timestamp recordTimestamp: HLCTimestamp,
        requestsAcknowledgement wantsAcknowledgement: Bool
    ) {
        precondition(sequence == lastSequence + 1, "a delta-group covers consecutive writes")
        lastSequence = sequence
        timestamp = max(timestamp, recordTimestamp)
        requestsAcknowledgement = requestsAcknowledgement || wantsAcknowledgement
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if keys[mid] < update.key { low = mid + 1 } else { high = mid }
        }
        if low < keys.count && keys[low] == update.key {
            values[low].merge(update.value)
        } else {
            keys.insert(update.key, at: low)
            values.insert(update.value, at: low)
        }
    }

    /// The group as a record of `origin`.
    package func record(origin: ReplicaID) -> DeltaRecord {
        var updates: [KeyedDelta] = []
        updates.reserveCapacity(keys.count)
        for position in keys.indices { updates.append(KeyedDelta(key: keys[position], value: values[position])) }
        return DeltaRecord(
            origin: origin, firstSequence: firstSequence, lastSequence: lastSequence, timestamp: timestamp,
            requestsAcknowledgement: requestsAcknowledgement, updates: updates)
    }
}
