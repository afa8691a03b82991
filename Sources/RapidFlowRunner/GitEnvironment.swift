import RapidFlowCore

/// How a clone's git is configured: through its environment (`GIT_CONFIG_COUNT`,
/// `GIT_CONFIG_KEY_n`, `GIT_CONFIG_VALUE_n`), so nothing lands in a config file that the
/// workspace keeps or a later step reads.
enum GitEnvironment {
    /// Appends `entries` after those already listed (a credential helper's), so all apply.
    static func appendConfig(_ entries: [(key: String, value: String)], to environment: inout [String: String]) {
        var count = Int(environment["GIT_CONFIG_COUNT"] ?? "") ?? 0
        for entry in entries {
            environment["GIT_CONFIG_KEY_\(count)"] = entry.key
            environment["GIT_CONFIG_VALUE_\(count)"] = entry.value
            count += 1
        }
        environment["GIT_CONFIG_COUNT"] = String(count)
    }

    /// Only the allowed transports, for the clone and whatever it leads to (an `ext::` or
    /// `file://` remote, a submodule), and no HTTP redirects (which could lead elsewhere).
    /// `GIT_ALLOW_PROTOCOL` says the same as `protocol.allow` and wins over any config file
    /// on the machine.
    static func restrict(_ environment: inout [String: String], to repositories: RepositoryPolicy) {
        let protocols = repositories.gitProtocols
        appendConfig(
            [("protocol.allow", "never")] + protocols.map { ("protocol.\($0).allow", "always") } + [("http.followRedirects", "false")],
            to: &environment)
        environment["GIT_ALLOW_PROTOCOL"] = protocols.joined(separator: ":")
    }
}
