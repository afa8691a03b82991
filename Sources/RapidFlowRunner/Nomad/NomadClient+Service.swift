import ServiceLifecycle

/// The client as a `Service`: its connections stay open until the service group stops.
/// Listed before the scheduler, which stops the Nomad jobs that still run as it shuts down,
/// it closes after it.
extension NomadClient: Service {
    public func run() async throws {
        // Returns at graceful shutdown, throws when the group is cancelled: the client closes
        // either way, and a failure to close stops nothing else from closing.
        try? await gracefulShutdown()
        try? await shutdown()
    }
}
