// ReplicaSync: three offline replicas of one shopping list write concurrently,
// then exchange their deltas as bytes, in a shuffled order with duplicates, and
// end in the same state. No coordination, no server: only CRDT merges.
import MeshCRDT
import MeshCodec

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One replica: its identity, its hybrid logical clock, and three objects.
struct Replica {
    let name: String
    let id: ReplicaID
    var clock = HybridLogicalClock()
    var visits = PNCounter()
    var items = ORSet<String>()
    var notes = LWWMap<String, String>()
    /// Deltas produced locally, encoded for the wire, waiting to be sent.
    var outbox: [[UInt8]] = []

    init(name: String, id: UInt64) {
        self.name = name
        self.id = ReplicaID(id)
    }

    mutating func count(_ amount: Int) {
        let delta = amount >= 0
            ? visits.increment(by: UInt64(amount), at: id) : visits.decrement(by: UInt64(-amount), at: id)
        outbox.append([0] + MeshCodec.encode(delta))
    }

    mutating func add(_ item: String) {
        outbox.append([1] + MeshCodec.encode(items.insert(item, at: id)))
    }

    mutating func remove(_ item: String) {
        outbox.append([1] + MeshCodec.encode(items.remove(item)))
    }

    mutating func note(_ key: String, _ value: String, atMillisecond millisecond: UInt64) {
        let timestamp = clock.now(physicalMilliseconds: millisecond)
        outbox.append([2] + MeshCodec.encode(notes.set(key, to: value, timestamp: timestamp, at: id)))
    }

    /// Decodes one message and joins it in; a malformed message is refused, not applied.
    mutating func receive(_ message: [UInt8]) throws {
        guard let tag = message.first else { return }
        let body = Array(message.dropFirst())
        switch tag {
        case 0: visits.merge(try MeshCodec.decode(PNCounter.self, from: body))
        case 1: items.merge(try MeshCodec.decode(ORSet<String>.self, from: body))
        default: notes.merge(try MeshCodec.decode(LWWMap<String, String>.self, from: body))
        }
    }

    var summary: String {
        let list = items.elements.sorted().joined(separator: ", ")
        let pairs = notes.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        return "\(name + String(repeating: " ", count: max(0, 7 - name.count))) visits=\(visits.value)  items=[\(list)]  notes=[\(pairs)]"
    }
}

var laptop = Replica(name: "laptop", id: 1)
var phone = Replica(name: "phone", id: 2)
var server = Replica(name: "server", id: 3)

print("Each replica writes while offline:")
laptop.count(3)
laptop.add("milk")
laptop.add("bread")
laptop.note("store", "corner shop", atMillisecond: 1_000)
phone.count(2)
phone.add("eggs")
phone.add("milk")  // a concurrent add of the same element
phone.note("store", "market", atMillisecond: 1_500)  // later timestamp: wins
server.count(-1)
server.add("coffee")
server.note("budget", "40", atMillisecond: 900)

// The laptop learns of the phone's writes, then removes "milk": it removes only
// the adds it has seen, so an add it has not seen would survive (add-wins).
for message in phone.outbox { try laptop.receive(message) }
laptop.remove("milk")
phone.add("milk")  // re-added on the phone after what the laptop saw: survives
for replica in [laptop, phone, server] { print("  " + replica.summary) }

// Gossip: every delta to every replica, in a deterministic shuffled order, twice.
let everything = laptop.outbox + phone.outbox + server.outbox
var generator = SplitMix64(seed: 2026)  // seeded: the same shuffle on every run
var deliveries = (everything + everything)
deliveries.shuffle(using: &generator)
for message in deliveries {
    try laptop.receive(message)
    try phone.receive(message)
    try server.receive(message)
}
let bytes = everything.reduce(0) { $0 + $1.count }
print("\nAfter exchanging \(everything.count) deltas (\(bytes) bytes), each delivered twice in random order:")
for replica in [laptop, phone, server] { print("  " + replica.summary) }

let converged = laptop.visits == phone.visits && phone.visits == server.visits
    && laptop.items == phone.items && phone.items == server.items
    && laptop.notes == phone.notes && phone.notes == server.notes
    && MeshCodec.encode(laptop.items) == MeshCodec.encode(server.items)
let expected = laptop.visits.value == 4 && laptop.items.elements == ["bread", "eggs", "milk", "coffee"]
    && laptop.notes["store"] == "market" && laptop.notes["budget"] == "40"
print(converged && expected ? "\nPASS: all replicas converged to identical state" : "\nFAIL: replicas diverged")
if !(converged && expected) { exit(1) }
