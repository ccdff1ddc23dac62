/// A small sorted set of dots: the dots that keep one element (or flag) alive.
///
/// Almost every element of an observed-remove set is kept alive by exactly one
/// dot, so that case is stored inline without a heap allocation.
///
/// ### Invariants
/// - Never empty as stored in a container (the container drops empty sets);
///   `multiple` holds at least two dots, sorted, without repeats.
public struct DotSet: Hashable, Sendable, Sequence, CustomStringConvertible {
    @usableFromInline
    enum Storage: Hashable, Sendable {
        case empty
        case single(Dot)
        case multiple([Dot])
    }

    @usableFromInline
    var storage: Storage

    /// The empty set.
    @inlinable
    public init() { storage = .empty }

    /// The set holding one dot.
    @inlinable
    public init(_ dot: Dot) { storage = .single(dot) }

    /// The set of the given dots.
    public init(_ dots: some Sequence<Dot>) {
        self.init(sortedUnique: Array(Set(dots)).sorted())
    }

    @usableFromInline
    init(sortedUnique dots: [Dot]) {
        switch dots.count {
        case 0: storage = .empty
        case 1: storage = .single(dots[0])
        default: storage = .multiple(dots)
        }
    }

    /// Creates a set from dots already sorted and free of repeats; `nil` if not.
    public init?(sorted dots: [Dot]) {
        for index in dots.indices.dropFirst() where !(dots[index - 1] < dots[index]) { return nil }
        self.init(sortedUnique: dots)
    }

    /// Whether the set is empty.
    @inlinable
    public var isEmpty: Bool {
        if case .empty = storage { return true }
        return false
    }

    /// The number of dots.
    @inlinable
    public var count: Int {
        switch storage {
        case .empty: return 0
        case .single: return 1
        case .multiple(let dots): return dots.count
        }
    }

    /// The only dot, when the set holds exactly one (almost every element of a
    /// set): read without building the array `sorted` returns, which allocates.
    @inlinable
    package var onlyDot: Dot? {
        if case .single(let dot) = storage { return dot }
        return nil
    }

    /// The dots, sorted.
    public var sorted: [Dot] {
        switch storage {
        case .empty: return []
        case .single(let dot): return [dot]
        case .multiple(let dots): return dots
        }
    }

    /// Iterates the dots in order.
    public func makeIterator() -> IndexingIterator<[Dot]> { sorted.makeIterator() }

    /// Whether `dot` is in the set.
    @inlinable
    public func contains(_ dot: Dot) -> Bool {
        switch storage {
        case .empty: return false
        case .single(let only): return only == dot
        case .multiple(let dots): return dots.contains(dot)
        }
    }

    /// Whether some dot of the set is in `context`.
    @inlinable
    func intersects(_ context: CausalContext) -> Bool {
        switch storage {
        case .empty: return false
        case .single(let dot): return context.contains(dot)
        case .multiple(let dots):
            for dot in dots where context.contains(dot) { return true }
            return false
        }
    }

    /// The dots not in `context`.
    @inlinable
    func subtracting(_ context: CausalContext) -> DotSet {
        switch storage {
        case .empty: return self
        case .single(let dot): return context.contains(dot) ? DotSet() : self
        case .multiple(let dots): return DotSet(sortedUnique: dots.filter { !context.contains($0) })
        }
    }

    /// The join of two dot stores (Almeida et al. 2018, §"causal CRDTs"):
    /// dots both hold, plus the dots each holds that the other has not seen.
    @inlinable
    static func join(
        _ mine: DotSet, _ myContext: CausalContext, _ theirs: DotSet, _ theirContext: CausalContext
    ) -> DotSet {
        if case .single(let a) = mine.storage, case .single(let b) = theirs.storage {
            if a == b { return mine }
            let keepMine = !theirContext.contains(a)
            let keepTheirs = !myContext.contains(b)
            switch (keepMine, keepTheirs) {
            case (true, true): return DotSet(sortedUnique: a < b ? [a, b] : [b, a])
            case (true, false): return mine
            case (false, true): return theirs
            case (false, false): return DotSet()
            }
        }
        var result: [Dot] = []
        let left = mine.sorted
        let right = theirs.sorted
        var leftIndex = 0
        var rightIndex = 0
        while leftIndex < left.count || rightIndex < right.count {
            if rightIndex == right.count || (leftIndex < left.count && left[leftIndex] < right[rightIndex]) {
                if !theirContext.contains(left[leftIndex]) { result.append(left[leftIndex]) }
                leftIndex += 1
            } else if leftIndex == left.count || right[rightIndex] < left[leftIndex] {
                if !myContext.contains(right[rightIndex]) { result.append(right[rightIndex]) }
                rightIndex += 1
            } else {
                result.append(left[leftIndex])
                leftIndex += 1
                rightIndex += 1
            }
        }
        return DotSet(sortedUnique: result)
    }

    /// `[replica:counter, …]`.
    public var description: String { "[" + sorted.map(\.description).joined(separator: ", ") + "]" }
}

/// Whether the sorted array `dots` holds `dot` (binary search).
@inlinable
func sortedDots(_ dots: [Dot], contain dot: Dot) -> Bool {
    var low = 0
    var high = dots.count
    while low < high {
        let middle = (low &+ high) >> 1
        if dots[middle] == dot { return true }
        if dots[middle] < dot { low = middle &+ 1 } else { high = middle }
    }
    return false
}
