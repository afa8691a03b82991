import ArgumentParser
import Foundation
import RapidFlowAPI
import RapidFlowCore

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list and revoke scoped API tokens (needs an admin token).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token with a role; it is printed this once (the service keeps its hash only).")
        @OptionGroup var options: ClientOptions
        @Option(help: "A unique name: it names the token in the audit log.") var name: String
        @Option(help: "read (GET only), run (read, trigger, cancel, retry) or admin (everything).") var role: String
        @Option(name: .customLong("owner"), help: "An owner the token reaches (repeat for more; default: every owner).")
        var owners: [String] = []

        func run(client: ServiceClient) async throws {
            guard let level = TokenRole(rawValue: role) else { throw ValidationError("--role must be read, run or admin") }
            let made: API.Token = try await client.call(
                .POST, "/tokens", body: API.TokenRequest(name: name, role: level, owners: owners.isEmpty ? nil : owners))
            if options.json { return try Terminal.json(made) }
            Terminal.line(made.token ?? "")
            FileHandle.standardError.write(Data("token \(made.id) '\(made.name)' (\(made.role.rawValue)) created; it is not shown again\n".utf8))
        }
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens: name, role, owners, last used, revoked. Never a token.")
        @OptionGroup var options: ClientOptions

        func run(client: ServiceClient) async throws {
            let tokens: [API.Token] = try await client.call(.GET, "/tokens")
            if options.json { return try Terminal.json(tokens) }
            if tokens.isEmpty { return Terminal.line("no tokens") }
            Terminal.table(
                ["ID", "NAME", "ROLE", "OWNERS", "LAST USED", "REVOKED"],
                tokens.map { token in
                    [
                        String(token.id), token.name, token.role.rawValue, token.owners?.joined(separator: ",") ?? "all",
                        token.lastUsedAt ?? "-", token.revokedAt ?? "-",
                    ]
                })
        }
    }

    struct Revoke: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: it is refused from then on.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The token's id or name.") var token: String

        func run(client: ServiceClient) async throws {
            var id = Int(token)
            if id == nil {
                let tokens: [API.Token] = try await client.call(.GET, "/tokens")
                id = tokens.first { $0.name == token }?.id
            }
            guard let id else { throw ServiceClient.Failure(description: "no token is named '\(token)'") }
            let revoked: API.Token = try await client.call(.DELETE, "/tokens/\(id)")
            if options.json { return try Terminal.json(revoked) }
            Terminal.line("token \(revoked.id) '\(revoked.name)' revoked")
        }
    }
}
