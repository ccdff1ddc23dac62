// libFuzzer target: the node's durable formats, read back after a crash or from a damaged disk.
//
// The first byte selects: even → a checkpoint (`PersistedReplica(decoding:)`), odd → a journaled
// delta record (`DeltaRecord.decoded`). Decoding must never crash. A checkpoint that decodes must
// re-encode to bytes that decode to the same encoding, restore into a replica whose invariants hold,
// and accept the replay of its own logged records (nothing new); a record that decodes must
// re-encode to the same bytes. Any violation is a `fatalError`, which libFuzzer reports as a crash.
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
    } else {
        guard let record = try? DeltaRecord.decoded(bytes, limits: limits) else { return 0 }
        guard record.encoded() == bytes else { fatalError("a decoded record re-encodes differently") }
    }
    return 0
}
