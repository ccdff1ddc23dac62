import MeshReplication

/// A failure of a node operation: an extensible code, a message for people and an optional cause.
public struct MeshError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// An address or pattern is not `fabric://DOMAIN/PATH`.
        public static let invalidAddress = Code(name: "invalidAddress")
        /// The address holds an object of another type.
        public static let typeMismatch = Code(name: "typeMismatch")
        /// The domain is not replicated by this node.
        public static let unknownDomain = Code(name: "unknownDomain")
        /// The write is durable here but did not reach its write concern in time.
        public static let writeConcernTimeout = Code(name: "writeConcernTimeout")
        /// A read from several replicas did not get enough answers in time.
        public static let readTimeout = Code(name: "readTimeout")
        /// Local storage failed; the node refuses writes until restarted.
        public static let storageFailed = Code(name: "storageFailed")
        /// The node is not running (not started yet, or shut down).
        public static let notRunning = Code(name: "notRunning")
        /// The configuration is invalid.
        public static let invalidConfiguration = Code(name: "invalidConfiguration")
        /// A bound was exceeded (pending writes, subscribers, value size).
        public static let limitExceeded = Code(name: "limitExceeded")
        /// A change subscriber fell too far behind; resubscribe from its last position.
        public static let subscriberTooSlow = Code(name: "subscriberTooSlow")
        /// The request is not valid for this object or node.
        public static let invalidRequest = Code(name: "invalidRequest")

        public var description: String { name }
    }

    /// The kind of failure.
    public let code: Code
    /// What happened.
    public let message: String
    /// The underlying error, if any.
    public let cause: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { "\($0)" }
    }

    init(_ error: ReplicationError) {
        let code: Code =
            switch error.code {
            case .typeMismatch: .typeMismatch
            case .unknownDomain: .unknownDomain
            case .writeConcernTimeout: .writeConcernTimeout
            case .readTimeout: .readTimeout
            case .limitExceeded: .limitExceeded
            default: .invalidRequest
            }
        self.code = code
        self.message = error.message
        self.cause = error.cause
    }

    public var description: String {
        cause.map { "\(code): \(message) (cause: \($0))" } ?? "\(code): \(message)"
    }
}
