/// ASCII bytes the parsers look for.
enum ASCII {
    static let cr: UInt8 = 13  // \r
    static let lf: UInt8 = 10  // \n
    static let space: UInt8 = 32
    static let tab: UInt8 = 9
    static let zero: UInt8 = 48
    static let minus: UInt8 = 45
    static let plus: UInt8 = 43
    static let asterisk: UInt8 = 42
    static let dollar: UInt8 = 36
    static let doubleQuote: UInt8 = 34
    static let singleQuote: UInt8 = 39
    static let backslash: UInt8 = 92
    static let colon: UInt8 = 58
}

/// What reading a `<integer>\r\n` line found.
enum LengthLine {
    /// The line is not complete yet (digits run to the end of the bytes, or `\r` is the last byte).
    case incomplete
    /// Not a valid integer; `offset` is the first offending byte.
    case malformed(offset: Int)
    /// A valid integer ended by `\r` that is not followed by `\n`; `offset` is the byte after `\r`.
    case missingLineFeed(offset: Int)
    /// The integer, and the offset just past its `\r\n`.
    case value(Int, next: Int)

    /// Longest digit string accepted: 18 digits cannot overflow `Int64`, and every length we allow is far shorter.
    static let maximumDigits = 18

    /// Reads a length line at `start` with the rules of Redis's `string2ll`: an optional `-`, then `0` alone or
    /// digits not starting with `0` (so no `+`, no leading zeros, no `-0`, no spaces), then `\r\n`.
    ///
    /// Returns `.incomplete` only while the bytes seen so far could still become a valid line, so feeding the
    /// same stream in pieces finds the same outcome as feeding it whole.
    static func read(_ bytes: UnsafeRawBufferPointer, at start: Int) -> LengthLine {
        let end = bytes.count
        var index = start
        var isNegative = false
        if index < end && bytes[index] == ASCII.minus {
            isNegative = true
            index += 1
        }
        let digitsStart = index
        var value = 0
        while index < end {
            let digit = bytes[index] &- ASCII.zero
            if digit < 10 {
                let digitCount = index - digitsStart
                if digitCount >= maximumDigits { return .malformed(offset: index) }
                // "0" may only stand alone; "-0" is not a number either.
                if digitCount == 1 && value == 0 { return .malformed(offset: index) }
                if digitCount == 0 && digit == 0 && isNegative { return .malformed(offset: index) }
                value = value &* 10 &+ Int(digit)
                index += 1
            } else if bytes[index] == ASCII.cr {
                if index == digitsStart { return .malformed(offset: index) }
                guard index + 1 < end else { return .incomplete }
                guard bytes[index + 1] == ASCII.lf else { return .missingLineFeed(offset: index + 1) }
                return .value(isNegative ? -value : value, next: index + 2)
            } else {
                return .malformed(offset: index)
            }
        }
        return .incomplete
    }
}
