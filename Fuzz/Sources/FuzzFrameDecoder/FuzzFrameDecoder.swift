
import MeshSecurity
import SecurityFuzzFixtures

/// libFuzzer entry: feeds the input through the bounded length-prefix decoder in input-chosen chunk sizes
/// and opens every frame with an established session.
///
/// Checks: no crash; the decoder never buffers more than it was given; no frame body exceeds the cap;
/// every failure is a typed `SecurityError`; opened messages never exceed the message cap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    // Low bits pick 1...8 bytes, high bits scale by up to 128x: both byte-at-a-time and bulk delivery.
    let chunk = (Int(input[0] & 7) + 1) << Int(input[0] >> 5)
    // Bit 3 picks how frames are taken: copied out (`nextFrame`) or lent in place (`withNextFrame`).
    let lendsFrames = input[0] & 8 != 0
    var decoder = FrameDecoder(maxFrameByteCount: 65536)
    var session = FuzzFixtures.sessions.1  // responder side: opens what the initiator sealed
    var offset = 1
    var given = 0
    do {
        while offset < size {
            let end = min(size, offset + chunk)
            decoder.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: input[offset..<end])))
            given += end - offset
            offset = end
            if decoder.bufferedByteCount > given { fatalError("decoder holds more bytes than it received") }
            if lendsFrames {
                // `withNextFrame` returns nil when no whole frame is buffered, else what the closure returned.
                while let opened = try decoder.withNextFrame({ (body) -> [UInt8]? in
                    if body.count > 65536 { fatalError("frame over the cap") }
                    return try session.open(body)
                }) {
                    if let message = opened, message.count > 1 << 20 { fatalError("message over the cap") }
                }
            } else {
                while let body = try decoder.nextFrame() {
                    if body.count > 65536 { fatalError("frame over the cap") }
                    if let message = try session.open(body), message.count > 1 << 20 { fatalError("message over the cap") }
                }
            }
        }
        try decoder.finish()
    } catch {
        _ = (error as? SecurityError)?.code ?? { fatalError("untyped error \(error)") }()
    }
    return 0
}

/// libFuzzer initialisation hook: writes the seed corpus when asked (see `scripts/fuzz.sh seeds`).
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if let directory = seedDirectory() { FuzzSeeds.write(FuzzSeeds.frames, to: directory) }
    return 0
}
