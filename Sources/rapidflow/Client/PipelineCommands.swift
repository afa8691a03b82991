import ArgumentParser
import Foundation
import RapidFlowAPI
import RapidFlowCore

struct PipelineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline", abstract: "Store, read, change and delete pipelines.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Delete.self])

    struct Create: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Store a pipeline from a YAML file.")
        @OptionGroup var options: ClientOptions
        @Option(help: "The pipeline's name (default: the config's `name:`).") var name: String?
        @Option(name: .shortAndLong, help: "The YAML config (- for stdin).") var file: String
        @Option(help: "The team the pipeline and its jobs belong to (default: default).") var owner: String?

        func run(client: ServiceClient) async throws {
            let config = String(decoding: try readInput(file), as: UTF8.self)
            let pipeline: API.Pipeline = try await client.call(
                .POST, "/pipelines", body: API.PipelineDefinition(name: try name ?? Self.name(in: config), config: config, owner: owner))
            if options.json { return try Terminal.json(pipeline) }
            Terminal.line("pipeline \(pipeline.id) created")
        }

        /// The config's own `name:`, read the way the service reads the config (a config the
        /// service would refuse is refused here with the same message).
        static func name(in config: String) throws -> String {
            let parsed: PipelineConfig
            do {
                parsed = try PipelineConfig(yaml: config, repositories: RepositoryPolicy(allowsLocal: true))
            } catch {
                throw ServiceClient.Failure(description: "\(error.message) (\(error.code))")
            }
            guard let name = parsed.name, !name.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw ValidationError("give --name, or a `name:` in the config")
            }
            return name
        }
    }

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "List pipelines.")
        @OptionGroup var options: ClientOptions

        func run(client: ServiceClient) async throws {
            let pipelines: [API.Pipeline] = try await client.call(.GET, "/pipelines?limit=500")
            if options.json { return try Terminal.json(pipelines) }
            if pipelines.isEmpty { return Terminal.line("no pipelines") }
            Terminal.table(
                ["ID", "NAME", "STEPS", "UPDATED"],
                pipelines.map { pipeline in
                    let steps = pipeline.config.split(separator: "\n").filter { $0.hasPrefix("  - ") || $0.hasPrefix("- ") }.count
                    return [String(pipeline.id), pipeline.name, String(steps), pipeline.updatedAt]
                })
        }
    }

    struct Show: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Print a pipeline and its YAML config.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The pipeline id or name.") var pipeline: String

        func run(client: ServiceClient) async throws {
            let id = try await resolvePipeline(pipeline, client: client)
            let found: API.Pipeline = try await client.call(.GET, "/pipelines/\(id)")
            if options.json { return try Terminal.json(found) }
            Terminal.line(Terminal.paint("# pipeline \(found.id): \(found.name)", "1"))
            Terminal.write(found.config.hasSuffix("\n") ? found.config : found.config + "\n")
        }
    }

    struct Update: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Replace a pipeline's YAML config and/or rename it.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The pipeline id or name.") var pipeline: String
        @Option(help: "A new name.") var name: String?
        @Option(name: .shortAndLong, help: "The new YAML config (- for stdin).") var file: String?

        func validate() throws {
            if name == nil && file == nil { throw ValidationError("give --name, --file or both") }
        }

        func run(client: ServiceClient) async throws {
            let id = try await resolvePipeline(pipeline, client: client)
            let current: API.Pipeline = try await client.call(.GET, "/pipelines/\(id)")
            let config = try file.map { String(decoding: try readInput($0), as: UTF8.self) } ?? current.config
            let updated: API.Pipeline = try await client.call(
                .PUT, "/pipelines/\(id)", body: API.PipelineDefinition(name: name ?? current.name, config: config))
            if options.json { return try Terminal.json(updated) }
            Terminal.line("pipeline \(id) updated")
        }
    }

    struct Delete: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a pipeline (its jobs remain).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The pipeline id or name.") var pipeline: String

        func run(client: ServiceClient) async throws {
            let id = try await resolvePipeline(pipeline, client: client)
            let reply: API.DeleteResult = try await client.call(.DELETE, "/pipelines/\(id)")
            if options.json { return try Terminal.json(reply) }
            Terminal.line("pipeline \(id) deleted")
        }
    }
}

struct RunCommand: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Trigger a pipeline: a new job, pending until a slot is free.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The pipeline id or name.") var pipeline: String
    @Option(help: "Clone this branch instead of the config's.") var branch: String?
    @Option(name: .customLong("env"), help: "KEY=VALUE added to the job's environment (repeat for more).") var env: [String] = []
    @Option(help: "high, normal or low: instead of the config's priority.") var priority: String?
    @Option(name: .customLong("concurrency-group"), help: "At most one job of this group runs at a time (may hold ${branch} and ${owner}).")
    var concurrencyGroup: String?
    @Option(name: .customLong("on-conflict"), help: "queue, cancel_pending or cancel_running: what this job does to its group's older jobs.")
    var onConflict: String?

    func run(client: ServiceClient) async throws {
        var environment: [String: String] = [:]
        for entry in env {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw ValidationError("--env takes KEY=VALUE, got '\(entry)'")
            }
            environment[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        let level = try priority.map { text in
            guard let level = JobPriority(rawValue: text) else { throw ValidationError("--priority must be high, normal or low") }
            return level
        }
        let mode = try onConflict.map { text in
            guard let mode = ConcurrencyGroup.OnConflict(rawValue: text) else {
                throw ValidationError("--on-conflict must be queue, cancel_pending or cancel_running")
            }
            return mode
        }
        let body = API.TriggerRequest(
            branch: branch, env: environment.isEmpty ? nil : environment, priority: level, concurrencyGroup: concurrencyGroup, onConflict: mode)
        let id = try await resolvePipeline(pipeline, client: client)
        let job: API.Job = try await client.call(.POST, "/pipelines/\(id)/jobs", body: body)
        if options.json { return try Terminal.json(job) }
        Terminal.line("job \(job.id) created; follow it with: rapidflow logs \(job.id) --follow")
    }
}

/// A pipeline named by id, by `owner/name`, or by its name when only one owner has a
/// pipeline of that name (names are unique per owner).
func resolvePipeline(_ reference: String, client: ServiceClient) async throws -> Int {
    if let id = Int(reference) { return id }
    var name = reference
    var query = "/pipelines?limit=500"
    if let slash = reference.firstIndex(of: "/") {
        let owner = String(reference[..<slash])
        name = String(reference[reference.index(after: slash)...])
        guard let encoded = owner.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "._-"))) else {
            throw ValidationError("'\(reference)' is not an owner/name")
        }
        query += "&owner=\(encoded)"
    }
    let pipelines: [API.Pipeline] = try await client.call(.GET, query)
    let matches = pipelines.filter { $0.name == name }
    guard matches.count == 1, let id = matches.first?.id else {
        throw ServiceClient.Failure(
            description: matches.isEmpty
                ? "no pipeline is named '\(reference)'"
                : "\(matches.count) owners have a pipeline named '\(name)' (\(matches.map { "\($0.owner ?? "default")/\(name)" }.joined(separator: ", "))); name one as owner/name")
    }
    return id
}
