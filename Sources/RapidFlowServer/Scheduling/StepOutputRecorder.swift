import Foundation
import NIOCore
import RapidFlowCore
import RapidFlowRunner
import RapidFlowStore

/// Receives one step's output while it runs: appends it to the store at its byte offset
/// (so nothing printed is lost if the service dies) and hands it to live followers.
actor StepOutputRecorder: StepEvents {
    private let store: any JobStore
    private let broadcaster: LogBroadcaster
    private let jobID: Int
    private let stepID: Int
    private(set) var offset = 0

    init(store: any JobStore, broadcaster: LogBroadcaster, jobID: Int, stepID: Int) {
        self.store = store
        self.broadcaster = broadcaster
        self.jobID = jobID
        self.stepID = stepID
    }

    func started(processGroup: pid_t?) async {
        if let processGroup {
            try? await store.recordProcessGroup(stepID: stepID, processGroup: processGroup)
        }
    }

    func output(_ chunk: ByteBuffer) async throws {
        try await write(Data(chunk.readableBytesView))
    }

    /// Appends text the service itself says about the step (a failure to start, a stop).
    func note(_ message: String) async {
        try? await write(Data(("[rapidflow] " + message + "\n").utf8))
    }

    private func write(_ data: Data) async throws {
        guard !data.isEmpty else { return }
        let at = offset
        offset += data.count
        try await store.appendOutput(stepID: stepID, offset: at, data: data)
        await broadcaster.publish(jobID: jobID, event: .log(stepID: stepID, offset: at, data: data))
    }
}
