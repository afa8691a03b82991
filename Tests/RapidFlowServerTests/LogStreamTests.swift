import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RapidFlowAPI
import RapidFlowCore
import RapidFlowStore
import RapidFlowTestSupport
import Synchronization
import Testing

@testable import RapidFlowServer

/// Live logs over WebSocket and plain text: complete, in order, the same for every follower.
@Suite("Live logs")
struct LogStreamTests {
    /// Everything one WebSocket follower received.
    struct WebSocketTranscript: Sendable {
        /// The text messages as they came, and each read as the event it is.
        let messages: [String]
        let events: [API.LogStreamEvent]
        var closeCode: String?
        /// Why reading stopped, when the connection broke rather than closed.
        var readError: String?

        init(messages: [String], closeCode: String? = nil) throws {
            self.messages = messages
            events = try messages.map { try JSONDecoder().decode(API.LogStreamEvent.self, from: Data($0.utf8)) }
            self.closeCode = closeCode
        }

        /// Each step's output as the follower assembled it, by step id, checking that each
        /// event's offset is the byte count before it (no gap, no repeat).
        func outputs() throws -> [Int: Data] {
            var outputs: [Int: Data] = [:]
            for (message, event) in zip(messages, events) {
                guard case .log(let stepID, let offset, let data) = event else { continue }
                try Self.expectOneDataMember(message)
                let bytes = try #require(data.bytes, "data_base64 is base64")
                #expect(offset == outputs[stepID, default: Data()].count, "no gap and no duplicate at offset \(offset)")
                outputs[stepID, default: Data()].append(bytes)
            }
            return outputs
        }

        /// A log event's bytes are text in `data` or base64 in `data_base64`, exactly one of
        /// them. Read with JSONSerialization on purpose: the event type would read `data` and
        /// not see a `data_base64` beside it.
        static func expectOneDataMember(_ message: String) throws {
            let members = try #require(try JSONSerialization.jsonObject(with: Data(message.utf8)) as? [String: Any])
            let text = members["data"] as? String
            let base64 = members["data_base64"] as? String
            #expect((text == nil) != (base64 == nil), "exactly one of data and data_base64: \(members.keys.sorted())")
        }

        /// The log events of one step: each one's offset and bytes as sent.
        func logEvents(stepID: Int) -> [(offset: Int, data: API.LogStreamEvent.LogData)] {
            events.compactMap { event in
                guard case .log(stepID, let offset, let data) = event else { return nil }
                return (offset, data)
            }
        }

        var kinds: [String] { events.map(\.name) }
    }

    static func followWebSocket(_ server: TestServer, jobID: Int, query: String = "") async throws -> WebSocketTranscript {
        let session = try await RawWebSocket.follow(port: server.port, path: "/jobs/\(jobID)/logs/stream\(query)")
        let closeCode = session.closeCode.map { $0 == 1000 ? "normalClosure" : $0 == 1001 ? "goingAway" : String($0) }
        var transcript = try WebSocketTranscript(messages: session.texts, closeCode: closeCode)
        transcript.readError = session.readError
        return transcript
    }

    static func followText(_ server: TestServer, jobID: Int, query: String = "?follow=true") async throws -> (String, String?) {
        let reply = try await server.get("/jobs/\(jobID)/logs/stream\(query)")
        #expect(reply.status == 200)
        return (reply.text, reply.header("Content-Type"))
    }

    /// What the pipeline API's format says the stream of a finished job must be, from the stored logs.
    static func expectedText(_ server: TestServer, jobID: Int, since: Int? = nil) async throws -> String {
        let logs = try await server.logs(jobID)
        var text = ""
        for step in logs.logs {
            guard step.startedAt != nil, step.stepID > (since ?? 0) else { continue }
            text += "=== Step \(step.orderNum) (\(step.type)) ===\n"
            text += step.output
            if !step.output.isEmpty && !step.output.hasSuffix("\n") { text += "\n" }
            text += "\n"
        }
        let word =
            switch logs.status {
            case .success: "completed"
            case .failed: "failed"
            case .cancelled: "cancelled"
            case .pending, .running: "?"
            }
        return text + "=== Build \(word) ===\n"
    }

    static let burstThenTrickle = """
        steps:
          - for i in $(seq 1 5000); do echo "fast line $i"; done
          - for i in $(seq 1 20); do echo "slow line $i"; sleep 0.02; done; echo "to stderr" >&2
          - printf 'no newline at the end'
        """

    @Test func fastThenSlowOutputArrivesCompleteAndInOrderOverBothTransports() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: Self.burstThenTrickle)
            let jobID = try await server.trigger(pipelineID)
            async let socket = Self.followWebSocket(server, jobID: jobID)
            async let plain = Self.followText(server, jobID: jobID)
            let (transcript, (text, contentType)) = try await (socket, plain)

            #expect(contentType == "text/plain; charset=utf-8")
            let expected = try await Self.expectedText(server, jobID: jobID)
            #expect(text == expected)
            let fast = (1...5000).map { "fast line \($0)\n" }.joined()
            #expect(text.hasPrefix("=== Step 1 (bash) ===\n" + fast + "\n=== Step 2 (bash) ===\n"))
            #expect(text.hasSuffix("no newline at the end\n\n=== Build completed ===\n"))

            let logs = try await server.logs(jobID).logs
            let outputs = try transcript.outputs()
            for step in logs {
                #expect(outputs[step.stepID] == Data(step.output.utf8), "step \(step.stepID) over WebSocket equals the stored output")
            }
            #expect(transcript.kinds.filter { $0 == "step_started" }.count == 3)
            #expect(transcript.kinds.filter { $0 == "step_finished" }.count == 3)
            #expect(transcript.kinds.last == "job_finished")
            #expect(transcript.events.last == .jobFinished(status: .success))
            #expect(transcript.closeCode == "normalClosure")
        }
    }

    @Test func aLateClientGetsTheSameBytesAsAnEarlyOne() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: Self.burstThenTrickle)
            let jobID = try await server.trigger(pipelineID)
            async let early = Self.followText(server, jobID: jobID)
            async let earlySocket = Self.followWebSocket(server, jobID: jobID)
            try await server.waitForOutput(jobID, containing: "slow line 5")
            async let midway = Self.followText(server, jobID: jobID)
            async let midwaySocket = Self.followWebSocket(server, jobID: jobID)
            let (earlyText, midwayText) = try await (early.0, midway.0)
            let (first, second) = try await (earlySocket, midwaySocket)
            try await server.waitForJob(jobID)
            let (lateText, _) = try await Self.followText(server, jobID: jobID)
            let late = try await Self.followWebSocket(server, jobID: jobID)
            #expect(earlyText == midwayText)
            #expect(earlyText == lateText)
            #expect(try first.outputs() == second.outputs())
            #expect(try first.outputs() == late.outputs())
            #expect(first.events.last == late.events.last)
            #expect(late.closeCode == "normalClosure")
        }
    }

    @Test func sinceStartsAfterTheGivenStepAndNoFollowReturnsWhatExistsNow() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - echo one\n  - echo two\n  - echo three; sleep 300\n")
            let jobID = try await server.trigger(pipelineID)
            try await server.waitForOutput(jobID, containing: "three")
            let first = try #require(try await server.logs(jobID).logs.first?.stepID)

            // Without follow: what exists now, and the stream ends although the job runs.
            let (now, _) = try await Self.followText(server, jobID: jobID, query: "?since=\(first)")
            #expect(now == "=== Step 2 (bash) ===\ntwo\n\n=== Step 3 (bash) ===\nthree\n")

            async let followed = Self.followText(server, jobID: jobID, query: "?follow=true&since=\(first + 1)")
            async let socket = Self.followWebSocket(server, jobID: jobID, query: "?since=\(first + 1)")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await server.post("/jobs/\(jobID)/cancel").status == 200)
            let (text, _) = try await followed
            #expect(text.hasPrefix("=== Step 3 (bash) ===\nthree\n"))
            #expect(text.hasSuffix("\n=== Build cancelled ===\n"), "a cancelled job's stream ends with its status")
            let transcript = try await socket
            #expect(transcript.events.compactMap(\.stepID).allSatisfy { $0 > first + 1 })
            #expect(transcript.events.last?.name == "job_finished")
            #expect(transcript.events.last == .jobFinished(status: .cancelled))
            #expect(transcript.closeCode == "normalClosure")
        }
    }

    @Test func twentyMegabytesStreamByteForByteEqualToTheStoredOutput() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(
                config: "steps:\n  - head -c 15000000 /dev/urandom | base64 -w 100\n")
            let jobID = try await server.trigger(pipelineID)
            async let socket = Self.followWebSocket(server, jobID: jobID)
            async let plain = Self.followText(server, jobID: jobID)
            let (transcript, (text, _)) = try await (socket, plain)
            let stepID = try #require(try await server.logs(jobID).logs.first?.stepID)
            let stored = try await server.get("/steps/\(stepID)/logs").decoded(API.StepLog.self).output
            #expect(stored.utf8.count > 20_000_000)
            #expect(text == "=== Step 1 (bash) ===\n" + stored + "\n=== Build completed ===\n")
            #expect(try transcript.outputs()[stepID] == Data(stored.utf8))
        }
    }

    @Test func twoHundredWebSocketFollowersEachReceiveEverything() async throws {
        try await TestServer.with { server in
            let pipelineID = try await server.createPipeline(
                config: "steps:\n  - sleep 0.5; for i in $(seq 1 2000); do echo \"line $i\"; done; for i in $(seq 1 10); do echo tick $i; sleep 0.05; done\n")
            let jobID = try await server.trigger(pipelineID)
            let transcripts = try await withThrowingTaskGroup(of: WebSocketTranscript.self) { group in
                for _ in 0..<200 { group.addTask { try await Self.followWebSocket(server, jobID: jobID) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let stepID = try #require(try await server.logs(jobID).logs.first?.stepID)
            let stored = Data(try await server.get("/steps/\(stepID)/logs").decoded(API.StepLog.self).output.utf8)
            let job = try await server.job(jobID)
            #expect(stored.count > 15_000, "job \(job.status): \(String(decoding: stored.suffix(300), as: UTF8.self)) | last events \(transcripts[0].events.suffix(3))")
            #expect(transcripts.count == 200)
            for transcript in transcripts {
                #expect(try transcript.outputs()[stepID] == stored)
                #expect(transcript.events.last?.name == "job_finished", "closed with \(transcript.closeCode ?? "no close frame"), \(transcript.readError ?? "no read error")")
            }
        }
    }

    /// A follower is pinged; one that answers stays as long as the job runs, however many ping
    /// periods that takes (the service must read the answers), and one that does not is closed.
    @Test func followersThatAnswerPingsStayAndSilentOnesAreClosed() async throws {
        try await TestServer.with(configure: { $0.webSocketPingInterval = .seconds(2) }) { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - for i in $(seq 1 600); do echo tick $i; sleep 0.1; done\n")
            let jobID = try await server.trigger(pipelineID)
            let path = "/jobs/\(jobID)/logs/stream"
            async let answering = RawWebSocket.follow(port: server.port, path: path)
            let silent = try await RawWebSocket.follow(port: server.port, path: path, answersPings: false)
            #expect(silent.closeCode == 1001, "a client that never answers a ping is closed as going away")
            #expect(silent.closeReason == "Ping timeout")
            // Two ping periods have passed for the answering follower too; the job is still running.
            #expect(try await server.job(jobID).status == .running)
            #expect(try await server.post("/jobs/\(jobID)/cancel").status == 200)
            let session = try await answering
            #expect(session.closeCode == 1000, "closed with \(session.closeCode.map(String.init) ?? "nothing"): \(session.closeReason)")
            #expect(session.closeReason == "job finished")
            let transcript = try WebSocketTranscript(messages: session.texts)
            #expect(transcript.events.last?.name == "job_finished")
            #expect(String(decoding: try #require(transcript.outputs().values.first), as: UTF8.self).hasPrefix("tick 1\ntick 2\n"))
        }
    }

    @Test func outputOverTheCapKeepsHeadAndTailWithAMarker() async throws {
        try await TestServer.with(configure: { $0.stepOutputCap = 100_000 }) { server in
            let pipelineID = try await server.createPipeline(config: "steps:\n  - for i in $(seq 1 100000); do echo \"line $i\"; done\n  - echo next\n")
            let jobID = try await server.trigger(pipelineID)
            async let plain = Self.followText(server, jobID: jobID)
            let job = try await server.waitForJob(jobID)
            #expect(job.status == .success, "the cap does not fail the step")
            let steps = try await server.logs(jobID).logs
            let output = steps.first?.output ?? ""
            // The cap as printed, then the last half a cap: at most 1.5 caps and the markers.
            #expect(output.utf8.count < 151_000)
            #expect(output.utf8.count > 140_000)
            #expect(output.hasPrefix("line 1\nline 2\n"))
            #expect(output.hasSuffix("line 99999\nline 100000\n"), "the tail is kept")
            #expect(output.contains("100000-byte cap"))
            #expect(output.contains("bytes of output were cut here"))
            #expect(steps.last?.output == "next\n")
            let (text, _) = try await plain
            #expect(text == (try await Self.expectedText(server, jobID: jobID)), "the live stream shows what was stored")
        }
    }

    /// Steps (in order): valid multi-byte text only; random binary interleaved with multi-byte
    /// text; invalid bytes at the very end of the output.
    static let binaryAndText = """
        steps:
          - for i in $(seq 1 3000); do echo "ligne $i - héllo wörld ✓ 𝄞 日本語"; done
          - for i in $(seq 1 30); do head -c 10000 /dev/urandom; printf '\\n%s ✓ 𝄞 €\\n' "text $i"; done
          - printf 'ends inside a character \\xe2\\x82'
        """

    /// What followers received, against the bytes the store holds for each step.
    static func expectExactBytes(_ transcript: WebSocketTranscript, server: TestServer, jobID: Int, _ label: String) async throws -> [Int: Data] {
        let store = try #require(server.service?.store)
        let outputs = try transcript.outputs()
        var stored: [Int: Data] = [:]
        for step in try await store.steps(jobID: jobID) {
            stored[step.id] = try await store.output(stepID: step.id)
            #expect(outputs[step.id] == stored[step.id], "\(label): step \(step.orderNum)'s events hold exactly its stored bytes")
            for event in transcript.logEvents(stepID: step.id) {
                #expect(try #require(event.data.bytes).count <= JSONEventRenderer.pieceSize, "\(label): small frames")
            }
        }
        return stored
    }

    @Test func framesNeitherSplitACharacterAcrossChunksNorAtTheSizeLimit() throws {
        var renderer = JSONEventRenderer()
        // The frame limit (4096) falls inside '𝄞', and so does the boundary between the chunks.
        let output = Data(String(repeating: "a", count: JSONEventRenderer.pieceSize - 1).utf8) + Data("𝄞 é ✓".utf8) + Data([0xFF, 0x41])
        let split = JSONEventRenderer.pieceSize + 1
        var messages = renderer.render(.log(stepID: 1, offset: 0, data: output.prefix(split)))
        messages += renderer.render(.log(stepID: 1, offset: split, data: output.dropFirst(split)))
        messages += renderer.render(.stepFinished(stepID: 1, status: .success, exitCode: 0))
        let transcript = try WebSocketTranscript(messages: messages)
        #expect(try transcript.outputs()[1] == output)
        let logs = transcript.logEvents(stepID: 1)
        #expect(logs.map(\.offset) == [0, JSONEventRenderer.pieceSize - 1])
        #expect(logs.first?.data == .text(String(repeating: "a", count: JSONEventRenderer.pieceSize - 1)))
        #expect(logs.last?.data == .base64(Data("𝄞 é ✓".utf8 + [0xFF, 0x41]).base64EncodedString()), "bytes that are not UTF-8 go exactly")
    }

    @Test func binaryOutputStreamsByteExactWithOffsetsCountingBytes() async throws {
        try await TestServer.with { server in
            let jobID = try await server.trigger(try await server.createPipeline(config: Self.binaryAndText))
            let live = try await Self.followWebSocket(server, jobID: jobID)
            let late = try await Self.followWebSocket(server, jobID: jobID)
            #expect(live.events.last == .jobFinished(status: .success))
            let store = try #require(server.service?.store)
            let steps = try await store.steps(jobID: jobID)
            for (transcript, label) in [(live, "live"), (late, "late")] {
                let stored = try await Self.expectExactBytes(transcript, server: server, jobID: jobID, label)
                let text = transcript.logEvents(stepID: steps[0].id)
                #expect(stored[steps[0].id]?.count ?? 0 > 100_000)
                #expect(text.allSatisfy { $0.data.isText }, "\(label): valid UTF-8 is never cut inside a character, so it all goes as text")
                let binary = transcript.logEvents(stepID: steps[1].id)
                #expect(stored[steps[1].id]?.count ?? 0 > 300_000)
                #expect(binary.contains { !$0.data.isText }, "\(label): bytes that are not UTF-8 go as base64")
                let tail = transcript.logEvents(stepID: steps[2].id)
                #expect(tail.last?.data.isText == false, "\(label): the cut-off character at the end is sent as it is")
            }
        }
    }

    @Test func outputCutByTheCapInsideACharacterStreamsByteExact() async throws {
        try await TestServer.with(configure: { $0.stepOutputCap = 100_000 }) { server in
            // 50,000 ASCII bytes, then '€' (3 bytes) 40,000 times: the cap (100,000 bytes stored
            // as printed) ends inside a character, and so does the start of the kept tail (the
            // last 50,000 of 200,001 bytes).
            let config = """
                steps:
                  - head -c 50000 /dev/zero | tr '\\0' a; printf '€%.0s' $(seq 1 40000); head -c 30000 /dev/urandom; echo
                """
            let jobID = try await server.trigger(try await server.createPipeline(config: config))
            async let live = Self.followWebSocket(server, jobID: jobID)
            let job = try await server.waitForJob(jobID)
            #expect(job.status == .success)
            let late = try await Self.followWebSocket(server, jobID: jobID)
            for (transcript, label) in [(try await live, "live"), (late, "late")] {
                let stored = try await Self.expectExactBytes(transcript, server: server, jobID: jobID, label)
                let output = try #require(stored.values.first)
                #expect(String(decoding: output, as: UTF8.self).contains("bytes of output were cut here"), "\(label): the cap cut the output")
            }
        }
    }

    @Test func streamOfAnUnknownJobIsA404OnBothTransports() async throws {
        try await TestServer.with { server in
            let reply = try await server.get("/jobs/999/logs/stream?follow=true")
            #expect(reply.status == 404)
            #expect(reply.errorCode == "job_not_found")
            let refused = try await Self.followWebSocket(server, jobID: 999)
            #expect(refused.events.first?.name == "error")
            #expect(refused.events.first?.errorCode == "job_not_found")
            #expect(try await server.get("/jobs/abc/logs/stream").status == 400)
            let pipelineID = try await server.createPipeline(config: "steps:\n  - echo hi\n")
            let jobID = try await server.trigger(pipelineID)
            let badSince = try await server.get("/jobs/\(jobID)/logs/stream?since=x")
            #expect(badSince.status == 400)
            #expect(badSince.errorMessage.contains("since"))
            #expect(try await server.get("/jobs/\(jobID)/logs/stream?follow=maybe").status == 400)
        }
    }
}

extension API.LogStreamEvent {
    /// The event's `event` member: `step_started`, `log`, `step_finished`, ...
    var name: String {
        switch self {
        case .stepStarted: "step_started"
        case .log: "log"
        case .stepFinished: "step_finished"
        case .jobFinished: "job_finished"
        case .serviceStopping: "service_stopping"
        case .error: "error"
        }
    }

    /// The step a `step_started`, `log` or `step_finished` event is about.
    var stepID: Int? {
        switch self {
        case .stepStarted(let stepID, _, _, _), .log(let stepID, _, _), .stepFinished(let stepID, _, _): stepID
        case .jobFinished, .serviceStopping, .error: nil
        }
    }

    /// An `error` event's code.
    var errorCode: String? {
        if case .error(let code, _) = self { code } else { nil }
    }
}

extension API.LogStreamEvent.LogData {
    /// Sent as text in `data`, not as base64.
    var isText: Bool {
        if case .text = self { true } else { false }
    }
}
