import ArgumentParser

@main
struct RapidFlowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rapidflow",
        abstract: "A self-hosted build service: pipelines of bash steps and container image builds over HTTP.",
        subcommands: [ServeCommand.self],
        defaultSubcommand: ServeCommand.self)
}
