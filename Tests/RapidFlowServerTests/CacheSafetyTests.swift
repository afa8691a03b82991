import Foundation
import RapidFlowAPI
import RapidFlowCore
import RapidFlowServer
import RapidFlowTestSupport
import Testing

/// What a cache may never do: unpack outside its target, or be found half-written; and that
/// caches work the same with containers and runners.
@Suite("Cache safety and executors")
struct CacheSafetyTests {
    /// A tar archive written by Python's tarfile from `script` (which adds members to `tar`),
    /// compressed with zstd as the service's own archives are.
    static func craft(_ script: String, into path: String) async throws {
        let directory = TestFiles.temporaryDirectory()
        let program = """
            import io, tarfile
            tar = tarfile.open('\(directory)/crafted.tar', 'w', format=tarfile.GNU_FORMAT)
            def add(name, data=b'x', kind=tarfile.REGTYPE, link=''):
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = link
                info.size = len(data) if kind == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
            add('fine.txt', b'fine')
            \(script)
            tar.close()
            """
        try program.write(toFile: "\(directory)/craft.py", atomically: true, encoding: .utf8)
        try await TestFiles.shell("python3 \(directory)/craft.py && zstd -q -f \(directory)/crafted.tar -o \(path)")
    }

    @Test func aRestoreStopsAtTheSizeAndEntryBounds() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        let config = "cache:\n  - key: many\n    paths: [d]\nsteps:\n  - \"test -d d && echo restored || (mkdir d && for i in $(seq 1 50); do head -c 4096 /dev/urandom > d/f$i; done)\"\n"
        let pipeline = try await TestServer.with(dataDirectory: dataDirectory) { server in
            let pipeline = try await server.createPipeline(config: config)
            let job = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(job).status == .success)
            return pipeline
        }
        // The same cache, read by services whose bounds it exceeds: 51 entries, 200 KiB.
        for (configure, refusal) in [
            ({ (c: inout ServerConfiguration) in c.cacheMaxFiles = 20 }, "more than 20 entries"),
            ({ (c: inout ServerConfiguration) in c.cacheEntryMaxBytes = 64 << 10 }, "unpacks to more than"),
        ] {
            try await TestServer.with(dataDirectory: dataDirectory, configure: configure) { server in
                let job = try await server.trigger(pipeline)
                #expect(try await server.waitForJob(job).status == .failed)
                let restore = try await server.logs(job).logs.first { $0.type == .cacheRestore }?.output ?? ""
                #expect(restore.contains("the cache archive was refused") && restore.contains(refusal), "\(restore)")
            }
        }
    }

    @Test func craftedArchivesWithEscapingEntriesAreRefusedAndWriteNothingOutside() async throws {
        try await TestServer.with { server in
            let outside = TestFiles.temporaryDirectory()
            let token = "escape-\(UUID().uuidString.prefix(8))"
            let pipeline = try await server.createPipeline(
                config: "cache:\n  - key: crafted\n    paths: [d]\nsteps:\n  - mkdir -p d && echo real > d/real.txt\n")
            let saving = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(saving).status == .success)
            let folders = try FileManager.default.contentsOfDirectory(atPath: "\(server.dataDirectory)/caches")
            let archive = "\(server.dataDirectory)/caches/\(try #require(folders.first))/workspace.tar.zst"
            #expect(FileManager.default.fileExists(atPath: archive))

            let cases: [(script: String, refusal: String)] = [
                ("add('../\(token)')", "contains '..'"),
                ("add('d/../../../\(token)')", "contains '..'"),
                ("add('\(outside)/\(token)')", "is an absolute name"),
                ("add('link', kind=tarfile.SYMTYPE, link='\(outside)')\nadd('link/\(token)')", "written through the symlink 'link'"),
                ("add('hard', kind=tarfile.LNKTYPE, link='../../\(token)')", "contains '..'"),
                ("add('dev', kind=tarfile.CHRTYPE)", "is a device file"),
                ("add('fifo', kind=tarfile.FIFOTYPE)", "is a FIFO"),
            ]
            for (script, refusal) in cases {
                try await Self.craft(script, into: archive)
                let job = try await server.trigger(pipeline)
                #expect(try await server.waitForJob(job).status == .failed, "\(script)")
                let restore = try await server.logs(job).logs.first { $0.type == .cacheRestore }?.output ?? ""
                #expect(restore.contains("the cache archive was refused") && restore.contains(refusal), "\(script): \(restore)")
                let workspaces = "\(server.dataDirectory)/workspaces"
                for place in [outside, workspaces, server.dataDirectory, "/tmp"] {
                    #expect(!FileManager.default.fileExists(atPath: "\(place)/\(token)"), "\(script) wrote \(place)/\(token)")
                }
                #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "\(script) wrote into \(outside)")
                let details = try await server.get("/jobs/\(job)/details").decoded(API.JobDetails.self)
                #expect(details.steps.dropFirst().allSatisfy { $0.status == .skipped }, "nothing ran after the refused restore")
            }
        }
    }

    @Test func aServiceKilledDuringASaveLeavesThePreviousCacheAndNoPartOfTheNewOne() async throws {
        let dataDirectory = TestFiles.temporaryDirectory()
        // Last, once the service is gone: its 200 MB caches would pile up over repeated runs.
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        var service = try await ServiceProcess.start(dataDirectory: dataDirectory)
        defer { service.kill(signal: SIGKILL) }
        // The key follows the branch; `restore_keys` falls back to any `big-` cache.
        let pipeline = try await service.client.createPipeline(
            config: """
                cache:
                  - key: "big-${branch}"
                    paths: [data]
                    restore_keys: ["big-"]
                steps:
                  - "echo found=$(cat data/version 2>/dev/null)"
                  - "mkdir -p data && echo $CI_COMMIT_REF > data/version && if [ \\"$CI_COMMIT_REF\\" = refs/heads/large ]; then head -c 200000000 /dev/urandom > data/blob; fi"
                """)
        let small = try await service.client.trigger(pipeline, API.TriggerRequest(branch: "small"))
        #expect(try await service.client.waitForJob(small).status == .success)

        let large = try await service.client.trigger(pipeline, API.TriggerRequest(branch: "large"))
        // Killed as soon as the new cache's folder appears, long before 200 MB are packed.
        try await eventually(timeout: .seconds(120), "the save of the large cache begins") {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(dataDirectory)/caches")) ?? []
            return names.contains { $0.hasPrefix(".partial-") }
        }
        try await service.killNow()

        service = try await ServiceProcess.start(dataDirectory: dataDirectory)
        #expect(try await service.client.waitForJob(large).status == .failed, "the interrupted job is settled")
        try await eventually(timeout: .seconds(30), "the half-written cache is removed at start") {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(dataDirectory)/caches")) ?? []
            return !names.contains { $0.hasPrefix(".partial-") } && names.count == 1
        }
        let caches = try await service.client.get("/caches").decoded([API.Cache].self)
        #expect(caches.map(\.key) == ["big-small"], "only the complete cache is recorded")

        let again = try await service.client.trigger(pipeline, API.TriggerRequest(branch: "large"))
        #expect(try await service.client.waitForJob(again, timeout: .seconds(180)).status == .success)
        let logs = try await service.client.logs(again)
        #expect(logs.build.contains("found=refs/heads/small\n"), "the previous cache, whole: \(logs.build.prefix(2000))")
    }

    @Test func cachesWorkWithTheDockerExecutorIncludingTheJobsHome() async throws {
        try await TestServer.with(configure: { $0.executor = .docker }) { server in
            let pipeline = try await server.createPipeline(
                config: """
                    image: rapidflow-test/busybox
                    cache:
                      - key: box
                        paths: [.deps, "~/.store"]
                    steps:
                      - "echo home=$HOME; echo deps=$(cat .deps/runs 2>/dev/null) store=$(cat ~/.store/runs 2>/dev/null)"
                      - "mkdir -p .deps ~/.store && echo $RAPIDFLOW_JOB_ID >> .deps/runs && echo $RAPIDFLOW_JOB_ID >> ~/.store/runs"
                    """)
            let first = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(first).status == .success)
            #expect(try await server.logs(first).build.contains("home=/rapidflow-home\ndeps= store=\n"))
            let second = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(second).status == .success)
            let output = try await server.logs(second).build
            #expect(output.contains("deps=\(first) store=\(first)\n"), "\(output)")
        }
    }

    @Test func cachesAndArtifactsWorkWithLocalRunners() async throws {
        try await TestServer.with(configure: {
            $0.executor = .runner
            $0.runnerBinary = ServiceProcess.binary
        }) { server in
            let pipeline = try await server.createPipeline(
                config: """
                    cache:
                      - key: run
                        paths: [.deps, "~/.store"]
                    artifacts:
                      paths: [out.txt]
                    steps:
                      - "echo deps=$(cat .deps/runs 2>/dev/null) store=$(cat ~/.store/runs 2>/dev/null)"
                      - "mkdir -p .deps ~/.store && echo $RAPIDFLOW_JOB_ID >> .deps/runs && echo $RAPIDFLOW_JOB_ID >> ~/.store/runs && echo done > out.txt"
                    """)
            let first = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(first).status == .success)
            let second = try await server.trigger(pipeline)
            #expect(try await server.waitForJob(second).status == .success)
            #expect(try await server.logs(second).build.contains("deps=\(first) store=\(first)\n"))
            #expect(try await server.get("/jobs/\(second)/artifacts/out.txt").text == "done\n")
        }
    }
}
