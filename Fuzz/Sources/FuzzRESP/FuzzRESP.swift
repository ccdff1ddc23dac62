import MeshRESP
import NIOCore

/// Small limits, so the fuzzer reaches every limit check with short inputs.
let limits = RESPLimits(maximumArguments: 16, maximumBulkBytes: 64, maximumInlineBytes: 64)

/// What parsing a stream found: the commands (or values, re-encoded), and the error that ended it.
struct Outcome: Equatable {
    var items: [[UInt8]] = []
    var error: RESPProtocolError?
}

/// Feeds `body` to a request parser in the pieces that `cuts` (ascending offsets) make, calling `next` until nil
/// after each piece; checks the limits hold for every command.
func requests(_ body: [UInt8], cuts: [Int]) -> Outcome {
    var parser = RESPRequestParser(limits: limits)
    var buffer = ByteBuffer()
    var outcome = Outcome()
    var start = 0
    for end in cuts + [body.count] where end >= start {
        buffer.writeBytes(body[start..<end])
        start = end
        do throws(RESPProtocolError) {
            while let command = try parser.next(from: &buffer) {
                if command.isEmpty || command.count > limits.maximumArguments {
                    fatalError("argument count \(command.count)")
                }
                var encoded: [UInt8] = []
                for argument in command {
                    if argument.readableBytes > max(limits.maximumBulkBytes, limits.maximumInlineBytes) {
                        fatalError("argument of \(argument.readableBytes) bytes")
                    }
                    // Length-prefixed, so different splits of arguments cannot compare equal.
                    encoded += [UInt8(truncatingIfNeeded: argument.readableBytes)] + Array(argument.readableBytesView)
                }
                outcome.items.append(encoded)
            }
        } catch {
            outcome.error = error
            return outcome
        }
        if buffer.readableBytes > body.count { fatalError("parser buffer grew") }
    }
    return outcome
}

/// Feeds `body` to a reply parser in pieces; each value is recorded as its RESP3 encoding (NaN-safe equality).
func replies(_ body: [UInt8], cuts: [Int]) -> Outcome {
    var parser = RESPReplyParser(limits: limits, maximumDepth: 32)
    var buffer = ByteBuffer()
    var outcome = Outcome()
    var start = 0
    for end in cuts + [body.count] where end >= start {
        buffer.writeBytes(body[start..<end])
        start = end
        do throws(RESPProtocolError) {
            while let value = try parser.next(from: &buffer) {
                var encoded = ByteBuffer()
                encoded.writeRESP(value, version: .resp3)
                outcome.items.append(Array(encoded.readableBytesView))
                checkRewrite(value)
            }
        } catch {
            outcome.error = error
            return outcome
        }
    }
    return outcome
}

/// Writing a parsed value and parsing it again reaches a fixpoint after one round, in both versions
/// (the writer may normalise: CR/LF in lines, invalid UTF-8, doubles' spelling).
func checkRewrite(_ value: RESPValue) {
    for version in [RESPVersion.resp3, .resp2] {
        var once = ByteBuffer()
        once.writeRESP(value, version: version)
        var parser = RESPReplyParser(maximumDepth: 64)
        let first: RESPValue?
        do { first = try parser.next(from: &once) } catch {
            fatalError("written value does not parse: \(error) \(value)")
        }
        guard let first, once.readableBytes == 0 else { fatalError("written value incomplete or too long: \(value)") }
        var twice = ByteBuffer()
        twice.writeRESP(first, version: version)
        var again = RESPReplyParser(maximumDepth: 64)
        var thrice = ByteBuffer()
        do throws(RESPProtocolError) {
            guard let second = try again.next(from: &twice) else { fatalError("rewritten value incomplete") }
            thrice.writeRESP(second, version: version)
        } catch { fatalError("rewritten value does not parse: \(error)") }
        var reference = ByteBuffer()
        reference.writeRESP(first, version: version)
        if reference != thrice { fatalError("writing is not a fixpoint for \(value)") }
    }
}

/// libFuzzer entry: the first byte picks a split point; the rest is parsed as requests and as replies,
/// whole, split in two at that point, and in chunks of 1...8 bytes.
///
/// Checks: no trap; whole and split parsing find the same commands/values and the same error (code, message and
/// offset); commands respect the limits; written replies parse back.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let body = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let split = body.count * Int(data[0]) / 255
    let chunk = Int(data[0] & 7) + 1
    let chunkCuts = Array(stride(from: chunk, to: body.count, by: chunk))

    let wholeRequests = requests(body, cuts: [])
    if requests(body, cuts: [split]) != wholeRequests { fatalError("requests differ when split at \(split)") }
    if requests(body, cuts: chunkCuts) != wholeRequests { fatalError("requests differ in chunks of \(chunk)") }

    let wholeReplies = replies(body, cuts: [])
    if replies(body, cuts: [split]) != wholeReplies { fatalError("replies differ when split at \(split)") }
    if replies(body, cuts: chunkCuts) != wholeReplies { fatalError("replies differ in chunks of \(chunk)") }
    return 0
}
