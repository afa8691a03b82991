import ArgumentParser

@main
struct RapidFlowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rapidflow",
        abstract: "A self-hosted build service: pipelines of bash steps and container image builds over HTTP.",
        discussion: """
            Client commands talk to a running service: --server (RAPIDFLOW_SERVER, default             http://127.0.0.1:3000) and --token (RAPIDFLOW_API_TOKEN).
            """,
        version: RapidFlowVersion.text,
        subcommands: [
            ServeCommand.self, RunnerCommand.self, SubmitCommand.self, PipelineCommand.self, RunCommand.self, JobsCommand.self,
            StatusCommand.self, LogsCommand.self, JobActionCommand<CancelAction>.self, JobActionCommand<KillAction>.self,
            JobActionCommand<RetryAction>.self, JobActionCommand<CleanupAction>.self, WaitCommand.self, SecretCommand.self,
            TokenCommand.self, HookCommand.self, WebhookCommand.self, ArtifactsCommand.self, BackupCommand.self, MigrateCommand.self,
        ],
        defaultSubcommand: ServeCommand.self)
}
