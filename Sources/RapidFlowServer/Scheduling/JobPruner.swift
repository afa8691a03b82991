import Foundation
import Logging
import RapidFlowStore
import ServiceLifecycle

/// Removes finished jobs older than `--keep-jobs-days` from the store, with their steps,
/// output, environment and artifacts, while the service answers.
///
/// It works in batches of one transaction each, sized as it goes so a batch takes about
/// `batchTarget`: a write that arrives meanwhile waits one batch at most. The pages freed are
/// then given back to the disk a bounded step at a time.
struct JobPruner: Service {
    let store: SQLJobStore
    let keep: Duration
    let logger: Logger
    var batchTarget: Duration = .milliseconds(20)

    /// A tenth of the retention, between 1 s and 10 min.
    var interval: Duration { min(max(keep / 10, .seconds(1)), .seconds(600)) }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await prune()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One round: every job past the retention, batch by batch.
    func prune() async {
        let cutoff = Date().addingTimeInterval(-keep.inSeconds)
        let clock = ContinuousClock()
        let began = clock.now
        var removed = 0
        var batches = 0
        var longest = Duration.zero
        var batch = 10
        do {
            // Their files go with the next artifact sweep; the jobs in the round after it.
            let expired = try await store.expireArtifacts(ofJobsFinishedBefore: cutoff)
            if expired > 0 { logger.debug("expired the artifacts of jobs past --keep-jobs-days", metadata: ["artifacts": "\(expired)"]) }
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let start = clock.now
                let count = try await store.pruneFinishedJobs(before: cutoff, limit: batch)
                removed += count
                batches += 1
                longest = max(longest, clock.now - start)
                if count < batch { break }
                // The next batch sized to the target by this one's pace, within 10 and 2,000 jobs.
                let took = max((clock.now - start).inSeconds, 0.000_1)
                batch = min(max(Int(Double(batch) * batchTarget.inSeconds / took), 10), 2_000)
                // Writes waiting for the store go first.
                await Task.yield()
            }
            guard removed > 0 else { return }
            // Give the freed pages back to the disk, 4 MiB at a time, while that frees any (a
            // store made before incremental vacuum keeps its pages for reuse instead).
            var free = try await store.freePageCount()
            while free > 0, !Task.isCancelled {
                try await store.reclaimFreePages(pages: 1_000)
                let left = try await store.freePageCount()
                if left >= free { break }
                free = left
                await Task.yield()
            }
            logger.info(
                "removed finished jobs older than --keep-jobs-days",
                metadata: [
                    "jobs": "\(removed)", "batches": "\(batches)", "longest_batch_ms": "\(Int(longest.inSeconds * 1000))",
                    "seconds": "\(String(format: "%.1f", (clock.now - began).inSeconds))",
                ])
        } catch {
            logger.warning("could not remove old jobs", metadata: ["removed": "\(removed)", "error": "\(error)"])
        }
    }
}
