import Foundation
import RapidFlowCore
import Testing

@testable import RapidFlowStore

@Suite("Sealed secrets in the SQL store")
struct SecretStoreTests {
    @Test(arguments: StoreKind.allCases)
    func secretsAreKeptPerNameAndScopeAndReplacedInPlace(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let created = Date(timeIntervalSince1970: 1_700_000_000)
            let first = try await store.putSecret(name: "TOKEN_A", scope: .global, sealed: Data([1, 2, 3]), at: created)
            #expect(first.createdAt == created && first.updatedAt == created && first.lastUsedJobID == nil)
            _ = try await store.putSecret(name: "TOKEN_A", scope: .pipeline(7), sealed: Data([4]), at: created)
            _ = try await store.putSecret(name: "TOKEN_A", scope: .owner("team"), sealed: Data([5]), at: created)
            _ = try await store.putSecret(name: "OTHER", scope: .owner("else"), sealed: Data([6]), at: created)

            // Replacing keeps the creation time and the row.
            let later = created.addingTimeInterval(60)
            let replaced = try await store.putSecret(name: "TOKEN_A", scope: .global, sealed: Data([9, 9]), at: later)
            #expect(replaced.createdAt == created && replaced.updatedAt == later)
            #expect(try await store.sealedSecret(name: "TOKEN_A", scope: .global)?.sealed == Data([9, 9]))
            #expect(try await store.secrets().count == 4)

            let visible = try await store.sealedSecrets(in: SecretScope.visible(pipelineID: 7, owner: "team"))
            #expect(visible.map(\.metadata.scope).sorted { $0.kind < $1.kind } == [.global, .owner("team"), .pipeline(7)])
            #expect(try await store.sealedSecrets(in: [.global]).map(\.sealed) == [Data([9, 9])])

            try await store.recordSecretUse(name: "TOKEN_A", scope: .pipeline(7), jobID: 42, at: later)
            let used = try #require(try await store.sealedSecret(name: "TOKEN_A", scope: .pipeline(7)))
            #expect(used.metadata.lastUsedJobID == 42 && used.metadata.lastUsedAt == later)

            #expect(try await store.deleteSecret(name: "TOKEN_A", scope: .owner("team")))
            #expect(try await !store.deleteSecret(name: "TOKEN_A", scope: .owner("team")))
            #expect(try await store.anySealedSecret() != nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aJobStoresASecretsNameNotItsValueAndAPipelinesSecretsGoWithIt(_ kind: StoreKind) async throws {
        try await StoreFixture.withStore(kind) { store in
            let pipeline = try await store.createPipeline(name: "p", config: "steps: [x]", owner: "team")
            #expect(pipeline.owner == "team")
            _ = try await store.putSecret(name: "MINE", scope: .pipeline(pipeline.id), sealed: Data([1]), at: Date())
            let job = try await store.createJob(
                NewJob(
                    kind: .pipeline, pipelineID: pipeline.id, pipelineName: "p", snapshot: JobSnapshot(),
                    steps: [StepPlan(type: .bash, content: "echo", phase: .build)], environment: [("A", "1")],
                    secretEnvironment: [SecretReference(key: "TARGET", secret: "MINE")]))
            let environment = try await store.environment(jobID: job.id)
            #expect(environment.map(\.key) == ["A", "TARGET"])
            #expect(environment.map(\.secret) == [nil, "MINE"])
            #expect(environment[1].value == "")

            #expect(try await store.deletePipeline(id: pipeline.id))
            #expect(try await store.secrets().isEmpty, "a deleted pipeline's secrets are deleted with it")
        }
    }
}
