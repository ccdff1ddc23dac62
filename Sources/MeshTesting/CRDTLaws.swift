import MeshCRDT
import MeshCodec

/// A broken CRDT law, with the states that break it.
///
/// An error struct with an extensible `law` code (see STYLE.md), so checkers can be
/// used with `#expect(... == nil)`, collected into arrays, or thrown.
public struct LawViolation: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which law, extensible without breaking clients.
    public struct Law: Hashable, Sendable, CustomStringConvertible {
        /// The law's name.
        public let name: String

        /// Creates a law code (for laws of your own).
        public init(name: String) { self.name = name }

        /// `init()` is the identity of merge and the only bottom state.
        public static let bottom = Law(name: "bottom")
        /// `a ⊔ a == a`.
        public static let idempotence = Law(name: "idempotence")
        /// `a ⊔ b == b ⊔ a`.
        public static let commutativity = Law(name: "commutativity")
        /// `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`.
        public static let associativity = Law(name: "associativity")
        /// A mutator is the join with its delta: `m(x) == x ⊔ mδ(x)`, the delta is
        /// below the result, and every `y ⊒ x` gets the same effect from the delta
        /// as from the whole new state (Almeida, Shoker, Baquero 2018, §4).
        public static let deltaMutator = Law(name: "delta-mutator")
        /// Replicas that received the same deltas hold equal states.
        public static let convergence = Law(name: "convergence")
        /// The type's structural invariants hold (`ScriptableCRDT.invariantViolations()`).
        public static let invariant = Law(name: "invariant")
        /// Every state round-trips through MeshCodec, and equal states encode to
        /// identical bytes.
        public static let encoding = Law(name: "encoding")

        /// The law's name.
        public var description: String { name }
    }

    /// The law broken.
    public let law: Law
    /// What was expected and what happened, with the states involved.
    public let message: String

    /// Creates a violation.
    public init(law: Law, message: String) {
        self.law = law
        self.message = message
    }

    /// `law violated: message`.
    public var description: String { "\(law) violated: \(message)" }
}

/// Law checkers for any `DeltaCRDT`: each returns `nil` when the law holds and a
/// `LawViolation` naming the states otherwise. They do not depend on a test
/// framework, so the fuzzer uses them as well as the tests:
///
/// ```swift
/// #expect(CRDTLaws.checkCommutative(a, b) == nil)
/// #expect(CRDTLaws.latticeViolations(a, b, c) == [])
/// ```
///
/// Feed them reachable states (from a `Simulation`), not arbitrary values: a state
/// no history can produce may break the laws without any bug.
public enum CRDTLaws {
    /// Checks that `init()` is bottom, that it is the identity of merge on both sides,
    /// and that `a.isBottom` holds exactly when `a == init()`.
    public static func checkBottom<State: DeltaCRDT>(_ a: State) -> LawViolation? {
        let bottom = State()
        if !bottom.isBottom { return LawViolation(law: .bottom, message: "init() is not isBottom") }
        if a.isBottom != (a == bottom) {
            return LawViolation(law: .bottom, message: "isBottom is \(a.isBottom) for \(describe(a))")
        }
        let left = bottom.merging(a)
        if left != a {
            return LawViolation(law: .bottom, message: "⊥ ⊔ a != a\n  a: \(describe(a))\n  ⊥ ⊔ a: \(describe(left))")
        }
        let right = a.merging(bottom)
        if right != a {
            return LawViolation(law: .bottom, message: "a ⊔ ⊥ != a\n  a: \(describe(a))\n  a ⊔ ⊥: \(describe(right))")
        }
        return nil
    }

    /// Checks `a ⊔ a == a`.
    public static func checkIdempotent<State: DeltaCRDT>(_ a: State) -> LawViolation? {
        let joined = a.merging(a)
        if joined == a { return nil }
        return LawViolation(law: .idempotence, message: "a ⊔ a != a\n  a: \(describe(a))\n  a ⊔ a: \(describe(joined))")
    }

    /// Checks `a ⊔ b == b ⊔ a`.
    public static func checkCommutative<State: DeltaCRDT>(_ a: State, _ b: State) -> LawViolation? {
        let ab = a.merging(b)
        let ba = b.merging(a)
        if ab == ba { return nil }
        return LawViolation(
            law: .commutativity,
            message:
                "a ⊔ b != b ⊔ a\n  a: \(describe(a))\n  b: \(describe(b))\n  a ⊔ b: \(describe(ab))\n  b ⊔ a: \(describe(ba))"
        )
    }

    /// Checks `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`.
    public static func checkAssociative<State: DeltaCRDT>(_ a: State, _ b: State, _ c: State) -> LawViolation? {
        let left = a.merging(b).merging(c)
        let right = a.merging(b.merging(c))
        if left == right { return nil }
        return LawViolation(
            law: .associativity,
            message:
                "(a ⊔ b) ⊔ c != a ⊔ (b ⊔ c)\n  a: \(describe(a))\n  b: \(describe(b))\n  c: \(describe(c))\n  (a ⊔ b) ⊔ c: \(describe(left))\n  a ⊔ (b ⊔ c): \(describe(right))"
        )
    }

    /// Checks that `a ⊔ b` is an upper bound of both: `(a ⊔ b) ⊔ a == a ⊔ b` and the same for `b`.
    public static func checkUpperBound<State: DeltaCRDT>(_ a: State, _ b: State) -> LawViolation? {
        let joined = a.merging(b)
        for (name, part) in [("a", a), ("b", b)] where joined.merging(part) != joined {
            return LawViolation(
                law: .idempotence,
                message:
                    "a ⊔ b is not above \(name)\n  a: \(describe(a))\n  b: \(describe(b))\n  a ⊔ b: \(describe(joined))"
            )
        }
        return nil
    }

    /// Every lattice law on `a`, `b` and `c`: bottom, idempotence, commutativity of
    /// each pair, upper bounds, and associativity of every ordering of the three.
    public static func latticeViolations<State: DeltaCRDT>(_ a: State, _ b: State, _ c: State) -> [LawViolation] {
        var found: [LawViolation?] = []
        for x in [a, b, c] {
            found.append(checkBottom(x))
            found.append(checkIdempotent(x))
        }
        for (x, y) in [(a, b), (b, c), (a, c)] {
            found.append(checkCommutative(x, y))
            found.append(checkUpperBound(x, y))
        }
        for (x, y, z) in [(a, b, c), (a, c, b), (b, a, c), (b, c, a), (c, a, b), (c, b, a)] {
            found.append(checkAssociative(x, y, z))
        }
        return found.compactMap { $0 }
    }

    /// Checks one delta mutation (Almeida, Shoker, Baquero 2018, def. 4.1):
    ///
    /// 1. the mutator is the join with its delta: `after == before ⊔ delta`;
    /// 2. the delta is contained in the result: `after ⊔ delta == after`;
    /// 3. for every replica `y` that has seen `before` (each observer joined with
    ///    `before`), shipping the delta has the same effect as shipping the new
    ///    state: `y ⊔ delta == y ⊔ after`.
    ///
    /// - Parameters:
    ///   - before: the writer's state before the mutation.
    ///   - delta: the delta the mutator returned.
    ///   - after: the writer's state after the mutation.
    ///   - observers: other reachable states; each is joined with `before` first.
    public static func checkDeltaMutator<State: DeltaCRDT>(
        before: State, delta: State, after: State, observers: [State] = []
    ) -> LawViolation? {
        let joined = before.merging(delta)
        if joined != after {
            return LawViolation(
                law: .deltaMutator,
                message:
                    "m(x) != x ⊔ mδ(x)\n  x: \(describe(before))\n  mδ(x): \(describe(delta))\n  m(x): \(describe(after))\n  x ⊔ mδ(x): \(describe(joined))"
            )
        }
        if after.merging(delta) != after {
            return LawViolation(
                law: .deltaMutator,
                message: "mδ(x) is not below m(x)\n  mδ(x): \(describe(delta))\n  m(x): \(describe(after))")
        }
        for observer in observers {
            let y = observer.merging(before)
            let viaDelta = y.merging(delta)
            let viaState = y.merging(after)
            if viaDelta != viaState {
                return LawViolation(
                    law: .deltaMutator,
                    message:
                        "y ⊔ mδ(x) != y ⊔ m(x) for y ⊒ x\n  x: \(describe(before))\n  mδ(x): \(describe(delta))\n  y: \(describe(y))\n  y ⊔ mδ(x): \(describe(viaDelta))\n  y ⊔ m(x): \(describe(viaState))"
                )
            }
        }
        return nil
    }

    /// Checks that all `states` are equal.
    public static func checkConvergence<State: DeltaCRDT>(_ states: [State]) -> LawViolation? {
        guard let first = states.first else { return nil }
        for (index, state) in states.enumerated().dropFirst() where state != first {
            return LawViolation(
                law: .convergence,
                message:
                    "replica 0 and replica \(index) differ\n  0: \(describe(first))\n  \(index): \(describe(state))")
        }
        return nil
    }

    /// Checks that every state decodes from its MeshCodec encoding to an equal state,
    /// and that equal states (however they were built) encode to identical bytes.
    public static func checkEncodings<State: RecordCodable>(_ states: [State]) -> LawViolation? {
        var encodings: [[UInt8]] = []
        for state in states {
            let bytes = MeshCodec.encode(state)
            do {
                let decoded = try MeshCodec.decode(State.self, from: bytes)
                if decoded != state {
                    return LawViolation(
                        law: .encoding,
                        message: "decode(encode(x)) != x\n  x: \(describe(state))\n  decoded: \(describe(decoded))")
                }
            } catch {
                return LawViolation(
                    law: .encoding, message: "encode(x) does not decode: \(error)\n  x: \(describe(state))")
            }
            encodings.append(bytes)
        }
        for (index, state) in states.enumerated() {
            for other in index + 1..<states.count where states[other] == state && encodings[other] != encodings[index] {
                return LawViolation(
                    law: .encoding,
                    message:
                        "equal states encode differently\n  x: \(describe(state))\n  bytes: \(encodings[index])\n  other: \(encodings[other])"
                )
            }
        }
        return nil
    }

    /// `checkEncodings` when `State` has a MeshCodec encoding; `nil` (nothing to check) otherwise.
    public static func checkEncodingsIfCodable<State: DeltaCRDT>(_ states: [State]) -> LawViolation? {
        guard let codable = State.self as? any RecordCodable.Type else { return nil }
        return checkEncodings(codable, states)
    }

    private static func checkEncodings<Codable: RecordCodable>(_ type: Codable.Type, _ states: [some DeltaCRDT])
        -> LawViolation?
    {
        checkEncodings(states.map { $0 as! Codable })
    }

    /// Checks the type's structural invariants on `state`.
    public static func checkInvariants<State: ScriptableCRDT>(_ state: State) -> LawViolation? {
        let problems = state.invariantViolations()
        if problems.isEmpty { return nil }
        return LawViolation(
            law: .invariant, message: problems.joined(separator: "; ") + "\n  state: \(describe(state))")
    }
}

extension CRDTLaws {
    /// A one-line description of a state showing every stored field (dots and
    /// contexts included, which the types' own `description`s leave out), with
    /// dictionary and set entries sorted so the text is stable across runs.
    public static func describe(_ value: Any) -> String {
        describeValue(value, depth: 0)
    }
}

private func describeValue(_ value: Any, depth: Int) -> String {
    if depth > 12 { return "…" }
    let mirror = Mirror(reflecting: value)
    // Metadata types (dots, contexts, timestamps) print themselves; collections
    // are walked so their entries can be sorted, and CRDTs so every field shows.
    let isContainer = [.collection, .dictionary, .set, .optional, .tuple].contains(mirror.displayStyle)
    if !isContainer, !(value is any DeltaCRDT), let convertible = value as? any CustomStringConvertible {
        return convertible.description
    }
    let children = mirror.children.map { (label: $0.label, text: describeValue($0.value, depth: depth + 1)) }
    switch mirror.displayStyle {
    case .optional:
        return children.first?.text ?? "nil"
    case .collection:
        return "[" + children.map(\.text).joined(separator: ", ") + "]"
    case .dictionary:
        let pairs = mirror.children.map { child -> String in
            let parts = Mirror(reflecting: child.value).children.map { describeValue($0.value, depth: depth + 1) }
            return parts.count == 2 ? "\(parts[0]): \(parts[1])" : parts.joined(separator: ", ")
        }
        return "[" + (pairs.isEmpty ? ":" : pairs.sorted().joined(separator: ", ")) + "]"
    case .set:
        return "{" + children.map(\.text).sorted().joined(separator: ", ") + "}"
    case .enum:
        let name = String(describing: value).prefix { $0 != "(" }
        guard let payload = children.first else { return ".\(name)" }
        return ".\(name)\(payload.text.hasPrefix("(") ? payload.text : "(\(payload.text))")"
    case .tuple:
        let fields = children.map { child in
            (child.label.flatMap { $0.hasPrefix(".") ? nil : "\($0): " } ?? "") + child.text
        }
        return "(" + fields.joined(separator: ", ") + ")"
    default:
        if children.isEmpty { return String(describing: value) }
        let typeName = String(describing: type(of: value))
        return typeName + "(" + children.map { ($0.label.map { "\($0): " } ?? "") + $0.text }.joined(separator: ", ")
            + ")"
    }
}
