import Testing

@testable import RapidFlowCore

/// A job's timeouts become `Duration`s when it runs; a value past the limit (e.g. `1e300`,
/// which once stopped the service when its job started) is refused before anything is stored.
@Suite("Timeout limits")
struct TimeoutLimitTests {
    static let tooLong = ["1e300", "1e16", "604801", ".inf", ".nan", "0", "-5"]

    @Test(arguments: ["timeout_seconds", "kill_timeout_seconds"])
    func pipelineTimeoutsAreBounded(key: String) throws {
        let accepted = try PipelineConfig(yaml: "\(key): 604800\nsteps:\n  - echo ok\n")
        #expect((key == "timeout_seconds" ? accepted.timeoutSeconds : accepted.killTimeoutSeconds) == 604800)
        for value in Self.tooLong {
            #expect(throws: RapidFlowError.self, "\(key): \(value)") {
                try PipelineConfig(yaml: "\(key): \(value)\nsteps:\n  - echo ok\n")
            }
        }
    }

    @Test func imageJobTimeoutsAreBounded() throws {
        let job = ImageJobRequest(owner: "acme", repoURL: "https://git.example.com/acme/app.git")
        var longest = job
        longest.timeoutSeconds = 604800
        longest.killTimeoutSeconds = 604800
        try longest.validate()
        for value in [1e300, 1e16, 604801, .infinity, .nan, 0, -5] {
            var timeout = job
            timeout.timeoutSeconds = value
            #expect(throws: RapidFlowError.self, "timeout_seconds \(value)") { try timeout.validate() }
            var kill = job
            kill.killTimeoutSeconds = value
            #expect(throws: RapidFlowError.self, "kill_timeout_seconds \(value)") { try kill.validate() }
        }
    }
}
