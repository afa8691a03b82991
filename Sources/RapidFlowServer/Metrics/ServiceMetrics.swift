import Foundation
import Synchronization
import Prometheus
import RapidFlowCore
import RapidFlowStore

/// The service's Prometheus metrics, in a registry of its own (no process-wide bootstrap, so
/// several services in one process — the tests — keep separate figures).
///
/// Counters and histograms are updated as things happen; the job gauges are read from the
/// store at scrape time, so they are right across restarts and replicas.
public final class ServiceMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let logBytes: Counter
    private let jobsByStatus: [JobStatus: Gauge]
    private let queueDepth: Gauge
    private let runningJobs: Gauge
    private let followers: Gauge
    private let processCPU: Gauge
    private let processMemory: Gauge
    private let processDescriptors: Gauge
    /// Statements the store ran since start, on its writer and on its readers.
    private let storeStatements: (writer: Gauge, reader: Gauge)
    /// `rapidflow_pending_jobs{owner}` gauges set at the last scrape, to drop owners gone since.
    private let pendingByOwner = Mutex<[String: Gauge]>([:])
    /// Owners beyond this many (by pending jobs) are summed as `other`: labels stay bounded.
    static let ownerLabelLimit = 100

    /// From 10 ms to an hour: trivial steps and long builds both land in a bucket.
    static let durationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600),
    ]

    /// Request latencies: from a millisecond (a status read) to a minute (a cancel waiting for its job).
    static let requestBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30), .seconds(60),
    ]

    /// `version` and `commit` label `rapidflow_build_info`.
    public init(version: String = "dev", commit: String = "unknown") {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        logBytes = registry.makeCounter(name: "rapidflow_log_bytes_total", help: "Bytes of step output stored.")
        jobsByStatus = Dictionary(
            uniqueKeysWithValues: JobStatus.allCases.map { status in
                (status, registry.makeGauge(name: "rapidflow_jobs", labels: [("status", status.rawValue)], help: "Jobs in the store by status."))
            })
        queueDepth = registry.makeGauge(name: "rapidflow_queue_depth", help: "Jobs waiting for a slot.")
        runningJobs = registry.makeGauge(name: "rapidflow_running_jobs", help: "Jobs this service is running now.")
        followers = registry.makeGauge(name: "rapidflow_log_followers", help: "Clients following a job's log live now (WebSocket and text).")
        registry.makeGauge(
            name: "rapidflow_build_info", labels: [("version", version), ("commit", commit)], help: "The build of the service: always 1."
        ).set(to: 1)
        processCPU = registry.makeGauge(name: "process_cpu_seconds_total", help: "CPU time the service's process has used (user and system).")
        processMemory = registry.makeGauge(name: "process_resident_memory_bytes", help: "Resident memory of the service's process.")
        processDescriptors = registry.makeGauge(name: "process_open_fds", help: "File descriptors the service's process has open.")
        storeStatements = (
            registry.makeGauge(
                name: "rapidflow_store_statements_total", labels: [("connection", "writer")],
                help: "Statements the store ran since start: on the writer (SQLite's one connection, or PostgreSQL's pool) and on SQLite's read-only connections."),
            registry.makeGauge(
                name: "rapidflow_store_statements_total", labels: [("connection", "reader")],
                help: "Statements the store ran since start: on the writer (SQLite's one connection, or PostgreSQL's pool) and on SQLite's read-only connections.")
        )
    }

    /// A message sent to the other replicas (a PostgreSQL `NOTIFY`).
    func recordClusterMessage(kind: String) {
        registry.makeCounter(
            name: "rapidflow_cluster_messages_sent_total", labels: [("kind", kind)],
            help: "Messages this replica sent to the other replicas on its store (PostgreSQL NOTIFYs), by kind."
        ).increment()
    }

    /// A log follower started (+1) or ended (-1).
    func followerChanged(by delta: Double) {
        if delta > 0 { followers.increment(by: delta) } else { followers.decrement(by: -delta) }
    }

    /// A request answered; `duration` is until its response head (a stream's body may go on).
    func recordRequest(route: String, method: String, code: Int, duration: Duration) {
        registry.makeCounter(
            name: "rapidflow_http_requests_total", labels: [("route", route), ("method", method), ("code", String(code))],
            help: "HTTP requests by route, method and status code."
        ).increment()
        registry.makeDurationHistogram(
            name: "rapidflow_http_request_duration_seconds", labels: [("route", route), ("method", method)],
            buckets: Self.requestBuckets, help: "Time to answer a request (to its response head), by route template and method."
        ).record(duration)
    }

    func recordStep(type: StepType, status: StepStatus, duration: Duration) {
        registry.makeDurationHistogram(
            name: "rapidflow_step_duration_seconds", labels: [("type", type.rawValue), ("status", status.rawValue)],
            buckets: Self.durationBuckets, help: "Step run time by step type and final status."
        ).record(duration)
    }

    /// A job reached its final status (here, or settled here for a replica that went away).
    func recordJobFinished(kind: JobKind, status: JobStatus) {
        registry.makeCounter(
            name: "rapidflow_jobs_finished_total", labels: [("kind", kind.rawValue), ("status", status.rawValue)],
            help: "Jobs this service settled, by kind and final status."
        ).increment()
    }

    /// How long a job ran, from its start to its final status, by kind and final status.
    func recordJobDuration(_ job: Job) {
        guard let started = job.startedAt, let finished = job.finishedAt else { return }
        registry.makeDurationHistogram(
            name: "rapidflow_job_duration_seconds", labels: [("kind", job.kind.rawValue), ("status", job.status.rawValue)],
            buckets: Self.durationBuckets, help: "Job run time, start to final status, by kind and final status."
        ).record(.milliseconds(Int(max(0, finished.timeIntervalSince(started)) * 1000)))
    }

    /// How long a job waited for a slot: created to claimed.
    func recordQueueWait(_ job: Job) {
        guard let started = job.startedAt else { return }
        registry.makeDurationHistogram(
            name: "rapidflow_job_queue_wait_seconds", labels: [("kind", job.kind.rawValue)],
            buckets: [.milliseconds(1), .milliseconds(5)] + Self.durationBuckets, help: "Time a job waited for a slot, by kind."
        ).record(.milliseconds(Int(max(0, started.timeIntervalSince(job.createdAt)) * 1000)))
        registry.makeDurationHistogram(
            name: "rapidflow_job_queue_wait_by_priority_seconds", labels: [("priority", job.priority.rawValue)],
            buckets: [.milliseconds(1), .milliseconds(5)] + Self.durationBuckets, help: "Time a job waited for a slot, by priority."
        ).record(.milliseconds(Int(max(0, started.timeIntervalSince(job.createdAt)) * 1000)))
    }

    /// Pending jobs per owner: the first `ownerLabelLimit` owners by count, the rest as `other`.
    func recordPending(_ state: QueueState) {
        let ranked = state.pendingByOwner.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        var figures = Dictionary(uniqueKeysWithValues: ranked.prefix(Self.ownerLabelLimit).map { ($0.key, $0.value) })
        let rest = ranked.dropFirst(Self.ownerLabelLimit).reduce(0) { $0 + $1.value }
        if rest > 0 { figures["other", default: 0] += rest }
        pendingByOwner.withLock { gauges in
            for (owner, gauge) in gauges where figures[owner] == nil {
                registry.unregisterGauge(gauge)
                gauges[owner] = nil
            }
            for (owner, count) in figures {
                let gauge = gauges[owner] ?? registry.makeGauge(
                    name: "rapidflow_pending_jobs", labels: [("owner", owner)], help: "Jobs waiting, by owner (owners past the first 100 as 'other').")
                gauges[owner] = gauge
                gauge.set(to: Double(count))
            }
        }
    }

    /// Each phase that ran: first step start to last step end.
    func recordPhases(of steps: [Step]) {
        for phase in Phase.allCases {
            let ran = steps.filter { $0.phase == phase && $0.startedAt != nil }
            guard let start = ran.compactMap(\.startedAt).min(), let end = ran.compactMap(\.finishedAt).max() else { continue }
            registry.makeDurationHistogram(
                name: "rapidflow_phase_duration_seconds", labels: [("phase", phase.rawValue)],
                buckets: Self.durationBuckets, help: "Phase run time (build, test, publish)."
            ).record(.milliseconds(Int(max(0, end.timeIntervalSince(start)) * 1000)))
        }
    }

    func recordLogBytes(_ count: Int) {
        logBytes.increment(by: Int64(count))
    }

    /// The Prometheus text exposition, with the job gauges refreshed from the store.
    func scrape(store: any JobStore, running: Int) async throws -> [UInt8] {
        let counts = try await store.jobCounts()
        for (status, gauge) in jobsByStatus { gauge.set(to: Double(counts[status] ?? 0)) }
        queueDepth.set(to: Double(counts[.pending] ?? 0))
        recordPending(try await store.queueState())
        runningJobs.set(to: Double(running))
        let process = ProcessFigures.read()
        processCPU.set(to: process.cpuSeconds)
        processMemory.set(to: Double(process.residentBytes))
        processDescriptors.set(to: Double(process.openDescriptors))
        if let counts = (store as? SQLJobStore)?.statementCounts.current {
            storeStatements.writer.set(to: Double(counts.writer))
            storeStatements.reader.set(to: Double(counts.reader))
        }
        return registry.emitToBuffer()
    }
}

/// The service's own process, from `/proc/self`.
struct ProcessFigures {
    var cpuSeconds = 0.0
    var residentBytes = 0
    var openDescriptors = 0

    static func read() -> ProcessFigures {
        var figures = ProcessFigures()
        // Fields 14 and 15 of stat (user and system time, in clock ticks) follow the command
        // name, which is in parentheses and may hold spaces: count from the last ')'.
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) {
                figures.cpuSeconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Int(fields[1]) { figures.residentBytes = pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
        }
        figures.openDescriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        return figures
    }
}
