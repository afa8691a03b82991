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
    private let metrics: ServiceMetrics?
    private(set) var offset = 0
    /// Output past `cap` keeps its head and its tail: the first half is stored as it comes,
    /// the last half is held in memory and stored when the step ends, with a marker between.
    private let cap: Int
    private var cutting = false
    private var tail: TailBuffer
    private var omitted: Int { tail.dropped }
    private var masker: SecretMasker

    init(
        store: any JobStore, broadcaster: LogBroadcaster, jobID: Int, stepID: Int, cap: Int, secrets: [String] = [],
        metrics: ServiceMetrics? = nil
    ) {
        self.metrics = metrics
        self.masker = SecretMasker(secrets: secrets)
        self.tail = TailBuffer(capacity: cap - cap / 2)
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
        tail.append(data)
    }

    /// Stores the held tail of a step that passed the cap; call once the step's output ended.
    func finish() async {
        try? await capture(masker.flush())
        guard cutting else { return }
        try? await write(Data("[rapidflow] \(omitted) bytes of output were cut here\n".utf8))
        try? await write(tail.contents)
        tail = TailBuffer(capacity: tail.capacity)
        cutting = false
    }

    /// Appends text the service itself says about the step (a failure to start, a stop).
    func note(_ message: String) async {
        try? await write(Data(("[rapidflow] " + message + "\n").utf8))
    }

    /// Stores `data` in pieces of at most 256 KiB, so one failed write (a full disk) wastes little.
    private func write(_ data: Data) async throws {
        var start = data.startIndex
        while start < data.endIndex {
            let end = min(start + (256 << 10), data.endIndex)
            let piece = data.subdata(in: start..<end)
            let at = offset
            try await store.appendOutput(stepID: stepID, offset: at, data: piece)
            offset += piece.count
            metrics?.recordLogBytes(piece.count)
            await broadcaster.publish(jobID: jobID, event: .log(stepID: stepID, offset: at, data: piece))
            start = end
        }
    }
}

/// The last `capacity` bytes written, in a ring, counting what fell out.
struct TailBuffer {
    let capacity: Int
    private var storage: [UInt8] = []
    private var end = 0
    private(set) var dropped = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    mutating func append(_ data: Data) {
        if storage.count < capacity {
            let room = capacity - storage.count
            storage.append(contentsOf: data.prefix(room))
            end = storage.count % capacity
            if data.count > room { append(data.dropFirst(room)) }
            return
        }
        var bytes = data[...]
        if bytes.count > capacity {
            dropped += bytes.count - capacity
            bytes = bytes.suffix(capacity)
        }
        dropped += bytes.count
        bytes.withUnsafeBytes { source in
            storage.withUnsafeMutableBytes { target in
                let first = min(source.count, capacity - end)
                target.baseAddress!.advanced(by: end).copyMemory(from: source.baseAddress!, byteCount: first)
                if first < source.count {
                    target.baseAddress!.copyMemory(from: source.baseAddress!.advanced(by: first), byteCount: source.count - first)
                }
            }
        }
        end = (end + bytes.count) % capacity
    }

    var contents: Data {
        storage.count < capacity ? Data(storage) : Data(storage[end...] + storage[..<end])
    }
}
