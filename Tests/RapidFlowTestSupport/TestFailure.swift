/// A test's own failure: a condition it waited for did not come, a setup step went wrong.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
