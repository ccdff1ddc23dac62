/// Appends the binary encoding: little-endian fixed-width integers and unsigned
/// LEB128 varints.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public internal(set) var bytes: [UInt8]

    /// Creates an empty writer, optionally reserving capacity.
    public init(reservingCapacity capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends one byte.
    public mutating func writeByte(_ byte: UInt8) {
        bytes.append(byte)
    }

    /// Appends raw bytes.
    public mutating func writeBytes(_ raw: some Sequence<UInt8>) {
        bytes.append(contentsOf: raw)
    }

    /// Appends an unsigned LEB128 varint (1 to 10 bytes).
    public mutating func writeVarint(_ value: UInt64) {
        var remaining = value
        while remaining >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        bytes.append(UInt8(remaining))
    }

    /// Appends a signed integer as a zig-zag varint.
    public mutating func writeSignedVarint(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Appends a count (a varint).
    public mutating func writeCount(_ count: Int) {
        writeVarint(UInt64(count))
    }

    /// Appends a fixed-width little-endian 64-bit integer.
    public mutating func writeUInt64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a fixed-width little-endian 32-bit integer.
    public mutating func writeUInt32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a length-prefixed byte string.
    public mutating func writeLengthPrefixed(_ raw: some Collection<UInt8>) {
        writeCount(raw.count)
        bytes.append(contentsOf: raw)
    }

    /// Appends a length-prefixed UTF-8 string.
    public mutating func writeString(_ string: String) {
        writeLengthPrefixed(Array(string.utf8))
    }
}
