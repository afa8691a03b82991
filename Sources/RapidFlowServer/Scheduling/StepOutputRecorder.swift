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
    /// Output past `cap` keeps its head and its tail: the first half is stored as it comes,
    /// the last half is held in memory and stored when the step ends, with a marker between.
    private let cap: Int
    private var cutting = false
    private var tail = Data()
    private var omitted = 0
    private var masker: SecretMasker

    init(store: any JobStore, broadcaster: LogBroadcaster, jobID: Int, stepID: Int, cap: Int, secrets: [String] = []) {
        self.masker = SecretMasker(secrets: secrets)
        self.store = store
        self.broadcaster = broadcaster
        self.jobID = jobID
        self.stepID = stepID
        self.cap = cap
    }

    func started(processGroup: pid_t?) async {
        if let processGroup {
            try? await store.recordProcessGroup(stepID: stepID, processGroup: processGroup)
        }
    }

    func ports(_ mappings: [String]) async {
        try? await store.setPorts(jobID: jobID, ports: mappings)
    }

    func container(_ id: String) async {
        try? await store.setContainer(jobID: jobID, containerID: id)
    }

    func output(_ chunk: ByteBuffer) async throws {
        try await capture(masker.feed(Data(chunk.readableBytesView)))
    }

    /// Stores masked output, keeping the head and the tail past the cap.
    private func capture(_ data: Data) async throws {
        guard !data.isEmpty else { return }
        let headLimit = cap / 2
        if cutting {
            keepTail(data)
            return
        }
        let room = headLimit - offset
        if data.count <= room {
            try await write(data)
            return
        }
        try await write(data.prefix(room))
        cutting = true
        try await write(Data(
            "\n[rapidflow] output passed the \(cap)-byte cap of a step: its middle is cut; the last \(cap - headLimit) bytes follow when the step ends\n".utf8))
        keepTail(data.dropFirst(room))
    }

    private func keepTail(_ data: Data) {
        let tailLimit = cap - cap / 2
        tail.append(data)
        // Trim in batches so appending stays cheap.
        if tail.count > 2 * tailLimit + 65536 {
            let excess = tail.count - tailLimit
            omitted += excess
            tail = tail.subdata(in: tail.startIndex + excess..<tail.endIndex)
        }
    }

    /// Stores the held tail of a step that passed the cap; call once the step's output ended.
    func finish() async {
        try? await capture(masker.flush())
        guard cutting else { return }
        let tailLimit = cap - cap / 2
        if tail.count > tailLimit {
            omitted += tail.count - tailLimit
            tail = tail.subdata(in: tail.endIndex - tailLimit..<tail.endIndex)
        }
        try? await write(Data("[rapidflow] \(omitted) bytes of output were cut here\n".utf8))
        try? await write(tail)
        tail = Data()
        cutting = false
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
