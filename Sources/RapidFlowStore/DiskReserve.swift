import Foundation

/// A file of reserved space beside the database. When the disk fills up, it is deleted so
/// the few writes that settle the running step and job (status, reason) still fit.
public final class DiskReserve: Sendable {
    public let path: String

    public init(path: String, bytes: Int = 4 << 20) {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: Data(count: bytes))
        }
    }

    public func release() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
