/// Appends the binary encoding: little-endian fixed-width integers and unsigned
/// LEB128 varints.
public struct ByteWriter: Sendable {
    @usableFromInline
    var storage: [UInt8]

    /// The bytes written so far.
    @inlinable
    public var bytes: [UInt8] { storage }

    /// How many bytes were written so far.
    @inlinable
    public var count: Int { storage.count }

    /// Creates an empty writer, optionally reserving capacity.
    @inlinable
    public init(reservingCapacity capacity: Int = 0) {
        storage = []
        storage.reserveCapacity(capacity)
    }

    /// Makes room for `additionalCount` more bytes without reallocating.
    @inlinable
    public mutating func reserveCapacity(additional additionalCount: Int) {
        storage.reserveCapacity(storage.count + additionalCount)
    }

    /// Appends one byte.
    @inlinable
    public mutating func writeByte(_ byte: UInt8) {
        storage.append(byte)
    }

    /// Appends raw bytes.
    @inlinable
    public mutating func writeBytes(_ raw: some Sequence<UInt8>) {
        storage.append(contentsOf: raw)
    }

    /// Appends an unsigned LEB128 varint (1 to 10 bytes).
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var remaining = value
        while remaining >= 0x80 {
            storage.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        storage.append(UInt8(remaining))
    }

    /// Appends a signed integer as a zig-zag varint.
    @inlinable
    public mutating func writeSignedVarint(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Appends a count (a varint).
    @inlinable
    public mutating func writeCount(_ count: Int) {
        writeVarint(UInt64(count))
    }

    /// Appends a fixed-width little-endian 64-bit integer.
    @inlinable
    public mutating func writeUInt64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { storage.append(contentsOf: $0) }
    }

    /// Appends a fixed-width little-endian 32-bit integer.
    @inlinable
    public mutating func writeUInt32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { storage.append(contentsOf: $0) }
    }

    /// Appends a length-prefixed byte string.
    @inlinable
    public mutating func writeLengthPrefixed(_ raw: some Collection<UInt8>) {
        writeCount(raw.count)
        storage.append(contentsOf: raw)
    }

    /// Appends what `body` writes, prefixed with its length as a varint, and returns that length.
    ///
    /// The body is written in place after a one-byte prefix, which is widened (moving the body) only
    /// when the body is 128 bytes or longer: no scratch buffer to encode into and copy from.
    @inlinable
    @discardableResult
    public mutating func writeLengthPrefixed(_ body: (inout ByteWriter) throws -> Void) rethrows -> Int {
        let prefixAt = storage.count
        storage.append(0)
        try body(&self)
        let length = storage.count - prefixAt - 1
        if length < 0x80 {
            storage[prefixAt] = UInt8(length)
        } else {
            var prefix = ByteWriter(reservingCapacity: 10)
            prefix.writeVarint(UInt64(length))
            storage.replaceSubrange(prefixAt..<prefixAt + 1, with: prefix.storage)
        }
        return length
    }

    /// Appends a length-prefixed UTF-8 string.
    @inlinable
    public mutating func writeString(_ string: String) {
        var copy = string
        copy.withUTF8 { utf8 in
            writeCount(utf8.count)
            storage.append(contentsOf: utf8)
        }
    }
}
