/// A small, fast, seedable generator (SplitMix64, Steele, Lea, Flood 2014).
///
/// The only source of randomness in the replication core, the simulator and the
/// test kit: randomness comes in as a value seeded by the caller, so a seed
/// replays a run exactly on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    /// The generator state.
    public var state: UInt64

    /// Creates a generator from a seed.
    @inlinable
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// SplitMix64's output function: a bijective 64-bit mix of `value`.
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<bound` (`bound > 0`), without modulo bias worth caring
    /// about for simulation (Lemire's multiply-shift).
    @inlinable
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        let product = next().multipliedFullWidth(by: UInt64(bound))
        return Int(product.high)
    }

    /// A uniform double in `[0, 1)`.
    @inlinable
    public mutating func unit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `true` with probability `probability`.
    @inlinable
    public mutating func chance(_ probability: Double) -> Bool {
        probability > 0 && unit() < probability
    }
}
