import MeshCRDT
import MeshMembership
import MeshReplication
import MeshSecurity
import MeshStorage

// The types a node's user needs, so `import StateMesh` is enough for the common case.

/// A causal domain's name and delivery mode (`MeshReplication`).
public typealias DomainConfiguration = MeshReplication.DomainConfiguration
/// How many replicas must deliver a write before it returns (`MeshReplication`).
public typealias WriteConcern = MeshReplication.WriteConcern
/// A replicated object's value (`MeshReplication`).
public typealias ObjectValue = MeshReplication.ObjectValue
/// A replica's identity in version vectors (`MeshCRDT`).
public typealias ReplicaID = MeshCRDT.ReplicaID
/// A host and port (`MeshMembership`).
public typealias MemberAddress = MeshMembership.MemberAddress
/// A node's long-term key pair (`MeshSecurity`).
public typealias NodeIdentity = MeshSecurity.NodeIdentity
/// A node's ID: SHA-256 of its public key (`MeshSecurity`).
public typealias NodeID = MeshSecurity.NodeID
/// The allow-list and cluster keys (`MeshSecurity`).
public typealias AdmissionPolicy = MeshSecurity.AdmissionPolicy
/// When a write is durable (`MeshStorage`).
public typealias Durability = MeshStorage.Durability

extension ObjectValue {
    /// The value of a counter; `nil` for other types.
    public var counterValue: Int64? { if case .counter(let counter) = self { counter.value } else { nil } }
    /// The elements of a set; `nil` for other types.
    public var elements: Set<String>? { if case .set(let set) = self { set.elements } else { nil } }
    /// The fields of a map; `nil` for other types.
    public var fields: [String: String]? { if case .map(let map) = self { map.values } else { nil } }
    /// The value of a register; `nil` for other types or an unwritten register.
    public var registerValue: String? { if case .register(let register) = self { register.value } else { nil } }
}
