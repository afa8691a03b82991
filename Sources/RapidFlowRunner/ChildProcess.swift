import CRapidFlowProcess
import Foundation
import Synchronization
import NIOCore
import NIOPosix

/// How a child process ended.
public enum Termination: Sendable, Equatable {
    case exited(Int32)
    case signalled(Int32)

    /// The shell's convention: a signal `n` reads as exit code `128 + n`.
    public var exitCode: Int {
        switch self {
        case .exited(let code): Int(code)
        case .signalled(let signal): 128 + Int(signal)
        }
    }
}

/// What to start: the program, its arguments, its whole environment and where it runs.
public struct ProcessSpec: Sendable {
    public var executable: String
    public var arguments: [String]
    public var environment: [String: String]
    public var workingDirectory: String?
    /// A cgroup (v2) directory the process joins before it runs anything.
    public var cgroup: String?
    /// The user it runs as; nil: this process's.
    public var identity: StepIdentity?

    public init(executable: String, arguments: [String], environment: [String: String], workingDirectory: String?, cgroup: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.cgroup = cgroup
    }
}

/// Runs child processes in their own session, with stdout and stderr on one pipe so the
/// output keeps the order it was printed in.
///
/// Reading is event-driven (a NIO pipe channel), and so is waiting for the exit (a pidfd in
/// the `ProcessExitMonitor`'s one epoll set): no thread is held per running process.
public struct ProcessLauncher: Sendable {
    let exits: ProcessExitMonitor
    /// After the child exits, how long the pipe may stay silent before it is closed: a
    /// process that escaped both the group and the marker sweep may hold it open forever.
    public var drainIdleTimeout: Duration = .seconds(10)

    public init(exits: ProcessExitMonitor = .shared) {
        self.exits = exits
    }

    /// Starts `spec`, hands its pid (which is also its process group and session id) to
    /// `started`, passes every chunk of output to `output` in order, and returns how it ended.
    /// When the child exits, whatever is left of its process group is killed.
    public func run(
        _ spec: ProcessSpec,
        started: @Sendable (pid_t) async -> Void,
        output: @escaping @Sendable (ByteBuffer) async throws -> Void,
        exited: @escaping @Sendable () -> Void = {}
    ) async throws -> Termination {
        var fds: [Int32] = [-1, -1]
        let pipeStatus = fds.withUnsafeMutableBufferPointer { rapidflow_pipe_cloexec($0.baseAddress!) }
        guard pipeStatus == 0 else { throw ProcessError.spawnFailed(spec.executable, errno: pipeStatus) }
        let (readEnd, writeEnd) = (fds[0], fds[1])

        let pid: pid_t
        do {
            pid = try Self.spawn(spec, outputFD: writeEnd)
        } catch {
            close(readEnd)
            close(writeEnd)
            throw error
        }
        close(writeEnd)

        let channel: NIOAsyncChannel<ByteBuffer, Never>
        do {
            channel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                // Reads grow up to 1 MiB while output is fast, so a flood costs few round trips.
                .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16384, maximum: 1 << 20))
                .takingOwnershipOfDescriptor(input: readEnd) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, Never>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            close(readEnd)
            kill(-pid, SIGKILL)
            _ = try? await waitForExit(pid)
            throw error
        }
        await started(pid)

        let idleTimeout = self.drainIdleTimeout
        let lastRead = LastRead()
        return try await withThrowingTaskGroup(of: Termination?.self) { group in
            group.addTask {
                do {
                    try await channel.executeThenClose { inbound, _ in
                        for try await chunk in inbound {
                            lastRead.begin()
                            try await output(chunk)
                            lastRead.end()
                        }
                    }
                } catch {
                    // Output that cannot be recorded (a full disk) stops the step: it must not
                    // run on unobserved, and its exit must still be awaited below.
                    kill(-pid, SIGKILL)
                    throw error
                }
                return nil
            }
            group.addTask {
                let termination = try await waitForExit(pid)
                // Background processes the step left behind die with it, so the pipe reaches its end.
                kill(-pid, SIGKILL)
                exited()
                return termination
            }
            var termination: Termination?
            var readerDone = false
            while let result = try await group.next() {
                if let result {
                    termination = result
                    if !readerDone {
                        group.addTask {
                            // Read to the end; close only a pipe that stays silent (held by an escapee).
                            while !Task.isCancelled {
                                try? await Task.sleep(for: .milliseconds(250))
                                if lastRead.idle(longerThan: idleTimeout) {
                                    channel.channel.close(promise: nil)
                                    break
                                }
                            }
                            return nil
                        }
                    }
                } else if !readerDone {
                    readerDone = true
                }
                if termination != nil && readerDone {
                    group.cancelAll()
                    break
                }
            }
            return termination!
        }
    }

    private func waitForExit(_ pid: pid_t) async throws -> Termination {
        try await exits.termination(of: pid)
    }

    private static func spawn(_ spec: ProcessSpec, outputFD: Int32) throws -> pid_t {
        let argv = ([spec.executable] + spec.arguments).map { strdup($0) }
        let envp = spec.environment.map { strdup("\($0.key)=\($0.value)") }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        // Into the step's cgroup when it has one (if joining it fails, as before without), and
        // as the step's user when one is set (which must not fail quietly).
        let procs = spec.cgroup.map { open("\($0)/cgroup.procs", O_WRONLY | O_CLOEXEC) } ?? -1
        defer { if procs >= 0 { close(procs) } }
        func spawn(joining cgroup: Int32) -> Int32 {
            (argv + [nil]).withUnsafeBufferPointer { argvPointer in
                (envp + [nil]).withUnsafeBufferPointer { envpPointer in
                    spec.workingDirectory.withOptionalCString { directory in
                        guard cgroup >= 0 || spec.identity != nil else {
                            return rapidflow_spawn(spec.executable, argvPointer.baseAddress, envpPointer.baseAddress, directory, outputFD, &pid)
                        }
                        guard let identity = spec.identity else {
                            return rapidflow_spawn_contained(
                                spec.executable, argvPointer.baseAddress, envpPointer.baseAddress, directory, outputFD, cgroup, nil, &pid)
                        }
                        return identity.groups.withUnsafeBufferPointer { groups in
                            var user = rapidflow_identity(uid: identity.uid, gid: identity.gid, groups: groups.baseAddress, group_count: Int32(groups.count))
                            return rapidflow_spawn_contained(
                                spec.executable, argvPointer.baseAddress, envpPointer.baseAddress, directory, outputFD, cgroup, &user, &pid)
                        }
                    }
                }
            }
        }
        var status = spawn(joining: procs)
        if status != 0, procs >= 0 { status = spawn(joining: -1) }
        guard status == 0 else { throw ProcessError.spawnFailed(spec.executable, errno: status) }
        return pid
    }
}

public enum ProcessError: Error, CustomStringConvertible {
    case spawnFailed(String, errno: Int32)
    case waitFailed(pid_t, errno: Int32)

    public var description: String {
        switch self {
        case .spawnFailed(let path, let code): "could not start \(path): \(String(cString: strerror(code)))"
        case .waitFailed(let pid, let code): "could not wait for process \(pid): \(String(cString: strerror(code)))"
        }
    }
}

/// When the pipe last delivered (or finished handing over) output, and whether a chunk is
/// being handed over now: a slow store is not a silent pipe.
private final class LastRead: Sendable {
    private let value = Mutex((instant: ContinuousClock.now, busy: false))
    func begin() { value.withLock { $0 = (.now, true) } }
    func end() { value.withLock { $0 = (.now, false) } }
    /// True when the reader has waited for data longer than `timeout`.
    func idle(longerThan timeout: Duration) -> Bool {
        value.withLock { !$0.busy && ContinuousClock.now - $0.instant > timeout }
    }
}

extension Optional where Wrapped == String {
    /// The C string of the value, or NULL.
    fileprivate func withOptionalCString<T>(_ body: (UnsafePointer<CChar>?) -> T) -> T {
        switch self {
        case .some(let text): text.withCString { body($0) }
        case .none: body(nil)
        }
    }
}
