/// The reverse proxy in front of the apps' web containers, as routing needs it.
/// `RoutingService` decides from state what each app serves (a `Site`); a proxy
/// makes that live. The one real implementation is nginx (Sources/SlipwayNginx);
/// core tests use a recording fake.
///
/// Calls may block (a check, a reload) and are never made inside a SQLite
/// transaction. Changes of one proxy are serialized by `RoutingService`.
public protocol Proxy: Sendable {
    /// Makes `site` the app's live config: rendered, checked together with every
    /// other app's, written, and loaded without dropping requests in flight. A
    /// config the proxy refuses throws `UserFacingError` and leaves the previous
    /// one live; after any other failure `RoutingService` applies the previous site again.
    func apply(_ site: Site) throws

    /// Drops the app's config and its access logs (its name may be another app's
    /// next), then loads the rest again.
    func remove(app: AppName) throws

    /// Where the app's live config is (`proxy:report` shows it and whether it exists).
    func configPath(for app: AppName) -> String

    /// Where the proxy logs the app's requests, one per line (`proxy:logs` reads and follows it).
    func accessLogPath(for app: AppName) -> String
}
