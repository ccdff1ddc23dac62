import MeshCRDT
import MeshCodec
import Testing

/// The README's first example, kept compiling and true.
@Suite("README example")
struct ReadmeExampleTests {
    @Test("two replicas of an ORSet converge with add-wins after a concurrent remove, via encoded deltas")
    func readmeExampleHolds() throws {
        let laptop = ReplicaID(1)
        var onLaptop = ORSet<String>()
        var onPhone = ORSet<String>()

        let addMilk = onLaptop.insert("milk", at: laptop)
        onPhone.merge(try MeshCodec.decode(ORSet<String>.self, from: MeshCodec.encode(addMilk)))

        let removeMilk = onPhone.remove("milk")
        let addAgain = onLaptop.insert("milk", at: laptop)

        onLaptop.merge(removeMilk)
        onPhone.merge(addAgain)
        #expect(onLaptop == onPhone)
        #expect(onPhone.contains("milk"))

        var clock = HybridLogicalClock()
        var profile = LWWMap<String, String>()
        let delta = profile.set(
            "status", to: "online", timestamp: clock.now(physicalMilliseconds: 1_700_000_000_000), at: laptop)
        let decoded = try MeshCodec.decode(LWWMap<String, String>.self, from: MeshCodec.encode(delta))
        #expect(decoded == delta)
        #expect(LWWMap<String, String>().merging(decoded)["status"] == "online")
    }
}
