import Foundation
import RapidFlowAPI
import RapidFlowCore

/// What masking secrets costs: capture of the same step with 20 secrets set and with none,
/// alternating in one run, and the masker alone on two kinds of output.
extension LiveLogBenchmark {
    /// 20 random 32-character tokens, the kind CI secrets are (`ghp_…`, npm, cloud keys).
    static func benchmarkSecrets() -> [(key: String, value: String)] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return (1...20).map { index in
            (key: "BENCH_\(index)_TOKEN", value: String((0..<32).map { _ in alphabet.randomElement()! }))
        }
    }

    func measureSecretMasking(port: Int, dataDirectory: String) async throws {
        let secrets = Self.benchmarkSecrets()
        let forms = SecretMasker(secrets: secrets.map(\.value)).formCount
        print("Secret masking: \(secrets.count) secrets of 32 characters, \(forms) forms to find; load average \(Self.loadAverage())")
        print(""); fflush(nil)

        // The service really masks them: a step printing one, encoded, shows a mask.
        let check = try await runJob(port, script: "printenv BENCH_1_TOKEN | base64", env: secrets)
        _ = try await waitForJob(port, check)
        let shown = String(decoding: try await JSONAPI(base: "http://127.0.0.1:\(port)").send(.GET, "/jobs/\(check)/logs/raw"), as: UTF8.self)
        let encoded = Data((secrets[0].value + "\n").utf8).base64EncodedString()
        guard shown.contains("********"), !shown.contains(encoded.prefix(40)) else {
            throw BenchError("the secrets are not masked: \(shown)")
        }

        // 1. Capture of a flood, the same step with and without secrets, alternating.
        let size = quick ? "256M" : "1G"
        let script = "yes 2>/dev/null | head -c \(size)"
        let file = "\(dataDirectory)/baseline.out"
        var baselineTimes: [Double] = []
        var plainTimes: [Double] = []
        var maskedTimes: [Double] = []
        func stepSeconds(_ env: [(key: String, value: String)]) async throws -> Double {
            let jobID = try await runJob(port, script: script, env: env)
            _ = try await waitForJob(port, jobID)
            let status: API.JobStatusReport = try await call(port, .GET, "/jobs/\(jobID)/status")
            return status.steps.first?.durationSeconds ?? .nan
        }
        for _ in 0..<(quick ? 1 : repetitions) {
            baselineTimes.append(try shellSeconds("\(script) > \(file)"))
            try? FileManager.default.removeItem(atPath: file)
            plainTimes.append(try await stepSeconds([]))
            maskedTimes.append(try await stepSeconds(secrets))
        }
        let ratio = median(maskedTimes) / median(plainTimes)
        print("Capture throughput of a step printing \(size)B (median of \(plainTimes.count), alternating; load average now \(Self.loadAverage()))")
        print("  reference: bash -c 'yes | head -c \(size) > file'   \(format(median(baselineTimes))) s")
        print("  baseline: RapidFlow step, no secrets               \(format(median(plainTimes))) s   (\(plainTimes.map { format($0) }.joined(separator: ", ")))")
        print("  RapidFlow step, 20 secrets set                     \(format(median(maskedTimes))) s   (\(maskedTimes.map { format($0) }.joined(separator: ", ")))   ratio \(format(ratio)) (goal ≤ 1.3)")
        print(""); fflush(nil)

        // 2. The masker alone, in this process, on 1 MiB chunks as the recorder feeds it.
        let megabytes = quick ? 256 : 1024
        let yes = Data(Array(repeating: Array("y\n".utf8), count: 1 << 19).joined())
        // Base64 lines of random bytes: every byte pair of the base64 alphabet occurs, so the
        // scan moves in short steps and compares often (a worst case for real output).
        var randomBytes = [UInt8](repeating: 0, count: 786_432)
        for index in randomBytes.indices { randomBytes[index] = UInt8.random(in: 0...255) }
        let base64 = Data(Data(randomBytes).base64EncodedString(options: .lineLength76Characters).utf8).prefix(1 << 20)
        print("The masker alone, \(megabytes) MiB in 1 MiB chunks (best of 3)")
        // The scan moves by up to the shortest form less one byte: one short secret slows it.
        let withAShortOne = secrets.dropLast().map(\.value) + ["pa55wd!"]
        let cases = [
            ("yes output", yes, secrets.map(\.value)), ("base64 lines of random bytes", base64, secrets.map(\.value)),
            ("yes output, one secret of 7", yes, withAShortOne), ("base64 lines, one secret of 7", base64, withAShortOne),
        ]
        for (name, chunk, values) in cases {
            let rate = (0..<3).map { _ in maskerThroughput(values, chunk: Data(chunk), chunks: megabytes) }.max()!
            print("  \(name.padding(toLength: 30, withPad: " ", startingAt: 0))  \(format(rate, 0)) MB/s")
        }
    }

    /// The machine is shared: the 1, 5 and 15 minute load averages go beside the figures.
    static func loadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// MB/s through `feed` and `flush`; the output's size is checked so the work is not optimised away.
    private func maskerThroughput(_ secrets: [String], chunk: Data, chunks: Int) -> Double {
        var masker = SecretMasker(secrets: secrets)
        var released = 0
        let start = ContinuousClock.now
        for _ in 0..<chunks { released += masker.feed(chunk).count }
        released += masker.flush().count
        let seconds = milliseconds(ContinuousClock.now - start) / 1000
        precondition(released > 0)
        return Double(chunk.count * chunks) / 1_000_000 / seconds
    }
}
