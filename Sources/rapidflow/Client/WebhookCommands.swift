import ArgumentParser
import Foundation
import RapidFlowAPI
import RapidFlowCore

struct HookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hook",
        abstract: "Set up the hooks a forge or git server delivers pushes to (needs an admin token).",
        discussion: """
            The forge delivers to <server>/hooks/<forge> (github, gitlab, gitea — also Forgejo — or git for a
            plain git server's post-receive hook: contrib/post-receive). Pipelines whose `repo` is the pushed
            repository and whose config has `on:` run at the pushed commit.
            """,
        subcommands: [Create.self, List.self, Delete.self])

    struct Create: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a hook; a secret the service makes is printed this once (set it in the forge's webhook settings).")
        @OptionGroup var options: ClientOptions
        @Option(help: "A unique name.") var name: String
        @Option(help: "github, gitlab, gitea or git.") var forge: String
        @Option(help: "Only this owner's pipelines are started by it (default: every owner's).") var owner: String?
        @Option(help: "The secret the forge signs with (default: the service makes one; git hooks take a whsec_ key).") var secret: String?
        @Option(
            name: .customLong("status-token"),
            help: "A forge API token: jobs the hook starts post commit statuses with it (RAPIDFLOW_HOOK_STATUS_TOKEN).")
        var statusToken: String?
        @Option(name: .customLong("status-url"), help: "The forge's API base URL (default for github: https://api.github.com).")
        var statusURL: String?

        func run(client: ServiceClient) async throws {
            guard let kind = Forge(rawValue: forge) else { throw ValidationError("--forge must be github, gitlab, gitea or git") }
            let token = statusToken ?? ProcessInfo.processInfo.environment["RAPIDFLOW_HOOK_STATUS_TOKEN"]
            let made: API.Hook = try await client.call(
                .POST, "/hooks",
                body: API.HookRequest(name: name, forge: kind, owner: owner, secret: secret, statusToken: token, statusURL: statusURL))
            if options.json { return try Terminal.json(made) }
            if let secret = made.secret { Terminal.line(secret) }
            FileHandle.standardError.write(
                Data(
                    ("hook \(made.id) '\(made.name)' created: the forge delivers to \(client.baseURL)\(made.path)"
                        + (made.secret != nil ? "; its secret is printed above and not shown again" : "") + "\n").utf8))
        }
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "List the hooks: forge, path, owner, last delivery. Never a secret.")
        @OptionGroup var options: ClientOptions

        func run(client: ServiceClient) async throws {
            let hooks: [API.Hook] = try await client.call(.GET, "/hooks")
            if options.json { return try Terminal.json(hooks) }
            if hooks.isEmpty { return Terminal.line("no hooks") }
            Terminal.table(
                ["ID", "NAME", "FORGE", "PATH", "OWNER", "COMMIT STATUS", "LAST DELIVERY"],
                hooks.map { hook in
                    [
                        String(hook.id), hook.name, hook.forge.rawValue, hook.path, hook.owner ?? "all", hook.postsCommitStatus ? "yes" : "no",
                        hook.lastDeliveryAt ?? "-",
                    ]
                })
        }
    }

    struct Delete: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a hook: its forge's deliveries are refused from then on.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The hook's id or name.") var hook: String

        func run(client: ServiceClient) async throws {
            var id = Int(hook)
            if id == nil {
                let hooks: [API.Hook] = try await client.call(.GET, "/hooks")
                id = hooks.first { $0.name == hook }?.id
            }
            guard let id else { throw ServiceClient.Failure(description: "no hook is named '\(hook)'") }
            let deleted: API.DeleteResult = try await client.call(.DELETE, "/hooks/\(id)")
            if options.json { return try Terminal.json(deleted) }
            Terminal.line("hook \(id) deleted")
        }
    }
}

struct WebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook",
        abstract: "Register URLs told when jobs are created, start and finish (needs an admin token).",
        discussion: """
            Deliveries follow the Standard Webhooks specification: headers webhook-id, webhook-timestamp and
            webhook-signature (v1, HMAC-SHA256 over id.timestamp.body with the webhook's whsec_ secret).
            """,
        subcommands: [Create.self, List.self, Delete.self, Deliveries.self, Redeliver.self])

    struct Create: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Register a URL; a secret the service makes is printed this once.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The http:// or https:// URL deliveries are POSTed to.") var url: String
        @Option(
            name: .customLong("event"),
            help: "job.created, job.started, job.finished or step.finished (repeat for more; default job.finished).")
        var events: [String] = []
        @Option(help: "Only this owner's jobs.") var owner: String?
        @Option(help: "Only this pipeline's jobs (its id).") var pipeline: Int?
        @Option(help: "A whsec_ key to sign with (default: the service makes one).") var secret: String?

        func run(client: ServiceClient) async throws {
            let made: API.Webhook = try await client.call(
                .POST, "/webhooks",
                body: API.WebhookRequest(url: url, events: events.isEmpty ? ["job.finished"] : events, owner: owner, pipelineID: pipeline, secret: secret))
            if options.json { return try Terminal.json(made) }
            if let secret = made.secret { Terminal.line(secret) }
            FileHandle.standardError.write(
                Data(
                    ("webhook \(made.id) registered for \(made.events.joined(separator: ", "))"
                        + (made.secret != nil ? "; its secret is printed above and not shown again" : "") + "\n").utf8))
        }
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "List the webhooks. Never a secret.")
        @OptionGroup var options: ClientOptions

        func run(client: ServiceClient) async throws {
            let webhooks: [API.Webhook] = try await client.call(.GET, "/webhooks")
            if options.json { return try Terminal.json(webhooks) }
            if webhooks.isEmpty { return Terminal.line("no webhooks") }
            Terminal.table(
                ["ID", "URL", "EVENTS", "OWNER", "PIPELINE", "DISABLED"],
                webhooks.map { webhook in
                    [
                        String(webhook.id), webhook.url, webhook.events.joined(separator: ","), webhook.owner ?? "all",
                        webhook.pipelineID.map(String.init) ?? "all", webhook.disabledReason ?? "-",
                    ]
                })
        }
    }

    struct Delete: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a webhook and its deliveries.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The webhook's id.") var webhook: Int

        func run(client: ServiceClient) async throws {
            let deleted: API.DeleteResult = try await client.call(.DELETE, "/webhooks/\(webhook)")
            if options.json { return try Terminal.json(deleted) }
            Terminal.line("webhook \(webhook) deleted")
        }
    }

    struct Deliveries: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "A webhook's recent deliveries: status code, duration, tries, next try.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The webhook's id.") var webhook: Int
        @Option(help: "How many, newest first (at most 500).") var limit = 50

        func run(client: ServiceClient) async throws {
            let deliveries: [API.WebhookDelivery] = try await client.call(.GET, "/webhooks/\(webhook)/deliveries?limit=\(limit)")
            if options.json { return try Terminal.json(deliveries) }
            if deliveries.isEmpty { return Terminal.line("no deliveries") }
            Terminal.table(
                ["ID", "EVENT", "JOB", "STATE", "TRIES", "CODE", "MS", "NEXT TRY", "ERROR"],
                deliveries.map { delivery in
                    [
                        String(delivery.id), delivery.event, String(delivery.jobID), delivery.state, String(delivery.tries),
                        delivery.statusCode.map(String.init) ?? "-", delivery.durationMs.map(String.init) ?? "-", delivery.nextTryAt ?? "-",
                        delivery.error ?? "",
                    ]
                })
        }
    }

    struct Redeliver: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Send a delivery again (the same message and body).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The webhook's id.") var webhook: Int
        @Argument(help: "The delivery's id.") var delivery: Int

        func run(client: ServiceClient) async throws {
            let again: API.WebhookDelivery = try await client.call(.POST, "/webhooks/\(webhook)/deliveries/\(delivery)/redeliver")
            if options.json { return try Terminal.json(again) }
            Terminal.line("delivery \(again.id) queued again")
        }
    }
}
