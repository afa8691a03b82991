import Foundation
import RapidFlowCore

/// The payload shapes of the pipeline API and the image-build API, built in one place.
enum Payloads {
    static let mask = "********"

    /// The pipeline API's job object, with `kind` and a few extras.
    static func job(_ job: Job) -> JSONValue {
        let snapshot = job.snapshot
        return .object([
            ("id", .int(job.id)),
            ("kind", .string(job.kind.rawValue)),
            ("pipeline_id", .optional(job.pipelineID)),
            ("pipeline_name", .optional(job.pipelineName)),
            ("status", .string(job.status.rawValue)),
            ("branch", .optional(snapshot.branch)),
            ("repo_name", .optional(snapshot.repo)),
            ("language", .optional(snapshot.language)),
            ("version", .optional(snapshot.version)),
            ("image", .optional(snapshot.image)),
            ("folder", .optional(snapshot.folder)),
            ("expose_ports", .bool(snapshot.exposePorts)),
            ("cancelled", .bool(job.cancelled)),
            ("container_id", .optional(job.containerID)),
            ("retry_of", .optional(job.retryOf)),
            ("ports", .array(job.ports.map(JSONValue.string))),
            ("created_at", .time(job.createdAt)),
            ("started_at", .time(job.startedAt)),
            ("finished_at", .time(job.finishedAt)),
        ])
    }

    static func pipeline(_ pipeline: Pipeline) -> JSONValue {
        .object([
            ("id", .int(pipeline.id)),
            ("name", .string(pipeline.name)),
            // Secret-looking env values are never shown back: the config is rendered masked.
            ("config", .string(PipelineConfig.maskedText(pipeline.config))),
            ("created_at", .time(pipeline.createdAt)),
            ("updated_at", .time(pipeline.updatedAt)),
        ])
    }

    /// A step as the pipeline API's `/steps/:id/logs` shows it; `idKey` is `id` in details, `step_id` in logs.
    static func step(_ step: Step, output: Data?, idKey: String = "step_id") -> JSONValue {
        .object([
            (idKey, .int(step.id)),
            ("job_id", .int(step.jobID)),
            ("order_num", .int(step.orderNum)),
            ("type", .string(step.type)),
            ("name", .optional(step.name)),
            ("content", .string(step.content)),
            ("phase", .string(step.phase.rawValue)),
            ("status", .string(step.status.rawValue)),
            ("exit_code", .optional(step.exitCode)),
            ("output", .string(text(output))),
            ("created_at", .time(step.createdAt)),
            ("started_at", .time(step.startedAt)),
            ("finished_at", .time(step.finishedAt)),
            ("duration_seconds", .optional(duration(step.startedAt, step.finishedAt))),
        ])
    }

    static func environment(_ entry: EnvironmentEntry) -> JSONValue {
        .object([
            ("id", .int(entry.id)),
            ("job_id", .int(entry.jobID)),
            ("key", .string(entry.key)),
            ("value", .string(EnvironmentValidation.looksSecret(entry.key) ? mask : entry.value)),
        ])
    }

    /// `GET /jobs/:id/logs`: the pipeline API's structured logs and the image-build API's phase texts in one payload.
    static func logs(job: Job, steps: [Step], outputs: [Int: Data]) -> JSONValue {
        var phases: [(String, JSONValue)] = []
        for phase in Phase.allCases {
            var joined = Data()
            for step in steps where step.phase == phase {
                if let output = outputs[step.id] { joined.append(output) }
            }
            phases.append((phase.rawValue, .string(text(joined))))
        }
        return .object(
            [
                ("job_id", .int(job.id)),
                ("status", .string(job.status.rawValue)),
                ("logs", .array(steps.map { step($0, output: outputs[$0.id]) })),
            ] + phases)
    }

    /// `GET /jobs/:id/status`: phase timestamps and durations derived from the steps.
    static func status(job: Job, steps: [Step], concurrentJobs: Int) -> JSONValue {
        var timestamps: [(String, JSONValue)] = [("job_start", .time(job.startedAt))]
        var metrics: [(String, JSONValue)] = []
        for phase in Phase.allCases {
            let phaseSteps = steps.filter { $0.phase == phase && $0.startedAt != nil }
            let start = phaseSteps.compactMap(\.startedAt).min()
            let ended = phaseSteps.allSatisfy { $0.finishedAt != nil }
            let end = ended ? phaseSteps.compactMap(\.finishedAt).max() : nil
            timestamps.append(("\(phase.rawValue)_start", .time(start)))
            timestamps.append(("\(phase.rawValue)_end", .time(end)))
            metrics.append(("\(phase.rawValue)_duration_seconds", .optional(duration(start, end))))
        }
        timestamps.append(("job_end", .time(job.finishedAt)))
        metrics.append(("concurrent_jobs_total", .int(concurrentJobs)))
        metrics.append(("job_duration_seconds", .optional(duration(job.startedAt, job.finishedAt))))
        return .object([
            ("job_id", .int(job.id)),
            ("status", .string(job.status.rawValue)),
            ("metrics", .object(metrics)),
            ("phase_timestamps", .object(timestamps)),
            ("steps", .array(steps.map { step in
                .object([
                    ("step_id", .int(step.id)), ("order_num", .int(step.orderNum)), ("type", .string(step.type)),
                    ("phase", .string(step.phase.rawValue)), ("status", .string(step.status.rawValue)),
                    ("exit_code", .optional(step.exitCode)),
                    ("duration_seconds", .optional(duration(step.startedAt, step.finishedAt))),
                ])
            })),
        ])
    }

    static func duration(_ start: Date?, _ end: Date?) -> Double? {
        guard let start, let end else { return nil }
        return max(0, end.timeIntervalSince(start))
    }

    static func text(_ data: Data?) -> String {
        guard let data else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
}
