/// Everything the proxy needs to serve one app, built from state by `RoutingService`
/// and made live by the `Proxy` (nginx renders it into the app's one config file).
public struct Site: Sendable, Equatable {
    public let app: AppName
    /// Validated DNS names: `<app>.<global domain>` first, then the custom domains.
    public var names: [String]
    /// Loopback `host:port` addresses of the current web containers; none: a 503 page naming the app.
    public var endpoints: [String]
    public var tls: TLS?

    public struct TLS: Sendable, Equatable {
        public var certificatePath: String
        public var keyPath: String
        /// The site's names the certificate covers: served over HTTPS, their HTTP redirected.
        public var names: [String]
    }

    public init(app: AppName, names: [String], endpoints: [String], tls: TLS? = nil) {
        self.app = app
        self.names = names
        self.endpoints = endpoints
        self.tls = tls
    }

    /// Names served over plain HTTP (those the certificate does not cover).
    public var plainNames: [String] { names.filter { !(tls?.names.contains($0) ?? false) } }
}
