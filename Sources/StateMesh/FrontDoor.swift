import MeshCRDT
import MeshReplication

/// What a protocol front door (the RESP server in `MeshRESPServer`) needs from the node, beyond the
/// public API: synchronous access on the node's event loop, so a pipeline of commands runs in one
/// turn of the loop and is acknowledged after one group commit.
///
/// Callers run on `eventLoop` and reach these through `node.assumeIsolated { ... }`.
extension MeshNode {
    /// The object at `key` of `domain`, or `nil`.
    package func object(at key: String, in domain: String) -> ObjectValue? {
        Self.object(at: key, in: domain, of: &replica)
    }

    /// Reads through `inout`, in place: `replica?.value(...)` on the actor's stored property copied the
    /// whole state machine (a retain and a release of every field) on every read, twice per `INCR`.
    private static func object(
        at key: String, in domain: String, of replica: inout ReplicaStateMachine?
    ) -> ObjectValue? {
        replica?.value(of: key, in: domain)
    }

    /// The keys of `domain` whose objects are not empty (`ObjectValue.isEmpty`), unsorted.
    package func visibleKeys(in domain: String) -> [String] {
        guard let objects = replica?.objects(in: domain) else { return [] }
        return objects.compactMap { $0.value.isEmpty ? nil : $0.key }
    }

    /// Whether this node replicates `domain`.
    package func replicates(_ domain: String) -> Bool {
        replica?.vector(of: domain) != nil
    }

    /// The replicated domains' names, sorted.
    package var domainNames: [String] { replica?.domainNames.sorted() ?? [] }

    /// How many peers are known to have delivered `id` (this node not counted).
    package func replicaCount(holding id: WriteID) -> Int {
        replica?.replicaCount(holding: id) ?? 0
    }

    /// Sets the observer called (on the node's loop) for every delivery, local or remote; `nil` removes it.
    package func setDeliveryObserver(_ observer: ((Delivery) -> Void)?) {
        deliveryObserver = observer
    }

    /// Sets what `status()` reports of the front door.
    package func setFrontDoorStatus(_ status: NodeStatus.FrontDoor?) {
        frontDoorStatus = status
    }

    /// Whether the node is running (writes and reads are served).
    package var isRunning: Bool { phase == .running }

    /// Whether writes are acknowledged only after an fsync (`.always`).
    package var acknowledgesAfterCommit: Bool { configuration.durability == .always }
}
