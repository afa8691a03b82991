import NIOPosix
import ServiceLifecycle

/// The launcher as a `Service`: the threads that wait for exits (the pool it was given) stop
/// when the service group stops. Listed before the scheduler, whose shutdown waits for the
/// steps it stopped to exit, it stops after it.
extension ProcessLauncher: Service {
    public func run() async throws {
        // Returns at graceful shutdown, throws when the group is cancelled: the threads stop
        // either way, and a failure to stop them stops nothing else from closing.
        try? await gracefulShutdown()
        try? await waiters.shutdownGracefully()
    }
}
