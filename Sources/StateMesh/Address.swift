/// An object's address, `fabric://DOMAIN/PATH`: the causal domain it is replicated in and its key there.
///
/// The domain is a non-empty name without `/`; the path is non-empty and may contain `/`
/// (e.g. `fabric://fleet/agent-17/status` is key `agent-17/status` of domain `fleet`).
public struct MeshAddress: Hashable, Sendable, CustomStringConvertible {
    /// The scheme every address starts with.
    public static let scheme = "fabric://"

    /// The causal domain.
    public let domain: String
    /// The key inside the domain.
    public let path: String

    /// Parses `fabric://DOMAIN/PATH`.
    ///
    /// - Throws: `MeshError(.invalidAddress)` naming what is wrong.
    public init(_ text: String) throws(MeshError) {
        guard text.hasPrefix(Self.scheme) else {
            throw MeshError(.invalidAddress, "address \"\(text)\" does not start with \(Self.scheme)")
        }
        let rest = text.dropFirst(Self.scheme.count)
        guard let slash = rest.firstIndex(of: "/") else {
            throw MeshError(.invalidAddress, "address \"\(text)\" has no path after the domain")
        }
        try self.init(domain: String(rest[..<slash]), path: String(rest[rest.index(after: slash)...]))
    }

    /// An address from its parts.
    ///
    /// - Throws: `MeshError(.invalidAddress)` for an empty domain or path, or a domain containing `/`.
    public init(domain: String, path: String) throws(MeshError) {
        // Bytes, not characters: a "/" followed by a combining mark is one character that is not "/".
        guard !domain.isEmpty, !domain.utf8.contains(UInt8(ascii: "/")) else {
            throw MeshError(.invalidAddress, "domain \"\(domain)\" must be non-empty and contain no /")
        }
        guard !path.isEmpty else { throw MeshError(.invalidAddress, "address in \(domain) has an empty path") }
        guard path.utf8.count <= 4_096 else {
            throw MeshError(.invalidAddress, "path of \(path.utf8.count) bytes exceeds 4096")
        }
        self.domain = domain
        self.path = path
    }

    public var description: String { "\(Self.scheme)\(domain)/\(path)" }
}

/// A pattern over addresses for change subscriptions: `fabric://DOMAIN/` followed by a path
/// pattern whose segments (split at `/`) are literal, `*` (exactly one segment) or `**`
/// (any number of segments, including none). `fabric://fleet/**` matches everything in
/// `fleet`; `fabric://*/agents/*/status` matches `status` of every agent in every domain.
public struct AddressPattern: Hashable, Sendable, CustomStringConvertible {
    let domainSegment: String
    let segments: [Substring]
    /// The pattern as written.
    public let description: String

    /// Parses a pattern.
    ///
    /// - Throws: `MeshError(.invalidAddress)` when it is not `fabric://DOMAIN/PATTERN`.
    public init(_ text: String) throws(MeshError) {
        guard text.hasPrefix(MeshAddress.scheme) else {
            throw MeshError(.invalidAddress, "pattern \"\(text)\" does not start with \(MeshAddress.scheme)")
        }
        let rest = text.dropFirst(MeshAddress.scheme.count)
        guard let slash = rest.firstIndex(of: "/"), slash != rest.startIndex else {
            throw MeshError(.invalidAddress, "pattern \"\(text)\" needs a domain and a path pattern")
        }
        let path = rest[rest.index(after: slash)...]
        guard !path.isEmpty else { throw MeshError(.invalidAddress, "pattern \"\(text)\" has an empty path") }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        // Bounds keep matching cheap (each `**` may try every split of the path).
        guard segments.count <= 64, segments.filter({ $0 == "**" }).count <= 2 else {
            throw MeshError(.invalidAddress, "pattern \"\(text)\" has over 64 segments or over two **")
        }
        self.domainSegment = String(rest[..<slash])
        self.segments = segments
        self.description = text
    }

    /// Whether the pattern can match keys of `domain`.
    public func matches(domain: String) -> Bool { domainSegment == "*" || domainSegment == "**" || domainSegment == domain }

    /// Whether `address` matches.
    public func matches(_ address: MeshAddress) -> Bool {
        matches(domain: address.domain) && matches(path: address.path)
    }

    func matches(path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return Self.match(segments[...], parts[...])
    }

    private static func match(_ pattern: ArraySlice<Substring>, _ parts: ArraySlice<Substring>) -> Bool {
        guard let head = pattern.first else { return parts.isEmpty }
        if head == "**" {
            let rest = pattern.dropFirst()
            if rest.isEmpty { return true }
            var tail = parts
            while true {
                if match(rest, tail) { return true }
                guard !tail.isEmpty else { return false }
                tail = tail.dropFirst()
            }
        }
        guard let part = parts.first else { return false }
        guard head == "*" || head == part else { return false }
        return match(pattern.dropFirst(), parts.dropFirst())
    }
}
