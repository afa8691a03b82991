import Foundation
import Logging
import RapidFlowCore
import RapidFlowStore

/// One owner floods the queue; how long does another owner's job wait to start? Both the
/// fair order and plain FIFO run the same script on a real store (SQLite in a temporary
/// directory): the claims are the service's SQL, the clock is simulated (every job "runs"
/// exactly `jobSeconds`), so the waits come from the order alone and not from this machine's
/// load. The claim's own cost is measured for real: jobs/s through claim-and-finish, and the
/// time of one claim. The two orders alternate for several rounds (this machine's speed drifts
/// by tens of percent between runs a minute apart), and the medians are compared.
enum FairQueueBenchmark {
    struct Result {
        var order: String
        /// Second owner's jobs: simulated seconds from submit to start.
        var waits: [Double]
        /// Real claim-and-finish throughput with the flood pending, jobs/s.
        var claimRate: Double
        /// Real time of one claim (of the free slots' worth of jobs), microseconds.
        var claimMicros: Double
    }

    static func run(flood: Int, slots: Int, others: Int, rounds: Int) async throws {
        let jobSeconds = 1.0
        print("Fair queue: owner a submits \(flood) jobs at once, owner b one job every \(format(Double(flood) / Double(others) / Double(slots), 1)) s (\(others) in all); \(slots) slots, every job runs \(format(jobSeconds, 0)) s (simulated clock, real claims on SQLite); \(rounds) rounds, FIFO and fair alternating")
        var rates: [String: [Double]] = [:]
        var claims: [String: [Double]] = [:]
        var waits: [String: [Double]] = [:]
        var ratios: [Double] = []
        for round in 1...max(1, rounds) {
            var rate: [String: Double] = [:]
            for order in [SQLJobStore.ClaimOrder.fifo, .fair] {
                let result = try await simulate(order: order, flood: flood, slots: slots, others: others, jobSeconds: jobSeconds)
                rates[result.order, default: []].append(result.claimRate)
                claims[result.order, default: []].append(result.claimMicros)
                waits[result.order] = result.waits
                rate[result.order] = result.claimRate
            }
            let ratio = (rate["fair"] ?? 0) / max(rate["FIFO"] ?? 1, 1e-9)
            ratios.append(ratio)
            print("round \(round): FIFO \(format(rate["FIFO"] ?? 0, 0)) jobs/s, fair \(format(rate["fair"] ?? 0, 0)) jobs/s, fair / FIFO \(format(ratio, 2))")
        }
        print("| order | b's jobs: mean wait | p99 wait | p99 / job duration | claim + finish, jobs/s (median) | one claim, µs (median) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for order in ["FIFO", "fair"] {
            let orderWaits = waits[order] ?? []
            let mean = orderWaits.reduce(0, +) / Double(max(1, orderWaits.count))
            let p99 = percentile(orderWaits, 0.99)
            print("| \(order) | \(format(mean, 1)) s | \(format(p99, 1)) s | \(format(p99 / jobSeconds, 2))× | \(format(percentile(rates[order] ?? [], 0.5), 0)) | \(format(percentile(claims[order] ?? [], 0.5), 0)) |")
        }
        print("fair claim throughput / FIFO, median of the rounds' ratios: \(format(percentile(ratios, 0.5), 2)) (goal ≥ 0.91, i.e. the fair claim costs ≤ 1.1× the FIFO one)")
        print("fair p99 wait of b: \(format(percentile(waits["fair"] ?? [], 0.99) / jobSeconds, 2))× the job duration (goal ≤ 2×)")
    }

    private static func simulate(order: SQLJobStore.ClaimOrder, flood: Int, slots: Int, others: Int, jobSeconds: Double) async throws -> Result {
        let directory = NSTemporaryDirectory() + "rapidflow-fair-queue-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLJobStore.openSQLite(path: "\(directory)/rapidflow.sqlite", logger: Logger(label: "bench"))
        do {
            try await store.migrate()
            let result = try await simulate(store, order: order, flood: flood, slots: slots, others: others, jobSeconds: jobSeconds)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }

    private static func job(owner: String) -> NewJob {
        var snapshot = JobSnapshot(config: "steps:\n  - \"true\"\n")
        snapshot.owner = owner
        return NewJob(
            kind: .pipeline, pipelineID: nil, pipelineName: "bench-\(owner)", snapshot: snapshot,
            steps: [StepPlan(type: .bash, name: nil, content: "true", phase: .build)], environment: [])
    }

    private static func simulate(
        _ store: SQLJobStore, order: SQLJobStore.ClaimOrder, flood: Int, slots: Int, others: Int, jobSeconds: Double
    ) async throws -> Result {
        for _ in 0..<flood { _ = try await store.createJob(job(owner: "a")) }
        // b's jobs arrive evenly while a's flood drains.
        let drain = Double(flood) / Double(slots) * jobSeconds
        var arrivals = (0..<others).map { Double($0) * drain / Double(others) }
        var submitted: [Int: Double] = [:]
        var waits: [Double] = []
        var running: [(id: Int, ends: Double)] = []
        var now = 0.0
        var claimed = 0
        var claimTime: Duration = .zero
        var claimOnly: Duration = .zero
        var claimCalls = 0
        let clock = ContinuousClock()
        let lease = Date().addingTimeInterval(3600)
        while claimed < flood + others {
            while let next = arrivals.first, next <= now {
                arrivals.removeFirst()
                submitted[try await store.createJob(job(owner: "b")).id] = next
            }
            let started = clock.now
            let limit = slots - running.count
            let jobs = try await store.claimPendingJobs(
                owner: "bench", limit: limit, at: Date(), leaseUntil: lease, maxJobsPerOwner: nil, order: order)
            claimTime += clock.now - started
            if limit > 0 { claimCalls += 1; claimOnly += clock.now - started }
            claimed += jobs.count
            for job in jobs {
                running.append((job.id, now + jobSeconds))
                if let at = submitted[job.id] { waits.append(now - at) }
            }
            // On to the next event: a job ending, or b's next job arriving.
            let nextEnd = running.map(\.ends).min() ?? .infinity
            now = min(nextEnd, arrivals.first ?? .infinity)
            guard now.isFinite else { break }
            let finishing = running.filter { $0.ends <= now }
            running.removeAll { $0.ends <= now }
            let finishStart = clock.now
            for job in finishing { _ = try await store.finishJob(id: job.id, status: .success, cancelled: false, at: Date()) }
            claimTime += clock.now - finishStart
        }
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        return Result(
            order: order == .fair ? "fair" : "FIFO", waits: waits, claimRate: Double(claimed) / max(seconds(claimTime), 1e-9),
            claimMicros: seconds(claimOnly) / Double(max(1, claimCalls)) * 1e6)
    }
}
