import ArgumentParser
import Dispatch
import Foundation
import Hummingbird
import Logging
import RapidFlowCore
import RapidFlowRunner
import RapidFlowServer
import ServiceLifecycle

/// `rapidflow serve`: every flag can also come from `RAPIDFLOW_<FLAG>` or a key of the
/// `--config` file; a flag wins over the environment, which wins over the file.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the RapidFlow service (SQLite in the data directory by default).",
        discussion: """
            Every setting comes from, in this order of precedence: its flag, its RAPIDFLOW_* variable, a key of the \
            --config file (YAML; the keys are the flag names, e.g. `port: 3000`, `data-dir: /var/lib/rapidflow`, \
            `allow-local-repos: true`), then the default. --print-config shows the result and where each setting came from.
            """)

    @Option(name: .customLong("config"), help: "YAML file of settings keyed by flag name (RAPIDFLOW_CONFIG); flags and RAPIDFLOW_* variables win over it.")
    var configFile: String?
    @Flag(name: .customLong("print-config"), help: "Print the settings the service would run with, and where each came from (secrets redacted), then exit.")
    var printConfig = false
    @Option(name: .customLong("log-format"), help: "text or json: one JSON object a line with time, level, message, logger, source and the fields (RAPIDFLOW_LOG_FORMAT, default text).")
    var logFormat: String?
    @Flag(name: .customLong("access-log"), help: "Log each HTTP request at info: method, route template, status, duration, client address (RAPIDFLOW_ACCESS_LOG=true).")
    var accessLog = false
    @Flag(name: .customLong("relaxed-durability"), help: "Answer a write without first flushing SQLite's log to disk: a crash of the service still loses nothing, a power cut may lose the last acknowledged writes. For benchmarks and throwaway services (RAPIDFLOW_RELAXED_DURABILITY=true; PostgreSQL flushes on its own terms).")
    var relaxedDurability = false

    @Option(help: "Address to listen on (RAPIDFLOW_HOST).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (RAPIDFLOW_PORT).") var port: Int?
    @Option(name: .customLong("data-dir"), help: "Where the database and workspaces live (RAPIDFLOW_DATA_DIR).")
    var dataDir: String?
    @Option(help: "Store URL: sqlite:///path or postgres://user:password@host:port/database (RAPIDFLOW_DATABASE). Default: <data-dir>/rapidflow.sqlite.")
    var database: String?
    @Option(help: "Where steps run: auto, shell, docker, nomad (a Nomad batch job per job) or runner (a local `rapidflow runner` process per job) (RAPIDFLOW_EXECUTOR).")
    var executor: String?
    @Option(name: .customLong("advertise-url"), help: "How runners reach this replica (RAPIDFLOW_ADVERTISE_URL; default http://<host>:<port>).")
    var advertiseURL: String?
    @Option(name: .customLong("runner-binary"), help: "The program local runners (`--executor runner`) are started with, given `runner` and its options (RAPIDFLOW_RUNNER_BINARY; default this rapidflow).")
    var runnerBinary: String?
    @Option(name: .customLong("runner-files"), help: "How caches and artifacts reach local runners' workspaces (`--executor runner`): direct (the service reads and writes them on this machine) or channel (over the runner's HTTP channel, as for runners on other machines) (RAPIDFLOW_RUNNER_FILES; default direct).")
    var runnerFiles: String?
    @Option(name: .customLong("runner-url"), help: "The address runners are told to call, when it is not this replica's own: a load balancer in front of the replicas (RAPIDFLOW_RUNNER_URL; default the advertise URL). A replica that does not run a runner's job redirects it to the one that does.")
    var runnerURL: String?
    @Option(name: .customLong("nomad-datacenters"), help: "Comma-separated datacenters for Nomad jobs (RAPIDFLOW_NOMAD_DATACENTERS, default *). The cluster itself: NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT, NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY, NOMAD_SKIP_VERIFY.")
    var nomadDatacenters: String?
    @Option(name: .customLong("nomad-driver"), help: "Task driver for the runner: raw_exec or docker (RAPIDFLOW_NOMAD_DRIVER, default raw_exec).")
    var nomadDriver: String?
    @Option(name: .customLong("nomad-image"), help: "Image with rapidflow for the docker driver (RAPIDFLOW_NOMAD_IMAGE).")
    var nomadImage: String?
    @Option(name: .customLong("nomad-runner-command"), help: "The rapidflow binary on the node or in the image (RAPIDFLOW_NOMAD_RUNNER_COMMAND, default rapidflow).")
    var nomadRunnerCommand: String?
    @Option(
        name: .customLong("max-concurrent-jobs"),
        help: "Jobs run at once; the rest wait, taken by priority and then owners in turn (RAPIDFLOW_MAX_CONCURRENT_JOBS).")
    var maxConcurrentJobs: Int?
    @Option(
        name: .customLong("max-jobs-per-owner"),
        help: "Jobs one owner may run at once, unless PUT /owners/:owner gave it its own limit (RAPIDFLOW_MAX_JOBS_PER_OWNER; default: no limit).")
    var maxJobsPerOwner: Int?
    @Option(name: .customLong("secrets-dir"), help: "Directory that credential paths are resolved in (RAPIDFLOW_SECRETS_DIR).")
    var secretsDir: String?
    @Option(
        name: .customLong("secrets-key-file"),
        help: "The key stored secrets are sealed with: 32 random bytes in base64 (RAPIDFLOW_SECRETS_KEY_FILE; default <data-dir>/secrets.key, created with mode 0600 on first start). With secrets stored, a missing or wrong key stops the service at start.")
    var secretsKeyFile: String?
    @Flag(name: .customLong("allow-local-repos"), help: "Let jobs clone repositories on this machine: file:// URLs and paths (RAPIDFLOW_ALLOW_LOCAL_REPOS=true). Off by default: with it, any API user can build any repository the service's user can read.")
    var allowLocalRepos = false
    @Option(name: .customLong("api-token"), help: "Bearer token required on every route but /health and /ready (RAPIDFLOW_API_TOKEN).")
    var apiToken: String?
    @Option(name: .customLong("kill-grace-seconds"), help: "Seconds between SIGTERM and SIGKILL when a job is stopped (RAPIDFLOW_KILL_GRACE_SECONDS).")
    var killGraceSeconds: Double?
    @Option(name: .customLong("step-output-cap-mb"), help: "MiB of output kept per step, head and tail (RAPIDFLOW_STEP_OUTPUT_CAP_MB).")
    var stepOutputCapMB: Double?
    @Option(name: .customLong("language-images"), help: "JSON file mapping a config's language to an image template, e.g. {\"golang\": \"golang:{version}\"} (RAPIDFLOW_LANGUAGE_IMAGES).")
    var languageImages: String?
    @Option(name: .customLong("job-timeout-seconds"), help: "Fail jobs running longer; a config's timeout_seconds wins (RAPIDFLOW_JOB_TIMEOUT_SECONDS).")
    var jobTimeoutSeconds: Double?
    @Option(
        name: .customLong("shutdown-timeout-seconds"),
        help: "On SIGTERM, seconds the running jobs get to finish while no new one starts and /ready answers 503; then they are stopped. A second SIGTERM or SIGINT stops them at once (RAPIDFLOW_SHUTDOWN_TIMEOUT_SECONDS, default 0: stop at once).")
    var shutdownTimeoutSeconds: Double?
    @Option(name: .customLong("retention-hours"), help: "Remove finished jobs' workspaces, containers and images, audit log entries and finished webhook deliveries, after this many hours; 0 keeps them (RAPIDFLOW_RETENTION_HOURS, default 168).")
    var retentionHours: Double?
    @Option(name: .customLong("keep-jobs-days"), help: "Remove finished jobs from the store, with their steps, output, environment and artifacts, this many days after they end; 0 keeps them (RAPIDFLOW_KEEP_JOBS_DAYS, default 0).")
    var keepJobsDays: Double?
    @Option(name: .customLong("lease-seconds"), help: "Seconds a running job stays this replica's without a renewal; another replica settles a dead one's jobs after this (RAPIDFLOW_LEASE_SECONDS, default 30).")
    var leaseSeconds: Double?
    @Option(name: .customLong("step-user"), help: "Run pipeline steps as this unprivileged user (a name or uid), in workspaces it owns (RAPIDFLOW_STEP_USER; default: the service's own user).")
    var stepUser: String?
    @Option(name: .customLong("header-timeout-seconds"), help: "Seconds a client has to send a request head, from connecting or from its first byte; then 408 and close (RAPIDFLOW_HEADER_TIMEOUT_SECONDS, default 10).")
    var headerTimeoutSeconds: Double?
    @Option(name: .customLong("idle-timeout-seconds"), help: "Seconds a connection may sit with no request in flight before it is closed (RAPIDFLOW_IDLE_TIMEOUT_SECONDS, default 75).")
    var idleTimeoutSeconds: Double?
    @Option(
        name: .customLong("webhook-allow-hosts"),
        help: "Comma-separated hosts webhook deliveries and commit statuses may be sent to; others are refused when a webhook or hook is registered (RAPIDFLOW_WEBHOOK_ALLOW_HOSTS; default: any host).")
    var webhookAllowHosts: String?
    @Option(
        name: .customLong("webhook-retry-seconds"),
        help: "Comma-separated waits between a webhook delivery's tries; it fails after one try more than listed (RAPIDFLOW_WEBHOOK_RETRY_SECONDS, default 5,30,120,600,1800,3600,3600).")
    var webhookRetrySeconds: String?
    @Option(name: .customLong("cache-max-gb"), help: "GiB of disk all pipeline caches may take; the least recently used are evicted past it (RAPIDFLOW_CACHE_MAX_GB, default 10).")
    var cacheMaxGB: Double?
    @Option(name: .customLong("cache-entry-max-mb"), help: "MiB one cache may unpack to; a bigger one is not saved, and a restore stops there (RAPIDFLOW_CACHE_ENTRY_MAX_MB, default 4096).")
    var cacheEntryMaxMB: Double?
    @Option(name: .customLong("artifact-max-mb"), help: "MiB one job's artifacts may take together; past it the artifacts step fails and keeps none (RAPIDFLOW_ARTIFACT_MAX_MB, default 1024).")
    var artifactMaxMB: Double?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error (RAPIDFLOW_LOG_LEVEL).")
    var logLevel: String?

    func run() async throws {
        var settings = Settings()
        var resolved = try resolve(environment: ProcessInfo.processInfo.environment, settings: &settings)
        resolved.version = RapidFlowVersion.number
        resolved.commit = BuildInfo.commit
        let configuration = resolved
        if printConfig {
            print(settings.report(configuration), terminator: "")
            return
        }
        // Steps run as this user; they must not read the API token or the database URL from us.
        ProcessProtection.hideFromSameUser()
        // The store, the executors, the scheduler and the HTTP server, each resource a service
        // that starts in that order and stops in reverse on SIGTERM or SIGINT.
        let (app, service) = try await buildApplication(configuration: configuration) { port in
            // The store by kind only: a PostgreSQL URL carries a password.
            let store = configuration.database.map { $0.hasPrefix("sqlite") ? "sqlite" : "postgresql" } ?? "sqlite"
            let message = "rapidflow listening on http://\(configuration.host):\(port)"
            // At every level: scripts and supervisors wait for this line.
            switch configuration.logFormat {
            case .text:
                print(
                    "\(message) (version \(configuration.version), commit \(configuration.commit), "
                        + "data in \(configuration.dataDirectory), store \(store), executor \(configuration.executor.rawValue))")
                fflush(nil)
            case .json:
                JSONLogHandler.write(
                    JSONLogHandler.line(
                        level: .info, message: message, label: "rapidflow", source: "rapidflow",
                        metadata: [
                            "version": "\(configuration.version)", "commit": "\(configuration.commit)",
                            "address": "http://\(configuration.host):\(port)", "data_dir": "\(configuration.dataDirectory)",
                            "store": "\(store)", "executor": "\(configuration.executor.rawValue)",
                        ]))
            }
        }
        guard configuration.shutdownTimeout > .zero else { return try await app.runService() }
        try await Self.runDraining(app, scheduler: service.scheduler, timeout: configuration.shutdownTimeout)
    }

    /// Runs the service; the first SIGTERM (or SIGINT) drains it — running jobs get `timeout`
    /// to finish, none starts, `/ready` answers 503 — and then stops it; a second signal stops
    /// it at once (the running jobs are stopped and settled as on any shutdown).
    static func runDraining(_ app: some Service, scheduler: JobScheduler, timeout: Duration) async throws {
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: Logger(label: "rapidflow")))
        let (signals, delivered) = AsyncStream<Int32>.makeStream()
        let sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { delivered.yield(number) }
            source.resume()
            return source
        }
        defer {
            sources.forEach { $0.cancel() }
            delivered.finish()
        }
        let handling = Task {
            var received = signals.makeAsyncIterator()
            guard await received.next() != nil else { return }
            let drain = Task {
                await scheduler.drain(timeout: timeout)
                await group.triggerGracefulShutdown()
            }
            // A second signal: stop now, whatever the drain is waiting for.
            if await received.next() != nil { await group.triggerGracefulShutdown() }
            drain.cancel()
        }
        defer { handling.cancel() }
        // Returns once every service has stopped, in order (the scheduler settles what runs).
        try await group.run()
    }

    /// Where each setting came from, for `--print-config`.
    struct Settings {
        enum Source: String { case flag, environment, file }
        var sources: [String: Source] = [:]
        var file: ServiceConfigFile?

        /// `NAME` (of `RAPIDFLOW_NAME`) as its flag: `DATA_DIR` → `data-dir`.
        static func flag(_ name: String) -> String { name.lowercased().replacingOccurrences(of: "_", with: "-") }

        /// Where a value that could not be used came from, for the message.
        func place(_ name: String) -> String {
            sources[Self.flag(name)] == .file ? "'\(Self.flag(name))' in \(file?.path ?? "the config file")" : "RAPIDFLOW_\(name)"
        }

        /// The settings as a config file would hold them, each with where it came from.
        func report(_ configuration: ServerConfiguration) -> String {
            func seconds(_ duration: Duration?) -> String { duration.map { String(format: "%g", $0.inSeconds) } ?? "0" }
            let hours = configuration.retention.map { String(format: "%g", $0.inSeconds / 3600) } ?? "0"
            let entries: [(String, String)] = [
                ("host", configuration.host), ("port", "\(configuration.port)"), ("data-dir", configuration.dataDirectory),
                ("database", configuration.database.map(Self.redactedURL) ?? ""), ("executor", configuration.executor.rawValue),
                ("advertise-url", configuration.advertiseURL ?? ""), ("runner-url", configuration.runnerURL ?? ""),
                ("runner-binary", configuration.runnerBinary ?? ""), ("runner-files", configuration.runnerFilesOverChannel ? "channel" : "direct"),
                ("nomad-datacenters", configuration.nomad.datacenters.joined(separator: ",")),
                ("nomad-driver", configuration.nomad.driver.rawValue), ("nomad-image", configuration.nomad.dockerImage ?? ""),
                ("nomad-runner-command", configuration.nomad.runnerCommand),
                ("max-concurrent-jobs", "\(configuration.maxConcurrentJobs)"),
                ("max-jobs-per-owner", configuration.maxJobsPerOwner.map { "\($0)" } ?? ""), ("secrets-dir", configuration.secretsDirectory ?? ""),
                ("secrets-key-file", configuration.secretsKeyFile ?? ""),
                ("allow-local-repos", "\(configuration.allowLocalRepositories)"),
                ("api-token", configuration.apiToken.map { $0.isEmpty ? "" : "<redacted>" } ?? ""),
                ("kill-grace-seconds", seconds(configuration.killGracePeriod)),
                ("step-output-cap-mb", String(format: "%g", Double(configuration.stepOutputCap) / 1_048_576)),
                ("language-images", file?.values["language-images"] ?? ""),
                ("job-timeout-seconds", seconds(configuration.jobTimeout)),
                ("shutdown-timeout-seconds", seconds(configuration.shutdownTimeout)), ("retention-hours", hours),
                ("keep-jobs-days", configuration.keepJobs.map { String(format: "%g", $0.inSeconds / 86_400) } ?? "0"),
                ("lease-seconds", seconds(configuration.leaseDuration)), ("step-user", configuration.stepUser ?? ""),
                ("header-timeout-seconds", seconds(configuration.headerTimeout)),
                ("idle-timeout-seconds", seconds(configuration.idleTimeout)),
                ("log-level", configuration.logLevel.rawValue), ("log-format", configuration.logFormat.rawValue),
                ("access-log", "\(configuration.accessLog)"),
                ("relaxed-durability", "\(configuration.relaxedDurability)"),
                ("webhook-allow-hosts", configuration.webhookAllowedHosts.map { $0.sorted().joined(separator: ",") } ?? ""),
                ("webhook-retry-seconds", configuration.webhookRetrySchedule.map { String(format: "%g", $0.inSeconds) }.joined(separator: ",")),
                ("cache-max-gb", String(format: "%g", Double(configuration.cacheMaxBytes) / 1_073_741_824)),
                ("cache-entry-max-mb", String(format: "%g", Double(configuration.cacheEntryMaxBytes) / 1_048_576)),
                ("artifact-max-mb", String(format: "%g", Double(configuration.artifactMaxBytes) / 1_048_576)),
            ]
            var text = "# rapidflow \(RapidFlowVersion.number) (commit \(BuildInfo.commit)): the settings `serve` would run with"
            if let file { text += ", reading \(file.path)" }
            text += "\n"
            for (key, value) in entries {
                // Quoted as a YAML (and JSON) string, so the output can be a config file itself.
                let shown = value.isEmpty ? "" : " " + JSONLogHandler.quoted(value)
                text += "\(key):\(shown)  # \(sources[key]?.rawValue ?? "default")\n"
            }
            return text
        }

        /// A database URL without its password.
        static func redactedURL(_ url: String) -> String {
            guard var components = URLComponents(string: url), components.password != nil else { return url }
            components.password = "redacted"
            return components.string ?? "<redacted>"
        }
    }

    func resolve(environment: [String: String]) throws -> ServerConfiguration {
        var settings = Settings()
        return try resolve(environment: environment, settings: &settings)
    }

    func resolve(environment: [String: String], settings: inout Settings) throws -> ServerConfiguration {
        if let path = configFile ?? environment["RAPIDFLOW_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) {
            do {
                settings.file = try ServiceConfigFile(path: path)
            } catch {
                throw ValidationError("--config: \(error)")
            }
        }
        var asked: Set<String> = []
        func value(_ flag: String?, _ name: String) -> String? {
            let key = Settings.flag(name)
            asked.insert(key)
            if let flag {
                settings.sources[key] = .flag
                return flag
            }
            if let text = environment["RAPIDFLOW_\(name)"], !text.isEmpty {
                settings.sources[key] = .environment
                return text
            }
            if let text = settings.file?.values[key], !text.isEmpty {
                settings.sources[key] = .file
                return text
            }
            return nil
        }
        func number<T: LosslessStringConvertible>(_ flag: T?, _ name: String) throws -> T? {
            guard let raw = value(flag.map { "\($0)" }, name) else { return nil }
            if let flag { return flag }
            guard let parsed = T(raw.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("\(settings.place(name)) must be a number, got '\(raw)'")
            }
            return parsed
        }
        func boolean(_ flag: Bool, _ name: String) throws -> Bool? {
            guard let raw = value(flag ? "true" : nil, name) else { return nil }
            switch raw.lowercased() {
            case "1", "true", "yes": return true
            case "0", "false", "no": return false
            default: throw ValidationError("\(settings.place(name)) must be true or false, got '\(raw)'")
            }
        }
        var configuration = ServerConfiguration()
        configuration.host = value(host, "HOST") ?? configuration.host
        configuration.port = try number(port, "PORT") ?? configuration.port
        configuration.dataDirectory = value(dataDir, "DATA_DIR") ?? configuration.dataDirectory
        configuration.database = value(database, "DATABASE")
        if let raw = value(executor, "EXECUTOR") {
            guard let kind = ServerConfiguration.ExecutorKind(rawValue: raw) else {
                throw ValidationError("--executor must be one of auto, shell, docker, nomad, runner")
            }
            configuration.executor = kind
        }
        if let url = value(advertiseURL, "ADVERTISE_URL") {
            guard let components = URLComponents(string: url), ["http", "https"].contains(components.scheme ?? ""), components.host != nil else {
                throw ValidationError("--advertise-url must be an http:// or https:// URL, got '\(url)'")
            }
            configuration.advertiseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        if let binary = value(runnerBinary, "RUNNER_BINARY") {
            guard FileManager.default.isExecutableFile(atPath: binary) else { throw ValidationError("--runner-binary must name an executable file, got '\(binary)'") }
            configuration.runnerBinary = binary
        }
        if let files = value(runnerFiles, "RUNNER_FILES") {
            guard ["direct", "channel"].contains(files) else { throw ValidationError("--runner-files must be direct or channel, got '\(files)'") }
            configuration.runnerFilesOverChannel = files == "channel"
        }
        if let url = value(runnerURL, "RUNNER_URL") {
            guard let components = URLComponents(string: url), ["http", "https"].contains(components.scheme ?? ""), components.host != nil else {
                throw ValidationError("--runner-url must be an http:// or https:// URL, got '\(url)'")
            }
            configuration.runnerURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        configuration.nomad = NomadConfiguration.fromEnvironment(environment)
        if let list = value(nomadDatacenters, "NOMAD_DATACENTERS") {
            configuration.nomad.datacenters = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let raw = value(nomadDriver, "NOMAD_DRIVER") {
            guard let driver = NomadConfiguration.Driver(rawValue: raw) else {
                throw ValidationError("--nomad-driver must be one of \(NomadConfiguration.Driver.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            configuration.nomad.driver = driver
        }
        configuration.nomad.dockerImage = value(nomadImage, "NOMAD_IMAGE") ?? configuration.nomad.dockerImage
        configuration.nomad.runnerCommand = value(nomadRunnerCommand, "NOMAD_RUNNER_COMMAND") ?? configuration.nomad.runnerCommand
        configuration.maxConcurrentJobs = try number(maxConcurrentJobs, "MAX_CONCURRENT_JOBS") ?? configuration.maxConcurrentJobs
        guard (1...10_000).contains(configuration.maxConcurrentJobs) else {
            throw ValidationError("--max-concurrent-jobs must be from 1 to 10000")
        }
        configuration.maxJobsPerOwner = try number(maxJobsPerOwner, "MAX_JOBS_PER_OWNER") ?? configuration.maxJobsPerOwner
        if let limit = configuration.maxJobsPerOwner, !(1...10_000).contains(limit) {
            throw ValidationError("--max-jobs-per-owner must be from 1 to 10000")
        }
        if let list = value(webhookAllowHosts, "WEBHOOK_ALLOW_HOSTS") {
            configuration.webhookAllowedHosts = Set(
                list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty })
        }
        if let list = value(webhookRetrySeconds, "WEBHOOK_RETRY_SECONDS") {
            let waits = list.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !waits.isEmpty, waits.count <= 20, waits.allSatisfy({ ($0 ?? -1) >= 0 && ($0 ?? 0) <= 86_400 }) else {
                throw ValidationError("--webhook-retry-seconds must list 1 to 20 waits in seconds, each from 0 to 86400, e.g. 5,30,120")
            }
            configuration.webhookRetrySchedule = waits.map { .milliseconds(Int(($0 ?? 0) * 1000)) }
        }
        guard (0...65535).contains(configuration.port) else { throw ValidationError("--port must be from 0 to 65535") }
        configuration.secretsDirectory = value(secretsDir, "SECRETS_DIR")
        configuration.secretsKeyFile = value(secretsKeyFile, "SECRETS_KEY_FILE")
        configuration.apiToken = value(apiToken, "API_TOKEN")
        configuration.allowLocalRepositories = try boolean(allowLocalRepos, "ALLOW_LOCAL_REPOS") ?? configuration.allowLocalRepositories
        configuration.accessLog = try boolean(accessLog, "ACCESS_LOG") ?? configuration.accessLog
        configuration.relaxedDurability = try boolean(relaxedDurability, "RELAXED_DURABILITY") ?? configuration.relaxedDurability
        if let raw = value(logFormat, "LOG_FORMAT") {
            guard let format = ServerConfiguration.LogFormat(rawValue: raw) else { throw ValidationError("--log-format must be text or json, got '\(raw)'") }
            configuration.logFormat = format
        }
        if let grace = try number(killGraceSeconds, "KILL_GRACE_SECONDS") {
            guard grace >= 0, grace <= Limits.default.maxTimeoutSeconds else {
                throw ValidationError("--kill-grace-seconds must be from 0 to \(Int(Limits.default.maxTimeoutSeconds))")
            }
            configuration.killGracePeriod = .milliseconds(Int(grace * 1000))
        }
        if let size = try number(cacheMaxGB, "CACHE_MAX_GB") {
            guard size > 0, size <= 1_048_576 else { throw ValidationError("--cache-max-gb must be from above 0 to 1048576") }
            configuration.cacheMaxBytes = Int(size * 1_073_741_824)
        }
        if let size = try number(cacheEntryMaxMB, "CACHE_ENTRY_MAX_MB") {
            guard size > 0, size <= 1_048_576 else { throw ValidationError("--cache-entry-max-mb must be from above 0 to 1048576") }
            configuration.cacheEntryMaxBytes = Int(size * 1_048_576)
        }
        if let size = try number(artifactMaxMB, "ARTIFACT_MAX_MB") {
            guard size > 0, size <= 1_048_576 else { throw ValidationError("--artifact-max-mb must be from above 0 to 1048576") }
            configuration.artifactMaxBytes = Int(size * 1_048_576)
        }
        if let cap = try number(stepOutputCapMB, "STEP_OUTPUT_CAP_MB") {
            guard cap > 0, cap <= 1_048_576 else { throw ValidationError("--step-output-cap-mb must be from above 0 to 1048576 (1 TiB)") }
            configuration.stepOutputCap = Int(cap * 1_048_576)
        }
        if let path = value(languageImages, "LANGUAGE_IMAGES") {
            guard let data = FileManager.default.contents(atPath: path),
                let map = try? JSONDecoder().decode([String: String].self, from: data)
            else { throw ValidationError("--language-images must name a JSON file of {\"language\": \"image:{version}\"}") }
            configuration.languageImages.merge(map) { $1 }
        }
        if let timeout = try number(jobTimeoutSeconds, "JOB_TIMEOUT_SECONDS") {
            guard timeout > 0, timeout <= Limits.default.maxTimeoutSeconds else {
                throw ValidationError("--job-timeout-seconds must be from above 0 to \(Int(Limits.default.maxTimeoutSeconds))")
            }
            configuration.jobTimeout = .milliseconds(Int(timeout * 1000))
        }
        if let timeout = try number(shutdownTimeoutSeconds, "SHUTDOWN_TIMEOUT_SECONDS") {
            guard timeout >= 0, timeout <= Limits.default.maxTimeoutSeconds else {
                throw ValidationError("--shutdown-timeout-seconds must be from 0 to \(Int(Limits.default.maxTimeoutSeconds))")
            }
            configuration.shutdownTimeout = .milliseconds(Int(timeout * 1000))
        }
        if let hours = try number(retentionHours, "RETENTION_HOURS") {
            guard hours >= 0, hours <= 87_600 else { throw ValidationError("--retention-hours must be from 0 to 87600 (ten years)") }
            configuration.retention = hours == 0 ? nil : .milliseconds(Int(hours * 3_600_000))
        }
        if let days = try number(keepJobsDays, "KEEP_JOBS_DAYS") {
            guard days >= 0, days <= 36_500 else { throw ValidationError("--keep-jobs-days must be from 0 to 36500 (a hundred years)") }
            configuration.keepJobs = days == 0 ? nil : .milliseconds(Int(days * 86_400_000))
        }
        if let lease = try number(leaseSeconds, "LEASE_SECONDS") {
            guard lease >= 1, lease <= 3600 else { throw ValidationError("--lease-seconds must be from 1 to 3600") }
            configuration.leaseDuration = .milliseconds(Int(lease * 1000))
        }
        if let user = value(stepUser, "STEP_USER") {
            do {
                _ = try StepIdentity(user: user)
            } catch {
                throw ValidationError("\(error)")
            }
            configuration.stepUser = user
        }
        if let seconds = try number(headerTimeoutSeconds, "HEADER_TIMEOUT_SECONDS") {
            guard seconds > 0, seconds <= 3600 else { throw ValidationError("--header-timeout-seconds must be from above 0 to 3600") }
            configuration.headerTimeout = .milliseconds(Int(seconds * 1000))
        }
        if let seconds = try number(idleTimeoutSeconds, "IDLE_TIMEOUT_SECONDS") {
            guard seconds > 0, seconds <= 86_400 else { throw ValidationError("--idle-timeout-seconds must be from above 0 to 86400") }
            configuration.idleTimeout = .milliseconds(Int(seconds * 1000))
        }
        if let raw = value(logLevel, "LOG_LEVEL") {
            guard let level = Logger.Level(rawValue: raw) else { throw ValidationError("--log-level '\(raw)' is not a level") }
            configuration.logLevel = level
        }
        if let file = settings.file {
            let unknown = Set(file.values.keys).subtracting(asked).sorted()
            guard unknown.isEmpty else {
                throw ValidationError(
                    "--config: \(file.path) sets \(unknown.map { "'\($0)'" }.joined(separator: ", ")), which is not a serve setting; "
                        + "the settings are \(asked.sorted().joined(separator: ", "))")
            }
        }
        return configuration
    }
}
