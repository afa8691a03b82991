import Foundation
import ServiceLifecycle

/// Keeps caches and artifacts in bounds: at start it removes half-written caches (a crash
/// during a save) and evicts past the size limit; then it removes expired artifacts, every
/// `interval`.
struct WorkspaceFilesJanitor: Service {
    let files: WorkspaceFiles
    let interval: Duration

    func run() async throws {
        await files.sweepCaches()
        await files.evict()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await files.pruneExpiredArtifacts()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
