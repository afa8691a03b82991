import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowServer
import RapidFlowTestSupport
import Testing

/// Pipeline caches: restored before the first step, saved after the last, scoped to owner and
/// pipeline, written atomically, evicted least recently used, and never unpacked outside.
@Suite("Caches")
struct CacheTests {
    /// A git repository on this machine whose `lock.txt` holds `lock`; its path.
    static func repository(lock: String) async throws -> String {
        let root = TestFiles.temporaryDirectory()
        try await TestFiles.shell(
            """
            cd \(root) && git init -q --initial-branch=main repo && cd repo && echo '\(lock)' > lock.txt \
            && git add lock.txt && git -c user.email=t@t -c user.name=t commit -qm lock
            """)
        return "\(root)/repo"
    }

    static func setLock(_ repository: String, _ lock: String) async throws {
        try await TestFiles.shell(
            "cd \(repository) && echo '\(lock)' > lock.txt && git -c user.email=t@t -c user.name=t commit -qam 'lock \(lock)'")
    }

    /// A config that caches `.deps` and `~/.store` under `deps-<checksum of lock.txt>`.
    static func config(repo: String, steps: String, restoreKeys: Bool = true) -> String {
        """
        repo: \(repo)
        cache:
          - key: "deps-${checksum:lock.txt}"
            paths: [".deps", "~/.store"]
        \(restoreKeys ? "    restore_keys: [\"deps-\"]" : "")
        steps:
        \(steps)
        """
    }

    /// Shows what was restored, then records this job's run in both cached folders.
    static let recordingSteps = """
          - "echo \\"deps=$(cat .deps/runs 2>/dev/null | tr '\\\\n' ,)\\"; echo \\"store=$(cat ~/.store/runs 2>/dev/null | tr '\\\\n' ,)\\""
          - "mkdir -p .deps ~/.store; echo $RAPIDFLOW_JOB_ID >> .deps/runs; echo $RAPIDFLOW_JOB_ID >> ~/.store/runs"
        """

    static func stepOutput(_ server: TestServer, _ jobID: Int, type: String) async throws -> String {
        let logs = try await server.logs(jobID)
        return logs.logs.filter { $0.type.rawValue == type }.map(\.output).joined()
    }

    @Test func aCacheIsRestoredByExactKeyThenByPrefixAndSavedOnlyWhenTheExactKeyMissed() async throws {
        let repo = try await Self.repository(lock: "v1")
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: Self.config(repo: repo, steps: Self.recordingSteps))

            let first = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(first).status == .success)
            #expect(try await Self.stepOutput(server, first, type: "cache-restore").contains("miss, nothing restored"))
            #expect(try await server.logs(first).build.contains("deps=\nstore=\n"))
            let saved = try await Self.stepOutput(server, first, type: "cache-save")
            #expect(saved.contains("saved"), "\(saved)")
            let statuses = try await server.get("/jobs/\(first)/details").text
            #expect(statuses.contains("\"cache-restore\"") && statuses.contains("\"cache-save\""), "the cache steps are steps of the job")

            // Same lock file: the exact key hits, both folders come back, nothing is saved again.
            let second = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(second).status == .success)
            let restored = try await Self.stepOutput(server, second, type: "cache-restore")
            #expect(restored.contains(": hit, restoring"), "\(restored)")
            #expect(try await server.logs(second).build.contains("deps=\(first),\nstore=\(first),\n"))
            #expect(try await Self.stepOutput(server, second, type: "cache-save").contains("not saved again"))

            // A new lock file: no exact key; the newest `deps-` cache is restored, and the new key saved.
            try await Self.setLock(repo, "v2")
            let third = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(third).status == .success)
            let byPrefix = try await Self.stepOutput(server, third, type: "cache-restore")
            #expect(byPrefix.contains("(a restore_keys match)"), "\(byPrefix)")
            #expect(try await server.logs(third).build.contains("deps=\(first),\n"))
            #expect(try await Self.stepOutput(server, third, type: "cache-save").contains("saved"))

            let caches = try await server.get("/caches?pipeline_id=\(pipeline)").decoded([API.Cache].self)
            #expect(caches.count == 2)
            #expect(Set(caches.map(\.jobID)) == [first, third])
            #expect(caches.allSatisfy { $0.key.hasPrefix("deps-") && $0.key.count == "deps-".count + 64 && $0.owner == "default" })
        }
    }

    @Test func anotherOwnersPipelineWithTheSameKeyRestoresNothing() async throws {
        let repo = try await Self.repository(lock: "same")
        try await TestServer.with { server in
            let config = Self.config(repo: repo, steps: Self.recordingSteps)
            let mine = try await server.createPipeline(name: "cached", config: config)
            let reply = try await server.post("/pipelines", json: ["name": "cached", "config": config, "owner": "team-b"])
            let theirs = try reply.decoded(API.Pipeline.self).id
            let saving = try await server.trigger(mine)
            #expect(try await server.waitForJob(saving).status == .success)

            let other = try await server.trigger(theirs)
            #expect(try await server.waitForJob(other).status == .success)
            #expect(try await Self.stepOutput(server, other, type: "cache-restore").contains("miss, nothing restored"))
            #expect(try await server.logs(other).build.contains("deps=\nstore=\n"), "nothing of team default's cache reached team-b")
            #expect(try await server.get("/caches?owner=team-b").decoded([API.Cache].self).map(\.jobID) == [other])
            #expect(try await server.get("/caches?owner=default").decoded([API.Cache].self).map(\.jobID) == [saving])
        }
    }

    @Test func theLeastRecentlyUsedCacheIsEvictedAtTheCap() async throws {
        try await TestServer.with(configure: { $0.cacheMaxBytes = 300 << 10 }) { server in
            // Each branch its own key; each cache about 128 KiB of random bytes, which do not compress.
            let pipeline = try await server.createPipeline(
                config: """
                    cache:
                      - key: "b-${branch}"
                        paths: [blob]
                    steps:
                      - "test -f blob && echo had-blob || head -c 131072 /dev/urandom > blob"
                    """)
            func run(_ branch: String) async throws -> Int {
                let job = try await server.trigger(pipeline, API.TriggerRequest(branch: branch))
                #expect(try await server.waitForJob(job).status == .success)
                return job
            }
            func keys() async throws -> Set<String> { Set(try await server.get("/caches").decoded([API.Cache].self).map(\.key)) }
            _ = try await run("one")
            _ = try await run("two")
            #expect(try await keys() == ["b-one", "b-two"])
            // `one` is used again, so `two` is now the least recently used.
            let reuse = try await run("one")
            #expect(try await server.logs(reuse).build.contains("had-blob"))
            let third = try await run("three")
            #expect(try await keys() == ["b-one", "b-three"])
            #expect(try await Self.stepOutput(server, third, type: "cache-save").contains("evicted 1 least recently used cache(s)"))
            let folders = try FileManager.default.contentsOfDirectory(atPath: "\(server.dataDirectory)/caches")
            #expect(folders.count == 2, "the evicted cache's files are gone: \(folders)")
        }
    }

    @Test func aCachePathThroughASymlinkOutOfTheWorkspaceFailsTheSaveNamingIt() async throws {
        try await TestServer.with { server in
            let outside = TestFiles.temporaryDirectory()
            try "secret".write(toFile: "\(outside)/file", atomically: true, encoding: .utf8)
            let pipeline = try await server.createPipeline(
                config: "cache:\n  - key: k\n    paths: [leak]\nsteps:\n  - ln -s \(outside) leak && echo linked\n")
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .failed)
            let save = try await Self.stepOutput(server, job, type: "cache-save")
            #expect(save.contains("'leak' leads out of the workspace"), "\(save)")
            #expect(try await server.get("/caches").decoded([API.Cache].self).isEmpty)
            #expect(try await server.logs(job).build.contains("linked"), "the earlier step's output is kept")
        }
    }

    @Test func configsWithPathsOutsideOrBadKeysAreRefusedAndNothingIsStored() async throws {
        try await TestServer.with { server in
            let cases: [(String, String)] = [
                ("cache:\n  - key: k\n    paths: [../up]\nsteps: [true]\n", "contains '..'"),
                ("cache:\n  - key: k\n    paths: [/etc]\nsteps: [true]\n", "is absolute"),
                ("cache:\n  - key: k\n    paths: [\"~root/.ssh\"]\nsteps: [true]\n", "another user's home"),
                ("cache:\n  - key: k\n    paths: [\"a/../../b\"]\nsteps: [true]\n", "contains '..'"),
                ("cache:\n  - key: k\n    paths: [\"*.o\"]\nsteps: [true]\n", "is a pattern"),
                ("cache:\n  - key: \"x-${commit}\"\n    paths: [a]\nsteps: [true]\n", "unknown placeholder '${commit}'"),
                ("cache:\n  - key: \"x-${checksum:../lock}\"\n    paths: [a]\nsteps: [true]\n", "contains '..'"),
                ("cache:\n  - key: \"a b\"\n    paths: [a]\nsteps: [true]\n", "may hold only letters"),
                ("cache:\n  - paths: [a]\nsteps: [true]\n", "has no 'key'"),
                ("cache:\n  - key: k\nsteps: [true]\n", "has no 'paths'"),
                ("cache:\n  - key: k\n    paths: []\nsteps: [true]\n", "is empty"),
                ("cache:\n  - key: k\n    paths: [a]\n    ttl: 3\nsteps: [true]\n", "unknown key 'ttl'"),
                ("cache: yes\nsteps: [true]\n", "must be a list"),
                ("artifacts:\n  paths: [../x]\nsteps: [true]\n", "contains '..'"),
                ("artifacts:\n  paths: [/var/log/x]\nsteps: [true]\n", "is absolute"),
                ("artifacts:\n  paths: [x]\n  when: sometimes\nsteps: [true]\n", "must be one of on_success, always"),
                ("artifacts:\n  paths: [x]\n  expire_in_days: -1\nsteps: [true]\n", "positive number of days"),
                ("artifacts:\n  expire_in_days: 1\nsteps: [true]\n", "has no 'paths'"),
                ("artifacts: [x]\nsteps: [true]\n", "must be a mapping"),
            ]
            for (config, message) in cases {
                let reply = try await server.request(.POST, "/pipelines", encoding: API.PipelineDefinition(name: "bad", config: config))
                #expect(reply.status == 400, "\(config)")
                #expect(reply.errorCode == "invalid_config")
                #expect(reply.errorMessage.contains(message), "\(reply.errorMessage) should say \(message)")
            }
            #expect(try await server.counts().pipelines == 0)
        }
    }

    @Test func badCacheRequestsAreRefusedWithTheEnvelope() async throws {
        try await TestServer.with { server in
            for (path, code) in [
                ("/caches?owner=Not%20An%20Owner", "invalid_request"), ("/caches?pipeline_id=abc", "invalid_request"),
                ("/caches?limit=0", "invalid_request"), ("/caches?limit=5000", "invalid_request"),
            ] {
                let reply = try await server.get(path)
                #expect(reply.status == 400, "\(path)")
                #expect(reply.errorCode == code, "\(path): \(reply.text)")
            }
            let missing = try await server.request(.DELETE, "/caches/4242")
            #expect(missing.status == 404)
            #expect(missing.errorCode == "cache_not_found")
        }
    }

    @Test func deletingACacheMeansTheNextJobStartsWithout() async throws {
        let repo = try await Self.repository(lock: "d")
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(config: Self.config(repo: repo, steps: Self.recordingSteps))
            let first = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(first).status == .success)
            let cache = try #require(try await server.get("/caches").decoded([API.Cache].self).first)
            let deleted = try await server.request(.DELETE, "/caches/\(cache.id)")
            #expect(deleted.status == 200, "\(deleted.text)")
            #expect(try await server.get("/caches").decoded([API.Cache].self).isEmpty)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(server.dataDirectory)/caches").isEmpty)
            let second = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(second).status == .success)
            #expect(try await server.logs(second).build.contains("deps=\nstore=\n"))
        }
    }

    @Test func aFailedJobSavesNoCache() async throws {
        try await TestServer.with { server in
            let pipeline = try await server.createPipeline(
                config: "cache:\n  - key: k\n    paths: [d]\nsteps:\n  - mkdir d && echo x > d/x\n  - exit 3\n")
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .failed)
            let details = try await server.get("/jobs/\(job)/details").decoded(API.JobDetails.self)
            #expect(details.steps.first { $0.type == .cacheSave }?.status == .skipped)
            #expect(try await server.get("/caches").decoded([API.Cache].self).isEmpty)
        }
    }

    @Test func aCacheOverThePerCacheLimitIsNotSavedAndTheStepSaysWhy() async throws {
        try await TestServer.with(configure: { $0.cacheEntryMaxBytes = 64 << 10 }) { server in
            let pipeline = try await server.createPipeline(
                config: "cache:\n  - key: k\n    paths: [big]\nsteps:\n  - head -c 200000 /dev/urandom > big\n")
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .failed)
            let save = try await Self.stepOutput(server, job, type: "cache-save")
            #expect(save.contains("over the limit"), "\(save)")
            #expect(try await server.get("/caches").decoded([API.Cache].self).isEmpty)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: "\(server.dataDirectory)/caches")
            #expect(leftovers.isEmpty, "no half-made cache stays: \(leftovers)")
        }
    }
}
