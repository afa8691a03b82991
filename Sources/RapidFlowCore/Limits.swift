/// Bounds on what a request may ask for, so no single request can exhaust the service.
public struct Limits: Sendable, Equatable {
    public var maxSteps: Int
    public var maxScriptBytes: Int
    public var maxEnvironmentEntries: Int
    public var maxBodyBytes: Int
    /// Names and values of all request headers together. The HTTP parser's own bounds are
    /// `maxParsedHeaderBytes` and `maxHeaderFields` (past them the answer is a 431); below
    /// them this limit answers with a message.
    public var maxHeaderBytes: Int
    public var maxParsedHeaderBytes: Int
    public var maxHeaderFields: Int
    /// The longest `timeout_seconds` or `kill_timeout_seconds` a job may ask for: a week. Also
    /// keeps the value convertible to a `Duration` without overflow.
    public var maxTimeoutSeconds: Double

    public init(
        maxSteps: Int = 200, maxScriptBytes: Int = 64 * 1024, maxEnvironmentEntries: Int = 200, maxBodyBytes: Int = 1 << 20,
        maxHeaderBytes: Int = 32 * 1024, maxParsedHeaderBytes: Int = 1 << 20, maxHeaderFields: Int = 1000,
        maxTimeoutSeconds: Double = 7 * 24 * 60 * 60
    ) {
        self.maxSteps = maxSteps
        self.maxScriptBytes = maxScriptBytes
        self.maxEnvironmentEntries = maxEnvironmentEntries
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxParsedHeaderBytes = maxParsedHeaderBytes
        self.maxHeaderFields = maxHeaderFields
        self.maxTimeoutSeconds = maxTimeoutSeconds
    }

    public static let `default` = Limits()
}

extension Duration {
    /// Whole and fractional seconds, for `Date` arithmetic and messages.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// A timeout or grace period given in seconds (a config, a request, a stored job), clamped to
    /// the longest one allowed, so a value stored before the bound was checked cannot overflow.
    public static func clampedSeconds(_ seconds: Double, limits: Limits = .default) -> Duration {
        .milliseconds(Int(min(max(seconds, 0), limits.maxTimeoutSeconds) * 1000))
    }
}
