import MeshCRDT
import MeshTesting
import Testing

/// The public "from parts" initialisers (used by decoders) accept exactly the
/// states a history can reach.
@Suite("From-parts initialisers")
struct FromPartsTests {
    static let zeroDot = Dot(replica: r1, counter: 0)

    // Regression (found by this suite): a dot numbered 0 is never issued, but every
    // context "contains" it (0 <= any counter), so the initialisers accepted it and
    // built a state for which ⊥ ⊔ x != x (merging into bottom dropped the element).
    @Test("a dot numbered 0 is refused, since it would break bottom identity")
    func zeroDotIsRefused() {
        let set = ORSet<Int>(entries: [1: DotSet(Self.zeroDot)], context: CausalContext())
        #expect(set == nil)
        if let set { record(CRDTLaws.checkBottom(set)) }
        #expect(EWFlag(dots: DotSet(Self.zeroDot), context: CausalContext()) == nil)
        #expect(MVRegister(values: [DottedValue(dot: Self.zeroDot, value: 1)], context: CausalContext()) == nil)
        let write = LWWWrite(value: 1, timestamp: ts(1), replica: r1)
        #expect(
            LWWMap<Int, Int>(entries: [1: [.init(dot: Self.zeroDot, write: write)]], context: CausalContext()) == nil)
    }

    @Test("dots the context has not seen, empty dot sets and unsorted writes are refused")
    func malformedPartsAreRefused() {
        let unseen = Dot(replica: r1, counter: 3)
        let context = CausalContext(VersionVector([(r1, UInt64(2))]))
        #expect(ORSet<Int>(entries: [1: DotSet(unseen)], context: context) == nil)
        #expect(ORSet<Int>(entries: [1: DotSet()], context: context) == nil)
        #expect(EWFlag(dots: DotSet(unseen), context: context) == nil)
        let first = Dot(replica: r1, counter: 1)
        let second = Dot(replica: r1, counter: 2)
        #expect(
            MVRegister(
                values: [DottedValue(dot: second, value: 1), DottedValue(dot: first, value: 2)], context: context)
                == nil)
        #expect(LWWMap<Int, Int>(entries: [1: []], context: context) == nil)
        #expect(ORSet<Int>(entries: [1: DotSet(first)], context: context) != nil)
    }
}
