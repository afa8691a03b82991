import Crypto
import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowServer
import RapidFlowTestSupport
import Testing

/// Caches and artifacts of a runner whose workspace the service cannot see (a Nomad node, or
/// `--runner-files channel`): the runner packs, unpacks and sums on its machine; the archives
/// and files travel over its channel, and the service alone decides what is found and kept.
@Suite("Runner files over the channel")
struct RunnerFilesTests {
    /// A `--runner-binary` that starts the real runner with its workspace in `workspaces`, a
    /// folder the service never hears of: as on another machine.
    static func elsewhereRunner(workspaces: String) throws -> String {
        let wrapper = TestFiles.temporaryDirectory() + "/runner-elsewhere"
        try """
            #!/bin/bash
            args=(); next=
            for a in "$@"; do
              if [ "$next" = workspace ]; then args+=("\(workspaces)"); next=; continue; fi
              [ "$a" = --workspace ] && next=workspace
              args+=("$a")
            done
            exec "\(ServiceProcess.binary)" "${args[@]}"
            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)
        return wrapper
    }

    static func hex(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    @Test func cachesAndArtifactsTravelOverTheChannelToARunnerWhoseWorkspaceTheServiceCannotSee() async throws {
        let repo = try await CacheTests.repository(lock: "v1")
        let elsewhere = TestFiles.temporaryDirectory()
        let wrapper = try Self.elsewhereRunner(workspaces: elsewhere)
        try await TestServer.with(configure: {
            $0.executor = .runner
            $0.runnerBinary = wrapper
            $0.runnerFilesOverChannel = true
        }) { server in
            let config = CacheTests.config(repo: repo, steps: CacheTests.recordingSteps)
                .replacingOccurrences(of: "steps:\n", with: "artifacts:\n  paths: [\".deps/runs\", \"~/.store\"]\nsteps:\n")
            let pipeline = try await server.createPipeline(config: config)

            let first = try await server.trigger(pipeline)
            let firstStatus = try await server.waitForJob(first).status
                let firstLogs = try await server.get("/jobs/\(first)/logs").text
                #expect(firstStatus == .success, "\(firstLogs)")
            #expect(try await CacheTests.stepOutput(server, first, type: "cache-restore").contains("miss, nothing restored"))
            let saved = try await CacheTests.stepOutput(server, first, type: "cache-save")
            #expect(saved.contains("saved"), "\(saved)")

            // The exact key: both folders come back into the runner's own workspace and home.
            let second = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(second).status == .success)
            let restored = try await CacheTests.stepOutput(server, second, type: "cache-restore")
            #expect(restored.contains(": hit, restoring"), "\(restored)")
            #expect(try await server.logs(second).build.contains("deps=\(first),\nstore=\(first),\n"))
            #expect(try await CacheTests.stepOutput(server, second, type: "cache-save").contains("not saved again"))

            // Artifacts: summed by the service as they arrived, listed, downloaded whole and by range.
            let expected = Data("\(first)\n\(second)\n".utf8)
            let list = try await server.get("/jobs/\(second)/artifacts").decoded(API.ArtifactList.self)
            #expect(Set(list.artifacts.map(\.path)) == [".deps/runs", "~/.store/runs"])
            #expect(list.artifacts.first { $0.path == ".deps/runs" }?.sha256 == Self.hex(expected))
            #expect(try await server.get("/jobs/\(second)/artifacts/.deps/runs").body == expected)
            let range = try await server.request(.GET, "/jobs/\(second)/artifacts/.deps/runs", headers: [("Range", "bytes=0-1")])
            #expect(range.status == 206 && range.body == expected.prefix(2))

            // A new lock file: the newest `deps-` cache by prefix.
            try await CacheTests.setLock(repo, "v2")
            let third = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(third).status == .success)
            #expect(try await CacheTests.stepOutput(server, third, type: "cache-restore").contains("(a restore_keys match)"))
            #expect(try await server.logs(third).build.contains("deps=\(first),\(second),\n") == false)
            #expect(try await server.logs(third).build.contains("deps=\(first),\n"))
            #expect(try await server.get("/caches?pipeline_id=\(pipeline)").decoded([API.Cache].self).count == 2)

            // The runner's workspaces were elsewhere; the service's own runner folder holds
            // nothing of the jobs, and no draft or download was left on either side.
            #expect(FileManager.default.fileExists(atPath: "\(elsewhere)/job-\(second)/.deps/runs"))
            let serviceSide = "\(server.dataDirectory)/runner-workspaces/job-\(second)/.deps"
            #expect(!FileManager.default.fileExists(atPath: serviceSide), "the service did not write the runner's workspace")
            let caches = try FileManager.default.contentsOfDirectory(atPath: "\(server.dataDirectory)/caches")
            #expect(!caches.contains { $0.hasPrefix(".partial-") }, "\(caches)")
            try await eventually("the runners' scratch folders are removed") {
                (try? FileManager.default.contentsOfDirectory(atPath: elsewhere))?.allSatisfy { !$0.hasPrefix("files-") } ?? true
            }
        }
    }

    @Test func aSymlinkOutOfTheRunnersWorkspaceIsRefusedThereNamingThePath() async throws {
        let wrapper = try Self.elsewhereRunner(workspaces: TestFiles.temporaryDirectory())
        try await TestServer.with(configure: {
            $0.executor = .runner
            $0.runnerBinary = wrapper
            $0.runnerFilesOverChannel = true
        }) { server in
            let pipeline = try await server.createPipeline(
                config: """
                    artifacts:
                      paths: [leak.txt]
                    steps:
                      - ln -s /etc/passwd leak.txt
                    """)
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .failed)
            let output = try await CacheTests.stepOutput(server, job, type: "artifacts")
            #expect(output.contains("'leak.txt' leads out of the workspace (a symlink): refused"), "\(output)")
            #expect(try await server.get("/jobs/\(job)/artifacts").decoded(API.ArtifactList.self).artifacts.isEmpty)
        }
    }

    /// A "runner" that keeps its token for the test, which then plays the runner by hand.
    static func tokenKeepingRunner() throws -> (binary: String, tokenFile: String) {
        let directory = TestFiles.temporaryDirectory()
        let binary = "\(directory)/keeping-runner"
        try "#!/bin/bash\ncat > \(directory)/token.partial && mv \(directory)/token.partial \(directory)/token\nexec sleep 300\n"
            .write(toFile: binary, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: binary)
        return (binary, "\(directory)/token")
    }

    @Test func theFileRoutesRefuseBadInputWithTheEnvelopeAndKeepNothing() async throws {
        let (binary, tokenFile) = try Self.tokenKeepingRunner()
        try await TestServer.with(configure: {
            $0.executor = .runner
            $0.runnerBinary = binary
            $0.runnerFilesOverChannel = true
            $0.killGracePeriod = .seconds(1)
        }) { server in
            defer { TestFiles.shellNow("pkill -KILL -f '[k]eeping-runner' || true") }
            let pipeline = try await server.createPipeline(
                config: "cache:\n  - key: k\n    paths: [.deps]\nartifacts:\n  paths: [out.txt]\nsteps:\n  - echo hi\n")
            let job = try await server.trigger(pipeline)
            try await eventually("the runner has its token") { FileManager.default.fileExists(atPath: tokenFile) }
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8)
            let auth = [("Authorization", "Bearer \(token)")]
            let next = try await server.request(.GET, "/runner/jobs/\(job)/next?wait=10", headers: auth).decoded(API.RunnerNext.self)
            let step = try #require(next.step)
            #expect(step.type == .cacheRestore && step.workspaceFiles?.owner == "default")
            let base = "/runner/jobs/\(job)/steps/\(step.stepID)"

            // Another job's token, or none: 401 before anything is read.
            let forged = try await server.request(.POST, "\(base)/caches/find", body: #"{"key":"k"}"#, headers: [("Authorization", "Bearer nope")])
            #expect(forged.status == 401 && forged.errorCode == "unauthorized")
            // A step the runner does not hold.
            let other = try await server.request(.POST, "/runner/jobs/\(job)/steps/\(step.stepID + 1)/caches/find", body: #"{"key":"k"}"#, headers: auth)
            #expect(other.status == 400 && other.errorMessage.contains("not a cache or artifacts step"), "\(other.text)")
            for (body, message) in [
                (#"{"key":""}"#, "a cache key must be"), (#"{"key":"k","owner":"team-b"}"#, "unknown field 'owner'"), (#"{}"#, "key"), ("[1]", "JSON object"),
            ] {
                let reply = try await server.request(.POST, "\(base)/caches/find", body: body, headers: auth)
                #expect(reply.status == 400 && reply.errorMessage.contains(message), "\(body): \(reply.text)")
            }
            #expect(try await server.request(.POST, "\(base)/caches/find", body: #"{"key":"k"}"#, headers: auth).decoded(API.RunnerCacheFound.self).cache == nil)
            let draft = UUID().uuidString.lowercased()
            for (path, message) in [
                ("\(base)/caches/drafts/../../etc/workspace?format=zst", "no such route"), ("\(base)/caches/drafts/not-a-uuid/workspace?format=zst", "lowercase UUID"),
                ("\(base)/caches/drafts/\(draft)/etc?format=zst", "'workspace' or 'home'"), ("\(base)/caches/drafts/\(draft)/workspace?format=rar", "'zst' or 'gz'"),
                ("\(base)/artifacts?path=../../escape.txt", "contains '..'"), ("\(base)/artifacts?path=/etc/passwd", "is absolute"), ("\(base)/artifacts", "'path' is required"),
            ] {
                let reply = try await server.request(.PUT, path, body: "bytes", headers: auth)
                #expect((400...404).contains(reply.status) && reply.error != nil && reply.errorMessage.contains(message), "\(path): \(reply.text)")
            }
            // A draft never uploaded cannot be kept; the archive of a cache that is not there is 404.
            let keep = try await server.request(.POST, "\(base)/caches/drafts/\(draft)", body: #"{"key":"k","format":"zst"}"#, headers: auth)
            #expect(keep.status == 400 && keep.errorMessage.contains("not one this job's runner uploaded"), "\(keep.text)")
            let missing = try await server.request(.GET, "\(base)/caches/1/workspace", headers: auth)
            #expect(missing.status == 404 && missing.errorCode == "cache_not_found", "\(missing.text)")

            // Nothing was kept: no cache, no draft folder, no artifact, nothing outside.
            #expect(try await server.get("/caches").decoded([API.Cache].self).isEmpty)
            let caches = (try? FileManager.default.contentsOfDirectory(atPath: "\(server.dataDirectory)/caches")) ?? []
            #expect(caches.isEmpty, "\(caches)")
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/escape.txt"))
            #expect(!FileManager.default.fileExists(atPath: "\(server.dataDirectory)/artifacts/escape.txt"))
            #expect(try await server.get("/jobs/\(job)/artifacts").decoded(API.ArtifactList.self).artifacts.isEmpty)
            _ = try await server.post("/jobs/\(job)/cancel")
        }
    }
}
