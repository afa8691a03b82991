import Crypto
import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowServer
import RapidFlowTestSupport
import Testing

/// Artifacts: collected after the last step, listed with their SHA-256, downloaded whole, by
/// range and as one archive, kept by cleanup unless asked, removed when they expire.
@Suite("Artifacts")
struct ArtifactTests {
    static let producing = """
        artifacts:
          paths: ["dist/*.tar.gz", "reports/", "~/notes.txt"]
          expire_in_days: 7
        steps:
          - "mkdir -p dist reports/unit && head -c 100000 /dev/urandom > dist/app.tar.gz && echo log > dist/build.log"
          - "echo '<testsuite/>' > reports/unit/junit.xml && echo 'a note' > ~/notes.txt && echo produced"
        """

    static func hex(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    @Test func artifactsAreListedAndDownloadedWholeByRangeAndAsOneArchive() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: Self.producing)
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .success)
            let workspace = "\(server.dataDirectory)/workspaces/job-\(job)"
            let app = try Data(contentsOf: URL(fileURLWithPath: "\(workspace)/dist/app.tar.gz"))

            let list = try await server.get("/jobs/\(job)/artifacts").decoded(API.ArtifactList.self)
            #expect(list.artifacts.map(\.path) == ["dist/app.tar.gz", "reports/unit/junit.xml", "~/notes.txt"])
            let entry = try #require(list.artifacts.first)
            #expect(entry.sizeBytes == 100_000)
            #expect(entry.sha256 == Self.hex(app))
            #expect(list.archiveURL == "/jobs/\(job)/artifacts.tar.gz")

            let whole = try await server.get(entry.url)
            #expect(whole.status == 200)
            #expect(whole.body == app)
            #expect(whole.header("Content-Length") == "100000")
            #expect(whole.header("Content-Disposition")?.hasPrefix("attachment; filename=\"app.tar.gz\"") == true)
            #expect(whole.header("Accept-Ranges") == "bytes")

            let middle = try await server.request(.GET, entry.url, headers: [("Range", "bytes=1000-1999")])
            #expect(middle.status == 206)
            #expect(middle.body == app.subdata(in: 1000..<2000))
            #expect(middle.header("Content-Range") == "bytes 1000-1999/100000")
            let tail = try await server.request(.GET, entry.url, headers: [("Range", "bytes=-10")])
            #expect(tail.status == 206)
            #expect(tail.body == app.suffix(10))
            let open = try await server.request(.GET, entry.url, headers: [("Range", "bytes=99990-")])
            #expect(open.body == app.suffix(10))
            let outside = try await server.request(.GET, entry.url, headers: [("Range", "bytes=100000-")])
            #expect(outside.status == 416)
            #expect(outside.errorCode == "range_not_satisfiable")
            #expect(outside.header("Content-Range") == "bytes */100000")

            let home = try await server.get("/jobs/\(job)/artifacts/~/notes.txt")
            #expect(home.text == "a note\n")
            let missing = try await server.get("/jobs/\(job)/artifacts/dist/build.log")
            #expect(missing.status == 404, "a file no pattern matched is not kept")
            #expect(missing.errorCode == "artifact_not_found")

            let archive = try await server.get(list.archiveURL)
            #expect(archive.status == 200)
            #expect(archive.header("Content-Type") == "application/gzip")
            let unpacked = TestFiles.temporaryDirectory()
            try archive.body.write(to: URL(fileURLWithPath: "\(unpacked)/all.tar.gz"))
            let listing = try await TestFiles.shell("cd \(unpacked) && tar -xzf all.tar.gz && tar -tzf all.tar.gz | sort")
            #expect(listing == "dist/app.tar.gz\nreports/unit/junit.xml\n~/notes.txt\n")
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(unpacked)/dist/app.tar.gz")) == app)
            #expect(try String(contentsOfFile: "\(unpacked)/reports/unit/junit.xml", encoding: .utf8) == "<testsuite/>\n")
        }
    }

    @Test func badArtifactRequestsAreRefusedWithTheEnvelope() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: "steps:\n  - echo nothing kept\n")
            let job = try await server.trigger(pipeline)
            try await server.waitForJob(job)
            for (path, status, code) in [
                ("/jobs/999999/artifacts", 404, "job_not_found"), ("/jobs/abc/artifacts", 400, "invalid_id"),
                ("/jobs/\(job)/artifacts/nothing.txt", 404, "artifact_not_found"), ("/jobs/\(job)/artifacts.tar.gz", 404, "artifact_not_found"),
            ] {
                let reply = try await server.get(path)
                #expect(reply.status == status, "\(path): \(reply.text)")
                #expect(reply.errorCode == code, "\(path): \(reply.text)")
            }
            #expect(try await server.get("/jobs/\(job)/artifacts").decoded(API.ArtifactList.self).artifacts.isEmpty)
            let cleanup = try await server.post("/jobs/\(job)/cleanup?artifacts=maybe")
            #expect(cleanup.status == 400)
            #expect(cleanup.errorMessage.contains("'artifacts' must be true or false"))
        }
    }

    @Test func whenAlwaysCollectsAfterAFailureAndOnSuccessDoesNot() async throws {
        try await TestServer.with { server in
            func run(_ when: String) async throws -> (Int, API.JobDetails) {
                let pipeline = try await server.createPipeline(
                    config: "artifacts:\n  paths: [out.txt]\n  when: \(when)\nsteps:\n  - echo partial > out.txt\n  - exit 4\n  - echo never\n")
                let job = try await server.trigger(pipeline)
                #expect(try await server.waitForJob(job).status == .failed)
                return (job, try await server.get("/jobs/\(job)/details").decoded(API.JobDetails.self))
            }
            let (always, alwaysDetails) = try await run("always")
            #expect(alwaysDetails.steps.map(\.status) == [.success, .failed, .skipped, .success])
            #expect(try await server.get("/jobs/\(always)/artifacts/out.txt").text == "partial\n")
            let (onSuccess, onSuccessDetails) = try await run("on_success")
            #expect(onSuccessDetails.steps.map(\.status) == [.success, .failed, .skipped, .skipped])
            #expect(try await server.get("/jobs/\(onSuccess)/artifacts").decoded(API.ArtifactList.self).artifacts.isEmpty)
        }
    }

    @Test func cleanupKeepsArtifactsUnlessAskedAndExpiredOnesAreRemoved() async throws {
        try await TestServer.with(configure: { $0.artifactSweepInterval = .milliseconds(200) }) { server in
            let kept = try await server.createPipeline(config: "artifacts:\n  paths: [a.txt]\nsteps:\n  - echo a > a.txt\n")
            let job = try await server.trigger(kept)
            #expect(try await server.waitForJob(job).status == .success)
            let first = try await server.post("/jobs/\(job)/cleanup")
            #expect(first.status == 200)
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/workspaces/job-\(job)"))
            #expect(try await server.get("/jobs/\(job)/artifacts/a.txt").text == "a\n", "cleanup keeps artifacts")
            let second = try await server.post("/jobs/\(job)/cleanup?artifacts=true")
            #expect(second.text.contains("\"artifacts\":1"), "\(second.text)")
            #expect(try await server.get("/jobs/\(job)/artifacts/a.txt").status == 404)
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/artifacts/job-\(job)"))

            // About four seconds: kept when the job ends (its step says so), gone once expired.
            let brief = try await server.createPipeline(config: "artifacts:\n  paths: [b.txt]\n  expire_in_days: 0.00005\nsteps:\n  - echo b > b.txt\n")
            let expiring = try await server.trigger(brief)
            #expect(try await server.waitForJob(expiring).status == .success)
            let collected = try await server.logs(expiring).logs.last?.output ?? ""
            #expect(collected.contains("artifacts: kept 1 files"), "\(collected)")
            try await eventually(timeout: .seconds(60), "the expired artifact is removed") {
                try await server.get("/jobs/\(expiring)/artifacts").decoded(API.ArtifactList.self).artifacts.isEmpty
            }
            #expect(try await server.get("/jobs/\(expiring)/artifacts/b.txt").status == 404)
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/artifacts/job-\(expiring)"))
        }
    }

    @Test func anArtifactThroughASymlinkOutOfTheWorkspaceFailsTheStepAndNothingIsKept() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(
                config: "artifacts:\n  paths: [\"dist/\"]\nsteps:\n  - mkdir dist && echo fine > dist/ok.txt && ln -s /etc/hostname dist/host\n")
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .failed)
            let output = try await server.logs(job).logs.last?.output ?? ""
            #expect(output.contains("'dist/host' leads out of the workspace"), "\(output)")
            #expect(try await server.get("/jobs/\(job)/artifacts").decoded(API.ArtifactList.self).artifacts.isEmpty)
        }
    }

    @Test func artifactsOverTheLimitFailTheStepAndNoneAreKept() async throws {
        try await TestServer.with(configure: { $0.artifactMaxBytes = 50_000 }) { server in
            let pipeline = try await server.createPipeline(
                config: "artifacts:\n  paths: [\"*.bin\"]\nsteps:\n  - head -c 40000 /dev/zero > a.bin && head -c 40000 /dev/zero > b.bin\n")
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .failed)
            let output = try await server.logs(job).logs.last?.output ?? ""
            #expect(output.contains("over the limit"), "\(output)")
            #expect(output.contains("--artifact-max-mb"))
            #expect(try await server.get("/jobs/\(job)/artifacts").decoded(API.ArtifactList.self).artifacts.isEmpty)
        }
    }

    @Test func aFullDiskDuringCollectionFailsTheStepClearlyAndKeepsEarlierOutput() async throws {
        let mountPoint = TestFiles.temporaryDirectory()
        try await TestFiles.shell("mount -t tmpfs -o size=48m tmpfs \(mountPoint)")
        defer { TestFiles.shellNow("umount -l \(mountPoint)") }
        try await TestServer.with(dataDirectory: mountPoint) { server in
            let pipeline = try await server.createPipeline(
                config: "artifacts:\n  paths: [big.bin]\nsteps:\n  - head -c 30000000 /dev/zero > big.bin && echo wrote big\n")
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .failed)
            let logs = try await server.logs(job)
            #expect(logs.build.contains("wrote big"), "the earlier step's output is kept")
            let output = logs.logs.last?.output ?? ""
            #expect(output.contains("the disk is full"), "\(output)")
            #expect(try await server.get("/jobs/\(job)/artifacts").decoded(API.ArtifactList.self).artifacts.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: "\(mountPoint)/artifacts/job-\(job)"), "the partial copy is removed")
        }
    }
}
