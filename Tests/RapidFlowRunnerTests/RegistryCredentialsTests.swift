import Foundation
import RapidFlowCore
import RapidFlowRunner
import Testing

/// A registry credentials file becomes the job's own Docker config.json: only its logins,
/// every secret in it masked.
@Suite("Registry credentials")
struct RegistryCredentialsTests {
    static func prepare(_ file: String) throws -> (config: [String: Any], credentials: JobCredentials) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rapidflow-credentials-\(UUID().uuidString.prefix(8))").path
        let secrets = "\(root)/secrets"
        try FileManager.default.createDirectory(atPath: secrets, withIntermediateDirectories: true)
        try file.write(toFile: "\(secrets)/registry.json", atomically: true, encoding: .utf8)
        let request = ImageJobRequest(owner: "team", repoURL: "https://git.example.com/team/app.git", registryCredentialsPath: "registry.json")
        let credentials = try CredentialStore(secretsDirectory: secrets).prepare(for: request, registryHost: "registry.example.com", directory: "\(root)/job")
        let written = try Data(contentsOf: URL(fileURLWithPath: "\(root)/job/docker/config.json"))
        return (try #require(try JSONSerialization.jsonObject(with: written) as? [String: Any]), credentials)
    }

    @Test func aUsernameAndPasswordBecomeALoginForTheRegistry() throws {
        let (config, credentials) = try Self.prepare(#"{"username": "ci", "password": "s3cret-pass"}"#)
        let auth = Data("ci:s3cret-pass".utf8).base64EncodedString()
        #expect((config["auths"] as? [String: [String: String]]) == ["registry.example.com": ["auth": auth]])
        #expect(credentials.secrets == ["s3cret-pass", auth])
    }

    @Test func aDockerConfigKeepsItsLoginsAndNothingElse() throws {
        let auth = Data("ci:from-auth".utf8).base64EncodedString()
        let (config, credentials) = try Self.prepare(#"""
            {"auths": {"registry.example.com": {"auth": "\#(auth)", "email": "ci@example.com"},
                       "other.example.com": {"identitytoken": "token-123"}},
             "credsStore": "desktop", "credHelpers": {"registry.example.com": "evil"}}
            """#)
        #expect(config.keys.sorted() == ["auths"], "no credential store or helper reaches the job")
        let auths = try #require(config["auths"] as? [String: [String: String]])
        #expect(auths == ["registry.example.com": ["auth": auth, "email": "ci@example.com"], "other.example.com": ["identitytoken": "token-123"]])
        #expect(Set(credentials.secrets) == [auth, "from-auth", "token-123"])
    }

    /// `registry_credentials_secret`: the stored secret's value is read as the file would be,
    /// with no secrets directory; a value of neither form is refused naming the secret.
    @Test func aStoredSecretsValueIsReadAsTheFileWouldBe() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rapidflow-credentials-\(UUID().uuidString.prefix(8))").path
        let request = ImageJobRequest(owner: "team", repoURL: "https://git.example.com/team/app.git", registryCredentialsSecret: "REGISTRY_LOGIN")
        let store = CredentialStore(secretsDirectory: nil)
        let credentials = try store.prepare(
            for: request, registryHost: "registry.example.com", directory: "\(root)/job",
            storedRegistryCredentials: #"{"username": "ci", "password": "stored-pass"}"#)
        let written = try Data(contentsOf: URL(fileURLWithPath: "\(root)/job/docker/config.json"))
        let config = try #require(try JSONSerialization.jsonObject(with: written) as? [String: [String: [String: String]]])
        let auth = Data("ci:stored-pass".utf8).base64EncodedString()
        #expect(config == ["auths": ["registry.example.com": ["auth": auth]]])
        #expect(credentials.secrets == ["stored-pass", auth])
        credentials.remove()

        let refusal = #expect(throws: RapidFlowError.self) {
            try store.prepare(for: request, registryHost: nil, directory: "\(root)/bad", storedRegistryCredentials: "ci:stored-pass")
        }
        #expect(refusal?.message.contains("'REGISTRY_LOGIN'") == true && refusal?.message.contains("stored-pass") == false)
    }

    @Test(arguments: [#"{"username": "ci"}"#, #"{"auths": 5}"#, "not json", #"{"username": 1, "password": "x"}"#])
    func aFileWithNeitherIsRefused(file: String) throws {
        #expect(throws: RapidFlowError.self) { try Self.prepare(file) }
    }
}
