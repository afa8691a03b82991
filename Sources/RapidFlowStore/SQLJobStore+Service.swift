import ServiceLifecycle

/// The store as a `Service`. It is opened and migrated before the service group starts, so
/// nothing serves on a store that does not answer; listed first, it closes last, once the
/// HTTP server, the scheduler and everything else that writes to it have stopped.
extension SQLJobStore: Service {
    public func run() async throws {
        // Returns at graceful shutdown, throws when the group is cancelled: the store closes either way.
        try? await gracefulShutdown()
        await close()
    }
}
