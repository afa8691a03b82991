import Foundation
import Synchronization
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore
import RapidFlowTestSupport
import Testing

/// What an operator does with the store: back it up while the service runs, see and run its
/// migrations, refuse a newer schema, trust an acknowledged write, and prune old jobs.
@Suite("Store operations")
struct StoreOperationsTests {
    static func sqlite(_ database: String, _ statement: String) async throws -> String {
        try await TestFiles.shell("sqlite3 -cmd '.timeout 5000' '\(database)' \"\(statement)\"").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The integer after `label` in `text` (a log line's field).
    static func number(after label: String, in text: String) -> Int? {
        guard let range = text.range(of: label) else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }

    /// Under strace, signals reach strace; these reach the service too.
    static func killTraced(dataDirectory: String, signal: String = "KILL") async throws {
        _ = try? await TestFiles.shell("pkill -\(signal) -f '[s]erve --port 0 --data-dir \(dataDirectory) '")
        try await eventually(timeout: .seconds(60), "the traced service exits") {
            !TestFiles.processExists(matching: "serve --port 0 --data-dir \(dataDirectory) ")
        }
    }

    @Test func aBackupTakenWhileJobsAreWrittenIsOneWholeCheckedSnapshot() async throws {
        let data = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(dataDirectory: data, arguments: ["--max-concurrent-jobs", "2"])
        defer { service.kill(signal: SIGTERM) }
        let pipeline = try await service.client.createPipeline(config: "steps:\n  - echo backed up\n")
        let acknowledgedBefore = try await service.client.trigger(pipeline)
        _ = try await service.client.waitForJob(acknowledgedBefore)

        // Jobs keep arriving (a bounded number) while two backups are taken.
        let client = service.client
        let writer = Task {
            var ids: [Int] = []
            for _ in 0..<120 { ids.append(try await client.trigger(pipeline)) }
            return ids
        }
        let backups = TestFiles.temporaryDirectory()
        for name in ["first", "second"] {
            let run = try await CLITests.cli(["backup", "--data-dir", data, "--to", "\(backups)/\(name).sqlite"], server: service.client)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("integrity check ok"), "\(run.stdout)")
        }
        let written = try await writer.value

        for name in ["first", "second"] {
            let file = "\(backups)/\(name).sqlite"
            #expect(try await Self.sqlite(file, "PRAGMA integrity_check") == "ok")
            // One snapshot: every job the backup holds has all its steps, and the jobs are the
            // first n ones created, with no gap.
            let jobs = Int(try await Self.sqlite(file, "SELECT COUNT(*) FROM jobs")) ?? -1
            #expect(jobs >= acknowledgedBefore && jobs <= written.count + 1, "\(name): \(jobs) jobs")
            #expect(try await Self.sqlite(file, "SELECT MAX(id) FROM jobs") == "\(jobs)")
            #expect(try await Self.sqlite(file, "SELECT COUNT(*) FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM steps s WHERE s.job_id = j.id)") == "0")
            #expect(try await Self.sqlite(file, "SELECT name FROM pipelines") != "")
        }
        // A backup file is never overwritten.
        let size = try FileManager.default.attributesOfItem(atPath: "\(backups)/first.sqlite")[.size] as? Int
        let again = try await CLITests.cli(["backup", "--data-dir", data, "--to", "\(backups)/first.sqlite"], server: service.client)
        #expect(again.status != 0)
        #expect(again.stderr.contains("exists already"), "\(again.stderr)")
        #expect(try FileManager.default.attributesOfItem(atPath: "\(backups)/first.sqlite")[.size] as? Int == size)
        // No store there: said, and nothing made.
        let missing = try await CLITests.cli(["backup", "--data-dir", "\(backups)/none", "--to", "\(backups)/x.sqlite"], server: service.client)
        #expect(missing.status != 0 && missing.stderr.contains("there is no store at"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(backups)/x.sqlite"))
        // PostgreSQL: the advice, with no password in it, and no file.
        let postgres = try await CLITests.cli(
            ["backup", "--database", "postgres://ops:hunter2secret@127.0.0.1:5432/builds", "--to", "\(backups)/pg.dump"], server: service.client)
        #expect(postgres.status == 2)
        #expect(postgres.stdout.contains("pg_dump --format=custom --file \(backups)/pg.dump --host 127.0.0.1 --port 5432 --username ops --dbname builds"))
        #expect(!postgres.stdout.contains("hunter2secret") && !postgres.stderr.contains("hunter2secret"))
        #expect(!FileManager.default.fileExists(atPath: "\(backups)/pg.dump"))
    }

    /// Reads run on connections of their own beside the one writer: while jobs are created
    /// and run, every job a create acknowledged is there for the next read, lists hold every
    /// job acknowledged before them, and no read fails (no SQLITE_BUSY reaches a client).
    @Test func readersBesideTheWriterSeeEveryAcknowledgedWriteAndNeverFail() async throws {
        let data = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(dataDirectory: data, arguments: ["--max-concurrent-jobs", "4"])
        defer { service.kill(signal: SIGTERM) }
        let client = service.client
        let pipeline = try await client.createPipeline(config: "steps:\n  - echo one\n  - echo two\n")
        let newest = Newest()
        let writers = (0..<2).map { _ in
            Task {
                for _ in 0..<60 {
                    let id = try await client.trigger(pipeline)
                    // Read back at once, on whichever reader: it is there.
                    let status = try await client.get("/jobs/\(id)/status")
                    guard status.status == 200 else { throw TestFailure("job \(id) was acknowledged but reads \(status.status): \(status.text)") }
                    newest.value.withLock { $0 = max($0, id) }
                }
            }
        }
        let readers = (0..<2).map { _ in
            Task {
                var reads = 0
                while reads < 400 && newest.value.withLock({ $0 }) < 120 {
                    let acknowledged = newest.value.withLock { $0 }
                    let list = try await client.get("/jobs?limit=500")
                    guard list.status == 200 else { throw TestFailure("a list failed while jobs were written: \(list.status) \(list.text)") }
                    let ids = Set(try list.decoded([API.Job].self).map(\.id))
                    guard acknowledged == 0 || ids.contains(acknowledged) else {
                        throw TestFailure("job \(acknowledged) was acknowledged before the list, which lacks it")
                    }
                    reads += 1
                }
                return reads
            }
        }
        for writer in writers { try await writer.value }
        var reads = 0
        for reader in readers { reads += try await reader.value }
        #expect(reads > 0)
        let jobs = try await client.get("/jobs?limit=500").decoded([API.Job].self)
        #expect(jobs.count == 120)
        for job in jobs { #expect(try await client.waitForJob(job.id).status == .success) }
        #expect(try await client.logs(jobs[0].id).build == "one\ntwo\n")
    }

    @Test func migrateDryRunListsWhatWouldRunAndChangesNothingThenMigrateRunsIt() async throws {
        let data = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(dataDirectory: data)
        let pipeline = try await service.client.createPipeline(config: "steps:\n  - echo kept\n")
        service.kill(signal: SIGTERM)
        #expect(await service.waitForExit(timeout: 30))
        let database = "\(data)/rapidflow.sqlite"
        // The store with migration 10 not applied (as a release before it left it).
        _ = try await Self.sqlite(database, "DROP INDEX jobs_by_finished; DELETE FROM schema_migrations WHERE version = 10")
        let known = SQLJobStore.knownSchemaVersion

        let dryRun = try await CLITests.cli(["migrate", "--dry-run", "--data-dir", data], server: service.client)
        #expect(dryRun.status == 0, "\(dryRun.stderr)")
        #expect(dryRun.stdout.contains("this release knows \(known)"), "\(dryRun.stdout)")
        #expect(dryRun.stdout.contains("1 migration(s) would run:\n  10:\n    CREATE INDEX jobs_by_finished ON jobs"), "\(dryRun.stdout)")
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM schema_migrations WHERE version = 10") == "0", "a dry run changes nothing")
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'jobs_by_finished'") == "0")

        let migrate = try await CLITests.cli(["migrate", "--data-dir", data], server: service.client)
        #expect(migrate.status == 0, "\(migrate.stderr)")
        #expect(migrate.stdout.contains("done: schema version \(known)"))
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'jobs_by_finished'") == "1")
        let upToDate = try await CLITests.cli(["migrate", "--dry-run", "--data-dir", data], server: service.client)
        #expect(upToDate.stdout.contains("up to date: nothing to run"), "\(upToDate.stdout)")
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM pipelines WHERE id = \(pipeline)") == "1")
    }

    @Test func aStoreANewerReleaseMigratedIsRefusedNamingBothVersions() async throws {
        let data = TestFiles.temporaryDirectory()
        let service = try await ServiceProcess.start(dataDirectory: data)
        _ = try await service.client.createPipeline(config: "steps:\n  - echo kept\n")
        service.kill(signal: SIGTERM)
        #expect(await service.waitForExit(timeout: 30))
        let database = "\(data)/rapidflow.sqlite"
        _ = try await Self.sqlite(database, "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
        let before = try await Self.sqlite(database, "SELECT COUNT(*) FROM schema_migrations")

        let refusal = "has schema version 99, newer than version \(SQLJobStore.knownSchemaVersion) that this RapidFlow knows"
        await #expect(throws: (any Error).self) { _ = try await ServiceProcess.start(dataDirectory: data) }
        let logs = try FileManager.default.contentsOfDirectory(atPath: data).filter { $0.hasPrefix("service-") }
        let text = try logs.map { try String(contentsOfFile: "\(data)/\($0)", encoding: .utf8) }.joined()
        #expect(text.contains(refusal), "\(text)")
        for arguments in [["migrate", "--data-dir", data], ["migrate", "--dry-run", "--data-dir", data]] {
            let run = try await CLITests.cli(arguments, server: service.client)
            #expect(run.status != 0)
            #expect(run.stderr.contains(refusal), "\(run.stderr)")
        }
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM schema_migrations") == before, "nothing was changed")
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM pipelines") == "1")
    }

    /// Each write an API call acknowledged is flushed to disk before its answer: strace sees an
    /// `fdatasync` of SQLite's write-ahead log for each one, and step output (the one exception)
    /// is written without one. No device-mapper here to drop unflushed writes: a `kill -9` then
    /// shows every acknowledged write back, in a store that passes its integrity check.
    @Test func acknowledgedWritesAreFlushedBeforeTheAnswerAndSurviveKillNine() async throws {
        let data = TestFiles.temporaryDirectory()
        let trace = "\(data)/strace.out"
        defer { TestFiles.shellNow("pkill -KILL -f '[s]erve --port 0 --data-dir \(data) '") }
        var service = try await ServiceProcess.start(
            dataDirectory: data, arguments: ["--max-concurrent-jobs", "1"],
            wrapper: ["/usr/bin/strace", "-f", "-qq", "-y", "-e", "trace=fdatasync,fsync", "-o", trace])
        let wal = "\(data)/rapidflow.sqlite-wal"
        func flushes() -> Int {
            let text = (try? String(contentsOfFile: trace, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").filter { $0.contains("sync(") && $0.contains(wal + ">") }.count
        }
        let hold = try await service.client.createPipeline(config: "steps:\n  - sleep 300\n")
        let quick = try await service.client.createPipeline(config: "steps:\n  - echo acknowledged\n")
        let holding = try await service.client.trigger(hold)
        try await service.client.waitForStatus(holding, .running)
        let start = flushes()
        var acknowledged: [Int] = []
        for _ in 0..<10 { acknowledged.append(try await service.client.trigger(quick)) }
        let cancelled = acknowledged.removeLast()
        #expect(try await service.client.post("/jobs/\(cancelled)/cancel").status == 200)
        // Eleven answers (ten jobs and a cancel), each after a flush of its own.
        #expect(flushes() - start >= 11, "flushes of the log: \(flushes() - start)")

        try await Self.killTraced(dataDirectory: data)
        #expect(try await Self.sqlite("\(data)/rapidflow.sqlite", "PRAGMA integrity_check") == "ok")
        service = try await ServiceProcess.start(dataDirectory: data, arguments: ["--max-concurrent-jobs", "1"])
        for id in acknowledged { #expect(try await service.client.get("/jobs/\(id)").status == 200, "job \(id) was acknowledged") }
        #expect(try await service.client.job(cancelled).status == .cancelled)
        #expect(try await service.client.job(holding).status == .failed, "the running one is settled by recovery")
    }

    /// `--relaxed-durability` gives the flush before the answer up (benchmarks, throwaway services).
    @Test func relaxedDurabilityAnswersWritesWithoutAFlushEach() async throws {
        let data = TestFiles.temporaryDirectory()
        let trace = "\(data)/strace.out"
        let service = try await ServiceProcess.start(
            dataDirectory: data, arguments: ["--relaxed-durability", "--max-concurrent-jobs", "1"],
            wrapper: ["/usr/bin/strace", "-f", "-qq", "-y", "-e", "trace=fdatasync,fsync", "-o", trace])
        defer { TestFiles.shellNow("pkill -KILL -f '[s]erve --port 0 --data-dir \(data) '") }
        let wal = "\(data)/rapidflow.sqlite-wal"
        func flushes() -> Int {
            let text = (try? String(contentsOfFile: trace, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").filter { $0.contains("sync(") && $0.contains(wal + ">") }.count
        }
        let hold = try await service.client.createPipeline(config: "steps:\n  - sleep 300\n")
        let holding = try await service.client.trigger(hold)
        try await service.client.waitForStatus(holding, .running)
        let before = flushes()
        var created: [Int] = []
        for _ in 0..<10 { created.append(try await service.client.trigger(hold)) }
        // Perhaps a checkpoint's flush: far fewer than the ten answers.
        #expect(flushes() - before <= 2, "flushes for ten acknowledged jobs: \(flushes() - before)")
        for id in created { #expect(try await service.client.job(id).status == .pending) }
    }

    @Test func stepOutputIsWrittenWithoutAFlushForEachPiece() async throws {
        let data = TestFiles.temporaryDirectory()
        let trace = "\(data)/strace.out"
        let service = try await ServiceProcess.start(
            dataDirectory: data, wrapper: ["/usr/bin/strace", "-f", "-qq", "-y", "-e", "trace=fdatasync,fsync", "-o", trace])
        defer { TestFiles.shellNow("pkill -KILL -f '[s]erve --port 0 --data-dir \(data) '") }
        let wal = "\(data)/rapidflow.sqlite-wal"
        func flushes() -> Int {
            let text = (try? String(contentsOfFile: trace, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").filter { $0.contains("sync(") && $0.contains(wal + ">") }.count
        }
        let pipeline = try await service.client.createPipeline(
            config: "steps:\n  - for i in $(seq 1 60); do echo line $i; sleep 0.05; done\n")
        let before = flushes()
        let job = try await service.client.trigger(pipeline)
        #expect(try await service.client.waitForJob(job).status == .success)
        let pieces = Int(try await Self.sqlite("\(data)/rapidflow.sqlite", "SELECT COUNT(*) FROM step_output")) ?? 0
        #expect(pieces >= 20, "the output came in pieces: \(pieces)")
        // The trigger's own flush, and perhaps a checkpoint's: far fewer than the pieces.
        #expect(flushes() - before <= 4, "flushes while \(pieces) pieces of output were written: \(flushes() - before)")
    }

    @Test func pruningTenThousandOldJobsKeepsTheAPIAnswering() async throws {
        let data = TestFiles.temporaryDirectory()
        var service = try await ServiceProcess.start(dataDirectory: data)
        let pipeline = try await service.client.createPipeline(config: "steps:\n  - echo kept\n  - echo twice\n")
        let kept = try await service.client.trigger(pipeline)
        _ = try await service.client.waitForJob(kept)
        service.kill(signal: SIGTERM)
        #expect(await service.waitForExit(timeout: 30))

        // 10,000 jobs that finished 30 days ago, each with two steps, their output and an
        // environment entry, written beside the kept job (whose snapshot they copy).
        let database = "\(data)/rapidflow.sqlite"
        let old = Int64(Date().addingTimeInterval(-30 * 86_400).timeIntervalSince1970 * 1000)
        _ = try await Self.sqlite(
            database,
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
            INSERT INTO jobs (kind, pipeline_id, pipeline_name, status, snapshot, cancelled, created_at, started_at, finished_at, account, priority)
            SELECT kind, pipeline_id, pipeline_name, 'success', snapshot, 0, \(old), \(old), \(old) + i, account, priority
            FROM jobs, n WHERE jobs.id = \(kept);
            INSERT INTO steps (job_id, order_num, type, name, content, phase, status, created_at, finished_at)
            SELECT j.id, o.n, 'bash', NULL, 'echo old', 'build', 'success', \(old), \(old)
            FROM jobs j, (SELECT 1 AS n UNION ALL SELECT 2) o WHERE j.id <> \(kept);
            INSERT INTO step_output (step_id, byte_offset, data) SELECT id, 0, randomblob(200) FROM steps WHERE job_id <> \(kept);
            INSERT INTO job_environment (job_id, position, key, value) SELECT id, 0, 'A', 'b' FROM jobs WHERE id <> \(kept);
            """)
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM jobs") == "10001")

        service = try await ServiceProcess.start(dataDirectory: data, arguments: ["--keep-jobs-days", "7", "--log-level", "info"])
        defer { service.kill(signal: SIGTERM) }
        // While the old jobs go, the API answers: /health, and a read of the store, asked one
        // after the other by a reader (at most 20,000 requests).
        let client = service.client
        let done = Done()
        let reader = Task {
            var latencies: [Double] = []
            let clock = ContinuousClock()
            while !done.flag.withLock({ $0 }) && latencies.count < 20_000 {
                for path in ["/health", "/jobs/\(kept)/status"] {
                    let began = clock.now
                    guard try await client.get(path).status == 200 else { throw TestFailure("\(path) failed during pruning") }
                    latencies.append((clock.now - began).inSeconds)
                }
            }
            return latencies
        }
        try await eventually(timeout: .seconds(300), "the 10,000 old jobs are removed") {
            try await Self.sqlite(database, "SELECT COUNT(*) FROM jobs") == "1"
        }
        done.flag.withLock { $0 = true }
        var latencies = try await reader.value
        latencies.sort()
        let p99 = latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]
        print("pruning: \(latencies.count) requests meanwhile, p99 \(String(format: "%.1f", p99 * 1000)) ms")
        // What holds the writer is one batch, sized to about 20 ms: the longest stays far below
        // a second even on a loaded machine; and reads, on their own connections, answer
        // meanwhile (the bound is the loaded machine's, not the pruning's).
        try await eventually("the pruning is logged") {
            ((try? String(contentsOfFile: service.logPath, encoding: .utf8)) ?? "").contains("removed finished jobs older than --keep-jobs-days")
        }
        let log = try String(contentsOfFile: service.logPath, encoding: .utf8)
        let batchMilliseconds = Self.number(after: "longest_batch_ms=", in: log)
        let batches = Self.number(after: "batches=", in: log)
        print("pruning: \(batches.map(String.init) ?? "?") batches, the longest \(batchMilliseconds.map(String.init) ?? "?") ms")
        // The structure is what is asserted: many small batches, not one removal of everything.
        // A batch's time is the machine's: sized to ~20 ms, one took 505 ms in a debug build
        // with the whole suite and a busy core beside it, so the bound here is generous.
        #expect(batches != nil && batches! >= 5, "10,000 jobs pruned in \(batches.map(String.init) ?? "?") batches")
        #expect(batchMilliseconds != nil && batchMilliseconds! < 2_000, "the longest pruning batch: \(batchMilliseconds.map(String.init) ?? "not logged") ms")
        #expect(p99 < 2, "p99 of the answers during pruning: \(p99) s")
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM steps WHERE job_id <> \(kept)") == "0")
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM step_output WHERE step_id NOT IN (SELECT id FROM steps)") == "0")
        #expect(try await Self.sqlite(database, "SELECT COUNT(*) FROM job_environment WHERE job_id <> \(kept)") == "0")
        #expect(try await service.client.job(kept).status == .success)
        #expect(try await service.client.logs(kept).build == "kept\ntwice\n")
        #expect(try await service.client.get("/jobs/2").status == 404)
    }
}

/// Tells a loop in another task to stop.
private final class Done: Sendable {
    let flag = Mutex(false)
}

/// The newest id a writer had acknowledged, shared with readers.
private final class Newest: Sendable {
    let value = Mutex(0)
}
