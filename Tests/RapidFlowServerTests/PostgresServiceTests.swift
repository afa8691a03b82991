import Foundation
import Logging
import PostgresKit
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore
import RapidFlowTestSupport
import Testing

@testable import RapidFlowServer

/// The whole service on PostgreSQL (`--database postgres://…`): what it stores survives a
/// restart on the same database, even with a new, empty data directory.
@Suite("Service on PostgreSQL")
struct PostgresServiceTests {
    static let pipeline = """
        name: on postgres
        env:
          GREETING: "hello"
        steps:
          - echo "$GREETING from postgres"; printf 'raw \\xff\\n'
          - type: bash
            content: echo "tested"
            phase: test
        """

    @Test func aJobAndItsOutputSurviveARestartOnTheSameDatabase() async throws {
        try await ScratchDatabase.with { url in
            let (pipelineID, jobID) = try await TestServer.with(configure: { Self.usePostgres(url, &$0) }) { server in
                #expect(try await server.get("/ready").decoded(API.Readiness.self).store == "ok")
                let pipelineID = try await server.createPipeline(name: "pg", config: Self.pipeline)
                let jobID = try await server.trigger(pipelineID)
                #expect(try await server.waitForJob(jobID).status == .success)
                #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/rapidflow.sqlite"), "no SQLite file is made")
                return (pipelineID, jobID)
            }

            try await TestServer.with(configure: { Self.usePostgres(url, &$0) }) { server in
                let pipeline = try await server.get("/pipelines/\(pipelineID)").decoded(API.Pipeline.self)
                #expect(pipeline.name == "pg")
                let job = try await server.job(jobID)
                #expect(job.status == .success && job.pipelineID == pipelineID)
                let logs = try await server.logs(jobID)
                #expect(logs.build == "hello from postgres\nraw \u{FFFD}\n")
                #expect(logs.test == "tested\n")
                let steps = try await server.get("/jobs/\(jobID)/details").decoded(API.JobDetails.self).steps
                #expect(steps.map(\.status) == [.success, .success])

                let again = try await server.trigger(pipelineID)
                #expect(again > jobID, "ids go on from the stored ones")
                #expect(try await server.waitForJob(again).status == .success)
                #expect(try await server.counts().jobs == 2)
            }
        }
    }

    @Test func aDumpOfTheDatabaseDoesNotRevealAStoredSecret() async throws {
        try await ScratchDatabase.with { url in
            let value = "pg-dump-\(UUID().uuidString.prefix(12))-value"
            try await TestServer.with(configure: { Self.usePostgres(url, &$0) }) { server in
                let put = try await server.request(.PUT, "/secrets/DUMP_TOKEN", encoding: API.SecretWrite(value: value, scope: nil))
                #expect(put.status == 200, "\(put.text)")
                // Used by a job, so its rows (environment, last use) are written too.
                let pipeline = try await server.createPipeline(config: "env:\n  DUMP_TOKEN:\n    from_secret: DUMP_TOKEN\nsteps:\n  - echo \"$DUMP_TOKEN\"\n")
                let job = try await server.trigger(pipeline)
                #expect(try await server.waitForJob(job).status == .success)
                #expect(try await server.logs(job).build == "********\n")
            }
            // Everything PostgreSQL holds for the service, as plain SQL: no form of the value.
            let dump = try await TestFiles.shell("pg_dump --no-owner '\(url.replacingOccurrences(of: "?sslmode=disable", with: ""))'")
            #expect(dump.contains("DUMP_TOKEN"), "the dump has the secret's row")
            #expect(!dump.contains(value))
            #expect(!dump.contains(Data(value.utf8).base64EncodedString()))
            #expect(!dump.contains(Data(value.utf8).map { String(format: "%02x", $0) }.joined()), "nor its bytes in hex (bytea)")
        }
    }

    @Test func aWrongPasswordStopsStartupWithoutShowingIt() async throws {
        var components = try #require(URLComponents(string: try ScratchDatabase.adminURL()))
        components.password = "wrong-password-2718"
        var configuration = ServerConfiguration()
        configuration.dataDirectory = TestFiles.temporaryDirectory()
        configuration.logLevel = .critical
        Self.usePostgres(try #require(components.string), &configuration)
        let error = await #expect(throws: RapidFlowError.self) { _ = try await buildApplication(configuration: configuration) }
        let message = try #require(error).message
        #expect(message.contains("PostgreSQL at \(components.host ?? ""):\(components.port ?? 0)/"), "\(message)")
        #expect(!message.contains("wrong-password-2718"))
    }

    /// Services stop in reverse order of start: the scheduler settles the job it was running
    /// while the store is still open, so the job is final in the database without a restart.
    @Test func aGracefulStopSettlesTheRunningJobInPostgreSQLBeforeTheStoreCloses() async throws {
        try await ScratchDatabase.with { url in
            let service = try await ReplicaTests.replica(url)
            defer { service.kill(signal: SIGKILL) }
            let pipeline = try await service.client.createPipeline(config: "steps:\n  - echo working; sleep 300\n  - echo never\n")
            let jobID = try await service.client.trigger(pipeline)
            try await service.client.waitForOutput(jobID, containing: "working")
            service.kill(signal: SIGTERM)
            #expect(await service.waitForExit(timeout: 15), "the service stops within the grace period")
            #expect(service.process.terminationStatus == 0)

            try await ReplicaTests.withStore(url) { store in
                #expect(try await store.job(id: jobID)?.status == .failed)
                let steps = try await store.steps(jobID: jobID)
                #expect(steps.map(\.status) == [.failed, .skipped])
                let output = String(decoding: try await store.output(stepID: try #require(steps.first).id), as: UTF8.self)
                #expect(output.hasPrefix("working\n") && output.contains("shut down"), "\(output)")
            }
        }
    }

    /// A lease the pool cannot serve fails after 10 s, so `/ready` answers instead of hanging.
    @Test func readyAnswers503WhenTheDatabaseGoesAway() async throws {
        try await ScratchDatabase.with { url in
            try await TestServer.with(configure: { Self.usePostgres(url, &$0) }) { server in
                #expect(try await server.get("/ready").status == 200)
                try await ScratchDatabase.drop(url)
                let started = ContinuousClock.now
                let ready = try await server.get("/ready")
                #expect(ready.status == 503 && ready.errorCode == "not_ready", "\(ready.text)")
                #expect(ContinuousClock.now - started < .seconds(20))
            }
        }
    }

    static func usePostgres(_ url: String, _ configuration: inout ServerConfiguration) {
        configuration.database = url
        configuration.executor = .shell
        configuration.allowLocalRepositories = true
    }
}

/// A database of its own on the test PostgreSQL server (`RAPIDFLOW_TEST_POSTGRES_URL` from
/// scripts/test-services.sh), dropped after the test. Without that server the test fails.
enum ScratchDatabase {
    static func adminURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["RAPIDFLOW_TEST_POSTGRES_URL"], !url.isEmpty else {
            throw TestFailure("RAPIDFLOW_TEST_POSTGRES_URL is not set: start the test PostgreSQL server with `eval \"$(scripts/test-services.sh)\"`")
        }
        return url
    }

    static func with<T>(_ body: (String) async throws -> T) async throws -> T {
        let admin = try adminURL()
        let name = "rapidflow_service_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        var components = try #require(URLComponents(string: admin))
        components.path = "/" + name
        let url = try #require(components.string)
        try await run(on: admin) { try await $0.raw("CREATE DATABASE \(ident: name)").run() }
        do {
            let result = try await body(url)
            try await drop(url)
            return result
        } catch {
            try? await drop(url)
            throw error
        }
    }

    /// Drops the database `url` names, closing its connections; a test may do it early.
    static func drop(_ url: String) async throws {
        let name = String(try #require(URLComponents(string: url)).path.dropFirst())
        try await run(on: try adminURL()) { try await $0.raw("DROP DATABASE IF EXISTS \(ident: name) WITH (FORCE)").run() }
    }

    private static func run(on url: String, _ body: (any SQLDatabase) async throws -> Void) async throws {
        let configuration = try SQLPostgresConfiguration(url: url).coreConfiguration
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: Logger(label: "test"))
        do {
            try await body(connection.sql(queryLogLevel: nil))
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
