import MeshCRDT
import MeshMembership
import MeshReplication
import MeshSecurity

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
