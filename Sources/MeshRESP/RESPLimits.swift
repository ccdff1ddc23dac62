/// Bounds on what a peer may make the RESP parsers buffer or allocate.
///
/// Every limit is checked against the length a peer *announces* (`*N`, `$N`) before anything of that size
/// is allocated, so a `*2000000000\r\n` header costs nothing but the error.
/// Redis's own bounds, for comparison (networking.c): `1024*1024` arguments in old releases and `INT_MAX`
/// today, `proto-max-bulk-len` 512 MiB, `PROTO_INLINE_MAX_SIZE` 64 KiB.
///
/// ### Invariants
/// All three limits are at least 1; `init` clamps smaller values to 1.
public struct RESPLimits: Sendable, Hashable {
    /// The most arguments one request may have (`*N` of a multibulk request, words of an inline one);
    /// the reply parser uses it as the most elements (or map pairs) of one aggregate.
    public var maximumArguments: Int
    /// The most bytes one bulk string may announce (`$N`): per request argument, and per reply bulk string.
    public var maximumBulkBytes: Int
    /// The most bytes of one inline command line (without its line ending); the reply parser uses it as the
    /// longest simple line (`+`, `-`, `:`, `,`, `(`) it accepts.
    public var maximumInlineBytes: Int

    /// Creates limits; the defaults suit a server: 65 536 arguments, 8 MiB per argument, 64 KiB per inline line.
    public init(maximumArguments: Int = 65_536, maximumBulkBytes: Int = 8 << 20, maximumInlineBytes: Int = 64 << 10) {
        self.maximumArguments = max(1, maximumArguments)
        self.maximumBulkBytes = max(1, maximumBulkBytes)
        self.maximumInlineBytes = max(1, maximumInlineBytes)
    }
}

/// A malformed or over-limit RESP input: what was wrong (`code`), the Redis-style text to send the client
/// (`message`, sent as `-ERR <message>`), and where in the connection's byte stream it was found (`offset`).
///
/// After a parser throws one, its state is undefined: close the connection, as Redis does.
public struct RESPProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of protocol error; an extensible set of static values rather than an enum, so new codes do
    /// not break callers' `switch`es.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// `*N` is not a valid integer (letters, leading zeros, `-0`, over 18 digits, no CRLF).
        public static let invalidMultibulkLength = Code("invalidMultibulkLength")
        /// `$N` is not a valid non-negative integer.
        public static let invalidBulkLength = Code("invalidBulkLength")
        /// An argument of a multibulk request does not start with `$`.
        public static let expectedBulk = Code("expectedBulk")
        /// A `\r` is not followed by `\n`, or bulk data is not followed by `\r\n`.
        public static let missingCRLF = Code("missingCRLF")
        /// More arguments (or aggregate elements) than `RESPLimits.maximumArguments`.
        public static let tooManyArguments = Code("tooManyArguments")
        /// A bulk string longer than `RESPLimits.maximumBulkBytes`.
        public static let bulkTooLarge = Code("bulkTooLarge")
        /// An inline command line longer than `RESPLimits.maximumInlineBytes`.
        public static let inlineTooLong = Code("inlineTooLong")
        /// An inline command with an unterminated quote, or a closing quote not followed by a space.
        public static let unbalancedQuotes = Code("unbalancedQuotes")
        /// A reply that is not valid RESP2/RESP3 (unknown type byte, bad integer, double, boolean, verbatim...).
        public static let invalidReply = Code("invalidReply")
        /// A reply nested deeper than the reply parser's `maximumDepth`.
        public static let nestingTooDeep = Code("nestingTooDeep")
    }

    /// What kind of error this is.
    public let code: Code
    /// Redis-style text, e.g. `Protocol error: invalid multibulk length`; contains no CR or LF.
    public let message: String
    /// Bytes into the connection's stream (counted by the parser since it was created) where the error was found.
    public let offset: Int

    /// Creates an error; `message` should not contain CR or LF (writers replace them anyway).
    public init(code: Code, message: String, offset: Int) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    /// The message, code and offset: `Protocol error: ... (code at byte N)`.
    public var description: String { "\(message) (\(code) at byte \(offset))" }
}

extension RESPProtocolError {
    /// A byte as Redis's `%c` would show it, but escaped when not printable so messages stay one line.
    static func show(_ byte: UInt8) -> String {
        if byte >= 0x20 && byte < 0x7F { return String(UnicodeScalar(byte)) }
        let hex: [Character] = Array("0123456789abcdef")
        return "\\x" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 15)])
    }
}
