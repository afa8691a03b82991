import Foundation
import NIOCore
import NIOPosix
import RapidFlowTestSupport
import Synchronization
import Testing

@testable import RapidFlowRunner

@Suite("Child processes")
struct ProcessLauncherTests {
    final class Collected: Sendable {
        let bytes = Mutex<[UInt8]>([])
        var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
    }

    func run(_ script: String, environment: [String: String] = [:], directory: String? = nil) async throws -> (Termination, String) {
        let collected = Collected()
        let termination = try await ProcessLauncher().run(
            ProcessSpec(executable: "/bin/bash", arguments: ["-c", script], environment: environment, workingDirectory: directory),
            started: { _ in },
            output: { chunk in collected.bytes.withLock { $0 += chunk.readableBytesView } })
        return (termination, collected.text)
    }

    @Test func stdoutAndStderrArriveInThePrintedOrder() async throws {
        let (termination, output) = try await run("for i in 1 2 3; do echo out$i; echo err$i >&2; done")
        #expect(termination == .exited(0))
        #expect(output == "out1\nerr1\nout2\nerr2\nout3\nerr3\n")
    }

    @Test func exitCodesAndSignalsAreReported() async throws {
        #expect(try await run("exit 7").0.exitCode == 7)
        let (signalled, _) = try await run("kill -TERM $$")
        #expect(signalled == .signalled(SIGTERM))
        #expect(signalled.exitCode == 143)
    }

    @Test func environmentAndWorkingDirectoryAreTheSpecsOnly() async throws {
        let directory = FileManager.default.temporaryDirectory.path
        let (_, output) = try await run("echo \"$ONLY:$HOME:$(pwd)\"", environment: ["ONLY": "yes"], directory: directory)
        #expect(output == "yes::\(URL(fileURLWithPath: directory).resolvingSymlinksInPath().path)\n")
    }

    @Test func noDescriptorOfTheParentLeaksIntoTheChild() async throws {
        let (_, output) = try await run("ls /proc/self/fd | sort -n | tr '\\n' ' '")
        // 0, 1, 2 and the one ls opens to read the directory.
        #expect(output.split(separator: " ").count <= 4, "descriptors: \(output)")
    }

    @Test func largeOutputArrivesWhole() async throws {
        let (termination, output) = try await run("head -c 5000000 /dev/zero | tr '\\0' 'x'")
        #expect(termination == .exited(0))
        #expect(output.utf8.count == 5_000_000)
    }

    @Test func aSlowConsumerStillReceivesEverythingAfterTheChildExits() async throws {
        let collected = Collected()
        let first = Mutex(true)
        let termination = try await ProcessLauncher().run(
            ProcessSpec(executable: "/bin/bash", arguments: ["-c", "seq 1 20000"], environment: [:], workingDirectory: nil),
            started: { _ in },
            output: { chunk in
                // The child exits long before this consumer catches up.
                if first.withLock({ let was = $0; $0 = false; return was }) { try await Task.sleep(for: .seconds(3)) }
                collected.bytes.withLock { $0 += chunk.readableBytesView }
            })
        #expect(termination == .exited(0))
        #expect(collected.text == (1...20000).map { "\($0)\n" }.joined())
    }

    @Test func backgroundProcessesDieWithTheStep() async throws {
        let token = "rf-bg-\(UUID().uuidString.prefix(8))"
        let (termination, output) = try await run("(exec -a \(token) sleep 300) & echo left")
        #expect(termination == .exited(0))
        #expect(output == "left\n")
        try await Task.sleep(for: .milliseconds(100))
        let survivors = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { entry in
            guard Int(entry) != nil, let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return false }
            return String(decoding: data, as: UTF8.self).contains(token)
        }
        #expect(survivors.isEmpty, "the background process survived its step")
    }

    @Test func markedProcessesAreFoundEvenAfterLeavingTheSession() async throws {
        let marker = "test-\(UUID().uuidString.prefix(8))"
        let collected = Collected()
        let launcher = ProcessLauncher()
        async let result = launcher.run(
            ProcessSpec(
                executable: "/bin/bash", arguments: ["-c", "setsid sleep 300 & echo up; wait"],
                environment: [ProcessSweeper.markerVariable: marker], workingDirectory: nil),
            started: { _ in }, output: { chunk in collected.bytes.withLock { $0 += chunk.readableBytesView } })
        // A timeout is left to the expectation below, so the SIGKILL after it still ends the processes.
        try? await eventually(timeout: .seconds(10), "the shell and its escaped sleep run") {
            ProcessSweeper.signalProcesses(markedWith: marker, signal: 0) >= 2
        }
        #expect(ProcessSweeper.signalProcesses(markedWith: marker, signal: 0) == 2)
        #expect(ProcessSweeper.signalProcesses(markedWith: marker, signal: SIGKILL) == 2)
        _ = try await result
        #expect(!ProcessSweeper.hasProcesses(markedWith: marker))
    }

    /// Forty children at once: the exit of the last one started is seen at once while the 39
    /// others still run, and the service gains no thread per child (a thread blocked in
    /// `waitpid` per process, from a pool smaller than that, would see it only after the others).
    @Test func exitsAreSeenWithoutAThreadPerRunningProcess() async throws {
        let count = 40
        let threads = { try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count }
        let before = try threads()
        final class Started: Sendable { let pids = Mutex<[pid_t]>([]) }
        let started = Started()
        try await withThrowingTaskGroup(of: (pid_t, Termination).self) { group in
            for _ in 0..<count {
                group.addTask {
                    let pid = Started()
                    let termination = try await ProcessLauncher().run(
                        ProcessSpec(executable: "/bin/sleep", arguments: ["600"], environment: [:], workingDirectory: nil),
                        started: { child in
                            pid.pids.withLock { $0 = [child] }
                            started.pids.withLock { $0.append(child) }
                        },
                        output: { _ in })
                    return (pid.pids.withLock { $0[0] }, termination)
                }
            }
            try await eventually(timeout: .seconds(60), "the \(count) children start") { started.pids.withLock { $0.count } == count }
            #expect(try threads() - before < count / 4, "threads grew with the number of running children")

            let pids = started.pids.withLock { $0 }
            let last = pids[count - 1]
            kill(last, SIGKILL)
            let first = try #require(try await group.next())
            #expect(first.0 == last)
            #expect(first.1 == .signalled(SIGKILL))

            for pid in pids where pid != last { kill(pid, SIGKILL) }
            var rest = 0
            while let (_, termination) = try await group.next() {
                #expect(termination == .signalled(SIGKILL))
                rest += 1
            }
            #expect(rest == count - 1)
        }
    }
}
