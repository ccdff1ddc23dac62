import MeshRESP
import NIOCore
import Testing

/// Parses every command in `bytes` given whole; returns the commands (as byte arrays) and the error, if any.
func parseWhole(_ bytes: [UInt8], limits: RESPLimits = RESPLimits()) -> (
    commands: [[[UInt8]]], error: RESPProtocolError?
) {
    var parser = RESPRequestParser(limits: limits)
    var buffer = ByteBuffer(bytes: bytes)
    var commands: [[[UInt8]]] = []
    do throws(RESPProtocolError) {
        while let command = try parser.next(from: &buffer) {
            commands.append(command.map { Array($0.readableBytesView) })
        }
    } catch {
        return (commands, error)
    }
    return (commands, nil)
}

/// Parses `bytes` appended to one buffer `chunk` bytes at a time, calling `next` after every append.
func parseInChunks(_ bytes: [UInt8], chunk: Int, limits: RESPLimits = RESPLimits()) -> (
    commands: [[[UInt8]]], error: RESPProtocolError?
) {
    var parser = RESPRequestParser(limits: limits)
    var buffer = ByteBuffer()
    var commands: [[[UInt8]]] = []
    var offset = 0
    do throws(RESPProtocolError) {
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            while let command = try parser.next(from: &buffer) {
                commands.append(command.map { Array($0.readableBytesView) })
            }
            // Moving the reader index between calls must not matter: positions are relative to it.
            buffer.discardReadBytes()
        }
    } catch {
        return (commands, error)
    }
    return (commands, nil)
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func words(_ list: [String]) -> [[UInt8]] { list.map { Array($0.utf8) } }

/// One request and the arguments it must parse to.
struct RequestSample: Sendable, CustomStringConvertible {
    let wire: String
    let arguments: [String]
    var description: String { wire.debugDescription }
}

let requestSamples: [RequestSample] = [
    RequestSample(wire: "*1\r\n$4\r\nPING\r\n", arguments: ["PING"]),
    RequestSample(wire: "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n", arguments: ["SET", "key", "value"]),
    RequestSample(wire: "*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", arguments: ["GET", "a\r\nb"]),
    RequestSample(wire: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", arguments: ["ECHO", ""]),
    RequestSample(wire: "*1\r\n$10\r\n0123456789\r\n", arguments: ["0123456789"]),
    RequestSample(wire: "PING\r\n", arguments: ["PING"]),
    RequestSample(wire: "SET k v\n", arguments: ["SET", "k", "v"]),
    RequestSample(wire: "  set   \"a b\"  'c d'  \r\n", arguments: ["set", "a b", "c d"]),
    RequestSample(wire: "GET\tkey\r\n", arguments: ["GET", "key"]),
]

@Suite("RESPRequestParser")
struct RESPRequestParserTests {
    @Test("Each sample parses to its arguments when given whole", arguments: requestSamples)
    func sampleWhole(_ sample: RequestSample) {
        let result = parseWhole(bytes(sample.wire))
        #expect(result.error == nil)
        #expect(result.commands == [words(sample.arguments)])
    }

    @Test("All samples pipelined in one buffer, with skipped empty lines and *0/*-1 between them, parse in order")
    func pipelined() {
        let fillers = ["\r\n", "*0\r\n", "*-1\r\n", "\n", "*-10\r\n"]
        var wire: [UInt8] = []
        for (index, sample) in requestSamples.enumerated() {
            wire += bytes(fillers[index % fillers.count]) + bytes(sample.wire)
        }
        let result = parseWhole(wire)
        #expect(result.error == nil)
        #expect(result.commands == requestSamples.map { words($0.arguments) })
    }

    @Test("The same pipeline fed one byte (and 2, 3, 7 bytes) at a time gives the same commands as fed whole")
    func byteAtATime() {
        var wire: [UInt8] = []
        for sample in requestSamples { wire += bytes("\r\n*0\r\n" + sample.wire) }
        let whole = parseWhole(wire)
        for chunk in [1, 2, 3, 7] {
            let split = parseInChunks(wire, chunk: chunk)
            #expect(split.error == nil)
            #expect(split.commands == whole.commands, "chunk \(chunk)")
        }
    }

    @Test("Arguments are slices of the input buffer and the reader index moves past exactly one command")
    func consumesOneCommand() throws {
        var parser = RESPRequestParser()
        var buffer = ByteBuffer(string: "*1\r\n$4\r\nPING\r\n*1\r\n$3\r\nGET")
        let command = try #require(try parser.next(from: &buffer))
        #expect(command.map { String(buffer: $0) } == ["PING"])
        #expect(buffer.readerIndex == 14)
        #expect(parser.consumedByteCount == 14)
        #expect(try parser.next(from: &buffer) == nil)
        #expect(buffer.readerIndex == 14)
        buffer.writeString("\r\n")
        #expect(try parser.next(from: &buffer)?.map { String(buffer: $0) } == ["GET"])
        #expect(buffer.readableBytes == 0)
    }

    // MARK: Inline quoting

    @Test(
        "Inline quoting follows sdssplitargs: escapes in double quotes, \\' in single quotes, quotes inside words",
        arguments: [
            ("SET \"a\\x41\\n\" 'it\\'s'\r\n", ["SET", "aA\n", "it's"]),
            ("\"\\\"\"\r\n", ["\""]),
            ("foo\"bar baz\"\r\n", ["foobar baz"]),
            ("\"a\\tb\\\\c\\rd\\be\\af\"\r\n", ["a\tb\\c\rd\u{8}e\u{7}f"]),
            ("\"\\xZZ\" \"\\x4a\\x4B\"\r\n", ["xZZ", "JK"]),
            ("'a\\nb'\r\n", ["a\\nb"]),
            ("\"\" ''\r\n", ["", ""]),
            ("GET a\u{0}b c\r\n", ["GET", "a"]),
            ("a\u{b}b\r\n", ["a\u{b}b"]),
        ]
    )
    func inlineQuoting(_ wire: String, _ expected: [String]) {
        let result = parseWhole(bytes(wire))
        #expect(result.error == nil)
        #expect(result.commands == [words(expected)])
    }

    @Test(
        "An unterminated quote, or a closing quote followed by a non-space, is an unbalanced-quotes error",
        arguments: [
            "SET \"abc\r\n", "'abc\r\n", "\"abc\"def\r\n", "'a'b\r\n", "set \"\"\"test-key\"\"\" v\r\n", "\"a\\\"\r\n",
        ]
    )
    func unbalancedQuotes(_ wire: String) {
        let error = parseWhole(bytes(wire)).error
        #expect(error?.code == .unbalancedQuotes)
        #expect(error?.message == "Protocol error: unbalanced quotes in request")
    }

    // MARK: Malformed input

    @Test(
        "Malformed requests give the right code and Redis's message",
        arguments: [
            ("*abc\r\n", RESPProtocolError.Code.invalidMultibulkLength, "Protocol error: invalid multibulk length", 1),
            ("*01\r\n", .invalidMultibulkLength, "Protocol error: invalid multibulk length", 2),
            ("*-0\r\n", .invalidMultibulkLength, "Protocol error: invalid multibulk length", 2),
            ("*1234567890123456789\r\n", .invalidMultibulkLength, "Protocol error: invalid multibulk length", 19),
            ("*1\r\r", .missingCRLF, "Protocol error: expected '\\n' after multibulk length", 3),
            ("*1\r\n$-10\r\n", .invalidBulkLength, "Protocol error: invalid bulk length", 5),
            ("*1\r\n$blabla\r\n", .invalidBulkLength, "Protocol error: invalid bulk length", 5),
            ("*1\r\n$\r\n", .invalidBulkLength, "Protocol error: invalid bulk length", 5),
            ("*1\r\n$+3\r\n", .invalidBulkLength, "Protocol error: invalid bulk length", 5),
            ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", .expectedBulk, "Protocol error: expected '$', got 'f'", 20),
            ("*1\r\n\r\n", .expectedBulk, "Protocol error: expected '$', got '\\x0d'", 4),
            ("*1\r\n$3\r\nSETxx", .missingCRLF, "Protocol error: expected CRLF after bulk data", 11),
            ("*1\r\n$3\r\nSET\rx", .missingCRLF, "Protocol error: expected CRLF after bulk data", 12),
            (
                "*2000000000\r\n", .tooManyArguments,
                "Protocol error: invalid multibulk length (2000000000 arguments, limit 65536)", 1
            ),
            (
                "*1\r\n$2000000000\r\n", .bulkTooLarge,
                "Protocol error: invalid bulk length (2000000000 bytes, limit 8388608)", 5
            ),
        ]
    )
    func malformed(_ wire: String, _ code: RESPProtocolError.Code, _ message: String, _ offset: Int) {
        let error = parseWhole(bytes(wire)).error
        #expect(error?.code == code)
        #expect(error?.message == message)
        #expect(error?.offset == offset)
        // Split input must fail the same way.
        #expect(parseInChunks(bytes(wire), chunk: 1).error == error)
    }

    @Test("Error offsets count from the start of the stream, across commands already consumed")
    func offsetAcrossCommands() {
        let result = parseWhole(bytes("PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n"))
        #expect(result.commands == [words(["PING"]), words(["PING"])])
        #expect(result.error?.code == .invalidMultibulkLength)
        #expect(result.error?.offset == 21)
    }

    @Test("Argument count, bulk size and inline length limits are enforced from the announced header alone")
    func limits() {
        let small = RESPLimits(maximumArguments: 2, maximumBulkBytes: 4, maximumInlineBytes: 8)
        #expect(parseWhole(bytes("*3\r\n"), limits: small).error?.code == .tooManyArguments)
        #expect(parseWhole(bytes("*2\r\n$5\r\n"), limits: small).error?.code == .bulkTooLarge)
        #expect(parseWhole(bytes("a b c\r\n"), limits: small).error?.code == .tooManyArguments)
        #expect(parseWhole(bytes("*2\r\n$4\r\nabcd\r\n$0\r\n\r\n"), limits: small).commands == [words(["abcd", ""])])
        // Inline: 8 bytes of line are fine, with or without their "\r\n" arrived yet.
        #expect(parseWhole(bytes("GET 1234\r\n"), limits: small).commands == [words(["GET", "1234"])])
        #expect(parseWhole(bytes("GET 1234\r"), limits: small).error == nil)
        #expect(parseWhole(bytes("GET 1234"), limits: small).error == nil)
        let tooLong = parseWhole(bytes("GET 12345"), limits: small).error
        #expect(tooLong?.code == .inlineTooLong)
        #expect(tooLong?.message == "Protocol error: too big inline request")
        #expect(parseWhole(bytes("GET 12345\r\n"), limits: small).error?.code == .inlineTooLong)
        #expect(parseInChunks(bytes("GET 12345\r\n"), chunk: 1, limits: small).error?.code == .inlineTooLong)
    }

    @Test("A huge announced count or length allocates nothing before its bytes arrive (a 10^12 reservation would trap)")
    func noAllocationFromHeaders() throws {
        let huge = RESPLimits(maximumArguments: 1 << 50, maximumBulkBytes: 1 << 50)
        var parser = RESPRequestParser(limits: huge)
        var buffer = ByteBuffer(string: "*1000000000000\r\n$3\r\nGET\r\n$1000000000000\r\nabc")
        #expect(try parser.next(from: &buffer) == nil)
        #expect(buffer.readerIndex == 0)
        // With the default limits the same header is refused at once, before any argument arrives.
        #expect(parseWhole(bytes("*2000000000\r\n")).error?.code == .tooManyArguments)
    }

    @Test("The error message is what a server sends after -ERR")
    func errorReply() {
        let error = parseWhole(bytes("*x\r\n")).error!
        var out = ByteBuffer()
        out.writeRESPError("ERR " + error.message)
        #expect(String(buffer: out) == "-ERR Protocol error: invalid multibulk length\r\n")
    }
}
