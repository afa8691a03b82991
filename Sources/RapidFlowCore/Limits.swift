/// Bounds on what a request may ask for, so no single request can exhaust the service.
public struct Limits: Sendable, Equatable {
    public var maxSteps: Int
    public var maxScriptBytes: Int
    public var maxEnvironmentEntries: Int
    public var maxBodyBytes: Int

    public init(maxSteps: Int = 200, maxScriptBytes: Int = 64 * 1024, maxEnvironmentEntries: Int = 200, maxBodyBytes: Int = 1 << 20) {
        self.maxSteps = maxSteps
        self.maxScriptBytes = maxScriptBytes
        self.maxEnvironmentEntries = maxEnvironmentEntries
        self.maxBodyBytes = maxBodyBytes
    }

    public static let `default` = Limits()
}
