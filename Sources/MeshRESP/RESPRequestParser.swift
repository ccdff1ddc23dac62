import NIOCore

/// Incremental parser of Redis client requests: multibulk (`*N\r\n$len\r\n<bytes>\r\n...`) and inline commands.
///
/// Follows Redis's `processMultibulkBuffer` and `processInlineBuffer` (networking.c): a request starting with `*`
/// is multibulk, anything else is an inline line ended by `\n` (a `\r` before it is dropped) and split into
/// words with `sdssplitargs`'s quoting rules: `"..."` with `\n \r \t \b \a \\ \" \xHH` escapes, `'...'` with
/// `\'`, and a closing quote must be followed by a space or the end of the line. As in Redis, a NUL byte ends an
/// inline line, empty inline lines are skipped, and `*0`, `*-1` (any `*N` with N ≤ 0) are skipped.
///
/// Unlike Redis, the `\r\n` after bulk data is checked (`missingCRLF`) rather than skipped blindly.
///
/// Progress through a partial multibulk request is kept between calls (argument boundaries, relative to the
/// buffer's reader index), so a request arriving a byte at a time is scanned once, not once per byte.
///
/// ### Invariants
/// - Between calls the caller keeps the unread bytes of `buffer` and only appends to them (moving the reader
///   index, e.g. with `discardReadBytes()`, is fine: positions are kept relative to it).
/// - Nothing is allocated in proportion to an announced length before that length is checked against `limits`.
public struct RESPRequestParser: Sendable {
    /// The bounds this parser enforces.
    public let limits: RESPLimits
    /// Bytes consumed from the stream so far (whole requests, skipped lines); error offsets count from here.
    public private(set) var consumedByteCount = 0

    /// Arguments the multibulk request in progress announced; 0 when none is in progress.
    private var announcedArgumentCount = 0
    /// Offset (from the reader index) of the first byte of the request in progress not parsed yet.
    private var cursor = 0
    /// Start and length (from the reader index) of each complete argument of the request in progress.
    private var argumentBounds: [Int] = []
    /// Bytes of an inline line already searched for `\n`.
    private var inlineSearched = 0

    /// Creates a parser enforcing `limits`.
    public init(limits: RESPLimits = RESPLimits()) {
        self.limits = limits
    }

    /// What one scan of the readable bytes found.
    private enum Step {
        case needMoreBytes
        /// Skip this many bytes (an empty inline line, `*0`, `*-1`) and scan again.
        case skip(Int)
        /// A multibulk request of this many bytes is complete; its arguments are in `argumentBounds`.
        case multibulk(byteCount: Int)
        /// An inline request of this many bytes (line ending included).
        case inline([InlineArgument], byteCount: Int)
        case failure(RESPProtocolError)
    }

    /// One word of an inline command: in place in the buffer, or unescaped into new bytes (quoted words).
    private enum InlineArgument {
        case slice(start: Int, length: Int)
        case bytes([UInt8])
    }

    /// Consumes one complete command from `buffer` (moving its reader index) and returns its arguments as slices
    /// of the buffer (no copy; quoted inline words are the exception).
    ///
    /// Returns nil when the buffer holds only part of a command: its bytes stay in `buffer` (progress through
    /// them is remembered), and calling again after appending more bytes to the same buffer returns the command.
    /// Never returns an empty array.
    ///
    /// - Throws: `RESPProtocolError` on malformed or over-limit input; the connection should then be closed
    ///   after sending `-ERR <message>`.
    /// - Complexity: O(bytes newly available), amortised over calls.
    public mutating func next(from buffer: inout ByteBuffer) throws(RESPProtocolError) -> [ByteBuffer]? {
        while true {
            let step = buffer.withUnsafeReadableBytes { bytes in self.scan(bytes) }
            switch step {
            case .needMoreBytes:
                return nil
            case .skip(let byteCount):
                buffer.moveReaderIndex(forwardBy: byteCount)
                consumedByteCount += byteCount
            case .multibulk(let byteCount):
                let base = buffer.readerIndex
                var arguments: [ByteBuffer] = []
                arguments.reserveCapacity(announcedArgumentCount)
                var index = 0
                while index < argumentBounds.count {
                    // In bounds by construction: `scan` saw every one of these bytes.
                    arguments.append(
                        buffer.getSlice(at: base + argumentBounds[index], length: argumentBounds[index + 1])!)
                    index += 2
                }
                buffer.moveReaderIndex(forwardBy: byteCount)
                consumedByteCount += byteCount
                announcedArgumentCount = 0
                cursor = 0
                argumentBounds.removeAll(keepingCapacity: argumentBounds.capacity <= 1024)
                return arguments
            case .inline(let words, let byteCount):
                let base = buffer.readerIndex
                var arguments: [ByteBuffer] = []
                arguments.reserveCapacity(words.count)
                for word in words {
                    switch word {
                    case .slice(let start, let length):
                        arguments.append(buffer.getSlice(at: base + start, length: length)!)
                    case .bytes(let bytes):
                        arguments.append(ByteBuffer(bytes: bytes))
                    }
                }
                buffer.moveReaderIndex(forwardBy: byteCount)
                consumedByteCount += byteCount
                inlineSearched = 0
                return arguments
            case .failure(let error):
                throw error
            }
        }
    }

    // MARK: Scanning

    private func error(_ code: RESPProtocolError.Code, _ message: String, at offset: Int) -> Step {
        .failure(RESPProtocolError(code: code, message: message, offset: consumedByteCount + offset))
    }

    private mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Step {
        if announcedArgumentCount == 0 {
            guard !bytes.isEmpty else { return .needMoreBytes }
            guard bytes[0] == ASCII.asterisk else { return scanInline(bytes) }
            switch LengthLine.read(bytes, at: 1) {
            case .incomplete:
                return .needMoreBytes
            case .malformed(let offset):
                return error(.invalidMultibulkLength, "Protocol error: invalid multibulk length", at: offset)
            case .missingLineFeed(let offset):
                return error(.missingCRLF, "Protocol error: expected '\\n' after multibulk length", at: offset)
            case .value(let count, let next):
                // Redis skips `*N` with N <= 0 (protocol.tcl, "Negative multibulk length").
                if count <= 0 { return .skip(next) }
                guard count <= limits.maximumArguments else {
                    return error(
                        .tooManyArguments,
                        "Protocol error: invalid multibulk length (\(count) arguments, limit \(limits.maximumArguments))",
                        at: 1
                    )
                }
                announcedArgumentCount = count
                cursor = next
                argumentBounds.removeAll(keepingCapacity: true)
            }
        }
        let end = bytes.count
        while argumentBounds.count < 2 * announcedArgumentCount {
            guard cursor < end else { return .needMoreBytes }
            guard bytes[cursor] == ASCII.dollar else {
                return error(
                    .expectedBulk, "Protocol error: expected '$', got '\(RESPProtocolError.show(bytes[cursor]))'",
                    at: cursor)
            }
            switch LengthLine.read(bytes, at: cursor + 1) {
            case .incomplete:
                return .needMoreBytes
            case .malformed(let offset):
                return error(.invalidBulkLength, "Protocol error: invalid bulk length", at: offset)
            case .missingLineFeed(let offset):
                return error(.missingCRLF, "Protocol error: expected '\\n' after bulk length", at: offset)
            case .value(let length, let dataStart):
                guard length >= 0 else {
                    return error(.invalidBulkLength, "Protocol error: invalid bulk length", at: cursor + 1)
                }
                guard length <= limits.maximumBulkBytes else {
                    return error(
                        .bulkTooLarge,
                        "Protocol error: invalid bulk length (\(length) bytes, limit \(limits.maximumBulkBytes))",
                        at: cursor + 1
                    )
                }
                let dataEnd = dataStart + length
                // Check each terminator byte as soon as it has arrived: split and whole input fail alike.
                if dataEnd < end && bytes[dataEnd] != ASCII.cr {
                    return error(.missingCRLF, "Protocol error: expected CRLF after bulk data", at: dataEnd)
                }
                if dataEnd + 1 < end && bytes[dataEnd + 1] != ASCII.lf {
                    return error(.missingCRLF, "Protocol error: expected CRLF after bulk data", at: dataEnd + 1)
                }
                guard dataEnd + 2 <= end else { return .needMoreBytes }
                argumentBounds.append(dataStart)
                argumentBounds.append(length)
                cursor = dataEnd + 2
            }
        }
        return .multibulk(byteCount: cursor)
    }

    /// Finds the inline line's end, enforcing `maximumInlineBytes`, and splits it into words.
    private mutating func scanInline(_ bytes: UnsafeRawBufferPointer) -> Step {
        let maximum = limits.maximumInlineBytes
        // The line may hold `maximum` bytes plus "\r\n"; never search further than that.
        let searchEnd = min(bytes.count, maximum + 2)
        var newline = inlineSearched
        while newline < searchEnd && bytes[newline] != ASCII.lf { newline += 1 }
        guard newline < searchEnd else {
            inlineSearched = newline
            // Too long once `maximum + 1` bytes have arrived without `\n`, unless the last is a `\r` that
            // a `\n` may still follow (that `\r` is not part of the line).
            let seen = bytes.count
            if seen > maximum + 1 || (seen == maximum + 1 && bytes[maximum] != ASCII.cr) {
                return error(.inlineTooLong, "Protocol error: too big inline request", at: maximum)
            }
            return .needMoreBytes
        }
        var lineEnd = newline
        if lineEnd > 0 && bytes[lineEnd - 1] == ASCII.cr { lineEnd -= 1 }
        if lineEnd > maximum {
            return error(.inlineTooLong, "Protocol error: too big inline request", at: maximum)
        }
        // Redis splits the line as a C string: a NUL ends it.
        var contentEnd = 0
        while contentEnd < lineEnd && bytes[contentEnd] != 0 { contentEnd += 1 }
        let byteCount = newline + 1
        switch Self.splitArguments(bytes, end: contentEnd) {
        case .success(let words):
            if words.isEmpty {
                inlineSearched = 0
                return .skip(byteCount)
            }
            if words.count > limits.maximumArguments {
                return error(
                    .tooManyArguments,
                    "Protocol error: too many arguments (\(words.count), limit \(limits.maximumArguments))",
                    at: 0
                )
            }
            return .inline(words, byteCount: byteCount)
        case .failure(let offset):
            return error(.unbalancedQuotes, "Protocol error: unbalanced quotes in request", at: offset.value)
        }
    }

    /// An offset as an `Error`, so `splitArguments` can return a `Result`.
    private struct QuoteOffset: Error { var value: Int }

    /// `isspace` of the C locale.
    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == ASCII.space || (byte >= 9 && byte <= 13)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: byte - 48
        case 97...102: byte - 87
        case 65...70: byte - 55
        default: nil
        }
    }

    /// Splits `bytes[0..<end]` into words as Redis's `sdssplitargs` does.
    private static func splitArguments(_ bytes: UnsafeRawBufferPointer, end: Int) -> Result<
        [InlineArgument], QuoteOffset
    > {
        var words: [InlineArgument] = []
        var index = 0
        while true {
            while index < end && isSpace(bytes[index]) { index += 1 }
            if index >= end { return .success(words) }
            // Fast path: a word without quotes is a slice of the buffer.
            let start = index
            while index < end {
                let byte = bytes[index]
                if byte == ASCII.space || byte == ASCII.lf || byte == ASCII.cr || byte == ASCII.tab
                    || byte == ASCII.doubleQuote || byte == ASCII.singleQuote
                {
                    break
                }
                index += 1
            }
            if index >= end || (bytes[index] != ASCII.doubleQuote && bytes[index] != ASCII.singleQuote) {
                words.append(.slice(start: start, length: index - start))
                continue
            }
            // Slow path: quotes somewhere in the word; unescape into new bytes.
            var word = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
            var inDoubleQuotes = false
            var inSingleQuotes = false
            wordLoop: while true {
                if inDoubleQuotes {
                    guard index < end else { return .failure(QuoteOffset(value: index)) }
                    let byte = bytes[index]
                    if byte == ASCII.backslash && index + 3 < end && bytes[index + 1] == UInt8(ascii: "x"),
                        let high = hexValue(bytes[index + 2]), let low = hexValue(bytes[index + 3])
                    {
                        word.append(high << 4 | low)
                        index += 4
                    } else if byte == ASCII.backslash && index + 1 < end {
                        let escaped = bytes[index + 1]
                        switch escaped {
                        case UInt8(ascii: "n"): word.append(ASCII.lf)
                        case UInt8(ascii: "r"): word.append(ASCII.cr)
                        case UInt8(ascii: "t"): word.append(ASCII.tab)
                        case UInt8(ascii: "b"): word.append(8)
                        case UInt8(ascii: "a"): word.append(7)
                        default: word.append(escaped)
                        }
                        index += 2
                    } else if byte == ASCII.doubleQuote {
                        // The closing quote must be followed by a space or nothing at all.
                        if index + 1 < end && !isSpace(bytes[index + 1]) {
                            return .failure(QuoteOffset(value: index + 1))
                        }
                        index += 1
                        break wordLoop
                    } else {
                        word.append(byte)
                        index += 1
                    }
                } else if inSingleQuotes {
                    guard index < end else { return .failure(QuoteOffset(value: index)) }
                    let byte = bytes[index]
                    if byte == ASCII.backslash && index + 1 < end && bytes[index + 1] == ASCII.singleQuote {
                        word.append(ASCII.singleQuote)
                        index += 2
                    } else if byte == ASCII.singleQuote {
                        if index + 1 < end && !isSpace(bytes[index + 1]) {
                            return .failure(QuoteOffset(value: index + 1))
                        }
                        index += 1
                        break wordLoop
                    } else {
                        word.append(byte)
                        index += 1
                    }
                } else {
                    guard index < end else { break wordLoop }
                    let byte = bytes[index]
                    switch byte {
                    case ASCII.space, ASCII.lf, ASCII.cr, ASCII.tab: break wordLoop
                    case ASCII.doubleQuote: inDoubleQuotes = true
                    case ASCII.singleQuote: inSingleQuotes = true
                    default: word.append(byte)
                    }
                    index += 1
                }
            }
            words.append(.bytes(word))
        }
    }
}
