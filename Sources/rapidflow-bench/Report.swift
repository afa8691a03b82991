import Foundation

/// Turns the result files of one `scripts/bench.sh` run into BENCHMARKS.md's table.
///
/// The directory holds `settings.txt` and `machine.txt` (written by the script) and one file
/// of numbers per scenario and repetition, `<name>-<rep>.txt`.
struct Report {
    let directory: String
    let settings: [String: String]

    init(directory: String) throws {
        self.directory = directory
        let text = try String(contentsOfFile: "\(directory)/settings.txt", encoding: .utf8)
        settings = Dictionary(
            text.split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }, uniquingKeysWith: { $1 })
    }

    static let beginMarker = "<!-- scripts/bench.sh: table begin -->"
    static let endMarker = "<!-- scripts/bench.sh: table end -->"

    /// Replaces the table between the markers of `path`, or appends a section when they are missing.
    func write(into path: String) throws {
        let table = try markdown()
        var document = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "# Benchmarks\n"
        if let begin = document.range(of: Self.beginMarker), let end = document.range(of: Self.endMarker), begin.upperBound <= end.lowerBound {
            document.replaceSubrange(begin.upperBound..<end.lowerBound, with: "\n" + table)
        } else {
            document += "\n## Per-job overhead, API throughput, scale — `scripts/bench.sh`\n\n\(Self.beginMarker)\n\(table)\(Self.endMarker)\n"
        }
        try document.write(toFile: path, atomically: true, encoding: .utf8)
    }

    // MARK: - The table

    func markdown() throws -> String {
        let machine = try String(contentsOfFile: "\(directory)/machine.txt", encoding: .utf8)
            .split(separator: "\n").map { "- \($0)" }.joined(separator: "\n")
        var rows: [[String]] = [["Scenario", "Baseline (same run)", "Measured", "Ratio", "Goal"], ["---", "---", "---", "---", "---"]]
        rows += try overheadRows()
        rows += try throughputRows()
        rows += try scaleRows()
        let table = rows.map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n")
        return "\(machine)\n\n\(table)\n\n"
    }

    private func overheadRows() throws -> [[String]] {
        let jobs = settings["jobs", default: "?"]
        var rows: [[String]] = []
        for (system, baselineName, name, unit, goal) in [
            ("RapidFlow", "overhead-shell", "overhead-rapidflow", "job", { (added: Double) in added < 10 ? "added < 10 ms: **met**" : "added < 10 ms: **missed**" }),
            ("Buildbot 4.3", "buildbot-shell", "buildbot", "build", { (_: Double) in "(reference: about +395 ms)" }),
        ] {
            let baselines = try repetitions(baselineName).map(median)
            let measured = try repetitions(name).map(median)
            guard !measured.isEmpty, measured.count == baselines.count else { continue }
            let added = zip(measured, baselines).map { $0 - $1 }
            let ratios = zip(measured, baselines).map { $0 / $1 }
            rows.append([
                "Per-job time, \(system): \(jobs) jobs of one `true` step, one after another, submit → final status",
                "`bash -eo pipefail -c true` from a shell loop: \(spread(baselines, digits: 1)) ms",
                "\(spread(measured, digits: 1)) ms per \(unit), **+\(spread(added, digits: 1)) ms** added",
                spread(ratios, digits: 1),
                goal(median(added)),
            ])
        }
        return rows
    }

    private func throughputRows() throws -> [[String]] {
        let seeded = settings["seed_jobs"].flatMap(Int.init).map { $0.formatted() } ?? "?"
        var rows: [[String]] = []
        for (name, scenario, goal) in [
            ("api-status", "`GET /jobs/:id/status`, random id among \(seeded) stored jobs", "≥ 0.5"),
            ("api-list", "`GET /jobs?limit=50`, \(seeded) stored jobs", "≥ 0.5"),
        ] {
            let health = try repetitions("api-health").map(\.[0])
            let measured = try repetitions(name).map(\.[0])
            guard !measured.isEmpty, measured.count == health.count else { continue }
            let ratios = zip(measured, health).map { $0 / $1 }
            rows.append([
                "API throughput: \(scenario)",
                "`GET /health`, same server: \(spread(health, digits: 0)) req/s",
                "\(spread(measured, digits: 0)) req/s",
                spread(ratios),
                "\(goal): **\(median(ratios) >= 0.5 ? "met" : "missed")**",
            ])
        }
        let health = try repetitions("submit-health").map(\.[0])
        let submits = try repetitions("submit-post").map(\.[0])
        if !submits.isEmpty, submits.count == health.count {
            rows.append([
                "Submit throughput: `POST /pipelines/:id/jobs` (jobs queue behind one running job)",
                "`GET /health`, same server: \(spread(health, digits: 0)) req/s",
                "\(spread(submits, digits: 0)) jobs accepted/s",
                spread(zip(submits, health).map { $0 / $1 }),
                "—",
            ])
        }
        return rows
    }

    private func scaleRows() throws -> [[String]] {
        let makespans = try repetitions("scale-makespan").map(\.[0])
        guard !makespans.isEmpty else { return [] }
        let jobs = Double(settings["scale_jobs"].flatMap(Int.init) ?? 0)
        let concurrency = Double(settings["scale_concurrency"].flatMap(Int.init) ?? 1)
        let sleep = Double(settings["scale_sleep"].flatMap(Int.init) ?? 0)
        let ideal = sleep * (jobs / concurrency).rounded(.up)
        let described = "\(Int(jobs)) jobs of `sleep \(Int(sleep))` at once, `--max-concurrent-jobs \(Int(concurrency))`"
        let idle = try repetitions("scale-idle").map(\.[0])
        let peak = try repetitions("scale-peak").map(\.[0])
        let healthP99 = try repetitions("scale-health").map { percentile($0, 0.99) }
        let submitP99 = try repetitions("scale-submit").map { percentile($0, 0.99) }
        return [
            [
                "Scale: \(described), first submit → last job finished",
                "ideal \(format(sleep)) s × \(Int(jobs)) / \(Int(concurrency)) = \(format(ideal, 1)) s",
                "\(spread(makespans, digits: 1)) s",
                spread(makespans.map { $0 / ideal }, digits: 3),
                "—",
            ],
            [
                "Scale: the service's peak memory (VmHWM) during that run",
                "idle after start: \(spread(idle, digits: 0)) MB",
                "\(spread(peak, digits: 0)) MB",
                spread(zip(peak, idle).map { $0 / $1 }, digits: 1),
                "< 300 MB: **\(median(peak) < 300 ? "met" : "missed")**",
            ],
            [
                "Scale: p99 submit latency, \(settings["scale_clients", default: "?"]) clients submitting together",
                "p99 of `GET /health`, same clients and count: \(spread(healthP99, digits: 1)) ms",
                "\(spread(submitP99, digits: 1)) ms",
                spread(zip(submitP99, healthP99).map { $0 / $1 }, digits: 1),
                "—",
            ],
        ]
    }

    // MARK: - Files

    /// The numbers of `<name>-1.txt`, `<name>-2.txt`, … in order, one array per repetition.
    private func repetitions(_ name: String) throws -> [[Double]] {
        var result: [[Double]] = []
        while let text = try? String(contentsOfFile: "\(directory)/\(name)-\(result.count + 1).txt", encoding: .utf8) {
            let numbers = text.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
            guard !numbers.isEmpty else { throw BenchError("\(name)-\(result.count + 1).txt holds no numbers") }
            result.append(numbers)
        }
        return result
    }

    /// The median of the repetitions and, when there are several, their range.
    private func spread(_ values: [Double], digits: Int = 2) -> String {
        guard values.count > 1, let low = values.min(), let high = values.max() else { return format(median(values), digits) }
        return "\(format(median(values), digits)) (\(format(low, digits))–\(format(high, digits)))"
    }
}
