import Foundation
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

    /// From 10 ms to an hour: trivial steps and long builds both land in a bucket.
    static let durationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600),
    ]

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        logBytes = registry.makeCounter(name: "rapidflow_log_bytes_total", help: "Bytes of step output stored.")
        jobsByStatus = Dictionary(
            uniqueKeysWithValues: JobStatus.allCases.map { status in
                (status, registry.makeGauge(name: "rapidflow_jobs", labels: [("status", status.rawValue)], help: "Jobs in the store by status."))
            })
        queueDepth = registry.makeGauge(name: "rapidflow_queue_depth", help: "Jobs waiting for a slot.")
        runningJobs = registry.makeGauge(name: "rapidflow_running_jobs", help: "Jobs this service is running now.")
    }

    func recordRequest(route: String, method: String, code: Int) {
        registry.makeCounter(
            name: "rapidflow_http_requests_total", labels: [("route", route), ("method", method), ("code", String(code))],
            help: "HTTP requests by route, method and status code."
        ).increment()
    }

    func recordStep(type: StepType, status: StepStatus, duration: Duration) {
        registry.makeDurationHistogram(
            name: "rapidflow_step_duration_seconds", labels: [("type", type.rawValue), ("status", status.rawValue)],
            buckets: Self.durationBuckets, help: "Step run time by step type and final status."
        ).record(duration)
    }

    /// A job reached its final status (here, or settled here for a replica that went away).
    func recordJobFinished(status: JobStatus) {
        registry.makeCounter(
            name: "rapidflow_jobs_finished_total", labels: [("status", status.rawValue)],
            help: "Jobs this service settled, by final status."
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
        runningJobs.set(to: Double(running))
        return registry.emitToBuffer()
    }
}
