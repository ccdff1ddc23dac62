// libFuzzer target: the node's durable formats, read back after a crash or from a damaged disk.
//
// The first byte selects: even → a checkpoint (`PersistedReplica(decoding:)`); 1 modulo 4 → a
// journaled delta record (`DeltaRecord.decoded`); 3 modulo 4 → a journal row (`JournalRow.entries`),
// stored under a domain of own writes when bit 3 is set, else under a plain domain. Decoding must never
// crash. A checkpoint that decodes must re-encode to bytes that decode to the same encoding, restore
// into a replica whose invariants hold, and accept the replay of its own logged records (nothing new);
// a record that decodes must re-encode to the same bytes; a group row that decodes must re-encode to a
// row that decodes to the same entries, and its write keys must name its records' keys. Any violation
// is a `fatalError`, which libFuzzer reports as a crash.
//
// Run: scripts/fuzz.sh FuzzCheckpoint 60
import MeshCodec
import MeshReplication

let limits = CodecLimits(
    maximumInputBytes: 1 << 16, maximumElements: 1 << 12, maximumReplicas: 64, maximumElementBytes: 1 << 10)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let selector = data[0]
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if selector % 2 == 0 {
        guard let persisted = try? PersistedReplica(decoding: bytes, limits: limits) else { return 0 }
        let encoded = persisted.encoded()
        guard let again = try? PersistedReplica(decoding: encoded, limits: limits) else {
            fatalError("a decoded checkpoint re-encodes to bytes that do not decode")
        }
        guard again.encoded() == encoded else { fatalError("checkpoint re-encoding is not stable") }
        let machine = ReplicaStateMachine(restoring: again, seed: 1)
        if let violation = machine.invariantViolation() {
            fatalError("restored checkpoint violates an invariant: \(violation)")
        }
        var replayed = again
        for name in again.domainNames {
            guard let vector = again.vector(of: name) else { continue }
            for entry in vector.entries {
                for record in machine.loggedRecords(in: name, of: entry.replica, after: 0, upTo: entry.counter) ?? []
                where replayed.replay(record, in: name) {
                    fatalError("replaying a logged record of \(entry.replica) was new to the checkpoint")
                }
            }
        }
    } else if selector % 4 == 1 {
        guard let record = try? DeltaRecord.decoded(bytes, limits: limits) else { return 0 }
        guard record.encoded() == bytes else { fatalError("a decoded record re-encodes differently") }
    } else {
        let domain = selector & 8 != 0 ? JournalRow.batchDomain("d") : "d"
        guard let row = try? JournalRow.entries(domain: domain, bytes: bytes, limits: limits) else { return 0 }
        guard row.domain == "d" else { fatalError("a row of \(domain) decoded as one of \(row.domain)") }
        for entry in row.entries {
            guard
                entry.record.encoded() == (try? DeltaRecord.decoded(entry.record.encoded(), limits: limits))?.encoded()
            else { fatalError("a journaled record does not round-trip") }
            guard let writeKeys = entry.writeKeys else { continue }
            guard UInt64(writeKeys.count) == entry.record.writeCount else {
                fatalError("\(writeKeys.count) write keys for a group of \(entry.record.writeCount) writes")
            }
            let keys = Set(entry.record.updates.map(\.key))
            guard writeKeys.allSatisfy(keys.contains) else { fatalError("a write key names no update of its group") }
            guard keys.count == entry.record.updates.count else { continue }  // positions of repeated keys differ
            let again = JournalRow.encodeGroup(entry.record, writeKeys: writeKeys)
            guard let decoded = try? JournalRow.entries(domain: domain, bytes: again, limits: limits),
                decoded.entries == [entry]
            else { fatalError("a re-encoded group row decodes differently") }
        }
    }
    return 0
}
