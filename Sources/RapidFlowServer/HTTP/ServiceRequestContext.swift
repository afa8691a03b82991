import Hummingbird
import RapidFlowCore
import NIOCore

/// The request context of the service's HTTP routes: Hummingbird's basic one, plus the
/// client's address for the access and audit logs, and who the request's token is.
public struct ServiceRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Set by `AccessMiddleware`.
    public var principal = Principal.admin

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
