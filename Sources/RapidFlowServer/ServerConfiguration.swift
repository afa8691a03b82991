import Foundation
import Logging
import RapidFlowCore
import RapidFlowRunner

/// Everything `rapidflow serve` can be told, with the embedded defaults.
public struct ServerConfiguration: Sendable {
    public enum ExecutorKind: String, Sendable, CaseIterable {
        case auto, shell, docker, nomad
        /// Each job in its own `rapidflow runner` process on this machine.
        case runner
    }

    public var host = "127.0.0.1"
    public var port = 3000
    public var dataDirectory = ".rapidflow"
    /// `sqlite:///path` or empty for `<data-dir>/rapidflow.sqlite`.
    public var database: String?
    public var executor = ExecutorKind.auto
    public var maxConcurrentJobs = 4
    /// Jobs one owner may run at once, unless `PUT /owners/:owner` set its own limit; nil: no limit.
    public var maxJobsPerOwner: Int?
    public var secretsDirectory: String?
    /// The key stored secrets are sealed with; nil: `<data-dir>/secrets.key`, created on first start.
    public var secretsKeyFile: String?
    /// Jobs may clone repositories on this machine (`file://`, a path): off, since any API user
    /// could otherwise build whatever the service's user can read.
    public var allowLocalRepositories = false
    public var apiToken: String?
    public var killGracePeriod: Duration = .seconds(10)
    /// Jobs running longer fail as timed out; a config's `timeout_seconds` overrides it.
    public var jobTimeout: Duration?
    /// On SIGTERM, how long running jobs get to finish (no new one starts, `/ready` is 503)
    /// before they are stopped; zero stops them at once. A second SIGTERM or SIGINT stops them now.
    public var shutdownTimeout: Duration = .zero
    /// Finished jobs' workspaces, containers and images are removed this long after they end (nil: kept).
    public var retention: Duration? = .seconds(7 * 24 * 3600)
    /// Finished jobs, with their steps, output and environment, are removed from the store this
    /// long after they end (`--keep-jobs-days`; nil, the default, keeps them).
    public var keepJobs: Duration?
    public var limits = Limits.default
    /// Output kept per step (head and tail); the middle of a longer output is cut.
    public var stepOutputCap = 64 << 20
    public var logLevel = Logger.Level.info
    /// `text` (swift-log's lines) or `json` (one object a line, for log collectors).
    public var logFormat = LogFormat.text
    /// One `info` line per HTTP request (method, route template, status, duration, client address).
    public var accessLog = false
    /// Writes answer without waiting for SQLite's log to reach the disk (`--relaxed-durability`).
    public var relaxedDurability = false
    /// What `rapidflow --version` says, for the start line and `rapidflow_build_info`.
    public var version = "dev"
    public var commit = "unknown"
    /// `language` → image template (`{version}` is replaced) for the docker executor.
    public var languageImages = ContainerStepExecutor.defaultLanguageImages
    public var dockerSocket = "/var/run/docker.sock"
    /// How long a running job stays a replica's without a renewal (renewed every third of it);
    /// when a replica dies, another settles its jobs within about this time.
    public var leaseDuration: Duration = .seconds(30)
    /// A request head must be complete this long after the connection opens or its first byte
    /// arrives (else 408 and close): a client cannot hold a connection by sending slowly.
    public var headerTimeout: Duration = .seconds(10)
    /// A connection with no request in flight (or whose request body stops arriving) is closed
    /// after this long; a request being answered (long poll, log stream, WebSocket) is not.
    public var idleTimeout: Duration = .seconds(75)
    /// How often a WebSocket follower is pinged; one that has not answered by the next ping is
    /// closed (`goingAway`), so a vanished client does not hold its follower for ever.
    public var webSocketPingInterval: Duration = .seconds(30)
    /// How runners (`--executor nomad` or `runner`) reach this replica; default `http://<host>:<port>`.
    public var advertiseURL: String?
    /// What runners are told to call (a load balancer in front of the replicas); default the
    /// advertise URL. A replica that does not run the job redirects the runner to one that does.
    public var runnerURL: String?
    /// The `rapidflow` binary local runners start (`--executor runner`); default this process's own.
    public var runnerBinary: String?
    /// Local runners' caches and artifacts go over the runner's channel, as a runner's on
    /// another machine do, instead of the service reading their workspaces directly.
    public var runnerFilesOverChannel = false
    /// The user pipeline steps run as (a name or uid); nil: the service's own user.
    public var stepUser: String?
    /// `--executor nomad`: the cluster and how the runner task is started there.
    public var nomad = NomadConfiguration.fromEnvironment()
    /// Runs jobs on this executor instead of the one `executor` names: for programs that embed
    /// the service, and for tests that play a job's steps themselves (no process, no bash).
    public var customExecutor: (any JobExecutor)?
    /// Hosts webhook deliveries and commit statuses may be sent to; nil: any host.
    public var webhookAllowedHosts: Set<String>?
    /// The waits between a webhook delivery's tries (5 s … 1 h, 8 tries in all by default).
    public var webhookRetrySchedule: [Duration] = [
        .seconds(5), .seconds(30), .seconds(120), .seconds(600), .seconds(1800), .seconds(3600), .seconds(3600),
    ]
    /// How long one try of a webhook delivery may take.
    public var webhookTimeout: Duration = .seconds(10)
    /// Disk all caches of this replica may take; the least recently used go first (`--cache-max-gb`).
    public var cacheMaxBytes = 10 << 30
    /// What one cache may unpack to; a restore also stops there (`--cache-entry-max-mb`).
    public var cacheEntryMaxBytes = 4 << 30
    /// Entries one cache may hold; a restore stops there.
    public var cacheMaxFiles = 1_000_000
    /// What one job's artifacts may take together (`--artifact-max-mb`).
    public var artifactMaxBytes = 1 << 30
    /// How often expired artifacts are looked for.
    public var artifactSweepInterval: Duration = .seconds(60)

    public init() {}

    public enum LogFormat: String, Sendable, CaseIterable {
        case text, json
    }

    var repositories: RepositoryPolicy { RepositoryPolicy(allowsLocal: allowLocalRepositories) }

    var absoluteDataDirectory: String {
        URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
    }
}
