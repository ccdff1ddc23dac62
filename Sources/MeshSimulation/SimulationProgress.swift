/// Where a running simulation is, for progress output during long runs (`Simulation.progressObserver`).
///
/// Only counts and virtual time: reading it changes nothing, so a run with an observer is the same
/// run, report and seed replay included, as one without.
public struct SimulationProgress: Sendable, Equatable {
    /// What the run is doing.
    public enum Phase: String, Sendable {
        /// Writes are being issued (faults, if any, are active).
        case writing
        /// The write phase is over; the faults still are, until the heal.
        case faulty
        /// Faults healed; waiting for every replica to deliver every write.
        case converging
    }

    public var phase: Phase
    /// Virtual time since the start, milliseconds.
    public var virtualMilliseconds: UInt64
    /// When the write phase ends and when faults heal, virtual milliseconds.
    public var writePhaseEndMilliseconds: UInt64
    public var healMilliseconds: UInt64
    public var writesIssued: Int
    public var writes: Int
    /// Writes delivered, summed over replicas (each write counts once per replica that has it).
    public var deliveries: Int
    /// `writesIssued × nodes`: the deliveries of a mesh that has caught up with every write so far.
    public var deliveriesOfIssuedWrites: Int
    public var messagesDelivered: Int

    /// One line for a terminal, e.g. `writing: virtual 4.1 s of 10.2, 41000/100000 writes, 38.2 M of 41.0 M
    /// deliveries (93%), 0.4 M messages`.
    public var summary: String {
        let seconds = { (milliseconds: UInt64) in formatted(Double(milliseconds) / 1000, decimals: 1) }
        let end = phase == .writing ? writePhaseEndMilliseconds : healMilliseconds
        var line = "\(phase.rawValue): virtual \(seconds(virtualMilliseconds)) s"
        if phase != .converging { line += " of \(seconds(end))" }
        line += ", \(writesIssued)/\(writes) writes, \(millions(deliveries)) of \(millions(deliveriesOfIssuedWrites)) deliveries"
        if deliveriesOfIssuedWrites > 0 {
            line += " (\(deliveries * 100 / deliveriesOfIssuedWrites)%)"
        }
        line += ", \(millions(messagesDelivered)) messages"
        return line
    }

    private func millions(_ count: Int) -> String {
        count < 100_000 ? "\(count)" : "\(formatted(Double(count) / 1e6, decimals: 1)) M"
    }
}

/// `value` with `decimals` digits after the point (no Foundation).
func formatted(_ value: Double, decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    guard decimals > 0 else { return "\(scaled)" }
    let whole = scaled / Int(scale)
    let fraction = String(abs(scaled) % Int(scale))
    let sign = scaled < 0 && whole == 0 ? "-" : ""
    return "\(sign)\(whole).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
}
