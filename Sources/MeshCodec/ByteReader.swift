/// Reads the binary encoding from untrusted bytes without ever trapping.
///
/// Every read checks the bytes left; every count is checked against a limit and
/// against the bytes left before anything is allocated for it. Failures are
/// `CodecError`s carrying the offset of the offending byte.
public struct ByteReader: Sendable {
    /// The input.
    public let bytes: [UInt8]
    /// The offset of the next byte to read.
    public private(set) var offset: Int
    /// The limits in force.
    public let limits: CodecLimits

    /// Creates a reader over `bytes`.
    ///
    /// - Throws: `.limitExceeded` when the input is larger than `limits.maximumInputBytes`.
    public init(_ bytes: [UInt8], limits: CodecLimits = .default) throws(CodecError) {
        guard bytes.count <= limits.maximumInputBytes else {
            throw CodecError(
                .limitExceeded, at: 0,
                "input of \(bytes.count) bytes exceeds the limit of \(limits.maximumInputBytes)")
        }
        self.bytes = bytes
        self.offset = 0
        self.limits = limits
    }

    /// How many bytes are left.
    @inlinable
    public var remainingCount: Int { bytes.count - offset }

    /// Whether every byte was read.
    @inlinable
    public var isAtEnd: Bool { offset == bytes.count }

    /// Throws `.trailingBytes` unless every byte was read.
    public func expectEnd() throws(CodecError) {
        guard isAtEnd else {
            throw CodecError(.trailingBytes, at: offset, "\(remainingCount) bytes follow the end of the value")
        }
    }

    /// Reads one byte.
    public mutating func readByte(_ what: @autoclosure () -> String = "byte") throws(CodecError) -> UInt8 {
        guard offset < bytes.count else {
            throw CodecError(.truncated, at: offset, "input ended while reading \(what())")
        }
        let byte = bytes[offset]
        offset += 1
        return byte
    }

    /// Reads `count` raw bytes.
    public mutating func readBytes(count: Int, _ what: @autoclosure () -> String = "bytes") throws(CodecError)
        -> ArraySlice<UInt8>
    {
        guard count >= 0, count <= remainingCount else {
            throw CodecError(
                .truncated, at: offset,
                "input ended while reading \(what()): \(count) bytes wanted, \(remainingCount) left")
        }
        let slice = bytes[offset..<offset + count]
        offset += count
        return slice
    }

    /// Reads an unsigned LEB128 varint (at most 10 bytes, no overflow).
    public mutating func readVarint(_ what: @autoclosure () -> String = "varint") throws(CodecError) -> UInt64 {
        let start = offset
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else {
                throw CodecError(.truncated, at: offset, "input ended inside \(what())")
            }
            let byte = bytes[offset]
            offset += 1
            let payload = UInt64(byte & 0x7f)
            if shift == 63 && payload > 1 {
                throw CodecError(.malformedVarint, at: start, "\(what()) overflows 64 bits")
            }
            result |= payload << shift
            if byte & 0x80 == 0 {
                // Reject non-minimal encodings (a trailing zero group), so every
                // value has exactly one encoding.
                if byte == 0 && offset - start > 1 {
                    throw CodecError(.notCanonical, at: start, "\(what()) is not minimally encoded")
                }
                return result
            }
            shift += 7
            if shift > 63 {
                throw CodecError(.malformedVarint, at: start, "\(what()) is longer than 10 bytes")
            }
        }
    }

    /// Reads a zig-zag signed varint.
    public mutating func readSignedVarint(_ what: @autoclosure () -> String = "signed varint") throws(CodecError)
        -> Int64
    {
        let raw = try readVarint(what())
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// Reads a fixed-width little-endian 64-bit integer.
    public mutating func readUInt64(_ what: @autoclosure () -> String = "uint64") throws(CodecError) -> UInt64 {
        let raw = try readBytes(count: 8, what())
        var value: UInt64 = 0
        for (shift, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
        return value
    }

    /// Reads a fixed-width little-endian 32-bit integer.
    public mutating func readUInt32(_ what: @autoclosure () -> String = "uint32") throws(CodecError) -> UInt32 {
        let raw = try readBytes(count: 4, what())
        var value: UInt32 = 0
        for (shift, byte) in raw.enumerated() { value |= UInt32(byte) << (8 * UInt32(shift)) }
        return value
    }

    /// Reads a count of items that each take at least `minimumItemBytes` bytes,
    /// checked against `limit` and against the bytes left.
    ///
    /// - Throws: `.limitExceeded` (at the count's offset) when the count exceeds
    ///   `limit` or the items cannot fit in the bytes left; varint errors.
    public mutating func readCount(
        limit: Int, minimumItemBytes: Int = 1, _ what: @autoclosure () -> String = "count"
    ) throws(CodecError) -> Int {
        let start = offset
        let raw = try readVarint(what())
        return try checkCount(raw, at: start, limit: limit, minimumItemBytes: minimumItemBytes, what())
    }

    /// Checks a count read by other means (e.g. folded into a tag) exactly as
    /// `readCount` does, and returns it as an `Int`.
    ///
    /// - Throws: `.limitExceeded` at `start` when `raw` exceeds `limit` or
    ///   `raw * minimumItemBytes` exceeds the bytes left.
    public func checkCount(
        _ raw: UInt64, at start: Int, limit: Int, minimumItemBytes: Int = 1,
        _ what: @autoclosure () -> String = "count"
    ) throws(CodecError) -> Int {
        guard raw <= UInt64(max(limit, 0)) else {
            throw CodecError(.limitExceeded, at: start, "\(what()) \(raw) exceeds the limit of \(limit)")
        }
        let count = Int(raw)
        let (needed, overflow) = count.multipliedReportingOverflow(by: max(minimumItemBytes, 0))
        guard !overflow, needed <= remainingCount else {
            throw CodecError(
                .limitExceeded, at: start,
                "\(what()) \(count) needs at least \(needed) bytes but only \(remainingCount) are left")
        }
        return count
    }

    /// Reads a length-prefixed byte string of at most `limits.maximumElementBytes`.
    public mutating func readLengthPrefixed(_ what: @autoclosure () -> String = "byte string") throws(CodecError)
        -> [UInt8]
    {
        let length = try readCount(limit: limits.maximumElementBytes, minimumItemBytes: 1, "length of \(what())")
        return Array(try readBytes(count: length, what()))
    }

    /// Reads a length-prefixed UTF-8 string.
    public mutating func readString(_ what: @autoclosure () -> String = "string") throws(CodecError) -> String {
        let start = offset
        let length = try readCount(limit: limits.maximumElementBytes, minimumItemBytes: 1, "length of \(what())")
        let raw = try readBytes(count: length, what())
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw CodecError(.invalidUTF8, at: start, "\(what()) is not valid UTF-8")
        }
        return string
    }

    /// Fails with `code` at the current offset (for checks made by callers).
    public func failure(_ code: CodecError.Code, _ message: String) -> CodecError {
        CodecError(code, at: offset, message)
    }
}
