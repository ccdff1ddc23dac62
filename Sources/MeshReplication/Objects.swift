import MeshCRDT
import MeshCodec

/// The type of a replicated object; one key holds one type for its lifetime.
public enum ObjectType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// `PNCounter`.
    case counter = 1
    /// `ORSet<String>`.
    case set = 2
    /// `LWWMap<String, String>`.
    case map = 3
    /// `LWWRegister<String>`.
    case register = 4
    /// `MVRegister<String>`.
    case multiValueRegister = 5
    /// `EWFlag`.
    case flag = 6

    public var description: String {
        switch self {
        case .counter: "counter"
        case .set: "set"
        case .map: "map"
        case .register: "register"
        case .multiValueRegister: "mvregister"
        case .flag: "flag"
        }
    }
}

/// A replicated object's state or delta, tagged with its type.
public enum ObjectValue: Sendable, Equatable {
    case counter(PNCounter)
    case set(ORSet<String>)
    case map(LWWMap<String, String>)
    case register(LWWRegister<String>)
    case multiValueRegister(MVRegister<String>)
    case flag(EWFlag)

    /// The object's type.
    public var type: ObjectType {
        switch self {
        case .counter: .counter
        case .set: .set
        case .map: .map
        case .register: .register
        case .multiValueRegister: .multiValueRegister
        case .flag: .flag
        }
    }

    /// The bottom value of `type`.
    public static func bottom(of type: ObjectType) -> ObjectValue {
        switch type {
        case .counter: .counter(PNCounter())
        case .set: .set(ORSet())
        case .map: .map(LWWMap())
        case .register: .register(LWWRegister())
        case .multiValueRegister: .multiValueRegister(MVRegister())
        case .flag: .flag(EWFlag())
        }
    }

    /// Whether the object holds nothing a client would see: a counter with no counts
    /// beyond its reset baselines (one incremented and decremented back to 0 is not
    /// empty), a set or map without elements, a register without a value (never
    /// written, or cleared), a multi-value register without values, a disabled flag.
    ///
    /// A key whose object is empty does not exist for a client (Redis `EXISTS`,
    /// `KEYS`, `DBSIZE`), although the object keeps the metadata that makes its
    /// removal win over what it observed.
    public var isEmpty: Bool {
        switch self {
        case .counter(let counter): counter.isEmpty
        case .set(let set): set.isEmpty
        case .map(let map): map.isEmpty
        case .register(let register): register.value == nil
        case .multiValueRegister(let register): register.dottedValues.isEmpty
        case .flag(let flag): !flag.isEnabled
        }
    }

    /// Joins `other` into `self`; `false` (and no change) when the types differ.
    @discardableResult
    public mutating func merge(_ other: ObjectValue) -> Bool {
        // Switch on `other` and take `self`'s payload out before merging, so the payload is
        // uniquely referenced and merged in place (no tuple of copies of both values).
        switch other {
        case .counter(let theirs):
            guard case .counter(var mine) = self else { return false }
            self = .flag(EWFlag())  // release the payload so the merge below is in place
            mine.merge(theirs)
            self = .counter(mine)
        case .set(let theirs):
            guard case .set(var mine) = self else { return false }
            self = .flag(EWFlag())
            mine.merge(theirs)
            self = .set(mine)
        case .map(let theirs):
            guard case .map(var mine) = self else { return false }
            self = .flag(EWFlag())
            mine.merge(theirs)
            self = .map(mine)
        case .register(let theirs):
            guard case .register(var mine) = self else { return false }
            mine.merge(theirs)
            self = .register(mine)
        case .multiValueRegister(let theirs):
            guard case .multiValueRegister(var mine) = self else { return false }
            self = .flag(EWFlag())
            mine.merge(theirs)
            self = .multiValueRegister(mine)
        case .flag(let theirs):
            guard case .flag(var mine) = self else { return false }
            mine.merge(theirs)
            self = .flag(mine)
        }
        return true
    }
}

/// One local mutation. Each names the object type it applies to.
public enum WriteOperation: Sendable, Hashable {
    /// Counter: add `amount`.
    case increment(UInt64)
    /// Counter: subtract `amount`.
    case decrement(UInt64)
    /// Set: add an element.
    case insert(String)
    /// Set: remove an element (observed-remove).
    case remove(String)
    /// Map: set `field` to `value`.
    case setField(String, String)
    /// Map: remove `field` (observed-remove).
    case removeField(String)
    /// Register: assign a value (last writer wins by HLC timestamp, then replica).
    case assign(String)
    /// Multi-value register: assign a value, replacing the values observed here.
    case assignMultiValue(String)
    /// Flag: enable (enable wins over a concurrent disable).
    case enable
    /// Flag: disable.
    case disable
    /// Any type: delete the object as observed here (Redis `DEL`). The associated
    /// type is the type the key holds; the write is refused for a key of another type.
    ///
    /// - counter: an observed reset (an increment concurrent with it survives);
    /// - set, map: removes every element or field observed (a concurrent add survives);
    /// - register: a last-writer-wins deletion, ordered with assignments by
    ///   `(timestamp, replica)`;
    /// - multi-value register: removes every value observed;
    /// - flag: disables it (removes the enables observed).
    case clear(ObjectType)

    /// The object type this operation applies to.
    public var objectType: ObjectType {
        switch self {
        case .increment, .decrement: .counter
        case .insert, .remove: .set
        case .setField, .removeField: .map
        case .assign: .register
        case .assignMultiValue: .multiValueRegister
        case .enable, .disable: .flag
        case .clear(let type): type
        }
    }

    /// Whether applying the operation at `replica` would overflow a count or dot sequence of
    /// `object` (reachable only through very long histories; remote input claiming this
    /// replica's events is refused before it is merged).
    func wouldOverflow(_ object: ObjectValue, at replica: ReplicaID) -> Bool {
        switch (self, object) {
        case (.increment(let amount), .counter(let value)):
            return value.increments[replica].addingReportingOverflow(amount).overflow
        case (.decrement(let amount), .counter(let value)):
            return value.decrements[replica].addingReportingOverflow(amount).overflow
        case (.insert, _), (.setField, _), (.assignMultiValue, _), (.enable, _):
            return object.highestEvents(of: replica).first == UInt64.max
        default:
            return false
        }
    }

    /// Applies the operation to `object` (of the right type) and returns the delta.
    ///
    /// Each case takes the payload out of `object` (leaving a placeholder) before mutating it, so
    /// the payload is uniquely referenced and changes in place. Switching on `(self, object)` kept a
    /// second reference in the tuple: every write to a set or map copied its whole dictionary
    /// (O(elements) per `SADD` or `HSET`).
    func apply(to object: inout ObjectValue, at replica: ReplicaID, timestamp: HLCTimestamp) -> ObjectValue {
        switch self {
        case .increment(let amount):
            guard case .counter(var value) = object else { break }
            object = .flag(EWFlag())
            let delta = value.increment(by: amount, at: replica)
            object = .counter(value)
            return .counter(delta)
        case .decrement(let amount):
            guard case .counter(var value) = object else { break }
            object = .flag(EWFlag())
            let delta = value.decrement(by: amount, at: replica)
            object = .counter(value)
            return .counter(delta)
        case .insert(let element):
            guard case .set(var value) = object else { break }
            object = .flag(EWFlag())
            let delta = value.insert(element, at: replica)
            object = .set(value)
            return .set(delta)
        case .remove(let element):
            guard case .set(var value) = object else { break }
            object = .flag(EWFlag())
            let delta = value.remove(element)
            object = .set(value)
            return .set(delta)
        case .setField(let field, let text):
            guard case .map(var value) = object else { break }
            object = .flag(EWFlag())
            let delta = value.set(field, to: text, timestamp: timestamp, at: replica)
            object = .map(value)
            return .map(delta)
        case .removeField(let field):
            guard case .map(var value) = object else { break }
            object = .flag(EWFlag())
            let delta = value.remove(field)
            object = .map(value)
            return .map(delta)
        case .assign(let text):
            guard case .register(var value) = object else { break }
            let delta = value.set(text, timestamp: timestamp, at: replica)
            object = .register(value)
            return .register(delta)
        case .assignMultiValue(let text):
            guard case .multiValueRegister(var value) = object else { break }
            object = .flag(EWFlag())
            let delta = value.set(text, at: replica)
            object = .multiValueRegister(value)
            return .multiValueRegister(delta)
        case .enable:
            guard case .flag(var value) = object else { break }
            let delta = value.enable(at: replica)
            object = .flag(value)
            return .flag(delta)
        case .disable:
            guard case .flag(var value) = object else { break }
            let delta = value.disable()
            object = .flag(value)
            return .flag(delta)
        case .clear:
            switch object {
            case .counter(var value):
                object = .flag(EWFlag())
                let delta = value.reset()
                object = .counter(value)
                return .counter(delta)
            case .set(var value):
                object = .flag(EWFlag())
                let delta = value.removeAll()
                object = .set(value)
                return .set(delta)
            case .map(var value):
                object = .flag(EWFlag())
                let delta = value.removeAll()
                object = .map(value)
                return .map(delta)
            case .register(var value):
                let delta = value.clear(timestamp: timestamp, at: replica)
                object = .register(value)
                return .register(delta)
            case .multiValueRegister(var value):
                object = .flag(EWFlag())
                let delta = value.reset()
                object = .multiValueRegister(value)
                return .multiValueRegister(delta)
            case .flag(var value):
                let delta = value.disable()
                object = .flag(value)
                return .flag(delta)
            }
        }
        preconditionFailure("operation \(self) applied to \(object.type); the caller checks the type first")
    }
}

extension ObjectValue {
    /// The highest events of `replica` the value claims: for counters its increment and
    /// decrement counts, for the dotted types its highest dot (and zero), for registers zero
    /// (they issue no dots).
    ///
    /// Only `replica` issues its own events, so a remote value claiming more of this
    /// replica's events than its own object holds is forged; merging it would make the next
    /// local write overflow the count or dot sequence (a trap), so it is refused.
    func highestEvents(of replica: ReplicaID) -> (first: UInt64, second: UInt64) {
        switch self {
        case .counter(let counter):
            // A reset baseline claims counts too: one above this replica's own counts would
            // hide its future increments.
            (
                max(counter.increments[replica], counter.resetIncrements[replica]),
                max(counter.decrements[replica], counter.resetDecrements[replica])
            )
        case .set(let set): (set.context.highestEvent(of: replica), 0)
        case .map(let map): (map.context.highestEvent(of: replica), 0)
        case .register: (0, 0)
        case .multiValueRegister(let register): (register.context.highestEvent(of: replica), 0)
        case .flag(let flag): (flag.context.highestEvent(of: replica), 0)
        }
    }

    /// Calls `body` with every replica whose events the value may claim (`highestEvents(of:)` is
    /// zero for every other replica), possibly more than once.
    func forEachEventReplica(_ body: (ReplicaID) -> Void) {
        func context(_ context: CausalContext) {
            for entry in context.versionVector.entries { body(entry.replica) }
            for dot in context.dotCloud { body(dot.replica) }
        }
        switch self {
        case .counter(let counter):
            // Without building arrays: every record a node writes or receives is filtered.
            counter.increments.forEachReplica(body)
            counter.decrements.forEachReplica(body)
            if counter.hasResets {
                counter.resetIncrements.forEachReplica(body)
                counter.resetDecrements.forEachReplica(body)
            }
        case .set(let set): context(set.context)
        case .map(let map): context(map.context)
        case .register: break
        case .multiValueRegister(let register): context(register.context)
        case .flag(let flag): context(flag.context)
        }
    }
}

/// A 64-bit filter of a set of replicas: one bit per replica, chosen by a hash of its ID. A
/// replica whose bit is clear is not in the set; one whose bit is set may be.
struct ReplicaFilter: Equatable, Sendable {
    private(set) var bits: UInt64 = 0

    static func bit(of replica: ReplicaID) -> UInt64 {
        // Fibonacci hashing: the top six bits of the ID times 2^64 / φ.
        1 << ((replica.rawValue &* 0x9E37_79B9_7F4A_7C15) >> 58)
    }

    mutating func insert(_ replica: ReplicaID) { bits |= Self.bit(of: replica) }

    func mayContain(_ replica: ReplicaID) -> Bool { bits & Self.bit(of: replica) != 0 }
}

extension CausalContext {
    /// The highest dot counter of `replica` seen (vector entry or cloud dot).
    func highestEvent(of replica: ReplicaID) -> UInt64 {
        var highest = versionVector[replica]
        for dot in dotCloud where dot.replica == replica { highest = max(highest, dot.counter) }
        return highest
    }
}
