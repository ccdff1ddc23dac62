
import MeshSecurity
import SecurityFuzzFixtures

/// libFuzzer entry: the first byte picks the handshake stage, the rest is the frame body the stage receives.
///
/// Stages: 0 responder reads message 1; 1 initiator reads message 2; 2 responder reads message 3;
/// 3 initiator reads the confirmation frame. A valid message must be accepted; anything else must throw
/// a `SecurityError`. Crashes, traps and sanitizer reports are the failures libFuzzer looks for.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let stage = data[0] % 4
    let body = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var machine: MeshHandshake
    switch stage {
    case 0: machine = FuzzFixtures.freshResponder
    case 1: machine = FuzzFixtures.initiatorAfterStart
    case 2: machine = FuzzFixtures.responderAfterMessage1
    default: machine = FuzzFixtures.initiatorAwaitingConfirmation
    }
    do {
        let output = try machine.receive(body, now: FuzzFixtures.now)
        // Only the genuine message can succeed: anything accepted must equal it.
        let genuine = [FuzzFixtures.message1, FuzzFixtures.message2, FuzzFixtures.message3, FuzzFixtures.confirmation][Int(stage)]
        if body != genuine { fatalError("handshake accepted a forged message at stage \(stage)") }
        if output.bytesToSend == nil && output.session == nil { fatalError("accepted message produced no output") }
    } catch {
        // Expected for almost every input: typed rejection.
        _ = (error as? SecurityError)?.code ?? { fatalError("untyped error \(error)") }()
    }
    return 0
}

/// libFuzzer initialisation hook: writes the seed corpus when asked (see `scripts/fuzz.sh seeds`).
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if let directory = seedDirectory() { FuzzSeeds.write(FuzzSeeds.handshake, to: directory) }
    return 0
}
