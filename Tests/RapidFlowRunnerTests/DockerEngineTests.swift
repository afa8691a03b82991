import Testing

@testable import RapidFlowRunner

@Suite("Docker engine API")
struct DockerEngineTests {
    @Test func theLocalEngineAnswersItsPing() async throws {
        try await DockerEngine().ping()
    }

    @Test func aMissingSocketIsUnreachable() async {
        #expect(await !DockerEngine(socketPath: "/nonexistent/docker.sock").isReachable())
    }
}
