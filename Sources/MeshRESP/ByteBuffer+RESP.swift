import NIOCore

extension ByteBuffer {
    /// Writes `value` in `version`.
    ///
    /// RESP3-only types are downgraded for RESP2 as Redis does: null → `$-1` (use `writeRESPNullArray` for `*-1`),
    /// double → bulk string of its text, boolean → integer 1/0, map → flat array of keys and values, set and push →
    /// array, verbatim string → bulk string of its text (without the format), big number → bulk string.
    /// A map with an odd number of elements gets a null as the last value, so the framing stays valid.
    /// A verbatim format that is not three bytes is written as `txt`.
    public mutating func writeRESP(_ value: RESPValue, version: RESPVersion) {
        switch value {
        case .simpleString(let text):
            writeRESPSimpleString(text)
        case .error(let message):
            writeRESPError(message)
        case .integer(let integer):
            writeRESPInteger(integer)
        case .bulkString(let bytes):
            writeRESPBulkString(bytes)
        case .null:
            writeRESPNull(version: version)
        case .array(let elements):
            writeRESPArrayHeader(count: elements.count)
            for element in elements { writeRESP(element, version: version) }
        case .double(let double):
            writeRESPDouble(double, version: version)
        case .boolean(let boolean):
            writeRESPBoolean(boolean, version: version)
        case .map(let elements):
            let pairCount = (elements.count + 1) / 2
            writeRESPMapHeader(count: pairCount, version: version)
            for element in elements { writeRESP(element, version: version) }
            if elements.count % 2 == 1 { writeRESPNull(version: version) }
        case .set(let elements):
            writeRESPSetHeader(count: elements.count, version: version)
            for element in elements { writeRESP(element, version: version) }
        case .push(let elements):
            writeRESPPushHeader(count: elements.count, version: version)
            for element in elements { writeRESP(element, version: version) }
        case .verbatimString(let format, let text):
            switch version {
            case .resp2:
                writeRESPBulkString(text)
            case .resp3:
                let format = format.utf8.count == 3 ? format : "txt"
                writeRESPLengthLine(prefix: UInt8(ascii: "="), Int64(4 + text.utf8.count))
                writeString(format)
                writeInteger(ASCII.colon)
                writeString(text)
                writeCRLF()
            }
        case .bigNumber(let text):
            switch version {
            case .resp2:
                writeRESPBulkString(text)
            case .resp3:
                writeInteger(UInt8(ascii: "("))
                writeLineText(text)
            }
        }
    }

    /// Writes `+text\r\n` (e.g. `+OK\r\n`); CR and LF in `text` become spaces.
    public mutating func writeRESPSimpleString(_ text: String) {
        writeInteger(UInt8(ascii: "+"))
        writeLineText(text)
    }

    /// Writes `-message\r\n`. The message includes its prefix (`ERR unknown command 'x'`,
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`); CR and LF in it become spaces.
    public mutating func writeRESPError(_ message: String) {
        writeInteger(UInt8(ascii: "-"))
        writeLineText(message)
    }

    /// Writes `:value\r\n`.
    public mutating func writeRESPInteger(_ value: Int64) {
        writeRESPLengthLine(prefix: UInt8(ascii: ":"), value)
    }

    /// Writes `$count\r\n<bytes>\r\n`.
    public mutating func writeRESPBulkString(_ bytes: some Collection<UInt8>) {
        writeRESPLengthLine(prefix: ASCII.dollar, Int64(bytes.count))
        writeBytes(bytes)
        writeCRLF()
    }

    /// Writes `$count\r\n<readable bytes of bytes>\r\n`, without copying through an array.
    public mutating func writeRESPBulkString(_ bytes: ByteBuffer) {
        writeRESPLengthLine(prefix: ASCII.dollar, Int64(bytes.readableBytes))
        writeImmutableBuffer(bytes)
        writeCRLF()
    }

    /// Writes `$count\r\n<UTF-8 of text>\r\n`.
    public mutating func writeRESPBulkString(_ text: String) {
        writeRESPLengthLine(prefix: ASCII.dollar, Int64(text.utf8.count))
        writeString(text)
        writeCRLF()
    }

    /// Writes a null: RESP2 `$-1\r\n` (the null bulk string), RESP3 `_\r\n`.
    public mutating func writeRESPNull(version: RESPVersion) {
        switch version {
        case .resp2: writeStaticString("$-1\r\n")
        case .resp3: writeStaticString("_\r\n")
        }
    }

    /// Writes a null where an array was expected: RESP2 `*-1\r\n`, RESP3 `_\r\n`.
    public mutating func writeRESPNullArray(version: RESPVersion) {
        switch version {
        case .resp2: writeStaticString("*-1\r\n")
        case .resp3: writeStaticString("_\r\n")
        }
    }

    /// Writes `*count\r\n`; `count` elements must follow.
    public mutating func writeRESPArrayHeader(count: Int) {
        writeRESPLengthLine(prefix: ASCII.asterisk, Int64(count))
    }

    /// Writes a map header for `count` pairs: RESP3 `%count\r\n`, RESP2 `*<2 count>\r\n`; `2 count` elements
    /// (key, value, key, value...) must follow.
    public mutating func writeRESPMapHeader(count: Int, version: RESPVersion) {
        switch version {
        case .resp2: writeRESPLengthLine(prefix: ASCII.asterisk, Int64(count) * 2)
        case .resp3: writeRESPLengthLine(prefix: UInt8(ascii: "%"), Int64(count))
        }
    }

    /// Writes a set header: RESP3 `~count\r\n`, RESP2 `*count\r\n`.
    public mutating func writeRESPSetHeader(count: Int, version: RESPVersion) {
        switch version {
        case .resp2: writeRESPLengthLine(prefix: ASCII.asterisk, Int64(count))
        case .resp3: writeRESPLengthLine(prefix: UInt8(ascii: "~"), Int64(count))
        }
    }

    /// Writes a push header: RESP3 `>count\r\n`, RESP2 `*count\r\n`.
    public mutating func writeRESPPushHeader(count: Int, version: RESPVersion) {
        switch version {
        case .resp2: writeRESPLengthLine(prefix: ASCII.asterisk, Int64(count))
        case .resp3: writeRESPLengthLine(prefix: UInt8(ascii: ">"), Int64(count))
        }
    }

    /// Writes a double: RESP3 `,text\r\n`, RESP2 a bulk string of the same text.
    ///
    /// The text is `inf`, `-inf`, `nan`, the integer digits for integral values below 2^53 (`1`, `-0`), or else
    /// Swift's shortest round-tripping form (`0.1`, `1e-05`, `1.5e+300`, `9007199254740992`), which `strtod`
    /// reads back exactly.
    public mutating func writeRESPDouble(_ value: Double, version: RESPVersion) {
        let text = Self.respText(of: value)
        switch version {
        case .resp2:
            writeRESPBulkString(text)
        case .resp3:
            writeInteger(UInt8(ascii: ","))
            writeString(text)
            writeCRLF()
        }
    }

    /// Writes a boolean: RESP3 `#t\r\n` / `#f\r\n`, RESP2 `:1\r\n` / `:0\r\n`.
    public mutating func writeRESPBoolean(_ value: Bool, version: RESPVersion) {
        switch version {
        case .resp2: writeStaticString(value ? ":1\r\n" : ":0\r\n")
        case .resp3: writeStaticString(value ? "#t\r\n" : "#f\r\n")
        }
    }

    // MARK: Helpers

    static func respText(of value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == value.rounded(.towardZero) && value.magnitude < 9_007_199_254_740_992 {
            let integer = Int64(value)
            if integer == 0 && value.sign == .minus { return "-0" }
            return String(integer)
        }
        // Swift spells integral values from 2^53 to 2^64 as "9007199254740992.0"; Redis (and strtod) need no ".0".
        let text = value.description
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }

    /// Writes `prefix`, the decimal digits of `value` and `\r\n` in one reservation, without a String.
    mutating func writeRESPLengthLine(prefix: UInt8, _ value: Int64) {
        // prefix + sign + 19 digits + CRLF <= 23 bytes.
        writeWithUnsafeMutableBytes(minimumWritableBytes: 24) { out in
            var magnitude = value.magnitude
            var digitCount = 1
            var rest = magnitude
            while rest >= 10 {
                rest /= 10
                digitCount += 1
            }
            out[0] = prefix
            var end = 1
            if value < 0 {
                out[1] = ASCII.minus
                end = 2
            }
            end += digitCount
            var index = end
            repeat {
                index -= 1
                out[index] = ASCII.zero &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out[end] = ASCII.cr
            out[end + 1] = ASCII.lf
            return end + 2
        }
    }

    mutating func writeCRLF() {
        writeInteger(UInt16(0x0D0A), endianness: .big)
    }

    /// Writes `text` with CR and LF replaced by spaces, then `\r\n`: a line that cannot split the reply stream.
    private mutating func writeLineText(_ text: String) {
        var isOneLine = true
        for byte in text.utf8 where byte == ASCII.cr || byte == ASCII.lf {
            isOneLine = false
            break
        }
        if isOneLine {
            writeString(text)
        } else {
            var bytes = Array(text.utf8)
            for index in bytes.indices where bytes[index] == ASCII.cr || bytes[index] == ASCII.lf {
                bytes[index] = ASCII.space
            }
            writeBytes(bytes)
        }
        writeCRLF()
    }
}
