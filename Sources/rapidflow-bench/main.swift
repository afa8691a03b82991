// Benchmarks. Every figure is printed beside a baseline measured in the same run, because
// the machine is shared and absolute times drift.
//
//   swift run -c release rapidflow-bench [--quick]          live logs, the service in this process
//   swift run -c release rapidflow-bench secret-masking [--quick] [--reps N]
//                                                           capture with 20 secrets against none
//   swift run -c release rapidflow-bench fair-queue [--jobs 1000] [--slots 8] [--others 100] [--rounds 5]
//                                                           a second owner's waits behind a flood,
//                                                           fair order against FIFO
//   scripts/bench.sh [--quick]                              per-job overhead against a shell and
//                                                           Buildbot, API throughput, scale; it
//                                                           runs the subcommands below
//
// Subcommands used by scripts/bench.sh (numbers go to --out, one per line):
//   jobs --url U --jobs N --warmup W --out F          RapidFlow ms per job, submit → final status
//   buildbot --url U --builds N --warmup W --out F    Buildbot ms per forced build
//   seed --data-dir D --jobs N                        finished jobs written through the store
//   scale --url U --jobs N --clients C --sleep S --results DIR --rep R
//   report --results DIR [--write BENCHMARKS.md]      the table from one run's results
import AsyncHTTPClient
import Foundation

let arguments = CommandLine.arguments.dropFirst()
let command = arguments.first.flatMap { $0.hasPrefix("--") ? nil : $0 } ?? "live-logs"
let options = Options(arguments.first == command ? arguments.dropFirst() : arguments)

do {
    switch command {
    case "live-logs":
        try await LiveLogBenchmark(quick: options.flags.contains("--quick")).run()
    case "secret-masking":
        try await LiveLogBenchmark(quick: options.flags.contains("--quick"), secretMasking: true, repetitions: try options.int("--reps", default: 3)).run()
    case "fair-queue":
        try await FairQueueBenchmark.run(
            flood: try options.int("--jobs", default: 1000), slots: try options.int("--slots", default: 8),
            others: try options.int("--others", default: 100), rounds: try options.int("--rounds", default: 5))
    case "jobs":
        let api = JSONAPI(base: try options.string("--url"))
        let warmup = try options.int("--warmup", default: 20)
        let before = try await JobLatencyBenchmark.storeStatements(api)
        let samples = try await JobLatencyBenchmark.rapidFlow(api, jobs: try options.int("--jobs", default: 200), warmup: warmup)
        let after = try await JobLatencyBenchmark.storeStatements(api)
        try writeSamples(samples, to: try options.string("--out"))
        let total = Double(samples.count + warmup)
        print(
            "RapidFlow: \(samples.count) jobs, median \(format(median(samples))) ms per job, p90 \(format(percentile(samples, 0.9))) ms; "
                + "store statements per job: \(format(Double(after.writer - before.writer) / total, 1)) on the writer, "
                + "\(format(Double(after.reader - before.reader) / total, 1)) on readers")
    case "buildbot":
        let samples = try await JobLatencyBenchmark.buildbot(
            JSONAPI(base: try options.string("--url")), builds: try options.int("--builds", default: 200),
            warmup: try options.int("--warmup", default: 5), pollInterval: .milliseconds(try options.int("--poll-ms", default: 10)))
        try writeSamples(samples, to: try options.string("--out"))
        print("Buildbot: \(samples.count) builds, median \(format(median(samples))) ms per build, p90 \(format(percentile(samples, 0.9))) ms")
    case "seed":
        let jobs = try options.int("--jobs", default: 100_000)
        let start = Date()
        try await StoreSeeder.seed(dataDirectory: try options.string("--data-dir"), jobs: jobs)
        print("seeded \(jobs) jobs in \(format(Date().timeIntervalSince(start), 1)) s")
    case "scale":
        let clients = try options.int("--clients", default: 100)
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: clients)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let result: ScaleBenchmark.Result
        do {
            result = try await ScaleBenchmark.run(
                JSONAPI(base: try options.string("--url"), client: client), jobs: try options.int("--jobs", default: 1000),
                clients: clients, sleepSeconds: try options.int("--sleep", default: 5))
        } catch {
            try? await client.shutdown().get()
            throw error
        }
        try await client.shutdown().get()
        let results = try options.string("--results")
        let rep = try options.int("--rep", default: 1)
        try writeSamples(result.healthLatencies, to: "\(results)/scale-health-\(rep).txt")
        try writeSamples(result.submitLatencies, to: "\(results)/scale-submit-\(rep).txt")
        try writeSamples([result.makespan], to: "\(results)/scale-makespan-\(rep).txt")
        print(
            "Scale: all finished \(format(result.makespan, 1)) s after the first submit; p99 submit \(format(percentile(result.submitLatencies, 0.99), 1)) ms, p99 /health \(format(percentile(result.healthLatencies, 0.99), 1)) ms"
        )
    case "report":
        let report = try Report(directory: try options.string("--results"))
        print(try report.markdown(), terminator: "")
        if let path = try? options.string("--write") { try report.write(into: path) }
    default:
        throw BenchError("unknown subcommand '\(command)'; see the top of Sources/rapidflow-bench/main.swift")
    }
} catch {
    FileHandle.standardError.write(Data("rapidflow-bench: \(error)\n".utf8))
    exit(1)
}
