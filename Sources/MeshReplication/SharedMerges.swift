import MeshCRDT
import Synchronization

/// The results of merging one record's updates, kept inline in the record so that replicas of one
/// process that merge it into the same object version take the result instead of merging again
/// (`ReplicationConfiguration.sharesMergeResults`). Empty (one word) unless a sharing replica
/// merges the record.
///
/// A simulation runs up to a thousand replicas of one domain in one process. Each would hold its
/// own copy of every object and merge every record into it, although most of them merge the same
/// records in the same order into the same versions: memory grows with replicas × objects, and
/// each merge is repeated by every replica. With sharing on, the first replica to merge update
/// `i` of a record into an object version publishes `(i, that version's identity, result)`; a
/// replica whose object has the same identity sets its object to `result`, a copy that shares
/// its storage. Merging is a pure function of the two values, so the replica ends in the state
/// the merge would have given it.
///
/// An identity (`ObjectIdentity`) is the object's case and the bits of its payload: its scalars
/// and the addresses of its storage. The entry retains the version it was taken from, so that
/// storage is neither freed (its address reused by another version) nor changed in place (it is
/// shared) while the entry lives: equal identities mean equal values.
///
/// A replica that misses (another delivery order, or its own local writes to the key) merges as
/// usual, publishes if there is room, and takes a published result equal to its own, so replicas
/// whose histories differ only in order share storage again from there on.
struct SharedMerges: ~Copyable, Sendable {
    /// One published entry: merging update `position` into the version `identity` names gave
    /// `result`. The list runs newest first. Nodes are immutable and live as long as the table (the
    /// list only grows), so readers walk it without a lock: a lock word that every reader writes
    /// would move between the cores of a parallel simulation on every look-up.
    ///
    /// The fields are declared in the order a look-up reads them: a walk past a node reads its
    /// first two fields only (with the object's header, 32 bytes: mostly one cache line), a hit
    /// reads on through the identity to the result.
    private final class Node: Sendable {
        /// `next`, for walking the list without reference counting.
        let nextUnmanaged: Unmanaged<Node>?
        let position: Int
        let identity: ObjectIdentity
        let result: ObjectValue
        /// Retained for the identity's sake (see the type's documentation).
        let base: ObjectValue
        /// Keeps the rest of the list alive.
        let next: Node?

        init(position: Int, identity: ObjectIdentity, base: ObjectValue, result: ObjectValue, next: Node?) {
            self.nextUnmanaged = next.map { Unmanaged.passUnretained($0) }
            self.position = position
            self.identity = identity
            self.result = result
            self.base = base
            self.next = next
        }
    }

    /// Most entries per update: one per distinct version it was first merged into. Concurrent
    /// writes to a key reach replicas in different orders, and each order is a version of its own.
    static let maximumEntriesPerUpdate = 4

    /// The newest node, retained once on the table's behalf.
    private let head = Atomic<Unmanaged<Node>?>(nil)

    init() {}

    deinit {
        head.load(ordering: .acquiring)?.release()
    }

    /// The result published for merging update `position` into the version `identity` names.
    func result(at position: Int, identity: ObjectIdentity) -> ObjectValue? {
        var node = head.load(ordering: .acquiring)
        while let current = node {
            let found: ObjectValue?? = current._withUnsafeGuaranteedRef { current in
                guard current.position == position && current.identity == identity else { return nil }
                return .some(current.result)
            }
            if let found { return found }
            node = current._withUnsafeGuaranteedRef { $0.nextUnmanaged }
        }
        return nil
    }

    /// Publishes `result` of merging update `position` into `base` (whose identity in place is
    /// `identity`) when there is room, and returns an equal result published before, to be taken
    /// instead of `result` (its storage is shared), if there is one.
    func publish(at position: Int, identity: ObjectIdentity, base: ObjectValue, result: ObjectValue) -> ObjectValue? {
        var expected = head.load(ordering: .acquiring)
        while true {
            var count = 0
            var node = expected?.takeUnretainedValue()
            while let current = node {
                if current.position == position {
                    if current.result == result { return current.result }
                    count += 1
                }
                node = current.next
            }
            guard count < Self.maximumEntriesPerUpdate else { return nil }
            // The new node's `next` takes over the table's reference to the old head.
            let newest = Node(
                position: position, identity: identity, base: base, result: result,
                next: expected?.takeUnretainedValue())
            let candidate = Unmanaged.passRetained(newest)
            let (exchanged, original) = head.compareExchange(
                expected: expected, desired: candidate, ordering: .acquiringAndReleasing)
            if exchanged {
                expected?.release()
                return nil
            }
            candidate.release()
            expected = original
        }
    }
}

/// An object version's case and the bits of its payload (scalars and storage addresses), read in
/// place: two values with equal identities are equal while one of them is kept alive
/// (`SharedMerges`). Unequal identities say nothing. Registers have none: their payload has
/// padding, whose bits a copy need not keep, and merging one costs less than sharing it.
struct ObjectIdentity: Equatable {
    private var type: ObjectType
    private var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    /// The identity of the value at `address`, or `nil` for a register or an unexpectedly large payload.
    init?(of address: UnsafePointer<ObjectValue>) {
        let size: Int
        switch address.pointee {  // its case only; the bits are read from `address`
        case .counter: size = MemoryLayout<PNCounter>.size
        case .set: size = MemoryLayout<ORSet<String>>.size
        case .map: size = MemoryLayout<LWWMap<String, String>>.size
        case .multiValueRegister: size = MemoryLayout<MVRegister<String>>.size
        case .flag: size = MemoryLayout<EWFlag>.size
        case .register: return nil
        }
        guard size <= 64 else { return nil }  // `words`
        type = address.pointee.type
        words = (0, 0, 0, 0, 0, 0, 0, 0)
        // A multi-payload enum keeps its payload at offset 0.
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: size)) }
    }

    static func == (lhs: ObjectIdentity, rhs: ObjectIdentity) -> Bool {
        lhs.type == rhs.type && lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1
            && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3 && lhs.words.4 == rhs.words.4
            && lhs.words.5 == rhs.words.5 && lhs.words.6 == rhs.words.6 && lhs.words.7 == rhs.words.7
    }
}
