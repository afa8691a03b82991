import Foundation
import NIOPosix
import RapidFlowCore
import Synchronization

/// Keeps a full data disk from wedging the service.
///
/// - A file of reserved space lies beside the database. When a write finds the disk full, it
///   is deleted so the few writes that settle the running step and job still fit; it is made
///   again as soon as the disk has room for it twice over, so a second episode finds it too.
/// - Step output, the only write a step can grow without bound, is refused while less than
///   `outputFloor` bytes are free, which leaves room for state changes even with no reserve.
///
/// Writing the reserve (megabytes, then an fsync) happens on NIO's blocking-I/O pool, never on
/// a Swift concurrency thread: there are as few of those as cores, and everything shares them.
public final class DiskReserve: Sendable {
    public let path: String
    private let bytes: Int
    public let outputFloor: Int
    private let state = Mutex<(present: Bool, creating: Bool, lastAttempt: ContinuousClock.Instant?)>((false, false, nil))

    private init(path: String, bytes: Int, outputFloor: Int) {
        self.path = path
        self.bytes = bytes
        self.outputFloor = outputFloor
    }

    /// The reserve at `path`, made now when it is missing and fits. The floor leaves room for a
    /// checkpoint of the write-ahead log (up to about 4 MiB) too.
    public static func open(path: String, bytes: Int = 4 << 20, outputFloor: Int = 8 << 20) async -> DiskReserve {
        let reserve = DiskReserve(path: path, bytes: bytes, outputFloor: outputFloor)
        let present = (try? await NIOThreadPool.singleton.runIfActive {
            FileManager.default.fileExists(atPath: path) || Self.create(path: path, bytes: bytes)
        }) ?? false
        reserve.state.withLock { $0.present = present }
        return reserve
    }

    public var isPresent: Bool { state.withLock { $0.present } }

    public func release() {
        try? FileManager.default.removeItem(atPath: path)
        state.withLock { $0.present = false }
    }

    /// Makes the reserve again, in the background, when it is gone and the disk has room; tries
    /// at most once a second, one attempt at a time.
    public func restoreIfRoom() {
        let due = state.withLock { state -> Bool in
            guard !state.present, !state.creating else { return false }
            if let last = state.lastAttempt, ContinuousClock.now - last < .seconds(1) { return false }
            state.lastAttempt = .now
            state.creating = true
            return true
        }
        guard due else { return }
        NIOThreadPool.singleton.submit { [self] _ in
            let made = (freeBytes.map { $0 >= 2 * bytes + outputFloor } ?? false) && Self.create(path: path, bytes: bytes)
            state.withLock {
                $0.creating = false
                if made { $0.present = true }
            }
        }
    }

    /// Throws `insufficient_storage` when step output would eat the room kept for state changes.
    public func checkRoomForOutput() throws {
        if let free = freeBytes, free < outputFloor {
            throw RapidFlowError.diskFull("fewer than \(outputFloor >> 20) MiB are free, kept for the service's own records")
        }
    }

    /// Free bytes for an unprivileged writer on the disk holding the reserve.
    var freeBytes: Int? {
        var stats = statvfs()
        let directory = (path as NSString).deletingLastPathComponent
        guard statvfs(directory, &stats) == 0 else { return nil }
        return Int(stats.f_bavail) * Int(stats.f_frsize)
    }

    /// Writes real zeros (not a sparse file), so the space is really taken; false when it does not fit.
    private static func create(path: String, bytes: Int) -> Bool {
        let temporary = path + ".new"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            return false
        }
        do {
            let block = Data(count: 1 << 20)
            var written = 0
            while written < bytes {
                try handle.write(contentsOf: block.prefix(bytes - written))
                written += min(block.count, bytes - written)
            }
            try handle.synchronize()
            try handle.close()
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
            return true
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            return false
        }
    }
}

extension RapidFlowError {
    /// The data directory's disk (or the database server's) has no room: 507.
    public static func diskFull(_ detail: String) -> RapidFlowError {
        RapidFlowError(.insufficientStorage, "the data directory's disk is full (\(detail)); free space on it, the service resumes by itself")
    }
}
