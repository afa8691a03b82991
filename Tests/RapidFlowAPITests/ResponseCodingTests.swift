import Foundation
import RapidFlowAPI
import RapidFlowCore
import Testing

/// The response types read back what they write, with any encoder: a `@Nullable` field is
/// written as null, a "present when" field is left out.
@Suite("Response coding")
struct ResponseCodingTests {
    static let start = Date(timeIntervalSince1970: 1_758_880_805.123)

    static func job(finished: Bool) -> RapidFlowCore.Job {
        RapidFlowCore.Job(
            id: 7, kind: .pipeline, pipelineID: 2, pipelineName: "build", status: finished ? .success : .running,
            snapshot: JobSnapshot(branch: "main"), cancelled: false, containerID: nil, retryOf: nil, createdAt: start,
            startedAt: start, finishedAt: finished ? start.addingTimeInterval(1.5) : nil)
    }

    static func object(_ value: some Encodable) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as? [String: Any])
    }

    @Test func nullableFieldsAreWrittenAsNullAndReadBack() throws {
        let job = API.Job(Self.job(finished: false))
        let object = try Self.object(job)
        for key in ["container_id", "retry_of", "finished_at", "repo_name"] {
            #expect(object[key] is NSNull, "\(key) is present and null")
        }
        #expect(object["started_at"] as? String == "2025-09-26T10:00:05.123Z")
        #expect(try JSONDecoder().decode(API.Job.self, from: JSONEncoder().encode(job)) == job)
        #expect(job.duration(now: Self.start.addingTimeInterval(2)) == 2)
        #expect(API.Job(Self.job(finished: true)).duration() == 1.5)
    }

    @Test func cleanupLeavesOutWhatDidNotApply() throws {
        let bare = try Self.object(API.CleanupResult.Removed(workspace: true))
        #expect(bare.keys.sorted() == ["workspace"])
        let docker = API.CleanupResult(jobID: 3, removed: .init(workspace: false, containers: 1, images: 2))
        #expect(try JSONDecoder().decode(API.CleanupResult.self, from: JSONEncoder().encode(docker)) == docker)
    }

    @Test func statusReportDerivesPhasesFromTheSteps() throws {
        let steps = [
            Step(id: 1, jobID: 7, orderNum: 1, type: .bash, name: nil, content: "make", phase: .build, status: .success, exitCode: 0,
                 createdAt: Self.start, startedAt: Self.start, finishedAt: Self.start.addingTimeInterval(1)),
            Step(id: 2, jobID: 7, orderNum: 2, type: .bash, name: nil, content: "make test", phase: .test, status: .running, exitCode: nil,
                 createdAt: Self.start, startedAt: Self.start.addingTimeInterval(1), finishedAt: nil),
        ]
        let report = API.JobStatusReport(job: Self.job(finished: false), steps: steps, concurrentJobs: 1)
        #expect(report.metrics[.build] == 1 && report.metrics[.test] == nil && report.metrics.concurrentJobsTotal == 1)
        #expect(report.phaseTimestamps[.test].start == "2025-09-26T10:00:06.123Z" && report.phaseTimestamps[.test].end == nil)
        #expect(report.phaseTimestamps[.publish] == (nil, nil))
        #expect(try JSONDecoder().decode(API.JobStatusReport.self, from: JSONEncoder().encode(report)) == report)
        let metrics = try #require(try Self.object(report)["metrics"] as? [String: Any])
        #expect(metrics["test_duration_seconds"] is NSNull)
    }

    @Test(arguments: [
        API.LogStreamEvent.stepStarted(stepID: 1, orderNum: 1, type: .bash, phase: .build),
        .log(stepID: 1, offset: 12, data: .text("line\n")),
        .log(stepID: 1, offset: 17, data: .base64(Data([0xFF, 0xFE]).base64EncodedString())),
        .stepFinished(stepID: 1, status: .failed, exitCode: 3),
        .stepFinished(stepID: 1, status: .cancelled, exitCode: nil),
        .jobFinished(status: .failed),
        .serviceStopping,
        .error(code: "job_not_found", message: "job 9 does not exist"),
    ])
    func logStreamEventsReadBackWhatTheyWrite(event: API.LogStreamEvent) throws {
        #expect(try JSONDecoder().decode(API.LogStreamEvent.self, from: JSONEncoder().encode(event)) == event)
        if case .stepFinished(_, _, nil) = event {
            #expect(try Self.object(event)["exit_code"] is NSNull, "exit_code is null, not left out")
        }
    }

    @Test func anEnvelopeCarriesDataOrAnError() throws {
        let failure = #"{"data":null,"error":{"code":"job_not_found","message":"job 9 does not exist"},"timestamp":"2025-09-26T10:00:05.123Z"}"#
        let envelope = try JSONDecoder().decode(API.Envelope<API.Job>.self, from: Data(failure.utf8))
        #expect(envelope.data == nil && envelope.error == API.ErrorBody(code: "job_not_found", message: "job 9 does not exist"))
        let success = #"{"data":{"deleted":true,"id":4},"error":null,"timestamp":"2025-09-26T10:00:05.123Z"}"#
        #expect(try JSONDecoder().decode(API.Envelope<API.DeleteResult>.self, from: Data(success.utf8)).data == API.DeleteResult(id: 4))
    }

    /// Durations are whole milliseconds, as the store keeps times: 18 ms apart reads 0.018,
    /// not the 0.017999887… of subtracting two floating-point times.
    @Test func durationsAreWholeMilliseconds() throws {
        let started = Date(timeIntervalSince1970: 1_764_900_000.123)
        let finished = Date(timeIntervalSince1970: 1_764_900_000.141)
        #expect(finished.timeIntervalSince(started) != 0.018, "the case this test is about: the raw difference is not 0.018")
        let step = RapidFlowCore.Step(
            id: 1, jobID: 7, orderNum: 0, type: .bash, name: nil, content: "true", phase: .test, status: .success, exitCode: 0,
            createdAt: started, startedAt: started, finishedAt: finished)
        var job = Self.job(finished: true)
        job.startedAt = started
        job.finishedAt = Date(timeIntervalSince1970: 1_764_900_001.143)
        let report = API.JobStatusReport(job: job, steps: [step], concurrentJobs: 0)
        #expect(report.steps.map(\.durationSeconds) == [0.018])
        #expect(report.metrics.testDurationSeconds == 0.018)
        #expect(report.metrics.jobDurationSeconds == 1.02)
        #expect(API.StepDetail(step, output: nil).durationSeconds == 0.018)
        #expect(API.Job(job).duration() == 1.02)
        let text = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        #expect(text.contains("\"duration_seconds\":0.018") && text.contains("\"job_duration_seconds\":1.02"), "\(text)")
    }
}
