import MeshCRDT

/// A type that can be an element, key or value of an encoded CRDT.
///
/// Conformers write a self-delimiting encoding (the decoder knows where it ends
/// without a length prefix from the container) and read it back without trapping.
/// Set elements and map keys are ordered by their encoded bytes, so the encoding
/// must be injective: two values that are not `==` must encode differently, and a
/// value must have exactly one encoding that `init(from:)` accepts.
///
/// The built-in conformances and their encodings (the wire type tag in brackets):
///
/// | type | tag | encoding |
/// | --- | --- | --- |
/// | `UInt64` | `0x01` | unsigned LEB128 varint |
/// | `Int64` | `0x02` | zig-zag LEB128 varint |
/// | `Int` | `0x03` | zig-zag LEB128 varint (64-bit range) |
/// | `UInt32` | `0x04` | unsigned LEB128 varint, at most `UInt32.max` |
/// | `Int32` | `0x05` | zig-zag LEB128 varint, within `Int32` |
/// | `Bool` | `0x06` | one byte, `0` or `1` |
/// | `String` | `0x07` | varint byte count, then the UTF-8 code units |
/// | `[UInt8]` | `0x08` | varint byte count, then the bytes |
/// | `ReplicaID` | `0x09` | 8 bytes, little-endian |
/// | `UInt8` | `0x0a` | one byte |
///
/// Tags `0x01`–`0x7f` are reserved for StateMesh; applications conforming their
/// own types pick tags in `0x80`–`0xff`.
///
/// - Note: Swift compares strings by Unicode canonical equivalence, but a string
///   is encoded as the UTF-8 code units it holds. Two canonically equivalent
///   strings with different code units (NFC and NFD forms) are `==` yet encode
///   differently, so normalize strings before they enter a replicated value if
///   byte-identical encodings across replicas matter. A decoder refuses a
///   collection holding two such spellings of one element (`.notCanonical`).
public protocol WireCodable: Hashable, Sendable {
    /// The byte naming this type in record headers, so that decoding a record
    /// written for another element type fails with `.wrongKind`.
    static var wireTypeTag: UInt8 { get }

    /// A lower bound of the encoded size in bytes, used to check counts against
    /// the bytes left before anything is allocated. Zero is always safe.
    static var minimumEncodedByteCount: Int { get }

    /// Appends the encoding of `self`.
    func encode(to writer: inout ByteWriter)

    /// Reads one value.
    ///
    /// - Throws: `CodecError` when the input is truncated, malformed, out of range
    ///   or not in its one canonical form.
    init(from reader: inout ByteReader) throws(CodecError)
}

extension WireCodable {
    /// Zero: the safe default lower bound.
    public static var minimumEncodedByteCount: Int { 0 }
}

extension UInt64: WireCodable {
    /// `0x01`.
    public static var wireTypeTag: UInt8 { 0x01 }
    /// One byte.
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends an unsigned varint.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeVarint(self) }

    /// Reads an unsigned varint.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        self = try reader.readVarint("UInt64")
    }
}

extension Int64: WireCodable {
    /// `0x02`.
    public static var wireTypeTag: UInt8 { 0x02 }
    /// One byte.
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends a zig-zag varint.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeSignedVarint(self) }

    /// Reads a zig-zag varint.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        self = try reader.readSignedVarint("Int64")
    }
}

extension Int: WireCodable {
    /// `0x03`.
    public static var wireTypeTag: UInt8 { 0x03 }
    /// One byte.
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends a zig-zag varint of the 64-bit value.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeSignedVarint(Int64(self)) }

    /// Reads a zig-zag varint.
    ///
    /// - Throws: `.invalidValue` when the value does not fit this platform's `Int`.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        let start = reader.offset
        let wide = try reader.readSignedVarint("Int")
        guard let value = Int(exactly: wide) else {
            throw CodecError(.invalidValue, at: start, "Int \(wide) does not fit this platform's Int")
        }
        self = value
    }
}

extension UInt32: WireCodable {
    /// `0x04`.
    public static var wireTypeTag: UInt8 { 0x04 }
    /// One byte.
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends an unsigned varint.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeVarint(UInt64(self)) }

    /// Reads an unsigned varint.
    ///
    /// - Throws: `.invalidValue` when the value exceeds `UInt32.max`.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        let start = reader.offset
        let wide = try reader.readVarint("UInt32")
        guard let value = UInt32(exactly: wide) else {
            throw CodecError(.invalidValue, at: start, "UInt32 \(wide) exceeds \(UInt32.max)")
        }
        self = value
    }
}

extension Int32: WireCodable {
    /// `0x05`.
    public static var wireTypeTag: UInt8 { 0x05 }
    /// One byte.
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends a zig-zag varint.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeSignedVarint(Int64(self)) }

    /// Reads a zig-zag varint.
    ///
    /// - Throws: `.invalidValue` when the value is outside the range of `Int32`.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        let start = reader.offset
        let wide = try reader.readSignedVarint("Int32")
        guard let value = Int32(exactly: wide) else {
            throw CodecError(.invalidValue, at: start, "Int32 \(wide) is out of range")
        }
        self = value
    }
}

extension Bool: WireCodable {
    /// `0x06`.
    public static var wireTypeTag: UInt8 { 0x06 }
    /// One byte.
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends `0` or `1`.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeByte(self ? 1 : 0) }

    /// Reads `0` or `1`.
    ///
    /// - Throws: `.invalidValue` for any other byte.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        let start = reader.offset
        switch try reader.readByte("Bool") {
        case 0: self = false
        case 1: self = true
        case let other: throw CodecError(.invalidValue, at: start, "Bool byte is \(other), not 0 or 1")
        }
    }
}

extension String: WireCodable {
    /// `0x07`.
    public static var wireTypeTag: UInt8 { 0x07 }
    /// One byte (the length of the empty string).
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends the UTF-8 byte count as a varint, then the code units.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeString(self) }

    /// Reads a length-prefixed UTF-8 string of at most `limits.maximumElementBytes`.
    ///
    /// - Throws: `.limitExceeded` for an oversized length, `.invalidUTF8`.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        self = try reader.readString("String")
    }
}

extension Array: WireCodable where Element == UInt8 {
    /// `0x08`.
    public static var wireTypeTag: UInt8 { 0x08 }
    /// One byte (the length of the empty array).
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends the byte count as a varint, then the bytes.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeLengthPrefixed(self) }

    /// Reads a length-prefixed byte string of at most `limits.maximumElementBytes`.
    ///
    /// - Throws: `.limitExceeded` for an oversized length, `.truncated`.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        self = try reader.readLengthPrefixed("[UInt8]")
    }
}

extension ReplicaID: WireCodable {
    /// `0x09`.
    public static var wireTypeTag: UInt8 { 0x09 }
    /// Eight bytes.
    public static var minimumEncodedByteCount: Int { 8 }

    /// Appends the identifier as 8 little-endian bytes.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeUInt64(rawValue) }

    /// Reads 8 little-endian bytes.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        self.init(try reader.readUInt64("ReplicaID"))
    }
}

extension UInt8: WireCodable {
    /// `0x0a`.
    public static var wireTypeTag: UInt8 { 0x0a }
    /// One byte.
    public static var minimumEncodedByteCount: Int { 1 }

    /// Appends the byte.
    @inlinable
    public func encode(to writer: inout ByteWriter) { writer.writeByte(self) }

    /// Reads one byte.
    @inlinable
    public init(from reader: inout ByteReader) throws(CodecError) {
        self = try reader.readByte("UInt8")
    }
}
