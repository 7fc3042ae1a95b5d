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
        let apps = IDRange.appCapacity - IDRange.serviceCapacity
        guard appID > 0, appID < Int64(apps) else {
            throw UserFacingError(.unavailable, "app id \(appID) has no user-namespace range left (at most \(apps - 1) apps per server)")
        }
        self.appID = appID
        self.instance = instance
        serviceID = nil
        idRange = IDRange(hostBase: IDRange.firstHostID + UInt32(appID) * IDRange.size, size: IDRange.size)
    }

    /// A backing service's sandbox (`postgres:create`): a range and a network of its
    /// own, never an app's. Services take the ranges from the top of the id space down
    /// (service 1 the last one), so apps and services never meet however many of
    /// each are made. `appID` then holds that range's slot.
    public init(serviceID: Int64, instance: String) throws {
        guard serviceID > 0, serviceID <= Int64(IDRange.serviceCapacity) else {
            throw UserFacingError(.unavailable, "service id \(serviceID) has no user-namespace range left (at most \(IDRange.serviceCapacity) services per server)")
        }
        appID = Int64(IDRange.appCapacity) - serviceID
        self.serviceID = serviceID
        self.instance = instance
        idRange = IDRange(hostBase: IDRange.firstHostID + UInt32(appID) * IDRange.size, size: IDRange.size)
    }

    /// Set for a backing service's sandbox.
    public let serviceID: Int64?

    /// The engine network of the app's containers and builds (or the service's own).
    public var network: String {
        if let serviceID { return "slipway-\(instance.prefix(12))-svc-\(serviceID)" }
        return "slipway-\(instance.prefix(12))-app-\(appID)"
    }
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
    /// The slots at the top kept for backing services (`TenantSandbox(serviceID:)`).
    public static let serviceCapacity: UInt32 = 4096

    /// The host id of `id` inside the namespace.
    public func host(_ id: UInt32) -> UInt32 { hostBase + min(id, size - 1) }
}
