import Foundation
import RapidFlowCore

/// Credentials handed to one job's git and docker commands, through files in a per-job
/// directory outside the workspace: never in a URL, the workspace's git config or a log.
public struct JobCredentials: Sendable {
    /// Variables that point git and docker at the credential files.
    public var environment: [String: String] = [:]
    /// Values to mask in output.
    public var secrets: [String] = []
    /// The per-job directory, removed when the job ends.
    public var directory: String?

    public init() {}

    public func remove() {
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// The files and variables, for a runner on another machine (nil when there are none).
    public func bundle() throws -> StepPayload.CredentialBundle? {
        guard let directory else { return nil }
        var files: [String: String] = [:]
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        if let walker = FileManager.default.enumerator(atPath: root) {
            for case let relative as String in walker {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: "\(root)/\(relative)", isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
                files[relative] = try String(contentsOfFile: "\(root)/\(relative)", encoding: .utf8)
            }
        }
        let environment = self.environment.mapValues { $0.replacingOccurrences(of: root, with: StepPayload.CredentialBundle.directoryPlaceholder) }
        return StepPayload.CredentialBundle(files: files, environment: environment)
    }

    /// Writes `bundle` into `directory` (created with mode 0700, files 0600) and returns the
    /// credentials pointing there; `remove()` takes them away.
    public static func unpack(_ bundle: StepPayload.CredentialBundle, into directory: String) throws -> JobCredentials {
        var credentials = JobCredentials()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        credentials.directory = directory
        for (relative, text) in bundle.files {
            let path = URL(fileURLWithPath: "\(directory)/\(relative)").standardizedFileURL.path
            guard path.hasPrefix(directory + "/") else { throw RapidFlowError(.invalidRequest, "a credential file must stay in its directory: \(relative)") }
            let parent = (path as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw RapidFlowError(.invalidRequest, "could not write the credential file \(relative)")
            }
        }
        credentials.environment = bundle.environment.mapValues {
            $0.replacingOccurrences(of: StepPayload.CredentialBundle.directoryPlaceholder, with: directory)
        }
        return credentials
    }
}

/// Resolves credential paths inside the secrets directory and prepares them for one job.
public struct CredentialStore: Sendable {
    public let secretsDirectory: String?

    public init(secretsDirectory: String?) {
        self.secretsDirectory = secretsDirectory
    }

    /// The real path of `relative` inside the secrets directory, refusing anything that leaves it
    /// (an absolute path elsewhere, `..`, a symlink pointing out).
    public func resolve(_ path: String, field: String) throws(RapidFlowError) -> String {
        guard let secretsDirectory else {
            throw RapidFlowError(.invalidRequest, "'\(field)' needs the service to run with --secrets-dir")
        }
        let root = URL(fileURLWithPath: secretsDirectory).resolvingSymlinksInPath().path
        let candidate = path.hasPrefix("/") ? path : "\(root)/\(path)"
        let resolved = URL(fileURLWithPath: candidate).resolvingSymlinksInPath().standardizedFileURL.path
        guard resolved.hasPrefix(root + "/") else {
            throw RapidFlowError(.invalidRequest, "'\(field)' must name a file inside the secrets directory")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw RapidFlowError(.invalidRequest, "'\(field)' names no file in the secrets directory")
        }
        return resolved
    }

    /// Writes the job's credential files into `directory` and returns how to use them.
    /// `storedRegistryCredentials` is the opened value of the job's `registry_credentials_secret`:
    /// the same content a `registry_credentials_path` file holds.
    public func prepare(
        for request: ImageJobRequest, registryHost: String?, directory: String, storedRegistryCredentials: String? = nil
    ) throws -> JobCredentials {
        var credentials = JobCredentials()
        let registry: (data: Data, source: String)?
        if let name = request.registryCredentialsSecret {
            guard let storedRegistryCredentials else {
                throw RapidFlowError(.unknownSecret, "the stored secret '\(name)' named by 'registry_credentials_secret' was not opened")
            }
            registry = (Data(storedRegistryCredentials.utf8), "the stored secret '\(name)' (registry credentials)")
        } else if let path = request.registryCredentialsPath {
            registry = (try Data(contentsOf: URL(fileURLWithPath: try resolve(path, field: "registry_credentials_path"))), "registry credentials")
        } else {
            registry = nil
        }
        guard request.gitCredentialsPath != nil || registry != nil else { return credentials }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        credentials.directory = directory

        if let path = request.gitCredentialsPath {
            let text = try String(contentsOfFile: try resolve(path, field: "git_credentials_path"), encoding: .utf8)
            if text.contains("PRIVATE KEY-----") {
                let keyPath = "\(directory)/ssh-key"
                try Self.writePrivate(text.hasSuffix("\n") ? text : text + "\n", to: keyPath)
                credentials.environment["GIT_SSH_COMMAND"] =
                    "ssh -i \(keyPath) -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
                credentials.secrets += text.split(separator: "\n").filter { !$0.hasPrefix("-----") && $0.count >= 16 }.map(String.init)
            } else {
                let line = text.split(separator: "\n").first.map(String.init) ?? ""
                guard let url = URLComponents(string: line), let password = url.password, !password.isEmpty else {
                    throw RapidFlowError(.invalidRequest, "git credentials must be a line like https://user:token@host, or an SSH private key")
                }
                let storePath = "\(directory)/git-credentials"
                try Self.writePrivate(line + "\n", to: storePath)
                GitEnvironment.appendConfig([("credential.helper", "store --file=\(storePath)")], to: &credentials.environment)
                credentials.secrets.append(password)
                if let decoded = password.removingPercentEncoding, decoded != password { credentials.secrets.append(decoded) }
            }
        }
        if let (data, source) = registry {
            guard let file = try? JSONDecoder().decode(RegistryCredentialsFile.self, from: data) else {
                throw RapidFlowError(.invalidRequest, "\(source) must be a Docker config.json or {\"username\", \"password\"}")
            }
            // Only the logins go to the job's config.json: never a credential helper or store.
            let config: DockerConfig
            if let username = file.username, let password = file.password {
                let auth = Data("\(username):\(password)".utf8).base64EncodedString()
                config = DockerConfig(auths: [registryHost ?? "": DockerConfig.Login(auth: auth)])
                credentials.secrets += [password, auth]
            } else if let auths = file.auths {
                config = DockerConfig(auths: auths)
                for entry in auths.values {
                    credentials.secrets += [entry.auth, entry.password, entry.identitytoken].compactMap { $0 }
                    if let auth = entry.auth, let decoded = Data(base64Encoded: auth),
                        let pair = String(data: decoded, encoding: .utf8), let colon = pair.firstIndex(of: ":")
                    {
                        credentials.secrets.append(String(pair[pair.index(after: colon)...]))
                    }
                }
            } else {
                throw RapidFlowError(.invalidRequest, "\(source) must be a Docker config.json with 'auths' or {\"username\", \"password\"}")
            }
            let dockerConfig = "\(directory)/docker"
            try FileManager.default.createDirectory(atPath: dockerConfig, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try Self.writePrivate(String(decoding: try JSONEncoder().encode(config), as: UTF8.self), to: "\(dockerConfig)/config.json")
            credentials.environment["DOCKER_CONFIG"] = dockerConfig
        }
        return credentials
    }

    private static func writePrivate(_ text: String, to path: String) throws {
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
    }
}

/// A registry credentials file: `{"username", "password"}` or a Docker config.json. Read
/// leniently, field by field, as the files are written by hand: a field of another type is
/// absent.
struct RegistryCredentialsFile: Decodable {
    var username: String?
    var password: String?
    var auths: [String: DockerConfig.Login]?

    enum CodingKeys: String, CodingKey {
        case username, password, auths
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        username = try? container.decodeIfPresent(String.self, forKey: .username)
        password = try? container.decodeIfPresent(String.self, forKey: .password)
        auths = try? container.decodeIfPresent([String: DockerConfig.Login].self, forKey: .auths)
    }
}

/// The Docker config.json a job's `docker login` state is written to.
struct DockerConfig: Encodable {
    var auths: [String: Login]

    /// One registry's login, with the fields Docker's config.json defines for it.
    struct Login: Codable {
        var auth: String?
        var username: String?
        var password: String?
        var email: String?
        var serveraddress: String?
        var identitytoken: String?
        var registrytoken: String?

        init(auth: String) {
            self.auth = auth
        }

        enum CodingKeys: String, CodingKey {
            case auth, username, password, email, serveraddress, identitytoken, registrytoken
        }

        init(from decoder: any Decoder) throws {
            // An entry that is not an object is an empty login, as a field of another type is absent.
            guard let container = try? decoder.container(keyedBy: CodingKeys.self) else { return }
            func field(_ key: CodingKeys) -> String? { try? container.decodeIfPresent(String.self, forKey: key) }
            auth = field(.auth)
            username = field(.username)
            password = field(.password)
            email = field(.email)
            serveraddress = field(.serveraddress)
            identitytoken = field(.identitytoken)
            registrytoken = field(.registrytoken)
        }
    }
}
