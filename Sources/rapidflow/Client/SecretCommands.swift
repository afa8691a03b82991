import ArgumentParser
import Foundation
import Glibc
import RapidFlowAPI

struct SecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret", abstract: "Store, list and delete secrets (values go in, never come out).",
        subcommands: [Put.self, List.self, Remove.self])

    struct Put: ClientCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Store or replace a secret; the value is read from --value-file or standard input.",
            discussion: """
                The value is never taken from the command line, where the shell's history and \
                the process list would keep it. One trailing newline is dropped (echo and editors \
                add one).
                """)
        @OptionGroup var options: ClientOptions
        @Argument(help: "The secret's name: A-Z, 0-9 and '_', not starting with a digit.") var name: String
        @OptionGroup var scope: SecretScopeOptions
        @Option(help: "A file holding the value (default: standard input).") var valueFile: String?

        func run(client: ServiceClient) async throws {
            let value = try readValue()
            let scope = try await self.scope.resolve(client: client)
            let secret: API.Secret = try await client.call(
                .PUT, "/secrets/\(name.pathSegment)", body: API.SecretWrite(value: value, scope: scope))
            if options.json { return try Terminal.json(secret) }
            Terminal.line("secret \(secret.name) set (\(describe(secret.scope)))")
        }

        private func readValue() throws -> String {
            let data: Data
            if let valueFile {
                guard let contents = FileManager.default.contents(atPath: valueFile) else {
                    throw ServiceClient.Failure(description: "cannot read the value file '\(valueFile)'")
                }
                data = contents
            } else {
                data = Self.readStandardInput(prompt: "value for \(name) (hidden): ")
            }
            guard var value = String(validating: data, as: UTF8.self) else {
                throw ServiceClient.Failure(description: "the value is not UTF-8 text; a secret's value must be")
            }
            // "\r\n" is one Character in Swift, so this drops either ending whole.
            if value.last == "\n" || value.last == "\r\n" { value.removeLast() }
            return value
        }

        /// Standard input to its end; at a terminal, one line typed without echo.
        private static func readStandardInput(prompt: String) -> Data {
            guard isatty(STDIN_FILENO) == 1 else { return FileHandle.standardInput.readDataToEndOfFile() }
            FileHandle.standardError.write(Data(prompt.utf8))
            var original = termios()
            tcgetattr(STDIN_FILENO, &original)
            var silent = original
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSANOW, &silent)
            defer {
                tcsetattr(STDIN_FILENO, TCSANOW, &original)
                FileHandle.standardError.write(Data("\n".utf8))
            }
            return Data((readLine(strippingNewline: true) ?? "").utf8)
        }
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "List stored secrets: names, scopes and times, never values.")
        @OptionGroup var options: ClientOptions
        @OptionGroup var scope: SecretScopeOptions

        func run(client: ServiceClient) async throws {
            var secrets: [API.Secret] = try await client.call(.GET, "/secrets")
            if scope.isGiven {
                let wanted = try await self.scope.resolve(client: client)
                secrets = secrets.filter { $0.scope == wanted }
            }
            if options.json { return try Terminal.json(secrets) }
            if secrets.isEmpty { return Terminal.line("no secrets") }
            Terminal.table(
                ["NAME", "SCOPE", "UPDATED", "LAST USED"],
                secrets.map { secret in
                    let lastUsed = secret.lastUsedAt.map { at in secret.lastUsedJobID.map { "\(at) (job \($0))" } ?? at }
                    return [secret.name, describe(secret.scope), secret.updatedAt, lastUsed ?? "-"]
                })
        }
    }

    struct Remove: ClientCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete a stored secret from one scope.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The secret's name.") var name: String
        @OptionGroup var scope: SecretScopeOptions

        func run(client: ServiceClient) async throws {
            let scope = try await self.scope.resolve(client: client)
            let reply: API.SecretDeleteResult = try await client.call(.DELETE, "/secrets/\(name.pathSegment)\(query(scope))")
            if options.json { return try Terminal.json(reply) }
            Terminal.line("secret \(reply.name) deleted (\(describe(reply.scope)))")
        }

        private func query(_ scope: API.SecretScope) -> String {
            switch scope {
            case .global: ""
            case .pipeline(let id): "?pipeline_id=\(id)"
            case .owner(let owner): "?owner=\(queryValue(owner))"
            }
        }
    }
}

/// `--pipeline` / `--owner`: which scope a secret command addresses (neither: the global one).
struct SecretScopeOptions: ParsableArguments {
    @Option(help: "A pipeline's scope (id or name).") var pipeline: String?
    @Option(help: "An owner's scope (the `owner` of image jobs and pipelines).") var owner: String?

    var isGiven: Bool { pipeline != nil || owner != nil }

    func validate() throws {
        if pipeline != nil && owner != nil { throw ValidationError("give at most one of --pipeline and --owner") }
    }

    func resolve(client: ServiceClient) async throws -> API.SecretScope {
        if let pipeline { return .pipeline(try await resolvePipeline(pipeline, client: client)) }
        if let owner { return .owner(owner) }
        return .global
    }
}

private func describe(_ scope: API.SecretScope) -> String {
    switch scope {
    case .global: "global"
    case .pipeline(let id): "pipeline \(id)"
    case .owner(let owner): "owner \(owner)"
    }
}

extension String {
    /// Percent-encoded as one path segment: a name the service will refuse still reaches it
    /// whole, so its message is the one shown.
    var pathSegment: String {
        addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? self
    }
}
