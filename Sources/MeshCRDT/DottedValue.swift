/// A value written by the event `dot`: the unit of multi-value and map registers.
public struct DottedValue<Value: Hashable & Sendable>: Hashable, Sendable {
    /// The event that wrote the value.
    public let dot: Dot
    /// The value written.
    public let value: Value

    /// Creates a dotted value.
    @inlinable
    public init(dot: Dot, value: Value) {
        self.dot = dot
        self.value = value
    }
}

/// Joins two dot functions (sorted arrays of dotted payloads, Almeida et al. 2018):
/// payloads both sides hold, plus each side's payloads whose dot the other side
/// has not seen. A dot names one write, so when both hold it the left payload is
/// kept.
@inlinable
func joinDotted<Payload>(
    _ left: [Payload], _ leftContext: CausalContext,
    _ right: [Payload], _ rightContext: CausalContext,
    dot: (Payload) -> Dot
) -> [Payload] {
    var result: [Payload] = []
    result.reserveCapacity(max(left.count, right.count))
    var leftIndex = 0
    var rightIndex = 0
    while leftIndex < left.count || rightIndex < right.count {
        if rightIndex == right.count
            || (leftIndex < left.count && dot(left[leftIndex]) < dot(right[rightIndex]))
        {
            if !rightContext.contains(dot(left[leftIndex])) { result.append(left[leftIndex]) }
            leftIndex += 1
        } else if leftIndex == left.count || dot(right[rightIndex]) < dot(left[leftIndex]) {
            if !leftContext.contains(dot(right[rightIndex])) { result.append(right[rightIndex]) }
            rightIndex += 1
        } else {
            result.append(left[leftIndex])
            leftIndex += 1
            rightIndex += 1
        }
    }
    return result
}

/// Whether `payloads` are sorted by dot without repeats and every dot is in `context`.
func isWellFormed<Payload>(_ payloads: [Payload], in context: CausalContext, dot: (Payload) -> Dot) -> Bool {
    for index in payloads.indices {
        // A dot numbered 0 is never issued, yet every context "contains" it.
        if dot(payloads[index]).counter == 0 || !context.contains(dot(payloads[index])) { return false }
        if index > 0 && !(dot(payloads[index - 1]) < dot(payloads[index])) { return false }
    }
    return true
}

/// A multi-value register: keeps every value written concurrently.
///
/// A write replaces the values its replica had observed; writes that did not see
/// each other are all kept until a later write observes them. Reads return every
/// current value, ordered by dot.
public struct MVRegister<Value: Hashable & Sendable>: DeltaCRDT {
    @usableFromInline
    package var storedValues: [DottedValue<Value>]
    @usableFromInline
    package var causalContext: CausalContext

    /// The register that holds nothing and has seen nothing.
    @inlinable
    public init() {
        storedValues = []
        causalContext = CausalContext()
    }

    /// Creates a register from its parts (for decoders); `nil` unless the values are
    /// sorted by dot, free of repeated dots, and every dot is in `context`.
    public init?(values: [DottedValue<Value>], context: CausalContext) {
        guard isWellFormed(values, in: context, dot: { $0.dot }) else { return nil }
        storedValues = values
        causalContext = context
    }

    /// The current values, ordered by the dot that wrote them.
    public var values: [Value] { storedValues.map(\.value) }

    /// The current values with their dots, sorted by dot.
    @inlinable
    public var dottedValues: [DottedValue<Value>] { storedValues }

    /// Every dot this replica has seen.
    @inlinable
    public var context: CausalContext { causalContext }

    /// Whether nothing is held and nothing was seen.
    @inlinable
    public var isBottom: Bool { storedValues.isEmpty && causalContext.isEmpty }

    /// Writes `value` at `replica`, replacing every value observed here; returns the delta.
    @discardableResult
    public mutating func set(_ value: Value, at replica: ReplicaID) -> MVRegister {
        let dot = causalContext.issueDot(for: replica)
        var deltaContext = CausalContext(dots: storedValues.map(\.dot))
        deltaContext.insert(dot)
        storedValues = [DottedValue(dot: dot, value: value)]
        var delta = MVRegister()
        delta.storedValues = storedValues
        delta.causalContext = deltaContext
        return delta
    }

    /// Clears every value observed here (observed-remove); returns the delta.
    @discardableResult
    public mutating func reset() -> MVRegister {
        var delta = MVRegister()
        delta.causalContext = CausalContext(dots: storedValues.map(\.dot))
        storedValues = []
        return delta
    }

    /// Joins `other` into `self`.
    public mutating func merge(_ other: MVRegister) {
        storedValues = joinDotted(storedValues, causalContext, other.storedValues, other.causalContext, dot: { $0.dot })
        causalContext.merge(other.causalContext)
    }
}

/// An enable-wins flag: enabling concurrently with disabling leaves it enabled.
public struct EWFlag: DeltaCRDT, CustomStringConvertible {
    @usableFromInline
    package var dots: DotSet
    @usableFromInline
    package var causalContext: CausalContext

    /// A disabled flag that has seen nothing.
    @inlinable
    public init() {
        dots = DotSet()
        causalContext = CausalContext()
    }

    /// Creates a flag from its parts (for decoders); `nil` when a dot is not in `context`.
    public init?(dots: DotSet, context: CausalContext) {
        for dot in dots where dot.counter == 0 || !context.contains(dot) { return nil }
        self.dots = dots
        causalContext = context
    }

    /// Whether the flag is enabled.
    @inlinable
    public var isEnabled: Bool { !dots.isEmpty }

    /// The dots of the enables that keep the flag on.
    @inlinable
    public var enablingDots: DotSet { dots }

    /// Every dot this replica has seen.
    @inlinable
    public var context: CausalContext { causalContext }

    /// Whether the flag holds nothing and has seen nothing.
    @inlinable
    public var isBottom: Bool { dots.isEmpty && causalContext.isEmpty }

    /// Enables the flag at `replica`; returns the delta.
    @discardableResult
    public mutating func enable(at replica: ReplicaID) -> EWFlag {
        let dot = causalContext.issueDot(for: replica)
        var deltaContext = CausalContext(dots: dots)
        deltaContext.insert(dot)
        dots = DotSet(dot)
        var delta = EWFlag()
        delta.dots = dots
        delta.causalContext = deltaContext
        return delta
    }

    /// Disables the flag (removes the enables observed here); returns the delta.
    @discardableResult
    public mutating func disable() -> EWFlag {
        var delta = EWFlag()
        delta.causalContext = CausalContext(dots: dots)
        dots = DotSet()
        return delta
    }

    /// Joins `other` into `self`.
    public mutating func merge(_ other: EWFlag) {
        dots = DotSet.join(dots, causalContext, other.dots, other.causalContext)
        causalContext.merge(other.causalContext)
    }

    /// `EWFlag(on)` or `EWFlag(off)`.
    public var description: String { isEnabled ? "EWFlag(on)" : "EWFlag(off)" }
}
