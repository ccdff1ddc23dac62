/// The set of dots a replica has seen: a version vector plus a dot cloud.
///
/// Contiguous histories are kept in the version vector; dots that arrived out of
/// order wait in the cloud until the gap before them fills, at which point they
/// are folded into the vector (compaction). Observed-remove types keep exactly one
/// causal context per object, so their metadata is O(replicas + out-of-order dots)
/// and never grows with the number of removed elements.
///
/// ### Invariants
/// - `dotCloud` is sorted and free of repeats;
/// - every dot in the cloud is at least two past the vector's entry for its
///   replica (a dot the vector covers is dropped; the next one is folded in).
public struct CausalContext: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline
    package var vector: VersionVector
    @usableFromInline
    package var cloud: [Dot]

    /// The empty context (nothing seen).
    @inlinable
    public init() {
        vector = VersionVector()
        cloud = []
    }

    /// The context covering exactly `vector`.
    @inlinable
    public init(_ vector: VersionVector) {
        self.vector = vector
        cloud = []
    }

    /// The context covering exactly `dot`: what `insert(dot)` makes of the empty
    /// context, built without the general insertion path (the delta of a local write).
    @inlinable
    init(only dot: Dot) {
        self.init()
        if dot.counter == 1 {
            vector.storage = [VersionVector.Entry(replica: dot.replica, counter: 1)]
        } else if dot.counter > 1 {
            cloud = [dot]
        }
    }

    /// The context covering exactly `replaced` and `dot`: what inserting both into the empty
    /// context makes (the delta of a write that replaces one earlier write), built as one array of
    /// two dots when neither belongs in the vector, as almost always.
    @inlinable
    init(replaced: Dot, then dot: Dot) {
        self.init()
        if replaced.counter >= 2 && dot.counter >= 2 && replaced < dot {
            // Canonical: sorted, distinct, and each at least two past the empty vector.
            cloud = [replaced, dot]
        } else {
            insert(replaced)
            insert(dot)
        }
    }

    /// The context covering exactly the given dots (compacted).
    public init(dots: some Sequence<Dot>) {
        self.init()
        cloud = Array(Set(dots)).sorted()
        compact()
    }

    /// Creates a context from its canonical parts; `nil` unless `dotCloud` is sorted,
    /// free of repeats, and every dot in it is at least two past `versionVector`.
    public init?(versionVector: VersionVector, dotCloud: [Dot]) {
        for index in dotCloud.indices {
            if index > 0 && !(dotCloud[index - 1] < dotCloud[index]) { return nil }
            let dot = dotCloud[index]
            // `counter - covered < 2` rather than `counter <= covered + 1`, which overflows at UInt64.max.
            let covered = versionVector[dot.replica]
            if dot.counter <= covered || dot.counter - covered < 2 { return nil }
        }
        vector = versionVector
        cloud = dotCloud
    }

    /// The compacted, contiguous part of the context.
    @inlinable
    public var versionVector: VersionVector { vector }

    /// The dots seen out of order, sorted.
    @inlinable
    public var dotCloud: [Dot] { cloud }

    /// Whether nothing was seen.
    @inlinable
    public var isEmpty: Bool { vector.isEmpty && cloud.isEmpty }

    /// Whether `dot` was seen.
    @inlinable
    public func contains(_ dot: Dot) -> Bool {
        if vector.contains(dot) { return true }
        if cloud.isEmpty { return false }
        return cloudIndex(of: dot).found
    }

    @inlinable
    func cloudIndex(of dot: Dot) -> (found: Bool, index: Int) {
        var low = 0
        var high = cloud.count
        while low < high {
            let mid = (low &+ high) >> 1
            if cloud[mid] == dot { return (true, mid) }
            if cloud[mid] < dot { low = mid &+ 1 } else { high = mid }
        }
        return (false, low)
    }

    /// The next unused dot of `replica`: one past every dot of it seen so far.
    @inlinable
    public func nextDot(for replica: ReplicaID) -> Dot {
        var highest = vector[replica]
        if !cloud.isEmpty {
            for dot in cloud where dot.replica == replica {
                highest = max(highest, dot.counter)
            }
        }
        return Dot(replica: replica, counter: highest + 1)
    }

    /// Whether `predicate` holds for every dot of the context, when the context
    /// has at most `limit` dots (a delta's); `nil`, without calling `predicate`,
    /// for a larger context.
    @inlinable
    func allDots(ifAtMost limit: Int, satisfy predicate: (Dot) -> Bool) -> Bool? {
        var total = cloud.count
        for entry in vector.storage {
            if entry.counter > UInt64(limit) { return nil }
            total += Int(entry.counter)
            if total > limit { return nil }
        }
        for entry in vector.storage {
            var counter: UInt64 = 1
            while counter <= entry.counter {
                if !predicate(Dot(replica: entry.replica, counter: counter)) { return false }
                counter += 1
            }
        }
        for dot in cloud where !predicate(dot) { return false }
        return true
    }

    /// Records `dot` as seen, folding the cloud into the vector where it becomes
    /// contiguous.
    @inlinable
    public mutating func insert(_ dot: Dot) {
        let current = vector[dot.replica]
        if dot.counter <= current { return }
        if dot.counter == current + 1 {
            vector[dot.replica] = dot.counter
            if !cloud.isEmpty { compact() }
            return
        }
        let position = cloudIndex(of: dot)
        if !position.found { cloud.insert(dot, at: position.index) }
    }

    /// Takes the next dot of `replica` and records it: the dot of a new local event.
    @inlinable
    public mutating func issueDot(for replica: ReplicaID) -> Dot {
        if cloud.isEmpty { return vector.increment(replica) }
        let dot = nextDot(for: replica)
        insert(dot)
        return dot
    }

    /// Adds everything `other` has seen.
    ///
    /// - Complexity: O(n + m) plus compaction of the combined cloud; O(m log n) without
    ///   allocating when `other` is small (a delta's context).
    public mutating func merge(_ other: CausalContext) {
        // A delta of a local write covers a few dots (the write's and those it replaced): insert
        // them one by one, without the general union and compaction, which build two new arrays
        // per merge. Joining a single write into an open delta-group whose context already holds
        // up to 64 cloud dots is the common case. The canonical result is the same: a context is
        // canonical for its set of dots, and `insert` keeps it canonical.
        if other.cloud.count <= Self.smallMergeDots && other.vector.storage.count <= 1 {
            if let entry = other.vector.storage.first { raiseVector(entry) }
            for dot in other.cloud { insert(dot) }
            return
        }
        vector.merge(other.vector)
        if !other.cloud.isEmpty {
            if cloud.isEmpty {
                cloud = other.cloud
            } else {
                cloud = Self.union(cloud, other.cloud)
            }
        }
        if !cloud.isEmpty { compact() }
    }

    /// At most this many cloud dots in `other` take `merge`'s dot-by-dot path.
    @usableFromInline
    static let smallMergeDots = 8

    /// Raises the vector to cover `entry`'s replica up to its counter, folding the cloud dots that
    /// became covered or contiguous.
    @usableFromInline
    mutating func raiseVector(_ entry: VersionVector.Entry) {
        if entry.counter <= vector[entry.replica] { return }
        vector[entry.replica] = entry.counter
        if !cloud.isEmpty { compact() }
    }

    /// The union of `self` and `other`.
    public func merging(_ other: CausalContext) -> CausalContext {
        var copy = self
        copy.merge(other)
        return copy
    }

    static func union(_ left: [Dot], _ right: [Dot]) -> [Dot] {
        var result: [Dot] = []
        result.reserveCapacity(left.count + right.count)
        var leftIndex = 0
        var rightIndex = 0
        while leftIndex < left.count || rightIndex < right.count {
            if rightIndex == right.count || (leftIndex < left.count && left[leftIndex] < right[rightIndex]) {
                result.append(left[leftIndex])
                leftIndex += 1
            } else if leftIndex == left.count || right[rightIndex] < left[leftIndex] {
                result.append(right[rightIndex])
                rightIndex += 1
            } else {
                result.append(left[leftIndex])
                leftIndex += 1
                rightIndex += 1
            }
        }
        return result
    }

    /// Folds cloud dots that became contiguous into the vector and drops the ones the vector
    /// already covers. One pass over the cloud, sorted by (replica, counter), keeping the rest in
    /// place (no new array per compaction).
    @usableFromInline
    mutating func compact() {
        let count = cloud.count
        var kept = 0
        var index = 0
        while index < count {
            let replica = cloud[index].replica
            var counter = vector[replica]
            let start = counter
            while index < count && cloud[index].replica == replica {
                let dot = cloud[index]
                // Compared as a difference: `counter + 1` overflows when a remote
                // context saturated this replica's counter at UInt64.max.
                if dot.counter > counter && dot.counter - counter == 1 {
                    counter += 1
                } else if dot.counter > counter {
                    if kept != index { cloud[kept] = dot }
                    kept += 1
                }
                index += 1
            }
            if counter != start { vector[replica] = counter }
        }
        // Within one replica the dots ascend, so once a gap is kept no later dot
        // of that replica can close it: what is kept is already canonical.
        if kept < count { cloud.removeLast(count - kept) }
    }

    /// `vector + cloud`.
    public var description: String {
        cloud.isEmpty ? vector.description : "\(vector) + [\(cloud.map(\.description).joined(separator: ", "))]"
    }
}
