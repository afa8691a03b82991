import Foundation
import Yams

/// `rapidflow serve --config FILE`: a YAML mapping whose keys are `serve`'s long flag names
/// (`port: 3000`, `data-dir: /var/lib/rapidflow`, `allow-local-repos: true`). A list value
/// (`nomad-datacenters: [dc1, dc2]`) stands for the comma-separated flag value.
public struct ServiceConfigFile: Sendable {
    public let path: String
    /// Each key's value as the flag would take it.
    public let values: [String: String]

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServiceConfigFileError("cannot read the config file \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ServiceConfigFileError("\(path) is not UTF-8 text") }
        try self.init(path: path, yaml: text)
    }

    public init(path: String, yaml: String) throws {
        self.path = path
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ServiceConfigFileError("\(path) is not valid YAML: \(error)")
        }
        guard let root else {
            values = [:]
            return
        }
        guard let mapping = root.mapping else {
            throw ServiceConfigFileError("\(path) must be a mapping of serve flags to values, e.g. `port: 3000`")
        }
        var values: [String: String] = [:]
        for (key, value) in mapping {
            guard let name = key.string, !name.isEmpty else { throw ServiceConfigFileError("\(path): every key must be a flag name") }
            let flag = name.hasPrefix("--") ? String(name.dropFirst(2)) : name
            guard values[flag] == nil else { throw ServiceConfigFileError("\(path): '\(flag)' is set twice") }
            switch value {
            case .scalar(let scalar):
                values[flag] = scalar.string
            case .sequence(let items):
                let texts = items.compactMap(\.string)
                guard texts.count == items.count else { throw ServiceConfigFileError("\(path): '\(flag)' must be a list of plain values") }
                values[flag] = texts.joined(separator: ",")
            default:
                throw ServiceConfigFileError("\(path): '\(flag)' must be a value or a list, not a mapping")
            }
        }
        self.values = values
    }
}

public struct ServiceConfigFileError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
