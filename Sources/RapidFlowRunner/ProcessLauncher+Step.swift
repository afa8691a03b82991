import Foundation
import NIOCore

extension ProcessLauncher {
    /// Runs one step's process: its group is attached to the step's control (so a stop
    /// reaches it), its output goes to the step's events, and whatever escaped the group is
    /// killed when it exits: everything in the step's cgroup, and every process carrying its marker.
    func runStep(_ spec: ProcessSpec, _ step: StepInvocation, events: any StepEvents) async throws -> Int {
        var spec = spec
        spec.cgroup = StepCgroups.create(marker: step.control.marker)
        let outcome: Result<Termination, any Error>
        do {
            outcome = .success(try await runContained(spec, step, events: events))
        } catch {
            outcome = .failure(error)
        }
        if spec.cgroup != nil { await StepCgroups.remove(markedWith: step.control.marker) }
        return try outcome.get().exitCode
    }

    private func runContained(_ spec: ProcessSpec, _ step: StepInvocation, events: any StepEvents) async throws -> Termination {
        try await run(
            spec,
            started: { pid in
                step.control.attach(processGroup: pid)
                await events.started(processGroup: pid)
            },
            output: { try await events.output($0) },
            exited: { ProcessSweeper.signalProcesses(markedWith: step.control.marker, signal: SIGKILL) })
    }

    /// On each stop signal of the step, sends the same signal to the container `current()`
    /// names (if any) through `docker kill`: the engine runs containers outside the step's
    /// process group, so signalling the attached client alone would leave them running.
    func stopContainerOnStop(_ step: StepInvocation, environment: [String: String], _ current: @escaping @Sendable () -> String?) {
        step.control.onStop { [self] signal in
            guard let containerID = current() else { return }
            Task {
                _ = try? await run(
                    ProcessSpec(
                        executable: "/usr/bin/env", arguments: ["docker", "kill", "--signal", signal == SIGKILL ? "KILL" : "TERM", containerID],
                        environment: environment, workingDirectory: nil),
                    started: { _ in }, output: { _ in })
            }
        }
    }
}
