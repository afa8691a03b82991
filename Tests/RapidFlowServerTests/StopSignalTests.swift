import Foundation
import RapidFlowAPI
import RapidFlowTestSupport
import Testing

/// A stop reaches each process of a step once: the step's main process and a child in its
/// process group, and a grandchild that left the group with `setsid` (found by its marker or
/// its cgroup). Each traps SIGTERM, prints a line and carries on, so a second SIGTERM would
/// print a second line; SIGKILL after the grace period ends them. (`|| true`: the steps run
/// with `-e`, and a `sleep` ended by the signal would end its shell.)
@Suite("Stop signals")
struct StopSignalTests {
    static let script = """
        trap 'echo main-TERM' TERM
        bash -c 'trap "echo child-TERM" TERM; echo child-ready; while :; do sleep 0.05 || true; done' &
        setsid bash -c 'trap "echo escaped-TERM" TERM; echo escaped-ready; while :; do sleep 0.05 || true; done' &
        echo main-ready
        while :; do sleep 0.05 || true; done
        """

    @Test func aCancelSignalsEveryProcessOfTheStepOnce() async throws {
        try await TestServer.with(configure: { $0.killGracePeriod = .seconds(2) }) { server in
            let config = "steps:\n  - type: bash\n    content: |\n" + Self.script.split(separator: "\n").map { "      \($0)\n" }.joined()
            let job = try await server.trigger(try await server.createPipeline(config: config))
            for ready in ["main-ready", "child-ready", "escaped-ready"] {
                try await server.waitForOutput(job, containing: ready)
            }
            let reply = try await server.post("/jobs/\(job)/cancel")
            #expect(reply.status == 200, "\(reply.text)")
            let output = try await server.logs(job).logs[0].output
            for line in ["main-TERM", "child-TERM", "escaped-TERM"] {
                let seen = output.components(separatedBy: "\n").filter { $0 == line }.count
                #expect(seen == 1, "\(line) printed \(seen) times in:\n\(output)")
            }
        }
    }
}
