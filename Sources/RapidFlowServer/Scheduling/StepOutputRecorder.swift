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
    /// Output up to `cap` bytes is stored as printed, as it comes. Past the cap the step keeps
    /// only its last `cap / 2` bytes in a ring, stored when the step ends; a marker says how
    /// much of the middle was cut. Nothing under the cap is ever held back.
    private let cap: Int
    private var tail: TailBuffer
    /// Set once the ring first drops a byte: the output is then really cut.
    private var cutAnnounced = false
    private var masker: SecretMasker
    /// What the job's writes are made under, and the job to stop once it is gone.
    private let lease: JobLease?
    private let control: JobControl?

    init(
        store: any JobStore, broadcaster: LogBroadcaster, jobID: Int, stepID: Int, cap: Int, secrets: [String] = [],
        metrics: ServiceMetrics? = nil, lease: JobLease? = nil, control: JobControl? = nil
    ) {
        self.lease = lease
        self.control = control
        self.metrics = metrics
        self.masker = SecretMasker(secrets: secrets)
        self.tail = TailBuffer(capacity: max(1, cap / 2))
        self.store = store
        self.broadcaster = broadcaster
        self.jobID = jobID
        self.stepID = stepID
        self.cap = cap
    }

    func started(processGroup: pid_t?) async {
        if let processGroup {
            if (try? await store.recordProcessGroup(stepID: stepID, processGroup: processGroup, lease: lease)) == false { leaseLost() }
        }
    }

    func ports(_ mappings: [String]) async {
        try? await store.setPorts(jobID: jobID, ports: mappings)
    }

    func container(_ id: String) async {
        try? await store.setContainer(jobID: jobID, containerID: id)
    }

    func output(_ chunk: ByteBuffer) async throws {
        try store.checkRoomForOutput()
        try await capture(masker.feed(Data(chunk.readableBytesView)))
    }

    /// Stores masked output as printed up to the cap; past it, feeds the tail ring.
    private func capture(_ data: Data) async throws {
        guard !data.isEmpty else { return }
        let room = max(0, cap - offset)
        if tail.isEmpty, data.count <= room {
            try await write(data)
            return
        }
        if tail.isEmpty, room > 0 {
            try await write(data.prefix(room))
        }
        tail.append(tail.isEmpty ? data.dropFirst(room) : data)
        if tail.dropped > 0, !cutAnnounced {
            cutAnnounced = true
            try await write(Data(
                "\n[rapidflow] output passed the \(cap)-byte cap of a step: its middle is cut; the last \(tail.capacity) bytes follow when the step ends\n".utf8))
        }
    }

    /// Stores the held tail of a step that passed the cap; call once the step's output ended.
    func finish() async {
        try? await capture(masker.flush())
        guard !tail.isEmpty else { return }
        if cutAnnounced {
            try? await write(Data("[rapidflow] \(tail.dropped) bytes of output were cut here\n".utf8))
        }
        // Past the cap but never over the ring: nothing was cut, the output is stored as printed.
        try? await write(tail.contents)
        tail = TailBuffer(capacity: tail.capacity)
        cutAnnounced = false
    }

    /// Appends text the service itself says about the step (a failure to start, a stop).
    func note(_ message: String) async {
        try? await write(Data(("[rapidflow] " + message + "\n").utf8))
    }

    /// The job's lease is gone: its step is killed at once (nothing more is written for it).
    private func leaseLost() {
        control?.terminate(.leaseLost)
    }

    /// Stores `data` in pieces of at most 256 KiB, so one failed write (a full disk) wastes little.
    private func write(_ data: Data) async throws {
        var start = data.startIndex
        while start < data.endIndex {
            let end = min(start + (256 << 10), data.endIndex)
            let piece = data.subdata(in: start..<end)
            let at = offset
            guard try await store.appendOutput(stepID: stepID, offset: at, data: piece, lease: lease) else {
                leaseLost()
                throw LeaseLost(jobID: jobID)
            }
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

    var isEmpty: Bool { storage.isEmpty }

    var contents: Data {
        storage.count < capacity ? Data(storage) : Data(storage[end...] + storage[..<end])
    }
}
