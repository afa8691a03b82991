import Foundation
import Logging
import RapidFlowRunner
import RapidFlowStore
import ServiceLifecycle

/// Removes what finished jobs left behind (workspace, containers, images) once they are older
/// than the retention, and audit log entries older than it; the jobs and their output stay in
/// the store.
struct WorkspaceReaper: Service {
    let store: any JobStore
    let docker: DockerEngine?
    let workspacesDirectory: String
    let instanceID: String
    let retention: Duration
    let logger: Logger

    var interval: Duration { min(max(retention / 10, .milliseconds(200)), .seconds(600)) }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await sweep()
            // The wait ends early on shutdown, so stopping never waits out an interval.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    func sweep() async {
        let seconds = retention.inSeconds
        if let access = store as? any AccessStore {
            do {
                let pruned = try await access.pruneAudit(before: Date().addingTimeInterval(-seconds))
                if pruned > 0 { logger.debug("pruned the audit log", metadata: ["entries": "\(pruned)"]) }
            } catch {
                logger.warning("could not prune the audit log", metadata: ["error": "\(error)"])
            }
        }
        guard let ids = try? await store.finishedJobIDs(before: Date().addingTimeInterval(-seconds), limit: 100_000) else { return }
        for id in ids {
            let workspace = "\(workspacesDirectory)/job-\(id)"
            guard FileManager.default.fileExists(atPath: workspace) else { continue }
            do {
                try FileManager.default.removeItem(atPath: workspace)
                try? FileManager.default.removeItem(atPath: JobExecution.home(ofWorkspace: workspace))
                if let docker { _ = try await docker.removeArtifacts(jobID: id, instanceID: instanceID) }
                logger.debug("reaped a finished job's workspace", metadata: ["job": "\(id)"])
            } catch {
                logger.warning("could not reap a finished job", metadata: ["job": "\(id)", "error": "\(error)"])
            }
        }
    }
}
