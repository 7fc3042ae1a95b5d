import Foundation

/// What confines one app's containers and builds, derived from the app's id (never
/// its name, so a reused name never inherits anything):
/// - its own network, which no other app's containers (and no build of another
///   app) sit on; the engine isolates such networks from each other, and nothing
///   on them reaches the host's loopback;
/// - its own range of host user ids: root inside the app's containers is an
///   unprivileged, otherwise unused uid on the host, different for every app of
///   the server. (Servers sharing one engine share these ranges: run one server
///   per engine where tenants of different servers must not meet.)
///
/// Every tenant container (process, deploy task, `run`, helper) and every build
/// gets the sandbox of its app; see `ContainerSpec.sandbox` and `BuildRequest.sandbox`.
public struct TenantSandbox: Sendable, Equatable, Codable {
    public let appID: Int64
    /// The server's instance id (several servers may share one engine, each with its apps 1, 2, ...).
    public let instance: String

    /// The host ids the sandbox's ids 0..<size map to.
    public let idRange: IDRange

    public init(appID: Int64, instance: String) throws {
        guard appID > 0, appID < Int64(IDRange.appCapacity) else {
            throw UserFacingError(.unavailable, "app id \(appID) has no user-namespace range left (at most \(IDRange.appCapacity - 1) apps per server)")
        }
        self.appID = appID
        self.instance = instance
        idRange = IDRange(hostBase: IDRange.firstHostID + UInt32(appID) * IDRange.size, size: IDRange.size)
    }

    /// The engine network of the app's containers and builds.
    public var network: String { "slipway-\(instance.prefix(12))-app-\(appID)" }
}

/// A contiguous range of host uids (and the same gids) a user namespace maps its
/// ids 0..<size to.
public struct IDRange: Sendable, Equatable, Codable {
    public let hostBase: UInt32
    public let size: UInt32

    /// 65,536 ids per app: every uid a Debian image uses (nobody is 65534).
    public static let size: UInt32 = 65_536
    /// The ranges live in the upper half of the id space, which `scripts/engine.sh`
    /// gives the engine's `containers` user in /etc/subuid and /etc/subgid, far from
    /// any login or system user. Range 0 is left to the engine itself.
    public static let firstHostID: UInt32 = 1 << 31
    public static let appCapacity = (UInt32.max - firstHostID) / size

    /// The host id of `id` inside the namespace.
    public func host(_ id: UInt32) -> UInt32 { hostBase + min(id, size - 1) }
}
