import AsyncHTTPClient
import Foundation
import RapidFlowRunner
import NIOCore
import RapidFlowAPI
import RapidFlowCore
import RapidFlowTestSupport
import Testing

/// What an operator runs and reads: `--version`, the config file and its precedence, JSON
/// logs and the access log, a real Prometheus scraping the service, the container image and
/// the systemd unit.
@Suite("Operating the service")
struct OperatorTests {
    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Runs `rapidflow` with `arguments`; its exit status and what it printed (both streams).
    static func rapidflow(_ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String) {
        let command = ([ServiceProcess.binary] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let exports = environment.map { "export \($0.key)='\($0.value)'; " }.joined()
        let output = try await TestFiles.shell("\(exports)if \(command) 2>&1; then echo exit=0; else echo \"exit=$?\"; fi")
        let status = Int32(output.components(separatedBy: "exit=").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        return (status, output.components(separatedBy: "exit=").dropLast().joined(separator: "exit="))
    }

    @Test func versionNamesTheReleaseAndTheCommitItWasBuiltFrom() async throws {
        let (status, output) = try await Self.rapidflow(["--version"])
        #expect(status == 0)
        #expect(output.hasPrefix("rapidflow 0.9.0 (commit "), "\(output)")
        // A commit of this repository (HEAD when built; it may have moved on since).
        let commit = String(output.dropFirst("rapidflow 0.9.0 (commit ".count).prefix { $0.isHexDigit })
        #expect(commit.count == 12, "\(output)")
        let type = try await TestFiles.shell("git -C '\(Self.packageRoot)' cat-file -t \(commit)").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(type == "commit")
    }

    @Test func settingsComeFromTheFlagThenTheEnvironmentThenTheFileThenTheDefault() async throws {
        let directory = TestFiles.temporaryDirectory()
        let file = "\(directory)/config.yaml"
        try """
            # every key is a serve flag
            max-concurrent-jobs: 7
            kill-grace-seconds: 3
            log-level: debug
            allow-local-repos: true
            nomad-datacenters: [dc1, dc2]
            retention-hours:
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let (status, output) = try await Self.rapidflow(
            ["serve", "--config", file, "--kill-grace-seconds", "5", "--print-config"],
            environment: ["RAPIDFLOW_LOG_LEVEL": "error", "RAPIDFLOW_API_TOKEN": "cfg-token-4711", "RAPIDFLOW_DATABASE": "postgres://u:pw-4711@db:5432/ci"])
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        func setting(_ key: String) -> String? { lines.first { $0.hasPrefix(key + ":") } }
        #expect(setting("max-concurrent-jobs") == #"max-concurrent-jobs: "7"  # file"#)
        #expect(setting("kill-grace-seconds") == #"kill-grace-seconds: "5"  # flag"#)
        #expect(setting("log-level") == #"log-level: "error"  # environment"#)
        #expect(setting("allow-local-repos") == #"allow-local-repos: "true"  # file"#)
        #expect(setting("nomad-datacenters") == #"nomad-datacenters: "dc1,dc2"  # file"#)
        #expect(setting("retention-hours") == #"retention-hours: "168"  # default"#, "an empty key leaves the default")
        #expect(setting("port") == #"port: "3000"  # default"#)
        #expect(setting("api-token") == #"api-token: "<redacted>"  # environment"#)
        #expect(setting("database")?.contains("pw-4711") == false)
        #expect(!output.contains("cfg-token-4711") && !output.contains("pw-4711"), "no secret is printed")
        #expect(lines.first?.contains("reading \(file)") == true)
    }

    @Test func theConfigFileRunsTheServiceAndItsMistakesAreNamed() async throws {
        let directory = TestFiles.temporaryDirectory()
        let file = "\(directory)/config.yaml"
        try "api-token: file-token-0815\nmax-concurrent-jobs: 2\n".write(toFile: file, atomically: true, encoding: .utf8)
        let service = try await ServiceProcess.start(dataDirectory: directory, arguments: ["--config", file])
        defer { service.kill(signal: SIGKILL) }
        #expect(try await service.client.get("/jobs").status == 401, "the file's token is required")
        let allowed = try await service.client.request(.GET, "/jobs", headers: [("Authorization", "Bearer file-token-0815")])
        #expect(allowed.status == 200)

        for (text, expected) in [
            ("max-concurent-jobs: 2\n", "'max-concurent-jobs', which is not a serve setting"),
            ("max-concurrent-jobs: many\n", "'max-concurrent-jobs' in \(file) must be a number, got 'many'"),
            ("log-format: xml\n", "--log-format must be text or json, got 'xml'"),
            ("- port\n", "must be a mapping of serve flags to values"),
            ("port: [1\n", "is not valid YAML"),
        ] {
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let (status, output) = try await Self.rapidflow(["serve", "--config", file, "--data-dir", directory, "--port", "0"])
            #expect(status != 0, "\(text) is refused")
            #expect(output.contains(expected), "\(text): \(output)")
        }
        let (status, output) = try await Self.rapidflow(["serve", "--config", "\(directory)/missing.yaml", "--print-config"])
        #expect(status != 0)
        #expect(output.contains("cannot read the config file \(directory)/missing.yaml"), "\(output)")
    }

    @Test func jsonLogsGiveEachEventOneObjectWithStableKeysAndTheAccessLogEachRequest() async throws {
        let directory = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(
            dataDirectory: directory, arguments: ["--log-format", "json", "--access-log", "--log-level", "trace"])
        let server = service.client
        let secret = "json-\(UUID().uuidString.prefix(8))-secret"
        let pipeline = try await server.createPipeline(name: "logged", config: "env:\n  API_TOKEN: \"\(secret)\"\nsteps:\n  - echo hi\n")
        let job = try await server.trigger(pipeline)
        #expect(try await server.waitForJob(job).status == .success)
        #expect(try await server.get("/jobs/999999").status == 404)
        service.kill(signal: SIGTERM)
        #expect(await service.waitForExit(timeout: 60))

        let log = try String(contentsOfFile: service.logPath, encoding: .utf8)
        #expect(!log.contains(secret), "the secret is not in the log at trace")
        var objects: [[String: String]] = []
        for line in log.split(separator: "\n") {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "every line is one JSON object: \(line.prefix(300))")
            guard let object else { continue }
            for key in ["time", "level", "message", "logger", "source"] { #expect(object[key] is String, "\(key) in \(line.prefix(200))") }
            objects.append(object.compactMapValues { $0 as? String })
        }
        func first(_ message: String, _ fields: [String: String] = [:]) -> [String: String]? {
            objects.first { object in object["message"] == message && fields.allSatisfy { object[$0.key] == $0.value } }
        }
        let start = try #require(objects.first { $0["message"]?.hasPrefix("rapidflow listening on http://127.0.0.1:") == true })
        #expect(start["version"] == "0.9.0" && start["store"] == "sqlite" && start["executor"] != nil && start["commit"] != nil)
        #expect(first("job started", ["job": "\(job)", "pipeline": "logged", "kind": "pipeline"]) != nil)
        let finished = try #require(first("job finished", ["job": "\(job)", "status": "success", "pipeline": "logged", "kind": "pipeline"]))
        #expect(finished["duration_ms"].flatMap(Int.init) != nil)
        #expect(finished["level"] == "info")
        let created = try #require(first("request", ["method": "POST", "route": "/pipelines", "status": "200"]))
        #expect(created["duration_ms"].flatMap(Int.init) != nil)
        #expect(created["remote"]?.hasPrefix("127.0.0.1:") == true)
        #expect(first("request", ["method": "GET", "route": "/jobs/{id}", "status": "404"]) != nil, "errors are logged with their status")
        #expect(first("shutting down: stopping the running jobs") != nil)
    }

    @Test func aRealPrometheusScrapesTheServiceAndCountsItsFinishedJobs() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - echo one\n")
            for _ in 0..<3 { try await server.waitForJob(try await server.trigger(pipeline)) }
            let failing = try await server.createPipeline(config: "steps:\n  - exit 3\n")
            try await server.waitForJob(try await server.trigger(failing))

            let directory = TestFiles.temporaryDirectory()
            try """
                global:
                  scrape_interval: 1s
                scrape_configs:
                  - job_name: rapidflow
                    static_configs:
                      - targets: ["127.0.0.1:\(server.port)"]
                """.write(toFile: "\(directory)/prometheus.yml", atomically: true, encoding: .utf8)
            // Prometheus on a free loopback port of its own; its pid is kept to stop it.
            let port = try await TestFiles.shell("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            // A child of the test itself (a shell's background job would keep the shell's
            // end-of-process notification open, and the shell call would never return).
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
            process.arguments = [
                "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                "--web.listen-address=127.0.0.1:\(port)",
            ]
            FileManager.default.createFile(atPath: "\(directory)/prometheus.log", contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/prometheus.log"))
            process.standardOutput = log
            process.standardError = log
            process.standardInput = FileHandle.nullDevice
            try ProcessSpawning.run(process)
            defer { process.terminate() }
            let prometheus = TestServer(port: Int(port) ?? 0, dataDirectory: directory)

            try await eventually(timeout: .seconds(90), "Prometheus scrapes the service and finds it up") {
                guard let reply = try? await prometheus.get("/api/v1/targets"), reply.status == 200 else { return false }
                return reply.text.contains(#""health":"up""#)
            }
            var result = ""
            try await eventually(timeout: .seconds(60), "Prometheus has the finished-jobs counter") {
                let query = "sum%20by%20(status)%20(rapidflow_jobs_finished_total)"
                result = (try? await prometheus.get("/api/v1/query?query=\(query)").text) ?? ""
                return result.contains(#""status":"success""#) && result.contains(#""status":"failed""#)
            }
            let answer = try JSONDecoder().decode(PrometheusAnswer.self, from: Data(result.utf8))
            let byStatus = Dictionary(uniqueKeysWithValues: answer.data.result.map { ($0.metric["status"] ?? "", $0.value[1]) })
            #expect(byStatus["success"] == "3", "\(result)")
            #expect(byStatus["failed"] == "1", "\(result)")
            let info = try await prometheus.get("/api/v1/query?query=rapidflow_build_info").text
            #expect(info.contains(#""__name__":"rapidflow_build_info""#), "\(info)")
        }
    }

    struct PrometheusAnswer: Decodable {
        struct Data: Decodable {
            struct Series: Decodable {
                let metric: [String: String]
                let value: [String]

                enum CodingKeys: String, CodingKey { case metric, value }

                init(from decoder: any Decoder) throws {
                    let container = try decoder.container(keyedBy: CodingKeys.self)
                    metric = try container.decode([String: String].self, forKey: .metric)
                    // [<unix time as a number>, "<value as a string>"]
                    var pair = try container.nestedUnkeyedContainer(forKey: .value)
                    let time = try pair.decode(Double.self)
                    value = [String(time), try pair.decode(String.self)]
                }
            }
            let result: [Series]
        }
        let data: Data
    }

    @Test func theContainerImageServesAPipelineJobAndStopsOnDockerStop() async throws {
        let tag = "rapidflow-test/service:\(UUID().uuidString.prefix(8).lowercased())"
        let built = try await TestFiles.shell("cd '\(Self.packageRoot)' && scripts/build-image.sh --binary '\(ServiceProcess.binary)' --tag '\(tag)'")
        #expect(built.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix(tag))
        let container = try await TestFiles.shell("docker run -d -p 127.0.0.1::3000 '\(tag)'").trimmingCharacters(in: .whitespacesAndNewlines)
        defer { TestFiles.shellNow("docker rm -f \(container); docker rmi -f '\(tag)'") }
        let mapping = try await TestFiles.shell("docker port \(container) 3000/tcp").split(separator: "\n").first ?? ""
        let port = try #require(Int(mapping.split(separator: ":").last ?? ""), "published port: \(mapping)")
        let server = TestServer(port: port, dataDirectory: "")
        try await eventually(timeout: .seconds(60), "the container's service answers /health") {
            (try? await server.get("/health").status) == 200
        }
        let job = try await server.trigger(try await server.createPipeline(config: "steps:\n  - echo in the image on $(uname -s)\n"))
        #expect(try await server.waitForJob(job).status == .success)
        #expect(try await server.logs(job).logs.first?.output == "in the image on Linux\n")
        try await TestFiles.shell("docker stop -t 30 \(container)")
        let exit = try await TestFiles.shell("docker inspect -f '{{.State.ExitCode}}' \(container)").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(exit == "0", "the service exits cleanly on docker stop (SIGTERM)")
    }

    @Test func theSystemdUnitPassesSystemdAnalyzeVerify() async throws {
        let directory = TestFiles.temporaryDirectory()
        // The unit as shipped, with ExecStart pointing at the binary built here.
        let unit = try String(contentsOfFile: "\(Self.packageRoot)/packaging/rapidflow.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/rapidflow serve --config /etc/rapidflow/config.yaml"))
        try unit.replacingOccurrences(of: "/usr/local/bin/rapidflow", with: ServiceProcess.binary)
            .write(toFile: "\(directory)/rapidflow.service", atomically: true, encoding: .utf8)
        let output = try await TestFiles.shell("systemd-analyze verify '\(directory)/rapidflow.service' 2>&1")
        #expect(!output.contains("rapidflow.service:"), "systemd-analyze found problems: \(output)")
    }
}
