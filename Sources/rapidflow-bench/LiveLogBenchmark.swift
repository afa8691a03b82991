import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import RapidFlowAPI
import RapidFlowRunner
import RapidFlowServer
import ServiceLifecycle
import Synchronization

/// Live logs: line latency, capture throughput and fan-out, with the service in this process.
struct LiveLogBenchmark {
    let quick: Bool
    /// Measures only what masking secrets costs (`LiveLogBenchmark+SecretMasking.swift`).
    var secretMasking = false
    /// Alternating pairs of capture runs in that measurement.
    var repetitions = 3
    let logger = Logger(label: "bench")

    var stampedLines: Int { quick ? 200 : 1000 }
    var stampScript: String { "for i in $(seq 1 \(stampedLines)); do echo $EPOCHREALTIME; sleep 0.005; done" }

    func run() async throws {
        let dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("rapidflow-bench-\(UUID().uuidString.prefix(6))").path
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.dataDirectory = dataDirectory
        configuration.logLevel = .error
        configuration.maxConcurrentJobs = 4
        configuration.allowLocalRepositories = true
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let (app, _) = try await buildApplication(configuration: configuration) { portContinuation.yield($0) }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let launcher = ProcessLauncher()

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = await iterator.next()!
            print("RapidFlow \(secretMasking ? "secret-masking" : "live-log") benchmark (\(quick ? "quick" : "full") run), \(ProcessInfo.processInfo.activeProcessorCount) cores")
            print(""); fflush(nil)
            if secretMasking {
                try await measureSecretMasking(port: port, dataDirectory: dataDirectory)
            } else {
                try await measure(port: port, launcher: launcher, dataDirectory: dataDirectory)
            }
            await group.triggerGracefulShutdown()
        }
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    private func measure(port: Int, launcher: ProcessLauncher, dataDirectory: String) async throws {
        // 1. Line latency: step print → WebSocket follower.
        let pipeLatency = try await baselinePipeLatency(launcher)
        let collector = LatencyCollector()
        let latencyJob = try await runJob(port, script: "sleep 0.3; " + stampScript)
        _ = try await follow(port, latencyJob) { collector.receive($0) }
        let serviceLatency = collector.values
        print("Line latency, print → receiver (\(stampedLines) lines, one every 5 ms)")
        print("  baseline: read straight from the step's pipe   p50 \(format(median(pipeLatency), 3)) ms   p99 \(format(percentile(pipeLatency, 0.99), 3)) ms")
        print("  RapidFlow: stored, then WebSocket follower       p50 \(format(median(serviceLatency), 3)) ms   p99 \(format(percentile(serviceLatency, 0.99), 3)) ms   (\(serviceLatency.count) lines)")
        print(""); fflush(nil)

        // 2. Capture throughput.
        let size = quick ? "256M" : "1G"
        let file = "\(dataDirectory)/baseline.out"
        var baselineTimes: [Double] = []
        var serviceTimes: [Double] = []
        for _ in 0..<(quick ? 1 : 3) {
            baselineTimes.append(try shellSeconds("yes 2>/dev/null | head -c \(size) > \(file)"))
            try? FileManager.default.removeItem(atPath: file)
            let jobID = try await runJob(port, script: "yes 2>/dev/null | head -c \(size)")
            _ = try await waitForJob(port, jobID)
            let status: API.JobStatusReport = try await call(port, .GET, "/jobs/\(jobID)/status")
            serviceTimes.append(status.steps.first?.durationSeconds ?? .nan)
        }
        let ratio = median(serviceTimes) / median(baselineTimes)
        print("Capture throughput of a step printing \(size)B (median of \(baselineTimes.count))")
        print("  baseline: bash -c 'yes | head -c \(size) > file'   \(format(median(baselineTimes))) s")
        print("  RapidFlow step (captured, stored, capped at 64 MiB)   \(format(median(serviceTimes))) s   ratio \(format(ratio)) (goal ≤ 1.5)")
        print(""); fflush(nil)

        // 3. Fan-out: many followers of one job.
        let megabytes = quick ? 5 : 20
        let fanScript = "sleep 2; yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq | head -c \(megabytes * 1_000_000)"
        func fanOut(_ followers: Int) async throws -> Double {
            let jobID = try await runJob(port, script: fanScript)
            let start = Date()
            let total = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<followers { group.addTask { try await follow(port, jobID) } }
                return try await group.reduce(0, +)
            }
            let seconds = Date().timeIntervalSince(start) - 2
            return Double(total) / 1_000_000 / seconds
        }
        let single = try await fanOut(1)
        let many = try await fanOut(quick ? 100 : 500)
        print("Delivered throughput, \(megabytes) MB job over WebSocket")
        print("  baseline: 1 follower      \(format(single, 1)) MB/s")
        print("  \(quick ? 100 : 500) followers           \(format(many, 1)) MB/s delivered in total (\(format(many / single, 1))× one follower)")
    }

    // MARK: - Service calls

    /// A JSON POST/GET against the service under test, returning the envelope's data.
    func call<Payload: Decodable>(_ port: Int, _ method: HTTPMethod, _ path: String, _ body: (any Encodable)? = nil) async throws -> Payload {
        try await JSONAPI(base: "http://127.0.0.1:\(port)").rapidFlow(method, path, body)
    }

    /// `env` goes into the config as written: keys ending `_TOKEN` make their values secrets.
    func runJob(_ port: Int, script: String, env: [(key: String, value: String)] = []) async throws -> Int {
        let environment = env.isEmpty ? "" : "env:\n" + env.map { "  \($0.key): \"\($0.value)\"\n" }.joined()
        let config = environment + "steps:\n  - |\n    \(script)\n"
        let pipeline: API.Pipeline = try await call(port, .POST, "/pipelines", API.PipelineDefinition(name: "bench", config: config))
        let job: API.Job = try await call(port, .POST, "/pipelines/\(pipeline.id)/jobs")
        return job.id
    }

    func waitForJob(_ port: Int, _ id: Int) async throws -> API.Job {
        while true {
            let job: API.Job = try await call(port, .GET, "/jobs/\(id)")
            if job.status.isFinal { return job }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Follows a job's WebSocket; `onLog` sees each log event's data; returns bytes received.
    /// A connection refused by a full accept queue (hundreds of followers at once) is retried.
    private func follow(_ port: Int, _ jobID: Int, onLog: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Int {
        for attempt in 1...5 {
            do {
                return try await followOnce(port, jobID, onLog: onLog)
            } catch where attempt < 5 {
                try await Task.sleep(for: .milliseconds(50 * attempt))
            }
        }
        return 0
    }

    private func followOnce(_ port: Int, _ jobID: Int, onLog: @escaping @Sendable (String) -> Void) async throws -> Int {
        let bytes = Atomic<Int>(0)
        try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/jobs/\(jobID)/logs/stream", logger: logger) { inbound, _, _ in
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message else { continue }
                guard case .log(_, _, let data) = try JSONDecoder().decode(API.LogStreamEvent.self, from: Data(text.utf8)) else { continue }
                // Output that is not UTF-8 comes as base64; the stamps are text.
                switch data {
                case .text(let text):
                    bytes.add(text.utf8.count, ordering: .relaxed)
                    onLog(text)
                case .base64:
                    bytes.add(data.bytes?.count ?? 0, ordering: .relaxed)
                }
            }
        }
        return bytes.load(ordering: .relaxed)
    }

    // MARK: - Baselines without the service

    /// The same stamped lines read straight from the child's pipe.
    private func baselinePipeLatency(_ launcher: ProcessLauncher) async throws -> [Double] {
        let collector = LatencyCollector()
        _ = try await launcher.run(
            ProcessSpec(executable: "/bin/bash", arguments: ["-c", stampScript], environment: ["PATH": "/usr/bin:/bin"], workingDirectory: nil),
            started: { _ in }, output: { collector.receive(String(buffer: $0)) })
        return collector.values
    }

    func shellSeconds(_ script: String) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        let start = Date()
        try ProcessSpawning.run(process)
        process.waitUntilExit()
        return Date().timeIntervalSince(start)
    }
}

/// Latency of each line stamped with `$EPOCHREALTIME` when printed, to the moment it is received.
final class LatencyCollector: Sendable {
    private let samples = Mutex<[Double]>([])
    private let partial = Mutex("")

    func receive(_ text: String) {
        let now = Date().timeIntervalSince1970
        let lines = partial.withLock { pending -> [Substring] in
            let joined = pending + text
            var parts = joined.split(separator: "\n", omittingEmptySubsequences: false)
            pending = String(parts.removeLast())
            return parts
        }
        samples.withLock { samples in
            for line in lines {
                if let stamp = Double(line.replacingOccurrences(of: ",", with: ".")) { samples.append((now - stamp) * 1000) }
            }
        }
    }

    var values: [Double] { samples.withLock { $0 } }
}
