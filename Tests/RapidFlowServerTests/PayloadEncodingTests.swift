import Foundation
import RapidFlowAPI
import RapidFlowCore
import Testing

@testable import RapidFlowServer

/// The response types written by `JSONValueEncoder`: keys in the order the types declare (the
/// order the API documents), nulls present, numbers as `JSONValue` writes them.
@Suite("Payload encoding")
struct PayloadEncodingTests {
    static let created = Date(timeIntervalSince1970: 1_758_880_805.123)

    @Test func aJobIsWrittenInTheDocumentedOrderWithItsNulls() throws {
        let job = Job(
            id: 7, kind: .image, pipelineID: nil, pipelineName: nil, status: .pending,
            snapshot: JobSnapshot(repo: "https://git.example.com/team/app.git", branch: "v1.0"), cancelled: false, containerID: nil,
            retryOf: 3, ports: ["8080/tcp"], createdAt: Self.created, startedAt: nil, finishedAt: nil)
        let text = try JSONValueEncoder().encode(API.Job(job)).serialized
        #expect(text == #"{"id":7,"kind":"image","pipeline_id":null,"pipeline_name":null,"status":"pending","branch":"v1.0","repo_name":"https://git.example.com/team/app.git","language":null,"version":null,"image":null,"folder":null,"expose_ports":false,"cancelled":false,"container_id":null,"retry_of":3,"ports":["8080/tcp"],"created_at":"2025-09-26T10:00:05.123Z","started_at":null,"finished_at":null,"owner":"default","priority":"normal","queue_position":null,"waiting_for":null,"concurrency_group":null,"event":"retry","commit_sha":null,"commit_ref":null,"commit_message":null,"commit_author":null}"#)
        #expect(try JSONDecoder().decode(API.Job.self, from: Data(text.utf8)) == API.Job(job))
    }

    @Test func wholeSecondsAreWrittenWithAFractionAndAbsentFieldsAreLeftOut() throws {
        let step = Step(
            id: 1, jobID: 7, orderNum: 1, type: .bash, name: nil, content: "true", phase: .build, status: .success, exitCode: 0,
            createdAt: Self.created, startedAt: Self.created, finishedAt: Self.created.addingTimeInterval(2))
        let log = try JSONValueEncoder().encode(API.StepLog(step, output: Data("ok\n".utf8))).serialized
        #expect(log.hasPrefix(#"{"step_id":1,"job_id":7,"order_num":1,"type":"bash","name":null,"content":"true","phase":"build","status":"success","exit_code":0,"output":"ok\n","#))
        #expect(log.hasSuffix(#""duration_seconds":2.0}"#))
        let cleanup = try JSONValueEncoder().encode(API.CleanupResult(jobID: 7, removed: .init(workspace: true, nomadGC: false))).serialized
        #expect(cleanup == #"{"success":true,"job_id":7,"removed":{"workspace":true,"nomad_gc":false}}"#)
    }

    /// JSONEncoder, which wrote the runner's step before the API types, keeps no key order;
    /// what it writes (slashes escaped, nil fields left out) stays as it was.
    @Test func theRunnersStepIsWrittenAsJSONEncoderWritesIt() throws {
        let step = StepPayload(
            jobID: 7, stepID: 1, type: .bash, name: nil, content: "echo a/b", environment: [.init(key: "A", value: "1")],
            snapshot: JobSnapshot(timeoutSeconds: 5))
        let next = try JSONValueEncoder().encode(API.RunnerNext(done: false, step: step)).serialized
        #expect(next.hasPrefix(#"{"done":false,"step":{"#) && next.contains(#""content":"echo a\/b""#) && !next.contains(#""name""#), "\(next)")
        let decoded = try JSONDecoder().decode(API.RunnerNext.self, from: Data(next.utf8))
        #expect(decoded.step?.content == "echo a/b" && decoded.step?.snapshot == step.snapshot && decoded.step?.environment.first?.value == "1")
        #expect(try JSONValueEncoder().encode(API.RunnerNext(done: true, step: nil)).serialized == #"{"done":true,"step":null}"#)
    }
}
