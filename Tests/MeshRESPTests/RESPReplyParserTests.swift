import MeshRESP
import NIOCore
import Testing

/// SplitMix64: a seeded generator, so a failing seed replays the same values.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random RESP values of every case, `depth` levels of aggregates at most, in the forms `writeRESP` keeps
/// exactly (one-line simple strings, even maps, three-byte verbatim formats, no NaN).
func randomValue(_ random: inout SplitMix, depth: Int) -> RESPValue {
    func text(_ random: inout SplitMix) -> String {
        let alphabet = Array("ab Z09:é€-_\t")
        return String((0..<Int.random(in: 0...8, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
    }
    func elements(_ random: inout SplitMix, _ count: Int) -> [RESPValue] {
        (0..<count).map { _ in randomValue(&random, depth: depth - 1) }
    }
    let choice = Int.random(in: 0..<(depth > 0 ? 13 : 9), using: &random)
    switch choice {
    case 0: return .simpleString(text(&random))
    case 1: return .error("ERR " + text(&random))
    case 2: return .integer(Int64.random(in: .min ... .max, using: &random) >> Int64.random(in: 0...63, using: &random))
    case 3:
        return .bulkString(
            (0..<Int.random(in: 0...12, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
    case 4: return .null
    case 5:
        let doubles = [
            0.0, -0.0, 1.0, -2.5, 0.1, 1e-300, 1e300, .infinity, -.infinity, .pi, Double.leastNonzeroMagnitude,
        ]
        return .double(
            Bool.random(using: &random)
                ? doubles.randomElement(using: &random)! : Double.random(in: -1e9...1e9, using: &random))
    case 6: return .boolean(Bool.random(using: &random))
    case 7:
        return .verbatimString(
            format: ["txt", "mkd"].randomElement(using: &random)!, text: text(&random) + "\r\n" + text(&random))
    case 8:
        return .bigNumber(
            (Bool.random(using: &random) ? "-" : "") + String(UInt64.random(in: 0 ... .max, using: &random))
                + "123456789")
    case 9: return .array(elements(&random, Int.random(in: 0...4, using: &random)))
    case 10: return .map(elements(&random, 2 * Int.random(in: 0...3, using: &random)))
    case 11: return .set(elements(&random, Int.random(in: 0...4, using: &random)))
    default: return .push(elements(&random, Int.random(in: 0...4, using: &random)))
    }
}

/// Whether `parsed` (read back from RESP2) is `original` downgraded as Redis does for RESP2 clients.
func isRESP2Downgrade(_ parsed: RESPValue, of original: RESPValue) -> Bool {
    func pairwise(_ elements: [RESPValue]) -> Bool {
        guard case .array(let parsedElements) = parsed, parsedElements.count == elements.count else { return false }
        return zip(parsedElements, elements).allSatisfy { isRESP2Downgrade($0, of: $1) }
    }
    switch original {
    case .array(let elements), .map(let elements), .set(let elements), .push(let elements):
        return pairwise(elements)
    case .double(let double):
        guard case .bulkString(let bytes) = parsed, let back = Double(String(decoding: bytes, as: UTF8.self)) else {
            return false
        }
        return back == double && back.sign == double.sign
    case .boolean(let boolean):
        return parsed == .integer(boolean ? 1 : 0)
    case .verbatimString(_, let text), .bigNumber(let text):
        return parsed == .bulkString(Array(text.utf8))
    default:
        return parsed == original
    }
}

/// Parses every value in `buffer`, `chunk` bytes at a time.
func parseReplies(_ bytes: [UInt8], chunk: Int, limits: RESPLimits = RESPLimits()) throws -> [RESPValue] {
    var parser = RESPReplyParser(limits: limits)
    var buffer = ByteBuffer()
    var values: [RESPValue] = []
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset + chunk)
        buffer.writeBytes(bytes[offset..<end])
        offset = end
        while let value = try parser.next(from: &buffer) { values.append(value) }
    }
    #expect(buffer.readableBytes == 0)
    return values
}

@Suite("RESPReplyParser")
struct RESPReplyParserTests {
    @Test("Every generated value written in RESP3 parses back equal, whole and byte by byte (seeds 0..<300)")
    func roundTripRESP3() throws {
        for seed in UInt64(0)..<300 {
            var random = SplitMix(state: seed)
            let values = (0..<5).map { _ in randomValue(&random, depth: 3) }
            var buffer = ByteBuffer()
            for value in values { buffer.writeRESP(value, version: .resp3) }
            let wire = Array(buffer.readableBytesView)
            #expect(try parseReplies(wire, chunk: wire.count) == values, "seed \(seed)")
            if seed % 10 == 0 { #expect(try parseReplies(wire, chunk: 1) == values, "seed \(seed)") }
        }
    }

    @Test("Every generated value written in RESP2 parses back as Redis's RESP2 downgrade of it (seeds 0..<300)")
    func roundTripRESP2() throws {
        for seed in UInt64(0)..<300 {
            var random = SplitMix(state: seed)
            let value = randomValue(&random, depth: 3)
            var buffer = ByteBuffer()
            buffer.writeRESP(value, version: .resp2)
            let parsed = try parseReplies(Array(buffer.readableBytesView), chunk: 1 << 20)
            #expect(parsed.count == 1 && isRESP2Downgrade(parsed[0], of: value), "seed \(seed): \(value) -> \(parsed)")
        }
    }

    @Test("NaN survives a RESP3 round trip as NaN (NaN != NaN, so the generator leaves it out)")
    func nan() throws {
        var buffer = ByteBuffer()
        buffer.writeRESP(.double(.nan), version: .resp3)
        let parsed = try parseReplies(Array(buffer.readableBytesView), chunk: 100)
        guard case .double(let double) = parsed.first else {
            Issue.record("not a double: \(parsed)")
            return
        }
        #expect(double.isNaN)
    }

    @Test("RESP3-only wire forms not produced by writeRESP parse: blob errors, *-1, attributes, + signs")
    func otherForms() throws {
        let wire = "!8\r\nERR x\r\ny\r\n*-1\r\n|1\r\n+key\r\n:1\r\n:+5\r\n(+12\r\n,-1.5e3\r\n"
        #expect(
            try parseReplies(Array(wire.utf8), chunk: 1) == [
                .error("ERR x\r\ny"), .null, .integer(5), .bigNumber("+12"), .double(-1500),
            ])
    }

    @Test(
        "Malformed replies throw the right code",
        arguments: [
            ("?\r\n", RESPProtocolError.Code.invalidReply),
            (":12a\r\n", .invalidReply),
            (":99999999999999999999\r\n", .invalidReply),
            ("#x\r\n", .invalidReply),
            (",abc\r\n", .invalidReply),
            ("(12x\r\n", .invalidReply),
            ("=2\r\nab\r\n", .invalidReply),
            ("_x\r\n", .invalidReply),
            ("$-2\r\n", .invalidReply),
            ("~-1\r\n", .invalidReply),
            ("$3\r\nabcd\r\n", .missingCRLF),
            ("+OK\rx", .missingCRLF),
            ("*3000\r\n", .tooManyArguments),
            ("$9000\r\n", .bulkTooLarge),
            ("+0123456789\r\n", .invalidReply),
            ("*?\r\n", .invalidReply),
        ]
    )
    func malformed(_ wire: String, _ code: RESPProtocolError.Code) {
        let limits = RESPLimits(maximumArguments: 1000, maximumBulkBytes: 1000, maximumInlineBytes: 8)
        #expect {
            _ = try parseReplies(Array(wire.utf8), chunk: 1, limits: limits)
        } throws: { error in
            (error as? RESPProtocolError)?.code == code
        }
    }

    @Test("Nesting deeper than maximumDepth throws nestingTooDeep instead of exhausting the stack")
    func depth() throws {
        var parser = RESPReplyParser(maximumDepth: 128)
        var buffer = ByteBuffer(string: String(repeating: "*1\r\n", count: 200) + ":1\r\n")
        #expect(throws: RESPProtocolError.self) { _ = try parser.next(from: &buffer) }
        var ok = RESPReplyParser(maximumDepth: 128)
        var shallow = ByteBuffer(string: String(repeating: "*1\r\n", count: 128) + ":1\r\n")
        #expect(try ok.next(from: &shallow) != nil)
    }

    @Test("A huge announced aggregate reserves nothing before its elements arrive (a 10^12 reservation would trap)")
    func noAllocationFromHeaders() throws {
        var parser = RESPReplyParser(limits: RESPLimits(maximumArguments: 1 << 50, maximumBulkBytes: 1 << 50))
        var buffer = ByteBuffer(string: "*1000000000000\r\n%1000000000000\r\n$1000000000000\r\nab")
        #expect(try parser.next(from: &buffer) == nil)
        #expect(buffer.readerIndex == 0)
    }
}
