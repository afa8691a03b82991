import CRapidFlowProcess
import Foundation

/// A command run to its end with its output in files: what `Foundation.Process` is used for
/// elsewhere, without it.
///
/// `Process.run()` on Linux lists `/proc/self/fd` to close the child's descriptors and copies
/// 256 bytes out of each directory entry; once about 1,360 descriptors are open the last entry
/// sits at the end of its buffer and the copy can read past it: a crash (seen in the tests,
/// which hold that many while hundreds of services run side by side). This spawns with
/// `posix_spawn` and closes the child's descriptors with `closefrom`.
public enum Command {
    /// Runs `executable` with `arguments`, standard output and error appended to the files at
    /// `output` and `error` (the same path for both is fine), standard input from `input` (a
    /// file) or /dev/null; returns the exit status (128 + n after signal n).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, output: String, error: String,
        input: String? = nil
    ) async throws -> Int32 {
        let pid = try spawn(executable, arguments, environment: environment, output: output, error: error, input: input)
        return Int32(try await ProcessExitMonitor.shared.termination(of: pid).exitCode)
    }

    /// As `run`, waiting on the calling thread (for cleanups that cannot await).
    public static func runNow(_ executable: String, _ arguments: [String], output: String, error: String) throws -> Int32 {
        let pid = try spawn(executable, arguments, environment: nil, output: output, error: error, input: nil)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String]?, output: String, error: String, input: String?
    ) throws -> pid_t {
        func openFile(_ path: String, _ flags: Int32) throws -> Int32 {
            let descriptor = open(path, flags | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw ProcessError.spawnFailed(path, errno: errno) }
            return descriptor
        }
        let outputFD = try openFile(output, O_WRONLY | O_CREAT | O_APPEND)
        defer { close(outputFD) }
        let errorFD = error == output ? outputFD : try openFile(error, O_WRONLY | O_CREAT | O_APPEND)
        defer { if errorFD != outputFD { close(errorFD) } }
        let inputFD = try input.map { try openFile($0, O_RDONLY) } ?? -1
        defer { if inputFD >= 0 { close(inputFD) } }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let variables = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0)=\($1)") } + [nil]
        defer { for pointer in variables { free(pointer) } }
        var pid: pid_t = 0
        let status = rapidflow_spawn_command(executable, argv, variables, inputFD, outputFD, errorFD, &pid)
        guard status == 0 else { throw ProcessError.spawnFailed(executable, errno: status) }
        return pid
    }
}
