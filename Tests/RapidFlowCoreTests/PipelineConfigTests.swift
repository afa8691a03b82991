import Foundation
import Testing

@testable import RapidFlowCore

@Suite("Pipeline config parsing")
struct PipelineConfigTests {
    @Test func designDocumentExampleParses() throws {
        let config = try PipelineConfig(yaml: """
            name: Go Build Pipeline
            language: golang
            version: "1.21"
            image: golang:1.21
            repo: https://example.com/user/repo.git
            branch: main
            folder: ./my-go-app
            expose_ports: false
            env:
              CGO_ENABLED: "0"
            steps:
              - go mod download
              - type: bash
                content: go build -o app .
                phase: build
              - type: bash
                content: go test ./...
                phase: test
            """)
        #expect(config.name == "Go Build Pipeline")
        #expect(config.version == "1.21")
        #expect(config.image == "golang:1.21")
        #expect(config.env.map(\.key) == ["CGO_ENABLED"] && config.env.map(\.value) == ["0"])
        #expect(config.steps.map(\.content) == ["go mod download", "go build -o app .", "go test ./..."])
        #expect(config.steps.map(\.phase) == [.build, .build, .test])
    }

    @Test func unquotedVersionKeepsItsText() throws {
        #expect(try PipelineConfig(yaml: "version: 1.20\nsteps: [x]").version == "1.20")
    }

    @Test func planAddsACloneStepWhenTheConfigHasARepository() throws {
        let config = try PipelineConfig(yaml: "repo: https://git.example.com/r.git\nbranch: main\nsteps:\n  - make\n")
        let plan = config.plan(configText: "", branchOverride: "dev")
        #expect(plan.steps.map(\.type) == [.git, .bash])
        #expect(plan.snapshot.branch == "dev")
        let noRepo = try PipelineConfig(yaml: "steps:\n  - make\n").plan(configText: "", branchOverride: nil)
        #expect(noRepo.steps.map(\.type) == [.bash])
    }

    @Test(arguments: [
        ("steps: []", "empty"),
        ("steps: {a: b}", "list"),
        ("stepz: [x]", "stepz"),
        ("steps:\n  - type: docker\n    content: x", "docker"),
        ("steps:\n  - type: bash", "content"),
        ("env:\n  A: 1\nsteps: [x]", "'A'"),
        ("env: [A]\nsteps: [x]", "env"),
        ("folder: ../out\nsteps: [x]", "folder"),
        ("folder: /etc\nsteps: [x]", "folder"),
        ("branch: --upload-pack=x\nsteps: [x]", "branch"),
        ("expose_ports: maybe\nsteps: [x]", "expose_ports"),
        ("timeout_seconds: -1\nsteps: [x]", "timeout_seconds"),
        ("name: a\nname: b\nsteps: [x]", "name"),
        ("steps: [x]\n  bad: : indent", "YAML"),
    ])
    func invalidConfigsNameTheirProblem(yaml: String, word: String) {
        #expect {
            try PipelineConfig(yaml: yaml)
        } throws: { error in
            guard let error = error as? RapidFlowError else { return false }
            return error.code == .invalidConfig || error.code == .invalidRequest ? error.message.contains(word) : false
        }
    }

    @Test func limitsBoundStepsAndScripts() {
        let limits = Limits(maxSteps: 2, maxScriptBytes: 10)
        #expect(throws: RapidFlowError.self) { try PipelineConfig(yaml: "steps: [a, b, c]", limits: limits) }
        #expect(throws: RapidFlowError.self) { try PipelineConfig(yaml: "steps: [echo 12345678901]", limits: limits) }
        #expect(throws: Never.self) { try PipelineConfig(yaml: "steps: [a, b]", limits: limits) }
    }

    @Test(arguments: ["main", "feature/x", "v1.2.3", "0123456789abcdef0123456789abcdef01234567"])
    func validRefsPass(ref: String) throws {
        try RefValidation.checkRef(ref, field: "git_ref")
    }

    @Test(arguments: ["-x", "--upload-pack=sh", "a..b", "a b", "a~1", "a^", "a:b", "x.lock", "/abs", "a//b", "", "@{u}", "x\u{7}"])
    func invalidRefsAreRefused(ref: String) {
        #expect(throws: RapidFlowError.self) { try RefValidation.checkRef(ref, field: "git_ref") }
    }

    @Test func secretLookingKeysAreRecognised() {
        #expect(EnvironmentValidation.looksSecret("GITHUB_TOKEN"))
        #expect(EnvironmentValidation.looksSecret("db_password"))
        #expect(EnvironmentValidation.looksSecret("AWS_SECRET"))
        #expect(EnvironmentValidation.looksSecret("SSH_KEY"))
        #expect(!EnvironmentValidation.looksSecret("KEYBOARD"))
        #expect(!EnvironmentValidation.looksSecret("GREETING"))
    }

    @Test func timestampsAreRFC3339InUTC() {
        #expect(Timestamp.format(.init(timeIntervalSince1970: 1_758_880_805.25)) == "2025-09-26T10:00:05.250Z")
        #expect(Timestamp.format(.init(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(.init(timeIntervalSince1970: 4_102_444_799.999)) == "2099-12-31T23:59:59.999Z")
        #expect(Timestamp.format(.init(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
    }
}
