import Foundation

/// Where the Nomad executor sends its jobs and how each job's task runs.
///
/// The token is a secret: `description`, `debugDescription` and the mirror leave it out, so
/// printing or dumping a configuration never shows it.
public struct NomadConfiguration: Sendable, Equatable {
    /// The task driver that starts `rapidflow runner` on a node.
    public enum Driver: String, Sendable, Equatable, CaseIterable {
        /// The runner binary on the node itself (`command` is its path there).
        case rawExec = "raw_exec"
        /// The runner inside `dockerImage`.
        case docker
    }

    /// TLS to the Nomad HTTP API; the same settings the Nomad CLI takes.
    public struct TLS: Sendable, Equatable {
        /// PEM file of the CA that signed the agent's certificate (`NOMAD_CACERT`).
        public var caFile: String?
        /// PEM client certificate and key for mutual TLS (`NOMAD_CLIENT_CERT`, `NOMAD_CLIENT_KEY`).
        public var clientCertificateFile: String?
        public var clientKeyFile: String?
        /// Accept any server certificate (`NOMAD_SKIP_VERIFY`).
        public var skipVerify: Bool

        public init(caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil, skipVerify: Bool = false) {
            self.caFile = caFile
            self.clientCertificateFile = clientCertificateFile
            self.clientKeyFile = clientKeyFile
            self.skipVerify = skipVerify
        }

        var isConfigured: Bool { caFile != nil || clientCertificateFile != nil || clientKeyFile != nil || skipVerify }
    }

    /// CPU (MHz) and memory (MB) asked for each job's task; Nomad's defaults when nil.
    public struct Resources: Sendable, Equatable {
        public var cpu: Int
        public var memoryMB: Int

        public init(cpu: Int, memoryMB: Int) {
            self.cpu = cpu
            self.memoryMB = memoryMB
        }
    }

    /// The agent's HTTP address, e.g. `http://127.0.0.1:4646`.
    public var address: String
    /// The ACL token's SecretID, sent as `X-Nomad-Token`.
    public var token: String?
    /// Omitted from requests when nil: the agent then uses `default`.
    public var namespace: String?
    /// Omitted from requests when nil: the agent then uses its own region.
    public var region: String?
    /// Nomad's source defaults an empty list to `["*"]` (every datacenter); sent explicitly.
    public var datacenters: [String]
    public var driver: Driver
    /// The image for the docker driver; it must contain `rapidflow`.
    public var dockerImage: String?
    /// The runner binary: a path on the node for raw_exec, in the image for docker.
    public var runnerCommand: String
    public var resources: Resources?
    public var tls: TLS
    /// The service's `--lease-seconds`: a runner that hears from no replica this long stops
    /// its step and exits (passed to each runner).
    public var leaseSeconds: Double = 30

    public static let defaultAddress = "http://127.0.0.1:4646"

    public init(
        address: String = NomadConfiguration.defaultAddress, token: String? = nil, namespace: String? = nil, region: String? = nil,
        datacenters: [String] = ["*"], driver: Driver = .rawExec, dockerImage: String? = nil, runnerCommand: String = "rapidflow",
        resources: Resources? = nil, tls: TLS = TLS()
    ) {
        self.address = address
        self.token = token
        self.namespace = namespace
        self.region = region
        self.datacenters = datacenters
        self.driver = driver
        self.dockerImage = dockerImage
        self.runnerCommand = runnerCommand
        self.resources = resources
        self.tls = tls
    }

    /// Reads the variables the Nomad CLI reads, the way it reads them: empty counts as unset,
    /// and a `NOMAD_SKIP_VERIFY` that is not a boolean is ignored.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> NomadConfiguration {
        let value = { (name: String) -> String? in
            guard let value = environment[name], !value.isEmpty else { return nil }
            return value
        }
        var configuration = NomadConfiguration()
        if let address = value("NOMAD_ADDR") { configuration.address = address }
        configuration.token = value("NOMAD_TOKEN")
        configuration.namespace = value("NOMAD_NAMESPACE")
        configuration.region = value("NOMAD_REGION")
        configuration.tls.caFile = value("NOMAD_CACERT")
        configuration.tls.clientCertificateFile = value("NOMAD_CLIENT_CERT")
        configuration.tls.clientKeyFile = value("NOMAD_CLIENT_KEY")
        if let skip = value("NOMAD_SKIP_VERIFY").flatMap(parseGoBool) { configuration.tls.skipVerify = skip }
        return configuration
    }

    /// Throws when the settings cannot work, before any job is sent.
    public func validate() throws {
        try validateAddress()
        if datacenters.isEmpty || datacenters.contains(where: \.isEmpty) {
            throw NomadError(.invalidConfiguration, "the Nomad datacenters must be non-empty names")
        }
        if driver == .docker, (dockerImage ?? "").isEmpty {
            throw NomadError(.invalidConfiguration, "the docker driver needs an image that contains rapidflow")
        }
        if runnerCommand.isEmpty {
            throw NomadError(.invalidConfiguration, "the runner command must not be empty")
        }
        if (tls.clientCertificateFile == nil) != (tls.clientKeyFile == nil) {
            throw NomadError(.invalidConfiguration, "a Nomad client certificate and its key go together")
        }
    }

    /// The one check the client itself needs.
    func validateAddress() throws {
        guard let url = URL(string: address), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw NomadError(.invalidConfiguration, "the Nomad address \(address) is not an http:// or https:// URL")
        }
    }

    /// Go's `strconv.ParseBool`, which the Nomad CLI applies to `NOMAD_SKIP_VERIFY`.
    static func parseGoBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": true
        case "0", "f", "F", "FALSE", "false", "False": false
        default: nil
        }
    }
}

extension NomadConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "NomadConfiguration(address: \(address), token: \(token == nil ? "none" : "set"), namespace: \(namespace ?? "default"), "
            + "region: \(region ?? "agent's"), datacenters: \(datacenters), driver: \(driver.rawValue))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "address": address, "token": token == nil ? "none" : "set", "namespace": namespace as Any, "region": region as Any,
                "datacenters": datacenters, "driver": driver, "dockerImage": dockerImage as Any, "runnerCommand": runnerCommand,
                "resources": resources as Any, "tls": tls,
            ]
        )
    }
}
