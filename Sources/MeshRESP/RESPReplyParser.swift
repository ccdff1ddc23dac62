import NIOCore

/// Incremental parser of Redis replies, RESP2 and RESP3 alike (for tests and a command-line client).
///
/// Parses one complete value per call. Attributes (`|`) are read and dropped, as the spec allows clients to.
/// Streamed strings and aggregates (`$?`, `*?`) are not supported and throw `invalidReply`.
///
/// Unlike `RESPRequestParser`, it keeps no progress between calls: a value that is still incomplete is parsed
/// again from its start on the next call, which is fine for a client and for tests but quadratic for a huge
/// reply fed a byte at a time.
///
/// ### Invariants
/// - Nesting is bounded by `maximumDepth`, element counts by `limits.maximumArguments`, bulk strings by
///   `limits.maximumBulkBytes`, simple lines by `limits.maximumInlineBytes`.
/// - Arrays reserve no more elements than the remaining bytes could hold (3 bytes each at least), so an
///   announced count allocates nothing it has not received.
public struct RESPReplyParser: Sendable {
    /// The bounds this parser enforces.
    public let limits: RESPLimits
    /// The deepest nesting of aggregates accepted (a top-level array is depth 1).
    public let maximumDepth: Int
    /// Bytes consumed from the stream so far; error offsets count from here.
    public private(set) var consumedByteCount = 0

    /// Creates a parser enforcing `limits` and at most `maximumDepth` (default 128) nested aggregates.
    public init(limits: RESPLimits = RESPLimits(), maximumDepth: Int = 128) {
        self.limits = limits
        self.maximumDepth = max(1, maximumDepth)
    }

    /// Consumes one complete value from `buffer` (moving its reader index) and returns it; returns nil, consuming
    /// nothing, when the buffer holds only part of a value.
    ///
    /// - Throws: `RESPProtocolError` on malformed or over-limit input; the stream cannot be resynchronised.
    public mutating func next(from buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        let base = consumedByteCount
        let limits = self.limits
        let maximumDepth = self.maximumDepth
        let result: Result<(RESPValue, Int)?, RESPProtocolError> = buffer.withUnsafeReadableBytes { bytes in
            var reader = ReplyReader(bytes: bytes, base: base, limits: limits, maximumDepth: maximumDepth)
            do throws(RESPProtocolError) {
                guard let value = try reader.value(depth: 0) else { return .success(nil) }
                return .success((value, reader.position))
            } catch {
                return .failure(error)
            }
        }
        guard let parsed = try result.get() else { return nil }
        buffer.moveReaderIndex(forwardBy: parsed.1)
        consumedByteCount += parsed.1
        return parsed.0
    }
}

/// One pass of recursive descent over the readable bytes; nil means "incomplete".
private struct ReplyReader {
    let bytes: UnsafeRawBufferPointer
    let base: Int
    let limits: RESPLimits
    let maximumDepth: Int
    var position = 0

    init(bytes: UnsafeRawBufferPointer, base: Int, limits: RESPLimits, maximumDepth: Int) {
        self.bytes = bytes
        self.base = base
        self.limits = limits
        self.maximumDepth = maximumDepth
    }

    func failure(_ code: RESPProtocolError.Code, _ message: String, at offset: Int) -> RESPProtocolError {
        RESPProtocolError(code: code, message: "Protocol error: " + message, offset: base + offset)
    }

    mutating func value(depth: Int) throws(RESPProtocolError) -> RESPValue? {
        while true {
            guard position < bytes.count else { return nil }
            let typeOffset = position
            let type = bytes[position]
            position += 1
            switch type {
            case UInt8(ascii: "+"):
                guard let line = try line() else { return nil }
                return .simpleString(string(line))
            case UInt8(ascii: "-"):
                guard let line = try line() else { return nil }
                return .error(string(line))
            case UInt8(ascii: ":"):
                guard let line = try line() else { return nil }
                guard let integer = Self.integer(bytes, line) else {
                    throw failure(.invalidReply, "invalid integer reply", at: line.lowerBound)
                }
                return .integer(integer)
            case UInt8(ascii: "$"):
                guard let length = try length(allowsNull: true) else { return nil }
                if length < 0 { return .null }
                guard let blob = try blob(length: length) else { return nil }
                return .bulkString(Array(UnsafeRawBufferPointer(rebasing: bytes[blob])))
            case UInt8(ascii: "!"):
                guard let length = try length(allowsNull: false) else { return nil }
                guard let blob = try blob(length: length) else { return nil }
                return .error(string(blob))
            case UInt8(ascii: "="):
                guard let length = try length(allowsNull: false) else { return nil }
                guard let blob = try blob(length: length) else { return nil }
                guard blob.count >= 4 && bytes[blob.lowerBound + 3] == ASCII.colon else {
                    throw failure(.invalidReply, "verbatim string without a format", at: blob.lowerBound)
                }
                return .verbatimString(
                    format: string(blob.lowerBound..<blob.lowerBound + 3),
                    text: string(blob.lowerBound + 4..<blob.upperBound)
                )
            case UInt8(ascii: "_"):
                guard let line = try line() else { return nil }
                guard line.isEmpty else { throw failure(.invalidReply, "invalid null reply", at: line.lowerBound) }
                return .null
            case UInt8(ascii: "#"):
                guard let line = try line() else { return nil }
                guard line.count == 1 else {
                    throw failure(.invalidReply, "invalid boolean reply", at: line.lowerBound)
                }
                switch bytes[line.lowerBound] {
                case UInt8(ascii: "t"): return .boolean(true)
                case UInt8(ascii: "f"): return .boolean(false)
                default: throw failure(.invalidReply, "invalid boolean reply", at: line.lowerBound)
                }
            case UInt8(ascii: ","):
                guard let line = try line() else { return nil }
                guard let double = Double(string(line)) else {
                    throw failure(.invalidReply, "invalid double reply", at: line.lowerBound)
                }
                return .double(double)
            case UInt8(ascii: "("):
                guard let line = try line() else { return nil }
                guard Self.isBigNumber(bytes, line) else {
                    throw failure(.invalidReply, "invalid big number reply", at: line.lowerBound)
                }
                return .bigNumber(string(line))
            case ASCII.asterisk, UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"):
                guard let count = try length(allowsNull: type == ASCII.asterisk) else { return nil }
                if count < 0 { return .null }
                guard count <= limits.maximumArguments else {
                    throw failure(
                        .tooManyArguments,
                        "aggregate of \(count) elements, limit \(limits.maximumArguments)",
                        at: typeOffset + 1
                    )
                }
                guard depth < maximumDepth else {
                    throw failure(.nestingTooDeep, "replies nested over \(maximumDepth) deep", at: typeOffset)
                }
                let elementCount = type == UInt8(ascii: "%") ? 2 * count : count
                var elements: [RESPValue] = []
                elements.reserveCapacity(min(elementCount, (bytes.count - position) / 3))
                for _ in 0..<elementCount {
                    guard let element = try value(depth: depth + 1) else { return nil }
                    elements.append(element)
                }
                switch type {
                case ASCII.asterisk: return .array(elements)
                case UInt8(ascii: "~"): return .set(elements)
                case UInt8(ascii: ">"): return .push(elements)
                default: return .map(elements)
                }
            case UInt8(ascii: "|"):
                // An attribute: read its pairs, drop them, and go on to the value it annotates (a loop, not
                // recursion, so a run of attributes cannot exhaust the stack).
                guard let count = try length(allowsNull: false) else { return nil }
                guard count <= limits.maximumArguments else {
                    throw failure(
                        .tooManyArguments,
                        "attribute of \(count) pairs, limit \(limits.maximumArguments)",
                        at: typeOffset + 1
                    )
                }
                guard depth < maximumDepth else {
                    throw failure(.nestingTooDeep, "replies nested over \(maximumDepth) deep", at: typeOffset)
                }
                for _ in 0..<2 * count {
                    guard try value(depth: depth + 1) != nil else { return nil }
                }
            default:
                throw failure(.invalidReply, "invalid reply type '\(RESPProtocolError.show(type))'", at: typeOffset)
            }
        }
    }

    /// Reads up to `\r\n` from `position`; returns the line's range (without `\r\n`) or nil when incomplete.
    private mutating func line() throws(RESPProtocolError) -> Range<Int>? {
        let start = position
        let searchEnd = min(bytes.count, start + limits.maximumInlineBytes + 1)
        var index = start
        while index < searchEnd && bytes[index] != ASCII.cr { index += 1 }
        guard index < searchEnd else {
            if searchEnd - start > limits.maximumInlineBytes {
                throw failure(
                    .invalidReply, "reply line longer than \(limits.maximumInlineBytes) bytes", at: searchEnd - 1)
            }
            return nil
        }
        guard index + 1 < bytes.count else { return nil }
        guard bytes[index + 1] == ASCII.lf else {
            throw failure(.missingCRLF, "expected '\\n' after '\\r'", at: index + 1)
        }
        position = index + 2
        return start..<index
    }

    /// Reads a `<length>\r\n`: a non-negative length, or -1 when `allowsNull` (returned as -1).
    private mutating func length(allowsNull: Bool) throws(RESPProtocolError) -> Int? {
        switch LengthLine.read(bytes, at: position) {
        case .incomplete:
            return nil
        case .malformed(let offset):
            throw failure(.invalidReply, "invalid length", at: offset)
        case .missingLineFeed(let offset):
            throw failure(.missingCRLF, "expected '\\n' after length", at: offset)
        case .value(let value, let next):
            guard value >= 0 || (allowsNull && value == -1) else {
                throw failure(.invalidReply, "invalid length", at: position)
            }
            position = next
            return value
        }
    }

    /// Reads `length` bytes and `\r\n`; returns the bytes' range, or nil when incomplete.
    private mutating func blob(length: Int) throws(RESPProtocolError) -> Range<Int>? {
        guard length <= limits.maximumBulkBytes else {
            throw failure(
                .bulkTooLarge, "bulk string of \(length) bytes, limit \(limits.maximumBulkBytes)", at: position)
        }
        let end = position + length
        if end < bytes.count && bytes[end] != ASCII.cr {
            throw failure(.missingCRLF, "expected CRLF after bulk data", at: end)
        }
        if end + 1 < bytes.count && bytes[end + 1] != ASCII.lf {
            throw failure(.missingCRLF, "expected CRLF after bulk data", at: end + 1)
        }
        guard end + 2 <= bytes.count else { return nil }
        defer { position = end + 2 }
        return position..<end
    }

    private func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// An optionally signed decimal that fits `Int64`.
    private static func integer(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int64? {
        var index = range.lowerBound
        var isNegative = false
        if index < range.upperBound && (bytes[index] == ASCII.minus || bytes[index] == ASCII.plus) {
            isNegative = bytes[index] == ASCII.minus
            index += 1
        }
        guard index < range.upperBound else { return nil }
        // Accumulate negatively so Int64.min fits.
        var value: Int64 = 0
        while index < range.upperBound {
            let digit = bytes[index] &- ASCII.zero
            guard digit < 10 else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = times10.subtractingReportingOverflow(Int64(digit))
            if overflow1 || overflow2 { return nil }
            value = next
            index += 1
        }
        if isNegative { return value }
        return value == .min ? nil : -value
    }

    private static func isBigNumber(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var index = range.lowerBound
        if index < range.upperBound && (bytes[index] == ASCII.minus || bytes[index] == ASCII.plus) { index += 1 }
        guard index < range.upperBound else { return false }
        while index < range.upperBound {
            guard bytes[index] &- ASCII.zero < 10 else { return false }
            index += 1
        }
        return true
    }
}
