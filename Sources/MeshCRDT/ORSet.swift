/// An add-wins observed-remove set without tombstones (Bieniusa et al. 2012,
/// in its delta-state form from Almeida, Shoker, Baquero 2018).
///
/// Each present element keeps the dots of the adds that put it there; one causal
/// context records every dot the replica has seen. A remove deletes the element
/// and its delta carries the removed dots in its context and no entries: a
/// replica that receives it drops exactly those dots, while an add it has not
/// seen (a concurrent add, with a dot outside the remove's context) survives.
/// That is add-wins. A removed element leaves nothing behind: metadata is
/// O(present elements + replicas + out-of-order dots).
///
/// ### Invariants
/// - No element maps to an empty dot set;
/// - every dot held by an element is in `context`.
public struct ORSet<Element: Hashable & Sendable>: DeltaCRDT {
    @usableFromInline
    package var entries: [Element: DotSet]
    @usableFromInline
    package var causalContext: CausalContext

    /// The empty set that has seen nothing.
    @inlinable
    public init() {
        entries = [:]
        causalContext = CausalContext()
    }

    @inlinable
    init(uncheckedEntries entries: [Element: DotSet], context: CausalContext) {
        self.entries = entries
        self.causalContext = context
    }

    /// Creates a set from its parts (for decoders); `nil` when a dot set is empty
    /// or holds a dot the context has not seen.
    public init?(entries: [Element: DotSet], context: CausalContext) {
        for dots in entries.values {
            if dots.isEmpty { return nil }
            // A dot numbered 0 is never issued, yet every context "contains" it.
            for dot in dots where dot.counter == 0 || !context.contains(dot) { return nil }
        }
        self.init(uncheckedEntries: entries, context: context)
    }

    /// Every dot this replica has seen, present or removed.
    @inlinable
    public var context: CausalContext { causalContext }

    /// Whether `element` is present.
    @inlinable
    public func contains(_ element: Element) -> Bool {
        entries[element] != nil
    }

    /// The present elements, in no particular order.
    public var elements: Set<Element> { Set(entries.keys) }

    /// The number of present elements.
    @inlinable
    public var count: Int { entries.count }

    /// Whether no element is present.
    @inlinable
    public var isEmpty: Bool { entries.isEmpty }

    /// The dots that keep `element` alive (empty when absent).
    @inlinable
    public func dots(of element: Element) -> DotSet {
        entries[element] ?? DotSet()
    }

    /// The present elements with their dots (for encoders), in no particular order.
    public var dottedElements: [Element: DotSet] { entries }

    /// Whether the set holds nothing and has seen nothing.
    @inlinable
    public var isBottom: Bool { entries.isEmpty && causalContext.isEmpty }

    /// Adds `element` at `replica`; returns the delta.
    ///
    /// The new dot replaces the dots the element had here, and the delta's context
    /// covers both, so re-adding an element does not grow its metadata.
    @inlinable
    @discardableResult
    public mutating func insert(_ element: Element, at replica: ReplicaID) -> ORSet {
        let dot = causalContext.issueDot(for: replica)
        guard let previous = entries.updateValue(DotSet(dot), forKey: element) else {
            return ORSet(uncheckedEntries: [element: DotSet(dot)], context: CausalContext(only: dot))
        }
        if let old = previous.onlyDot {
            // A re-add of an element one dot keeps alive (nearly every re-add).
            return ORSet(uncheckedEntries: [element: DotSet(dot)], context: CausalContext(replaced: old, then: dot))
        }
        var deltaContext = CausalContext()
        for old in previous { deltaContext.insert(old) }
        deltaContext.insert(dot)
        return ORSet(uncheckedEntries: [element: DotSet(dot)], context: deltaContext)
    }

    /// Removes `element` (observed-remove); returns the delta, the bottom element
    /// when `element` was absent.
    @inlinable
    @discardableResult
    public mutating func remove(_ element: Element) -> ORSet {
        guard let previous = entries.removeValue(forKey: element) else { return ORSet() }
        if case .single(let dot) = previous.storage {
            return ORSet(uncheckedEntries: [:], context: CausalContext(only: dot))
        }
        var deltaContext = CausalContext()
        for old in previous { deltaContext.insert(old) }
        return ORSet(uncheckedEntries: [:], context: deltaContext)
    }

    /// Removes every present element (observed-remove); returns the delta.
    @discardableResult
    public mutating func removeAll() -> ORSet {
        let removed = CausalContext(dots: entries.values.lazy.flatMap { $0 })
        entries = [:]
        return ORSet(uncheckedEntries: [:], context: removed)
    }

    /// Joins `other` into `self`.
    ///
    /// For each element: the dots both sides hold, plus each side's dots the other
    /// side's context has not seen. Elements left without dots are removed.
    ///
    /// - Complexity: O(n + m) dictionary operations; an element of `self` is looked
    ///   up in `other` only when `other` has seen one of its dots.
    @inlinable
    public mutating func merge(_ other: ORSet) {
        if other.isBottom { return }
        if other.entries.count == 1 && mergeOneElement(other) { return }
        var removals: [Element] = []
        // Elements only here: drop the dots `other` has seen (it removed them).
        // That scans every element, so it is skipped when `other` is a delta whose
        // context cannot reach an element it does not hold itself.
        if !other.causalContext.isEmpty && !other.reachesOnlyItsOwnElements(in: self) {
            var index = entries.startIndex
            while index != entries.endIndex {
                let mine = entries.values[index]
                if mine.intersects(other.causalContext) && other.entries[entries.keys[index]] == nil {
                    let kept = mine.subtracting(other.causalContext)
                    if kept.isEmpty {
                        removals.append(entries.keys[index])
                    } else {
                        entries.values[index] = kept
                    }
                }
                entries.formIndex(after: &index)
            }
        }
        // Elements there: join with ours, or take the dots we have not seen. One
        // hash lookup each: an element missing here is inserted empty and filled
        // in place (or removed below when `other`'s dots were all seen here).
        for (element, theirs) in other.entries {
            let kept = Self.join(&entries[element, default: DotSet()], causalContext, theirs, other.causalContext)
            if !kept { removals.append(element) }
        }
        for element in removals { entries[element] = nil }
        causalContext.merge(other.causalContext)
    }

    /// `merge(other)` for a delta of one element whose context reaches no other element here (a
    /// single write, joined into the open delta-group or applied by a peer): the element is hashed
    /// once, and no other element is looked at. Returns `false`, changing nothing, when the context
    /// may reach another element (then the general merge runs).
    @inlinable
    mutating func mergeOneElement(_ other: ORSet) -> Bool {
        guard let (element, theirs) = other.entries.first else { return false }
        let index = entries.index(forKey: element)
        // Every dot of the delta's context seen here must be held by this element here (see
        // `reachesOnlyItsOwnElements`). Checked in a scope of its own, so the held dots are no longer
        // referenced when the element is joined in place.
        let reachesOnlyElement: Bool? = {
            let held = index.map { entries.values[$0] } ?? DotSet()
            return other.causalContext.allDots(ifAtMost: 8) { dot in
                !causalContext.contains(dot) || held.contains(dot)
            }
        }()
        guard reachesOnlyElement == true else { return false }
        if let index {
            if !Self.join(&entries.values[index], causalContext, theirs, other.causalContext) {
                entries.remove(at: index)
            }
        } else {
            let fresh = theirs.subtracting(causalContext)
            if !fresh.isEmpty { entries[element] = fresh }
        }
        causalContext.merge(other.causalContext)
        return true
    }

    /// Joins `theirs` into `mine` (empty when the element is absent here: stored
    /// dot sets never are); returns whether any dot is left.
    @inlinable
    static func join(
        _ mine: inout DotSet, _ myContext: CausalContext, _ theirs: DotSet, _ theirContext: CausalContext
    ) -> Bool {
        if mine.isEmpty {
            mine = theirs.subtracting(myContext)
        } else if mine != theirs {
            mine = DotSet.join(mine, myContext, theirs, theirContext)
        }
        return !mine.isEmpty
    }

    /// Whether every dot of this (delta's) context that `receiver` has seen is
    /// held in `receiver` by an element this set holds too, so that merging into
    /// `receiver` changes no other element; `false` when unsure or the context is
    /// larger than `receiver` (then scanning `receiver` costs no more). A dot is
    /// issued for one insert of one element, so the element holding it is the only
    /// one that can hold it: checking the elements of a delta is enough, and applying
    /// an add delta, or a group of them, costs O(delta) instead of O(receiver).
    @inlinable
    func reachesOnlyItsOwnElements(in receiver: ORSet) -> Bool {
        // A delta of a few writes: look its elements up per dot, with no array to build.
        if let reachesOnlyOwn = causalContext.allDots(
            ifAtMost: 8,
            satisfy: { dot in
                if !receiver.causalContext.contains(dot) { return true }
                for element in entries.keys {
                    if let held = receiver.entries[element], held.contains(dot) { return true }
                }
                return false
            })
        {
            return reachesOnlyOwn
        }
        // A delta-group: gather the receiver's dots under the group's elements once.
        let limit = max(receiver.entries.count, 64)
        var held: [Dot] = []
        for element in entries.keys {
            if let dots = receiver.entries[element] { held.append(contentsOf: dots) }
        }
        held.sort()
        return causalContext.allDots(ifAtMost: limit) { dot in
            !receiver.causalContext.contains(dot) || sortedDots(held, contain: dot)
        } ?? false
    }

    public static func == (lhs: ORSet, rhs: ORSet) -> Bool {
        lhs.causalContext == rhs.causalContext && lhs.entries == rhs.entries
    }
}

extension ORSet: CustomStringConvertible {
    /// `ORSet([elements…])`, element order unspecified.
    public var description: String { "ORSet(\(Array(entries.keys)))" }
}
