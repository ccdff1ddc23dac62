/// A decoding failure: what was wrong and at which byte offset.
///
/// Decoders never trap on bad input; every rejection is one of these. The code
/// is an extensible struct, so new failure kinds do not break clients.
public struct CodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The input ended before the value did.
        public static let truncated = Code(name: "truncated")
        /// A varint is longer than 10 bytes or overflows 64 bits.
        public static let malformedVarint = Code(name: "malformedVarint")
        /// The record's version byte is not one this decoder reads.
        public static let unsupportedVersion = Code(name: "unsupportedVersion")
        /// The record's kind tag does not name the expected type.
        public static let wrongKind = Code(name: "wrongKind")
        /// A count or length exceeds a configured limit or the bytes left.
        public static let limitExceeded = Code(name: "limitExceeded")
        /// Collections must be sorted and free of repeats (deterministic encoding).
        public static let notCanonical = Code(name: "notCanonical")
        /// The decoded parts do not form a valid value (e.g. a dot outside the context).
        public static let invalidValue = Code(name: "invalidValue")
        /// Bytes remain after the value ended.
        public static let trailingBytes = Code(name: "trailingBytes")
        /// A string is not valid UTF-8.
        public static let invalidUTF8 = Code(name: "invalidUTF8")

        /// The code's name, e.g. `truncated`.
        public var description: String { name }
    }

    /// The kind of failure.
    public let code: Code
    /// The byte offset, from the start of the input, where the failure was found.
    public let offset: Int
    /// What was being read and why it was refused.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, at offset: Int, _ message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    /// `code at byte offset: message`.
    public var description: String { "\(code) at byte \(offset): \(message)" }
}

/// Limits a decoder enforces on untrusted input.
///
/// Every count read from the input is checked against these and against the bytes
/// left (each element takes at least one byte), so a decoder never allocates more
/// than the input justifies.
public struct CodecLimits: Hashable, Sendable {
    /// Most bytes in one input.
    public var maximumInputBytes: Int
    /// Most elements (set members, map keys, dots, values) in one collection.
    public var maximumElements: Int
    /// Most replicas in one version vector, counter or dot cloud.
    public var maximumReplicas: Int
    /// Most bytes in one string or byte-array element.
    public var maximumElementBytes: Int

    /// The defaults: 64 MiB inputs, 4 Mi elements, 65,536 replicas, 1 MiB elements.
    public static let `default` = CodecLimits(
        maximumInputBytes: 64 << 20, maximumElements: 4 << 20, maximumReplicas: 1 << 16,
        maximumElementBytes: 1 << 20)

    /// Creates limits.
    public init(maximumInputBytes: Int, maximumElements: Int, maximumReplicas: Int, maximumElementBytes: Int) {
        precondition(maximumInputBytes >= 0 && maximumElements >= 0 && maximumReplicas >= 0 && maximumElementBytes >= 0)
        self.maximumInputBytes = maximumInputBytes
        self.maximumElements = maximumElements
        self.maximumReplicas = maximumReplicas
        self.maximumElementBytes = maximumElementBytes
    }
}
