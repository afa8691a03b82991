/// The core of `--executor nomad`: each RapidFlow job becomes one Nomad batch job that runs
/// `rapidflow runner`, which talks back to the service for the steps, their output and results.
///
/// The server drives it per job: `submit`, then `outcome()` on the returned watcher; on cancel,
/// kill or a timeout `stop(grace:)`, which is also how a finished job is removed from Nomad;
/// `cleanup()` for the service's cleanup; `checkReady()` for `/ready`. Its `client` is a
/// `Service` of its own, which closes the connections when the service stops.
public struct NomadExecutor: Sendable {
    public let client: NomadClient
    /// This service's instance id: part of every Nomad job ID and in its `Meta`.
    public let instanceID: String
    /// The longest a blocking query waits.
    public let wait: Duration

    /// Checks the configuration and loads its TLS files; throws `NomadError.invalidConfiguration`.
    public init(configuration: NomadConfiguration, instanceID: String, retry: NomadClient.RetryPolicy = .standard, wait: Duration = .seconds(300)) throws {
        try configuration.validate()
        self.init(client: try NomadClient(configuration: configuration, retry: retry), instanceID: instanceID, wait: wait)
    }

    public init(client: NomadClient, instanceID: String, wait: Duration = .seconds(300)) {
        self.client = client
        self.instanceID = instanceID
        self.wait = wait
    }

    /// Registers the batch job for one RapidFlow job and returns the watcher that follows it.
    /// `runnerToken` is the job's own token for `rapidflow runner`; it reaches Nomad in the task's
    /// environment and nowhere else.
    public func submit(
        jobID: Int, serverURL: String, runnerToken: String, gracePeriod: Duration, usesDockerEngine: Bool = false
    ) async throws -> NomadJobWatcher {
        let spec = NomadJobSpec(
            jobID: jobID, instanceID: instanceID, serverURL: serverURL, runnerToken: runnerToken, gracePeriod: gracePeriod,
            configuration: client.configuration, usesDockerEngine: usesDockerEngine
        )
        let registration = try await client.registerJob(spec)
        return watcher(nomadJobID: spec.id, evaluationID: registration.evaluationID)
    }

    /// A watcher for a job registered earlier, e.g. by the previous run of the service.
    public func watcher(nomadJobID: String, evaluationID: String? = nil) -> NomadJobWatcher {
        NomadJobWatcher(client: client, jobID: nomadJobID, evaluationID: evaluationID, wait: wait)
    }

    /// Asks Nomad to collect every finished job, evaluation and allocation now (`PUT /v1/system/gc`).
    public func cleanup() async throws {
        try await client.collectGarbage()
    }

    /// Throws unless the agent reports itself healthy and the cluster has a leader.
    public func checkReady() async throws {
        let health = try await client.agentHealth()
        if let failing = [health.server, health.client].compactMap({ $0 }).first(where: { !$0.ok }) {
            throw NomadError(.unhealthy, "the Nomad agent is not healthy: \(failing.message)", request: "GET /v1/agent/health")
        }
        if try await client.leader().isEmpty {
            throw NomadError(.unhealthy, "the Nomad cluster has no leader", request: "GET /v1/status/leader")
        }
    }
}
