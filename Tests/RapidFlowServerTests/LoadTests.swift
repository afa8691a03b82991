import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RapidFlowAPI
import RapidFlowTestSupport
import Testing

/// Many readers at once while jobs stream: bounded in count (requests, lines) and in time.
@Suite("Load")
struct LoadTests {
    static let jobCount = 20
    static let linesPerJob = 300
    static let clientCount = 200
    static let requestsPerClient = 10

    @Test func twoHundredReadersWhileTwentyJobsStreamLoseNoRequestAndNoLine() async throws {
        try await TestServer.with(configure: { $0.maxConcurrentJobs = Self.jobCount }) { server in
            // Each line is numbered and padded so a lost, repeated or reordered line shows.
            let script = "for i in $(seq 1 \(Self.linesPerJob)); do printf 'line %05d of job %s\\n' $i $RAPIDFLOW_JOB_ID; sleep 0.01; done"
            let pipelineID = try await server.createPipeline(config: "steps:\n  - \(script)\n")
            var triggered: [Int] = []
            for _ in 0..<Self.jobCount { triggered.append(try await server.trigger(pipelineID)) }
            let jobIDs = triggered

            // Its own connection pool, so the clients really are 200 connections at once.
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: Self.clientCount + Self.jobCount)
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)

            let started = ContinuousClock.now
            // A plain-text follower per job, started while the jobs run.
            async let followed: [Int: String] = withThrowingTaskGroup(of: (Int, String).self) { group in
                for id in jobIDs {
                    group.addTask {
                        let request = HTTPClientRequest(url: "\(server.baseURL)/jobs/\(id)/logs/stream?follow=true")
                        let response = try await client.execute(request, timeout: .seconds(120))
                        let body = try await response.body.collect(upTo: 16 << 20)
                        return (id, String(buffer: body))
                    }
                }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            // 200 clients, each reading status and logs of the running jobs in turn.
            let (failures, sawRunning) = try await withThrowingTaskGroup(of: ([String], Int).self) { group in
                for client_ in 0..<Self.clientCount {
                    group.addTask {
                        var failures: [String] = []
                        var running = 0
                        for n in 0..<Self.requestsPerClient {
                            let id = jobIDs[(client_ + n) % jobIDs.count]
                            let path = n.isMultiple(of: 2) ? "/jobs/\(id)/status" : "/jobs/\(id)/logs"
                            do {
                                let response = try await client.execute(HTTPClientRequest(url: server.baseURL + path), timeout: .seconds(60))
                                let body = try await response.body.collect(upTo: 16 << 20)
                                let reply = TestServer.Reply(status: Int(response.status.code), headers: [], body: Data(buffer: body))
                                // Both answers carry the job's status.
                                let status =
                                    n.isMultiple(of: 2)
                                    ? (try? reply.envelope(API.JobStatusReport.self))?.data?.status
                                    : (try? reply.envelope(API.JobLogs.self))?.data?.status
                                if response.status != .ok || status == nil {
                                    failures.append("\(path): \(response.status.code)")
                                }
                                if status == .running { running += 1 }
                            } catch {
                                failures.append("\(path): \(error)")
                            }
                        }
                        return (failures, running)
                    }
                }
                return try await group.reduce(into: ([], 0)) { $0.0 += $1.0; $0.1 += $1.1 }
            }
            let streams = try await followed
            let elapsed = ContinuousClock.now - started
            try await client.shutdown()

            #expect(failures.isEmpty, "\(failures.count) of \(Self.clientCount * Self.requestsPerClient) requests failed: \(failures.prefix(5))")
            for id in jobIDs {
                let expected = (1...Self.linesPerJob).map { String(format: "line %05d of job %d", $0, id) }
                let job = try await server.job(id)
                #expect(job.status == .success, "job \(id): \(job.status)")
                let stored = try await server.logs(id).build.split(separator: "\n").map(String.init)
                #expect(stored == expected, "job \(id)'s stored output lost or repeated lines: \(stored.count) of \(expected.count)")
                let streamed = (streams[id] ?? "").split(separator: "\n").map(String.init).filter { $0.hasPrefix("line ") }
                #expect(streamed == expected, "job \(id)'s follower lost or repeated lines: \(streamed.count) of \(expected.count)")
            }
            #expect(sawRunning > 0, "the readers ran while the jobs were running")
            #expect(elapsed < .seconds(120))
            print("load: \(Self.clientCount) clients × \(Self.requestsPerClient) requests, \(Self.jobCount) jobs × \(Self.linesPerJob) lines followed live, in \(elapsed)")
        }
    }
}
