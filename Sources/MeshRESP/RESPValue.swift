/// The reply protocol a connection speaks: RESP2 (the default) or RESP3 (after `HELLO 3`).
public enum RESPVersion: Sendable, Hashable {
    case resp2, resp3
}

/// A reply value of RESP2 or RESP3 (https://redis.io/docs/latest/develop/reference/protocol-spec/).
///
/// Writing one in RESP2 downgrades the RESP3-only types as Redis does: see `ByteBuffer.writeRESP(_:version:)`.
public indirect enum RESPValue: Sendable, Hashable {
    /// `+text`: a line without CR or LF (writers replace them with spaces).
    case simpleString(String)
    /// `-PREFIX message` (RESP3 blob errors `!` parse to this too); the text includes its prefix, e.g. `ERR ...`.
    case error(String)
    /// `:n`.
    case integer(Int64)
    /// `$len` followed by the bytes.
    case bulkString([UInt8])
    /// RESP3 `_`; RESP2 `$-1` (and `*-1`, which parses to this too).
    case null
    /// `*n` followed by the elements.
    case array([RESPValue])
    /// RESP3 `,`: `inf`, `-inf`, `nan` or a decimal.
    case double(Double)
    /// RESP3 `#t` / `#f`.
    case boolean(Bool)
    /// RESP3 `%n`: alternating key, value (so twice as many elements as pairs).
    case map([RESPValue])
    /// RESP3 `~n`.
    case set([RESPValue])
    /// RESP3 `>n`: out-of-band data (pub/sub messages, invalidations).
    case push([RESPValue])
    /// RESP3 `=len\r\nfmt:text`: `format` is three bytes, e.g. `txt` or `mkd`.
    case verbatimString(format: String, text: String)
    /// RESP3 `(`: an integer of any size, as its decimal text.
    case bigNumber(String)
}
