import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOPosix
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore
import ServiceLifecycle
import Synchronization

/// The running service's parts, for callers (tests, the CLI) that need more than the app.
public struct RapidFlowService: Sendable {
    public let store: any JobStore
    public let scheduler: JobScheduler
}

/// Builds the whole service as one `Service`, in the order it starts: configuration, the
/// store, the executors, the scheduler, the HTTP server.
///
/// Each long-lived resource is a service of its own, listed in that order: the service
/// group starts them in order and stops them in reverse, each once those after it have
/// ended, so on shutdown the HTTP server stops first, then the scheduler (which settles the
/// jobs it runs), then the executors' resources, and the store last. The store opens and
/// migrates, and the previous run's jobs are settled, before anything serves.
public func buildApplication(
    configuration: ServerConfiguration,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> (some ApplicationProtocol, RapidFlowService) {
    // Configuration: what can be refused is refused before anything opens.
    let logger = Logger.service(configuration)
    let dataDirectory = configuration.absoluteDataDirectory
    let workspaces = "\(dataDirectory)/workspaces"
    try FileManager.default.createDirectory(atPath: workspaces, withIntermediateDirectories: true)
    let instanceID = try InstanceIdentity.load(dataDirectory: dataDirectory)
    let stepIdentity: StepIdentity?
    do {
        stepIdentity = try configuration.stepUser.map(StepIdentity.init(user:))
    } catch {
        throw RapidFlowError(.invalidConfig, "\(error)")
    }

    // The store, and on PostgreSQL the notifier that replicas on it share: events, cancels
    // and new jobs.
    let store = try await openStore(configuration: configuration, dataDirectory: dataDirectory, logger: logger)
    do {
        try await store.migrate()
    } catch {
        await store.close()
        throw error
    }
    // The key of the stored secrets: a wrong or missing one stops start-up, naming the file.
    let vault: SecretVault
    do {
        vault = try await SecretVault.open(store: store, keyPath: configuration.secretsKeyFile ?? "\(dataDirectory)/secrets.key")
    } catch {
        await store.close()
        throw error
    }
    var services: [any Service] = [store]
    if let notifier = store.notifier { services.append(notifier) }

    // The executors: steps run as processes here (their exits awaited through pidfds, no thread each),
    // in containers on the configured Docker engine, or in a `rapidflow runner` per job (on
    // Nomad, or a local process) that reaches this replica at its advertised address, known
    // once the server listens.
    let nomad: NomadExecutor?
    do {
        nomad = try nomadExecutor(configuration: configuration, instanceID: instanceID)
    } catch {
        await store.close()
        throw error
    }
    let launcher = ProcessLauncher()
    if let nomad { services.append(nomad.client) }
    let docker = DockerEngine(socketPath: configuration.dockerSocket)
    let engineAnswers = configuration.executor == .shell ? false : await docker.isReachable()
    let useContainers = configuration.executor == .docker || (configuration.executor == .auto && engineAnswers)
    let localExecutor = LocalExecutor(
        steps: RoutingExecutor(
            shell: ShellExecutor(launcher: launcher, identity: stepIdentity), image: DockerImageExecutor(launcher: launcher, engine: docker),
            containers: useContainers ? ContainerStepExecutor(launcher: launcher, languageImages: configuration.languageImages) : nil,
            containersRequired: configuration.executor == .docker))
    let hub = RunnerHub()
    let advertised = Mutex<String>(configuration.advertiseURL ?? "http://\(configuration.host):\(configuration.port)")
    let executor: any JobExecutor
    if let custom = configuration.customExecutor {
        executor = custom
    } else if configuration.executor == .nomad || configuration.executor == .runner {
        let runnerLauncher: any RunnerLauncher =
            if let nomad { NomadRunnerLauncher(nomad: nomad) } else {
                LocalRunnerLauncher(
                    binary: configuration.runnerBinary ?? ownExecutable(), workspaces: "\(dataDirectory)/runner-workspaces",
                    executor: engineAnswers ? "auto" : "shell", stepUser: stepIdentity?.name,
                    leaseSeconds: configuration.leaseDuration.inSeconds, sharesWorkspaces: !configuration.runnerFilesOverChannel)
            }
        executor = RunnerExecutor(
            hub: hub, launcher: runnerLauncher, local: localExecutor, serverURL: { configuration.runnerURL ?? advertised.withLock { $0 } },
            gracePeriod: configuration.killGracePeriod, logger: logger)
    } else {
        executor = localExecutor
    }

    // The scheduler, and beside it the relay between replicas and the workspace reaper.
    let outbox = store.notifier.map { _ in ClusterOutbox(origin: instanceID) }
    let broadcaster = LogBroadcaster(outbox: outbox)
    let metrics = ServiceMetrics(version: configuration.version, commit: configuration.commit)
    let credentials = CredentialStore(secretsDirectory: configuration.secretsDirectory)
    // Webhooks: the store's triggers write each announcement with the change it announces;
    // the dispatcher sends them, woken by the scheduler's changes here.
    let tap = JobEventTap()
    let dispatcher = WebhookDispatcher(
        store: store, vault: vault,
        settings: .init(
            retrySchedule: configuration.webhookRetrySchedule, timeout: configuration.webhookTimeout,
            allowedHosts: configuration.webhookAllowedHosts, retention: configuration.retention),
        instanceID: instanceID, tap: tap, baseURL: { advertised.withLock { $0 } }, logger: logger)
    var schedulerSettings = JobScheduler.Settings(
        maxConcurrentJobs: configuration.maxConcurrentJobs, killGracePeriod: configuration.killGracePeriod,
        workspacesDirectory: workspaces, instanceID: instanceID, stepOutputCap: configuration.stepOutputCap,
        credentials: credentials, credentialsDirectory: "\(dataDirectory)/credentials", defaultJobTimeout: configuration.jobTimeout,
        metrics: metrics, leaseDuration: configuration.leaseDuration, repositories: configuration.repositories, secrets: vault,
        maxJobsPerOwner: configuration.maxJobsPerOwner)
    schedulerSettings.events = tap
    var filesSettings = WorkspaceFiles.Settings(directory: dataDirectory, instanceID: instanceID)
    filesSettings.cacheMaxBytes = configuration.cacheMaxBytes
    filesSettings.cacheEntryMaxBytes = configuration.cacheEntryMaxBytes
    filesSettings.cacheMaxFiles = configuration.cacheMaxFiles
    filesSettings.artifactMaxBytes = configuration.artifactMaxBytes
    filesSettings.identity = stepIdentity
    let workspaceFiles = WorkspaceFiles(store: store, settings: filesSettings, logger: logger)
    schedulerSettings.workspaceFiles = workspaceFiles
    let scheduler = JobScheduler(
        store: store, executor: executor, broadcaster: broadcaster, settings: schedulerSettings, logger: logger, outbox: outbox)
    // Before anything serves: no job stays `running` across a crash or restart, and nothing
    // the previous run started (processes, containers) is left behind.
    logger.info("step containment", metadata: ["containment": "\(StepCgroups.containment)"])
    await scheduler.recoverInterruptedJobsOrDefer()
    if engineAnswers, let removed = try? await docker.removeContainers(instanceID: instanceID), removed > 0 {
        logger.notice("removed containers left by the previous run", metadata: ["containers": "\(removed)"])
    }
    if let notifier = store.notifier, let outbox {
        services.append(
            ClusterRelay(
                notifier: notifier, outbox: outbox, store: store, broadcaster: broadcaster, scheduler: scheduler, metrics: metrics,
                logger: logger))
    }
    // Before the scheduler, so it stops after it: the jobs the scheduler settles on the way
    // out are still announced.
    services.append(dispatcher)
    services.append(scheduler)
    // Scoped tokens, known by their hash, reloaded every few seconds.
    let registry = TokenRegistry(store: store, adminToken: configuration.apiToken, logger: logger)
    do {
        try await registry.reload()
    } catch {
        await store.close()
        throw error
    }
    services.append(registry)
    services.append(WorkspaceFilesJanitor(files: workspaceFiles, interval: configuration.artifactSweepInterval))
    if let keep = configuration.keepJobs {
        services.append(JobPruner(store: store, keep: keep, logger: logger))
    }
    if let retention = configuration.retention {
        services.append(
            WorkspaceReaper(
                store: store, docker: engineAnswers ? docker : nil, workspacesDirectory: workspaces, instanceID: instanceID,
                retention: retention, logger: logger))
    }

    // The HTTP server: the application adds it after the services above, so it starts last
    // and stops first.
    let router = buildRouter(
        configuration: configuration, store: store, scheduler: scheduler, broadcaster: broadcaster,
        executorName: executor.name, workspaces: workspaces, docker: docker, credentials: credentials, instanceID: instanceID,
        metrics: metrics, vault: vault, registry: registry, hub: hub, nomad: nomad, dispatcher: dispatcher, files: workspaceFiles)
    let webSocketRouter = Router(context: BasicWebSocketRequestContext.self)
    webSocketRouter.add(middleware: WebSocketSubprotocolMiddleware())
    if registry.requiresToken {
        // Browsers cannot set headers on a WebSocket: the dashboard sends its token as a subprotocol.
        webSocketRouter.add(middleware: BearerTokenMiddleware(registry: registry, acceptsWebSocketProtocol: true))
    }
    LogStreamController(store: store, broadcaster: broadcaster, metrics: metrics, registry: registry).addWebSocketRoutes(to: webSocketRouter)
    let app = Application(
        router: router,
        server: .guardedHTTP1WebSocketUpgrade(
            webSocketRouter: webSocketRouter, limits: configuration.limits,
            timeouts: .init(header: .init(configuration.headerTimeout), idle: .init(configuration.idleTimeout)),
            webSocketPing: configuration.webSocketPingInterval,
            registry: registry),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "rapidflow"),
        services: services,
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? configuration.port
            if configuration.advertiseURL == nil {
                let host = configuration.host == "0.0.0.0" || configuration.host == "::" ? "127.0.0.1" : configuration.host
                advertised.withLock { $0 = "http://\(host):\(port)" }
            }
            // Where the other replicas send the runners of this one's jobs.
            do {
                try await store.recordReplica(instanceID: instanceID, url: advertised.withLock { $0 }, at: Date())
            } catch {
                logger.warning("could not record this replica's address", metadata: ["error": "\(error)"])
            }
            await onServerRunning(port)
        },
        logger: logger)
    return (app, RapidFlowService(store: store, scheduler: scheduler))
}

func buildRouter(
    configuration: ServerConfiguration, store: any JobStore, scheduler: JobScheduler, broadcaster: LogBroadcaster,
    executorName: String, workspaces: String, docker: DockerEngine, credentials: CredentialStore, instanceID: String,
    metrics: ServiceMetrics, vault: SecretVault, registry: TokenRegistry,
    hub: RunnerHub = RunnerHub(), nomad: NomadExecutor? = nil, dispatcher: WebhookDispatcher? = nil, files: WorkspaceFiles? = nil
) -> Router<ServiceRequestContext> {
    let router = Router(context: ServiceRequestContext.self)
    router.add(
        middleware: RequestMetricsMiddleware(metrics: metrics, accessLog: configuration.accessLog ? Logger.service(configuration, label: "rapidflow.access") : nil))
    router.add(middleware: ErrorEnvelopeMiddleware())
    router.add(middleware: HeaderLimitMiddleware(maxBytes: configuration.limits.maxHeaderBytes))
    router.add(middleware: RunnerRedirectMiddleware(hub: hub, store: store, instanceID: instanceID))
    router.add(middleware: AccessMiddleware(registry: registry, store: store, limits: configuration.limits, logger: Logger.service(configuration)))
    if !configuration.relaxedDurability { router.add(middleware: DurableWritesMiddleware(store: store)) }
    HealthController(
        store: store, executorName: executorName, docker: docker, requiresDocker: configuration.executor == .docker, nomad: nomad,
        isDraining: { scheduler.isDraining }
    ).addRoutes(to: router)
    PipelineController(
        store: store, scheduler: scheduler, limits: configuration.limits, repositories: configuration.repositories, secrets: vault
    ).addRoutes(to: router)
    SecretController(vault: vault, store: store, limits: configuration.limits).addRoutes(to: router)
    JobController(
        store: store, scheduler: scheduler, workspacesDirectory: workspaces, limits: configuration.limits,
        repositories: configuration.repositories, credentials: credentials, secrets: vault, instanceID: instanceID, docker: docker,
        nomad: nomad, maxJobsPerOwner: configuration.maxJobsPerOwner, files: files
    ).addRoutes(to: router)
    OwnerController(store: store, scheduler: scheduler, limits: configuration.limits, maxJobsPerOwner: configuration.maxJobsPerOwner)
        .addRoutes(to: router)
    LogStreamController(store: store, broadcaster: broadcaster, metrics: metrics, registry: registry).addRoutes(to: router)
    TokenController(registry: registry, limits: configuration.limits).addRoutes(to: router)
    AuditController(store: registry.store).addRoutes(to: router)
    if let files { WorkspaceFilesController(store: store, files: files).addRoutes(to: router) }
    StaticAssetsController().addRoutes(to: router)
    MetricsController(metrics: metrics, store: store, scheduler: scheduler).addRoutes(to: router)
    RunnerController(hub: hub, files: files).addRoutes(to: router)
    let trigger = PipelineTrigger(
        store: store, scheduler: scheduler, limits: configuration.limits, repositories: configuration.repositories, secrets: vault)
    if let webhookStore = store as? any JobStore & WebhookStore {
        HookController(
            store: webhookStore, trigger: trigger, vault: vault, limits: configuration.limits, statuses: dispatcher?.statuses,
            allowedHosts: configuration.webhookAllowedHosts, logger: Logger.service(configuration)
        ).addRoutes(to: router)
        WebhookController(store: webhookStore, vault: vault, limits: configuration.limits, dispatcher: dispatcher).addRoutes(to: router)
    }
    return router
}

/// With `--executor nomad`: the executor, its configuration checked and its TLS files read.
private func nomadExecutor(configuration: ServerConfiguration, instanceID: String) throws -> NomadExecutor? {
    guard configuration.executor == .nomad else { return nil }
    do {
        var nomad = configuration.nomad
        // Runners on the nodes give up on a job as this replica's own lease does.
        nomad.leaseSeconds = configuration.leaseDuration.inSeconds
        return try NomadExecutor(configuration: nomad, instanceID: instanceID)
    } catch {
        throw RapidFlowError(.invalidConfig, "--executor nomad: \(error)")
    }
}

private func openStore(configuration: ServerConfiguration, dataDirectory: String, logger: Logger) async throws -> SQLJobStore {
    try await StoreLocation(database: configuration.database, dataDirectory: dataDirectory).open(logger: logger)
}

/// Where the store is: `--database` (`sqlite:///path` or a PostgreSQL URL), else the SQLite
/// file in the data directory. `serve`, `backup` and `migrate` find it the same way.
public enum StoreLocation: Sendable {
    case sqlite(path: String)
    case postgres(url: String)

    public init(database: String?, dataDirectory: String) throws {
        let database = database ?? ""
        if database.isEmpty {
            self = .sqlite(path: "\(dataDirectory)/rapidflow.sqlite")
        } else if database.hasPrefix("sqlite://") {
            self = .sqlite(path: String(database.dropFirst("sqlite://".count)))
        } else if PostgresURL.isPostgres(database) {
            self = .postgres(url: database)
        } else {
            throw RapidFlowError(
                .invalidRequest,
                "unsupported --database '\(database.split(separator: ":").first ?? "")': use sqlite:///path or postgres://user:password@host:port/database")
        }
    }

    public func open(logger: Logger) async throws -> SQLJobStore {
        switch self {
        case .sqlite(let path): try await SQLJobStore.openSQLite(path: path, logger: logger)
        case .postgres(let url): try await SQLJobStore.openPostgres(url: url, logger: logger)
        }
    }
}

/// A random id kept in the data directory: it marks this service's step processes so a
/// restart can find the orphans of the previous run, and only those.
enum InstanceIdentity {
    static func load(dataDirectory: String) throws -> String {
        let path = "\(dataDirectory)/instance-id"
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
            !existing.isEmpty
        {
            return existing
        }
        let id = UUID().uuidString.lowercased()
        try id.write(toFile: path, atomically: true, encoding: .utf8)
        return id
    }
}

/// This process's executable, for starting `rapidflow runner` beside it.
private func ownExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}
