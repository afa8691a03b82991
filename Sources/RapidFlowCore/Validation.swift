/// Checks for values that reach a command line: each refusal happens before anything runs.
public enum RefValidation {
    /// A git ref (branch, tag or sha) as `git check-ref-format` would accept it, and never an option.
    public static func checkRef(_ ref: String, field: String) throws(RapidFlowError) {
        let bad: RapidFlowError = .init(.invalidRequest, "'\(field)' value '\(ref)' is not a valid git ref")
        if ref.isEmpty || ref.hasPrefix("-") || ref.hasPrefix("/") || ref.hasSuffix("/") || ref.hasSuffix(".")
            || ref.hasSuffix(".lock") || ref.contains("..") || ref.contains("@{") || ref.contains("//") || ref == "@"
        {
            throw bad
        }
        for scalar in ref.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7f { throw bad }
            if " ~^:?*[\\".unicodeScalars.contains(scalar) { throw bad }
        }
        for component in ref.split(separator: "/") where component.hasPrefix(".") {
            throw bad
        }
    }
}

public enum EnvironmentValidation {
    /// A POSIX environment variable name.
    public static func checkName(_ name: String, field: String) throws(RapidFlowError) {
        let scalars = Array(name.unicodeScalars)
        let valid = !scalars.isEmpty && scalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || $0 == "_" || ("0"..."9").contains($0)) }
            && !("0"..."9").contains(scalars[0])
        guard valid else {
            throw .init(.invalidConfig, "\(field) name '\(name)' is not a valid variable name (letters, digits, '_', not starting with a digit)")
        }
    }

    static func checkCount(_ count: Int, limits: Limits) throws(RapidFlowError) {
        guard count <= limits.maxEnvironmentEntries else {
            throw .init(.invalidConfig, "env has \(count) entries; at most \(limits.maxEnvironmentEntries) are allowed")
        }
    }

    /// Keys whose values are treated as secrets: masked in responses and output.
    public static func looksSecret(_ key: String) -> Bool {
        let upper = key.uppercased()
        return ["_TOKEN", "_PASSWORD", "_SECRET", "_KEY"].contains { upper.hasSuffix($0) }
            || ["TOKEN", "PASSWORD", "SECRET"].contains(upper)
    }
}

/// What a `git` step clones: stored as the step's content so the step reads as what it does.
public struct GitClonePlan: Sendable, Equatable, CustomStringConvertible {
    public var url: String
    public var ref: String?

    public init(url: String, ref: String?) {
        self.url = url
        self.ref = ref
    }

    public var description: String {
        if let ref { "git clone \(url) (ref \(ref))" } else { "git clone \(url)" }
    }
}
