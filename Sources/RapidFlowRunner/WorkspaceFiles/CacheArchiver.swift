import CRapidFlowProcess
import Foundation
import RapidFlowRunner

/// Packs and unpacks cache archives with the system's `tar`, compressed by `zstd` when the
/// machine has it (fast at both ends, multi-threaded) and by `gzip` otherwise. `tar` runs as
/// the step user when there is one, so a cache holds only what the job's steps could read,
/// and a restore writes only where they could write. On the way in, every header passes a
/// `TarStreamGuard` before `tar -x` sees it.
public struct CacheArchiver: Sendable {
    public enum Compression: String, Sendable {
        case zstd = "zst"
        case gzip = "gz"

        var compress: [String] { self == .zstd ? ["zstd", "-T0", "-3", "-q", "-c"] : ["gzip", "-3", "-c"] }
        var decompress: [String] { self == .zstd ? ["zstd", "-d", "-q", "-c"] : ["gzip", "-d", "-c"] }

        /// zstd when it is on the PATH.
        public static func available() -> Compression {
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            for directory in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(directory)/zstd") {
                return .zstd
            }
            return .gzip
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) { self.description = description }
    }

    public let compression: Compression
    /// The user `tar` runs as; nil: the service's own.
    public let identity: StepIdentity?

    public init(compression: Compression, identity: StepIdentity?) {
        self.compression = compression
        self.identity = identity
    }

    /// Writes `paths` (relative to `root`) into `archive` and returns the bytes of the tar
    /// stream (what the archive unpacks to, headers included). Refuses past `maxBytes`.
    public func pack(root: String, paths: [String], into archive: String, maxBytes: Int) async throws -> Int {
        try await Self.blocking {
            guard FileManager.default.createFile(atPath: archive, contents: nil) else {
                throw Failure(description: "could not create \(archive)")
            }
            let output = try FileHandle(forWritingTo: URL(fileURLWithPath: archive))
            defer { try? output.close() }
            let tar = process(asStepUser: ["tar", "--create", "--file=-", "--totals", "--directory", root, "--"] + paths)
            let compressor = process(asStepUser: compression.compress, asService: true)
            let pipe = Pipe()
            let tarErrors = Pipe()
            tar.standardOutput = pipe
            tar.standardError = tarErrors
            compressor.standardInput = pipe
            compressor.standardOutput = output
            let compressorErrors = Pipe()
            compressor.standardError = compressorErrors
            // `run` closes the parent's copy of each pipe end it hands a child.
            try ProcessSpawning.run(tar)
            try ProcessSpawning.run(compressor)
            // The archive goes to the disk as it is written, so the flush before the cache is
            // recorded has little left to wait for.
            let flushing = DispatchQueue(label: "rapidflow.cache-writeback")
            let writeback = DispatchSource.makeTimerSource(queue: flushing)
            let fd = output.fileDescriptor
            writeback.schedule(deadline: .now() + .milliseconds(100), repeating: .milliseconds(100))
            writeback.setEventHandler { _ = rapidflow_start_writeback(fd) }
            writeback.resume()
            let errors = String(decoding: tarErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            tar.waitUntilExit()
            compressor.waitUntilExit()
            // Cancelled and drained before `output` closes: the handler never sees a reused descriptor.
            writeback.cancel()
            flushing.sync {}
            guard tar.terminationStatus == 0 else {
                throw Failure(description: "tar failed: " + Self.lastLines(errors))
            }
            guard compressor.terminationStatus == 0 else {
                let message = String(decoding: compressorErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                throw Failure(description: "\(compression.compress[0]) failed: " + Self.lastLines(message))
            }
            try output.synchronize()
            // "Total bytes written: 1234 (1.3KiB, 10MiB/s)"
            let total = errors.split(separator: "\n").last { $0.hasPrefix("Total bytes written:") }
                .flatMap { Int($0.dropFirst("Total bytes written:".count).trimmingCharacters(in: .whitespaces).prefix { $0.isNumber }) } ?? 0
            guard total <= maxBytes else {
                throw Failure(description: "the cache unpacks to \(Self.megabytes(total)), over the limit of \(Self.megabytes(maxBytes))")
            }
            return total
        }
    }

    /// Unpacks `archive` (compressed as `format`) into `target` (which exists), through the guard.
    public func unpack(
        _ archive: String, format: Compression, into target: String, maxFiles: Int, maxBytes: Int
    ) async throws -> (files: Int, bytes: Int) {
        try await Self.blocking {
            let decompressor = process(asStepUser: format.decompress + ["--", archive], asService: true)
            let tar = process(
                asStepUser: ["tar", "--extract", "--file=-", "--no-same-owner", "--no-overwrite-dir", "--directory", target])
            let compressed = Pipe()
            let decompressorErrors = Pipe()
            decompressor.standardOutput = compressed
            decompressor.standardError = decompressorErrors
            let toTar = Pipe()
            // 1 MiB pipes instead of 64 KiB: a sixteenth of the reads, writes and wake-ups on
            // the way through this process.
            for pipe in [compressed, toTar] { _ = fcntl(pipe.fileHandleForReading.fileDescriptor, Self.setPipeSize, 1 << 20) }
            let tarErrors = Pipe()
            tar.standardInput = toTar
            tar.standardError = tarErrors
            tar.standardOutput = FileHandle.nullDevice
            // `run` closes the parent's copy of each pipe end it hands a child.
            try ProcessSpawning.run(decompressor)
            try ProcessSpawning.run(tar)
            var guarded = TarStreamGuard(target: target, maxFiles: maxFiles, maxBytes: maxBytes)
            var refusal: TarStreamGuard.Refusal?
            let reader = compressed.fileHandleForReading
            let writer = toTar.fileHandleForWriting
            do {
                try Self.pass(from: reader.fileDescriptor, to: writer.fileDescriptor, through: &guarded)
            } catch let error as TarStreamGuard.Refusal {
                refusal = error
            } catch {
                // tar stopped reading (it failed: its own message says why, below).
            }
            if refusal != nil {
                // Nothing past the refused header reached tar; stop both at once.
                kill(tar.processIdentifier, SIGKILL)
                kill(decompressor.processIdentifier, SIGKILL)
            }
            try? writer.close()
            try? reader.close()
            tar.waitUntilExit()
            decompressor.waitUntilExit()
            if let refusal { throw Failure(description: "the cache archive was refused: \(refusal.description)") }
            guard decompressor.terminationStatus == 0 else {
                let message = String(decoding: decompressorErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                throw Failure(description: "the cache archive could not be read: " + Self.lastLines(message))
            }
            guard tar.terminationStatus == 0 else {
                let message = String(decoding: tarErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                throw Failure(description: "tar could not unpack the cache: " + Self.lastLines(message))
            }
            return (guarded.files, guarded.bytes)
        }
    }

    /// Moves the tar stream from `input` to `output` (both pipes) through `guarded`: headers
    /// (and extended headers) are read here and checked before they go on; the file data
    /// between them, already allowed by its header, is moved inside the kernel (`splice`),
    /// never copied through this process.
    private static func pass(from input: Int32, to output: Int32, through guarded: inout TarStreamGuard) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let plain = guarded.plainDataAhead
            if plain > 0 {
                let moved = rapidflow_splice(input, output, UInt(min(plain, 1 << 20)))
                if moved > 0 {
                    guarded.skippedPlainData(moved)
                    continue
                }
                if moved == 0 { break }
                // Not movable (EINVAL: not two pipes): read and write it instead, below.
                guard errno == EINVAL else { throw Failure(description: "could not pass the archive on: \(String(cString: strerror(errno)))") }
            }
            let want = plain > 0 ? min(plain, buffer.count) : guarded.bytesWanted
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, want) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "could not read the archive: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            let passed = try guarded.pass(Data(buffer[0..<count]))
            try passed.withUnsafeBytes { try writeAll($0, to: output) }
        }
        try guarded.finish()
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32) throws {
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "could not pass the archive on: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// A process of `arguments` (found on the PATH), as the step user unless `asService`. It
    /// dies with the thread that starts it (`--pdeathsig`): a service killed mid-save leaves
    /// no `tar` writing into a half-made cache.
    private func process(asStepUser arguments: [String], asService: Bool = false) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var prefix = ["setpriv", "--pdeathsig", "KILL"]
        if let identity, !asService {
            prefix += ["--reuid=\(identity.uid)", "--regid=\(identity.gid)", "--init-groups"]
        }
        process.arguments = prefix + ["--"] + arguments
        var environment = ShellExecutor.defaultEnvironment()
        environment["LC_ALL"] = "C"
        process.environment = environment
        return process
    }

    /// `F_SETPIPE_SZ` (Linux).
    static let setPipeSize: Int32 = 1031

    public static func megabytes(_ bytes: Int) -> String {
        bytes >= 10 << 20 ? "\(bytes >> 20) MiB" : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }

    private static func lastLines(_ text: String) -> String {
        let lines = text.split(separator: "\n").suffix(3).joined(separator: "; ")
        return lines.isEmpty ? "no message" : lines
    }

    /// Runs blocking pipe work on a thread of its own, off the concurrency pool.
    public static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try body() })
            }
        }
    }
}
