import MeshCRDT
import MeshReplication

/// A typed handle on one address. Handles are cheap values; a type conflict (the address holds
/// another type) is reported by each operation as `MeshError(.typeMismatch)`, never overwritten.
public protocol ObjectHandle: Sendable {
    /// The node the handle operates on.
    var node: MeshNode { get }
    /// The object's address.
    var address: MeshAddress { get }
}

extension ObjectHandle {
    func read(_ options: ReadOptions) async throws -> ObjectValue? {
        options.replicas <= 1 ? await node.value(at: address) : try await node.read(address, options: options)
    }

    func mismatch(_ value: ObjectValue, expected: ObjectType) -> MeshError {
        MeshError(.typeMismatch, "\(address) holds a \(value.type), not a \(expected)")
    }
}

/// A counter that goes up and down (PN-counter): concurrent increments all count.
public struct CounterHandle: ObjectHandle {
    public let node: MeshNode
    public let address: MeshAddress

    /// Adds `amount`.
    @discardableResult
    public func increment(by amount: UInt64 = 1, options: WriteOptions = .local) async throws -> WriteID {
        try await node.write(.increment(amount), at: address, options: options)
    }

    /// Subtracts `amount`.
    @discardableResult
    public func decrement(by amount: UInt64 = 1, options: WriteOptions = .local) async throws -> WriteID {
        try await node.write(.decrement(amount), at: address, options: options)
    }

    /// The counter's value (0 when never written).
    public func value(options: ReadOptions = .local) async throws -> Int64 {
        switch try await read(options) {
        case nil: return 0
        case .counter(let counter)?: return counter.value
        case let other?: throw mismatch(other, expected: .counter)
        }
    }
}

/// An observed-remove set of strings: an add wins over a concurrent remove of the same element.
public struct SetHandle: ObjectHandle {
    public let node: MeshNode
    public let address: MeshAddress

    /// Adds `element`.
    @discardableResult
    public func insert(_ element: String, options: WriteOptions = .local) async throws -> WriteID {
        try await node.write(.insert(element), at: address, options: options)
    }

    /// Removes `element` as observed here (a concurrent add elsewhere survives).
    @discardableResult
    public func remove(_ element: String, options: WriteOptions = .local) async throws -> WriteID {
        try await node.write(.remove(element), at: address, options: options)
    }

    /// The elements (empty when never written).
    public func elements(options: ReadOptions = .local) async throws -> Set<String> {
        switch try await read(options) {
        case nil: return []
        case .set(let set)?: return set.elements
        case let other?: throw mismatch(other, expected: .set)
        }
    }

    /// Whether `element` is in the set.
    public func contains(_ element: String, options: ReadOptions = .local) async throws -> Bool {
        try await elements(options: options).contains(element)
    }
}

/// A map of string fields, each last-writer-wins by hybrid logical clock (then replica ID).
public struct MapHandle: ObjectHandle {
    public let node: MeshNode
    public let address: MeshAddress

    /// Sets `field` to `value`.
    @discardableResult
    public func set(_ field: String, to value: String, options: WriteOptions = .local) async throws -> WriteID {
        try await node.write(.setField(field, value), at: address, options: options)
    }

    /// Removes `field` as observed here.
    @discardableResult
    public func removeValue(forField field: String, options: WriteOptions = .local) async throws -> WriteID {
        try await node.write(.removeField(field), at: address, options: options)
    }

    /// All fields (empty when never written).
    public func entries(options: ReadOptions = .local) async throws -> [String: String] {
        switch try await read(options) {
        case nil: return [:]
        case .map(let map)?: return map.values
        case let other?: throw mismatch(other, expected: .map)
        }
    }

    /// One field's value.
    public func value(forField field: String, options: ReadOptions = .local) async throws -> String? {
        try await entries(options: options)[field]
    }
}

/// A last-writer-wins register of a string.
public struct RegisterHandle: ObjectHandle {
    public let node: MeshNode
    public let address: MeshAddress

    /// Assigns `value`.
    @discardableResult
    public func assign(_ value: String, options: WriteOptions = .local) async throws -> WriteID {
        try await node.write(.assign(value), at: address, options: options)
    }

    /// The value (`nil` when never written).
    public func value(options: ReadOptions = .local) async throws -> String? {
        switch try await read(options) {
        case nil: return nil
        case .register(let register)?: return register.value
        case let other?: throw mismatch(other, expected: .register)
        }
    }
}

extension MeshNode {
    /// A counter at `address` (`fabric://DOMAIN/PATH`).
    ///
    /// - Throws: `MeshError(.invalidAddress)`.
    public nonisolated func counter(_ address: String) throws(MeshError) -> CounterHandle {
        CounterHandle(node: self, address: try MeshAddress(address))
    }

    /// An observed-remove set at `address`.
    public nonisolated func set(_ address: String) throws(MeshError) -> SetHandle {
        SetHandle(node: self, address: try MeshAddress(address))
    }

    /// A last-writer-wins map at `address`.
    public nonisolated func map(_ address: String) throws(MeshError) -> MapHandle {
        MapHandle(node: self, address: try MeshAddress(address))
    }

    /// A last-writer-wins register at `address`.
    public nonisolated func register(_ address: String) throws(MeshError) -> RegisterHandle {
        RegisterHandle(node: self, address: try MeshAddress(address))
    }
}
