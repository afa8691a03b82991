import Foundation
import RapidFlowAPI
import RapidFlowCore
import Testing

/// Each request type decodes what the routes accept and refuses the rest with the code and
/// message the routes answer: the server decodes every body through `RequestDecoding`.
@Suite("Request decoding")
struct RequestDecodingTests {
    static func decode<Body: Decodable>(_ type: Body.Type, _ json: String, partial: Bool = false) throws(RapidFlowError) -> Body? {
        try RequestDecoding.decode(type, from: Data(json.utf8), partial: partial)
    }

    /// The refusal of `json` as `type`: its code and message.
    static func refusal<Body: Decodable>(_ type: Body.Type, _ json: String) -> (code: String, message: String)? {
        do {
            _ = try decode(type, json)
            return nil
        } catch {
            return (error.code.rawValue, error.message)
        }
    }

    /// Encoded as a client sends it and decoded as the server reads it, the value is the same.
    static func roundTrip<Body: Codable & Equatable>(_ value: Body) throws {
        let data = try JSONEncoder().encode(value)
        #expect(try RequestDecoding.decode(Body.self, from: data) == value, "\(String(decoding: data, as: UTF8.self))")
    }

    @Test func pipelineDefinitionRoundTripsAndNamesTheFieldItRefuses() throws {
        #expect(try Self.decode(API.PipelineDefinition.self, #"{"name": " p ", "config": "steps: [x]"}"#) == .init(name: "p", config: "steps: [x]"))
        try Self.roundTrip(API.PipelineDefinition(name: "build", config: "steps:\n  - echo ok\n"))
        let known = "known fields: config, name, owner"
        let cases: [(String, String, String)] = [
            (#"{"name": "p", "config": "c", "colour": 1}"#, "invalid_request", "unknown field 'colour'; \(known)"),
            (#"{"name": 5, "config": "c"}"#, "invalid_request", "field 'name' must be a string"),
            (#"{"name": true, "config": "c"}"#, "invalid_request", "field 'name' must be a string"),
            (#"{"name": "p", "config": ["steps"]}"#, "invalid_request", "field 'config' must be a string"),
            (#"{"config": "c"}"#, "invalid_request", "missing field 'name'"),
            (#"{"name": null, "config": "c"}"#, "invalid_request", "missing field 'name'"),
            (#"{"name": "p"}"#, "invalid_request", "missing field 'config'"),
            (#"{"name": "  ", "config": "c"}"#, "invalid_request", "field 'name' must be 1 to 200 characters"),
            (#"{"name": "p", "config": ""}"#, "invalid_config", "field 'config' is empty: give the pipeline's YAML"),
            // The name is checked before the config is read, as the route always did.
            (#"{"name": "", "config": 5}"#, "invalid_request", "field 'name' must be 1 to 200 characters"),
        ]
        for (json, code, message) in cases {
            let refusal = try #require(Self.refusal(API.PipelineDefinition.self, json), "\(json)")
            #expect(refusal.code == code && refusal.message == message, "\(json): \(refusal)")
        }
    }

    @Test func triggerRequestRoundTripsAndNamesTheFieldItRefuses() throws {
        let trigger = try #require(try Self.decode(API.TriggerRequest.self, #"{"branch": "main", "env": {"B": "2", "A": "1"}}"#))
        #expect(trigger.branch == "main")
        #expect(trigger.environment.map(\.key) == ["A", "B"])
        #expect(try Self.decode(API.TriggerRequest.self, "{}") == API.TriggerRequest())
        try Self.roundTrip(API.TriggerRequest(branch: "release/1.0", env: ["DEBUG": "1"]))
        let cases: [(String, String, String)] = [
            (#"{"branch": "main", "colour": "red"}"#, "invalid_request", "unknown field 'colour'; known fields: branch, concurrency_group, env, on_conflict, priority"),
            (#"{"branch": 3}"#, "invalid_request", "field 'branch' must be a string"),
            (#"{"branch": false}"#, "invalid_request", "field 'branch' must be a string"),
            (#"{"branch": "-x"}"#, "invalid_request", "'branch' value '-x' is not a valid git ref"),
            (#"{"env": "A=1"}"#, "invalid_request", "field 'env' must be an object of string values"),
            (#"{"env": {"A": 1}}"#, "invalid_request", "env value of 'A' must be a string"),
            (#"{"env": {"A": true}}"#, "invalid_request", "env value of 'A' must be a string"),
            (#"{"env": {"A": null}}"#, "invalid_request", "env value of 'A' must be a string"),
            (#"{"env": {"1A": "x"}}"#, "invalid_config", "env name '1A' is not a valid variable name (letters, digits, '_', not starting with a digit)"),
        ]
        for (json, code, message) in cases {
            let refusal = try #require(Self.refusal(API.TriggerRequest.self, json), "\(json)")
            #expect(refusal.code == code && refusal.message == message, "\(json): \(refusal)")
        }
    }

    @Test func stepExitTakesWholeNumbersFrom0To255AndNotBooleans() throws {
        #expect(try Self.decode(API.StepExit.self, #"{"exit_code": 3}"#) == .init(exitCode: 3))
        #expect(try Self.decode(API.StepExit.self, #"{"exit_code": 255.0}"#) == .init(exitCode: 255))
        #expect(try Self.decode(API.StepExit.self, #"{"error": "no such image"}"#) == .init(error: "no such image"))
        // Too small for a Double: 0, as the service has always read it.
        #expect(try Self.decode(API.StepExit.self, #"{"exit_code": 1e-400}"#) == .init(exitCode: 0))
        try Self.roundTrip(API.StepExit(exitCode: 0))
        try Self.roundTrip(API.StepExit(error: "the image does not exist"))
        let range = "field 'exit_code' must be a whole number from 0 to 255"
        for number in ["256", "-1", "1.5", "1e300", "9223372036854775808", "0.0000001"] {
            let refusal = try #require(Self.refusal(API.StepExit.self, #"{"exit_code": \#(number)}"#), "\(number)")
            #expect(refusal.code == "invalid_request" && refusal.message == range, "\(number): \(refusal)")
        }
        for value in ["true", "false", #""1""#, "[]", "{}"] {
            let refusal = try #require(Self.refusal(API.StepExit.self, #"{"exit_code": \#(value)}"#), "\(value)")
            #expect(refusal.code == "invalid_request" && refusal.message == "field 'exit_code' must be a number", "\(value): \(refusal)")
        }
        let error = try #require(Self.refusal(API.StepExit.self, #"{"error": 5}"#))
        #expect(error.message == "field 'error' must be a string")
        let unknown = try #require(Self.refusal(API.StepExit.self, #"{"exit_code": 0, "signal": 9}"#))
        #expect(unknown.message == "unknown field 'signal'; known fields: error, exit_code")
    }

    @Test func imageJobRequestRoundTripsAndNamesTheFieldItRefuses() throws {
        let full = API.ImageJobRequest(
            owner: "team", repoURL: "https://git.example.com/team/app.git", gitRef: "v1.0", gitCredentialsPath: "git.key",
            dockerfilePath: "build/Dockerfile", imageTags: ["1.0", "latest"], registryURL: "registry.example.com/team/app",
            registryCredentialsPath: "registry.json", testCommands: ["make test"], testEntryPoint: true, killTimeoutSeconds: 5,
            timeoutSeconds: 600.5)
        try Self.roundTrip(full)
        let job = try full.job()
        #expect(job.imageTags == ["1.0", "latest"] && job.testEntryPoint && job.timeoutSeconds == 600.5)
        // Empty strings are no value; the Dockerfile is `Dockerfile` unless named.
        let minimal = try #require(try Self.decode(API.ImageJobRequest.self, #"{"owner": "o", "repo_url": "u", "git_ref": "", "dockerfile_path": ""}"#))
        #expect(try minimal.job() == RapidFlowCore.ImageJobRequest(owner: "o", repoURL: "u"))
        let stored = try #require(try Self.decode(API.ImageJobRequest.self, #"{"owner": "o", "repo_url": "u", "registry_credentials_secret": "LOGIN"}"#))
        try Self.roundTrip(stored)
        #expect(try stored.job().registryCredentialsSecret == "LOGIN")

        let base = #""owner": "o", "repo_url": "u""#
        let cases: [(String, String)] = [
            (#"{\#(base), "colour": "red"}"#,
             "unknown field 'colour'; known fields: cache_from, dockerfile_path, git_credentials_path, git_ref, image_tags, kill_timeout_seconds, owner, priority, registry_credentials_path, registry_credentials_secret, registry_url, repo_url, test_commands, test_entry_point, timeout_seconds"),
            (#"{"repo_url": "u"}"#, "missing field 'owner'"),
            (#"{"owner": "o"}"#, "missing field 'repo_url'"),
            (#"{"owner": 5, "repo_url": "u"}"#, "field 'owner' must be a string"),
            (#"{\#(base), "image_tags": "latest"}"#, "field 'image_tags' must be a list of strings"),
            (#"{\#(base), "test_commands": ["ok", 5]}"#, "test_commands[1] must be a string"),
            (#"{\#(base), "test_entry_point": "yes"}"#, "field 'test_entry_point' must be true or false"),
            (#"{\#(base), "test_entry_point": 1}"#, "field 'test_entry_point' must be true or false"),
            (#"{\#(base), "timeout_seconds": true}"#, "field 'timeout_seconds' must be a number"),
            (#"{\#(base), "kill_timeout_seconds": "5"}"#, "field 'kill_timeout_seconds' must be a number"),
            (#"{\#(base), "registry_credentials_secret": 5}"#, "field 'registry_credentials_secret' must be a string"),
        ]
        for (json, message) in cases {
            let refusal = try #require(Self.refusal(API.ImageJobRequest.self, json), "\(json)")
            #expect(refusal.code == "invalid_request" && refusal.message == message, "\(json): \(refusal)")
        }
        // The client's --file, before its flags add the owner and repository.
        let partial = try #require(try Self.decode(API.ImageJobRequest.self, #"{"image_tags": ["1.0"]}"#, partial: true))
        #expect(partial.owner == nil && partial.imageTags == ["1.0"])
        #expect(throws: RapidFlowError(.invalidRequest, "missing field 'owner'")) { try partial.job() }
    }

    /// Bodies that are not a JSON object are `invalid_json`, wherever the malformed text is.
    @Test(arguments: [
        ("{\"name\": \"p\", \"config\": ", "request body is not valid JSON"),
        ("{not json", "request body is not valid JSON"),
        (" ", "request body is not valid JSON"),
        ("[1, 2]", "request body must be a JSON object"),
        ("null", "request body must be a JSON object"),
        ("\"text\"", "request body must be a JSON object"),
        // Malformed values in a field the type does not know, or reads as another type.
        ("{\"colour\": 01}", "request body is not valid JSON"),
        ("{\"name\": \"\\ud800\", \"config\": \"c\"}", "request body is not valid JSON"),
        ("{\"name\": \"a\u{01}b\", \"config\": \"c\"}", "request body is not valid JSON"),
        ("{\"name\": \"p\", \"config\": \"c\", \"x\": [1, {\"y\": 1.}]}", "request body is not valid JSON"),
        ("{\"na\tme\": \"p\", \"config\": \"c\"}", "request body is not valid JSON"),
        ("{\"name\": \"p\", \"config\": \"c\", \"x\": 1e309}", "request body is not valid JSON"),
    ])
    func bodiesThatAreNotAJSONObjectAreInvalidJSON(json: String, message: String) throws {
        let refusal = try #require(Self.refusal(API.PipelineDefinition.self, json))
        #expect(refusal.code == "invalid_json" && refusal.message == message, "\(json.debugDescription): \(refusal)")
    }

    @Test func anEmptyBodyIsNoRequest() throws {
        #expect(try RequestDecoding.decode(API.TriggerRequest.self, from: Data()) == nil)
        #expect(try RequestDecoding.decode(API.StepExit.self, from: Data()) == nil)
    }

    /// JSONSerialization read UTF-16 and UTF-32 bodies; the types read them too.
    @Test func unicodeEncodingsOtherThanUTF8AreRead() throws {
        let json = #"{"name": "p", "config": "c"}"#
        for encoding in [String.Encoding.utf16, .utf16LittleEndian, .utf16BigEndian, .utf32] {
            let data = try #require(json.data(using: encoding))
            #expect(try RequestDecoding.decode(API.PipelineDefinition.self, from: data) == .init(name: "p", config: "c"), "\(encoding)")
        }
    }
}
