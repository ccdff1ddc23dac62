import MeshRESP
import NIOCore
import Testing

/// What `write` puts in an empty buffer, as a String.
func written(_ write: (inout ByteBuffer) -> Void) -> String {
    var buffer = ByteBuffer()
    write(&buffer)
    return String(buffer: buffer)
}

@Suite("RESP writers")
struct RESPWriterTests {
    @Test("Each fast-path writer produces Redis's exact bytes")
    func fastPaths() {
        #expect(written { $0.writeRESPSimpleString("OK") } == "+OK\r\n")
        #expect(written { $0.writeRESPSimpleString("a\r\nb") } == "+a  b\r\n")
        #expect(written { $0.writeRESPError("ERR unknown command 'x'") } == "-ERR unknown command 'x'\r\n")
        #expect(written { $0.writeRESPError("WRONGTYPE bad\nline\r") } == "-WRONGTYPE bad line \r\n")
        #expect(written { $0.writeRESPInteger(0) } == ":0\r\n")
        #expect(written { $0.writeRESPInteger(-42) } == ":-42\r\n")
        #expect(written { $0.writeRESPInteger(.max) } == ":9223372036854775807\r\n")
        #expect(written { $0.writeRESPInteger(.min) } == ":-9223372036854775808\r\n")
        #expect(written { $0.writeRESPBulkString([UInt8]("a\r\nb".utf8)) } == "$4\r\na\r\nb\r\n")
        #expect(written { $0.writeRESPBulkString([UInt8]()) } == "$0\r\n\r\n")
        #expect(written { $0.writeRESPBulkString("héllo") } == "$6\r\nhéllo\r\n")
        #expect(written { $0.writeRESPBulkString(ByteBuffer(string: "xyz")) } == "$3\r\nxyz\r\n")
        #expect(written { $0.writeRESPArrayHeader(count: 12) } == "*12\r\n")
    }

    @Test("Version-dependent writers use RESP3 types for RESP3 and Redis's downgrades for RESP2")
    func versioned() {
        #expect(written { $0.writeRESPNull(version: .resp2) } == "$-1\r\n")
        #expect(written { $0.writeRESPNull(version: .resp3) } == "_\r\n")
        #expect(written { $0.writeRESPNullArray(version: .resp2) } == "*-1\r\n")
        #expect(written { $0.writeRESPNullArray(version: .resp3) } == "_\r\n")
        #expect(written { $0.writeRESPMapHeader(count: 3, version: .resp2) } == "*6\r\n")
        #expect(written { $0.writeRESPMapHeader(count: 3, version: .resp3) } == "%3\r\n")
        #expect(written { $0.writeRESPSetHeader(count: 2, version: .resp2) } == "*2\r\n")
        #expect(written { $0.writeRESPSetHeader(count: 2, version: .resp3) } == "~2\r\n")
        #expect(written { $0.writeRESPPushHeader(count: 3, version: .resp2) } == "*3\r\n")
        #expect(written { $0.writeRESPPushHeader(count: 3, version: .resp3) } == ">3\r\n")
        #expect(written { $0.writeRESPBoolean(true, version: .resp2) } == ":1\r\n")
        #expect(written { $0.writeRESPBoolean(false, version: .resp2) } == ":0\r\n")
        #expect(written { $0.writeRESPBoolean(true, version: .resp3) } == "#t\r\n")
        #expect(written { $0.writeRESPBoolean(false, version: .resp3) } == "#f\r\n")
        #expect(written { $0.writeRESPDouble(1.5, version: .resp2) } == "$3\r\n1.5\r\n")
        #expect(written { $0.writeRESPDouble(1.5, version: .resp3) } == ",1.5\r\n")
    }

    @Test(
        "Doubles are written as inf, -inf, nan, integer digits when integral, else the shortest exact text",
        arguments: [
            (1.0, "1"), (-0.0, "-0"), (0.1, "0.1"), (3.14, "3.14"), (1e-5, "1e-05"), (1e300, "1e+300"),
            (Double.infinity, "inf"), (-Double.infinity, "-inf"), (Double.nan, "nan"), (-123456.0, "-123456"),
            (9007199254740992.0, "9007199254740992"), (1e16, "1e+16"),
        ]
    )
    func doubles(_ value: Double, _ text: String) {
        #expect(written { $0.writeRESPDouble(value, version: .resp3) } == ",\(text)\r\n")
    }

    @Test(
        "writeRESP writes every RESPValue case with the exact bytes of each version",
        arguments: [
            (RESPValue.simpleString("OK"), "+OK\r\n", "+OK\r\n"),
            (.error("ERR x"), "-ERR x\r\n", "-ERR x\r\n"),
            (.integer(7), ":7\r\n", ":7\r\n"),
            (.bulkString([0, 13, 10]), "$3\r\n\0\r\n\r\n", "$3\r\n\0\r\n\r\n"),
            (.null, "$-1\r\n", "_\r\n"),
            (.array([.integer(1), .null]), "*2\r\n:1\r\n$-1\r\n", "*2\r\n:1\r\n_\r\n"),
            (.array([]), "*0\r\n", "*0\r\n"),
            (.double(2.5), "$3\r\n2.5\r\n", ",2.5\r\n"),
            (.boolean(true), ":1\r\n", "#t\r\n"),
            (.map([.simpleString("a"), .integer(1)]), "*2\r\n+a\r\n:1\r\n", "%1\r\n+a\r\n:1\r\n"),
            (.map([.simpleString("a")]), "*2\r\n+a\r\n$-1\r\n", "%1\r\n+a\r\n_\r\n"),
            (.set([.integer(1)]), "*1\r\n:1\r\n", "~1\r\n:1\r\n"),
            (.push([.bulkString([120])]), "*1\r\n$1\r\nx\r\n", ">1\r\n$1\r\nx\r\n"),
            (.verbatimString(format: "txt", text: "hi"), "$2\r\nhi\r\n", "=6\r\ntxt:hi\r\n"),
            (.verbatimString(format: "markdown", text: ""), "$0\r\n\r\n", "=4\r\ntxt:\r\n"),
            (
                .bigNumber("-3492890328409238509324850943850943825024385"),
                "$44\r\n-3492890328409238509324850943850943825024385\r\n",
                "(-3492890328409238509324850943850943825024385\r\n"
            ),
        ]
    )
    func everyCase(_ value: RESPValue, _ resp2: String, _ resp3: String) {
        #expect(written { $0.writeRESP(value, version: .resp2) } == resp2)
        #expect(written { $0.writeRESP(value, version: .resp3) } == resp3)
    }
}
