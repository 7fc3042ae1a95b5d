import Foundation
import GRDB

/// Where an app's processes run: on this host's container engine (`local`, the
/// default) or on a Kubernetes cluster (`kubernetes`, issue 20).
public enum Scheduler: String, Sendable, Codable, CaseIterable {
    case local, kubernetes

    /// Parses `local` or `kubernetes`, refusing anything else with the choices.
    public static func parse(_ raw: String) throws -> Scheduler {
        guard let scheduler = Scheduler(rawValue: raw) else {
            throw UserFacingError.invalid("unknown scheduler \(quoted(raw)); use local or kubernetes")
        }
        return scheduler
    }
}

/// `scheduler:*` and `registry:*`: which scheduler runs each app (rows of
/// `app_schedulers`; the default is the `scheduler` server setting), the image
/// registry a cluster pulls from, and everything the Kubernetes renderer reads about
/// an app (`clusterState`), gathered here so SlipwayKubernetes never reads the store.
public struct SchedulerService: Sendable {
    let store: Store
    let settings: Settings
    let paths: DataPaths

    /// What `scheduler:report` shows.
    public struct Report: Sendable, Codable, Equatable {
        public let app: String
        /// The scheduler the app's next deploy uses.
        public let scheduler: Scheduler
        /// Set on the app itself (nil: it follows the default).
        public let appScheduler: Scheduler?
        public let defaultScheduler: Scheduler
        /// The cluster settings (etc/slipway.toml), nil when unset.
        public let kubeconfig: String?
        public let kubeContext: String?
        public let registryServer: String?
        public let registryImageRepo: String?
        /// Whether `registry:login` stored credentials for the registry server.
        public let registryLoggedIn: Bool
    }

    /// The registry settings (`registry:set`).
    public struct Registry: Sendable, Equatable {
        public var server: String?
        public var imageRepo: String?
    }

    /// A `registry:set` property.
    public enum RegistryProperty: String, Sendable, CaseIterable {
        case server
        case imageRepo = "image-repo"

        var settingKey: String { self == .server ? "registry_server" : "registry_image_repo" }
    }

    // MARK: The scheduler

    /// The scheduler `app` is deployed with (its own, else the default).
    public func scheduler(of app: AppName) throws -> Scheduler {
        try store.read { db in try Self.scheduler(of: AppService.existing(app, db), db) }
    }

    /// The same inside a caller's transaction (the deploy gate).
    public static func scheduler(of app: App, _ db: Database) throws -> Scheduler {
        try appScheduler(app, db) ?? defaultScheduler(db)
    }

    static func appScheduler(_ app: App, _ db: Database) throws -> Scheduler? {
        try String.fetchOne(db, sql: "SELECT scheduler FROM app_schedulers WHERE app_id = ?", arguments: [app.id])
            .flatMap(Scheduler.init(rawValue:))
    }

    static func defaultScheduler(_ db: Database) throws -> Scheduler {
        try String.fetchOne(db, sql: "SELECT value FROM server_settings WHERE key = 'scheduler'").flatMap(Scheduler.init(rawValue:)) ?? .local
    }

    /// `scheduler:set APP kubernetes|local`. Config, storage declarations, domains and
    /// releases stay as they are; the next deploy uses the new scheduler. Moving to
    /// kubernetes is refused while the app mounts a host directory (a cluster cannot).
    /// `app` nil: the default (`--global`). `detail` ends the audit line (what was done
    /// on the cluster; `DeployService.setScheduler` is the command's entry).
    public func set(_ app: AppName?, _ scheduler: Scheduler, by caller: Caller, detail: String = "") throws {
        guard let app else { return try setDefault(scheduler, by: caller) }
        try store.write { db in
            let record = try AppService.existing(app, db)
            if scheduler == .kubernetes {
                let hostPaths = try String.fetchAll(db, sql: """
                    SELECT host_path || ':' || container_path FROM mounts WHERE app_id = ? AND host_path IS NOT NULL ORDER BY container_path
                    """, arguments: [record.id])
                if let first = hostPaths.first {
                    throw UserFacingError.invalid("\(app) mounts the host directory \(first.split(separator: ":").first ?? ""); the kubernetes scheduler cannot mount host directories (pods run on other machines): storage:unmount \(app) \(first) first, and use managed storage (storage:create) instead")
                }
            }
            try db.execute(sql: """
                INSERT INTO app_schedulers (app_id, scheduler, set_by, set_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(app_id) DO UPDATE SET scheduler = excluded.scheduler, set_by = excluded.set_by, set_at = excluded.set_at
                """, arguments: [record.id, scheduler.rawValue, caller.principal.name, Date()])
            try db.audit(caller, app: app.rawValue, detail: "set the scheduler to \(scheduler.rawValue)" + detail)
        }
    }

    /// `scheduler:set --global`: the scheduler of apps that set none.
    func setDefault(_ scheduler: Scheduler, by caller: Caller) throws {
        try store.write { db in
            try db.execute(sql: "INSERT INTO server_settings (key, value) VALUES ('scheduler', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           arguments: [scheduler.rawValue])
            try db.audit(caller, app: nil, detail: "set the default scheduler to \(scheduler.rawValue)")
        }
    }

    public func report(_ app: AppName) throws -> Report {
        try store.read { db in
            let record = try AppService.existing(app, db)
            let own = try Self.appScheduler(record, db)
            let fallback = try Self.defaultScheduler(db)
            let registry = try Self.registry(db)
            return Report(app: app.rawValue, scheduler: own ?? fallback, appScheduler: own, defaultScheduler: fallback,
                          kubeconfig: settings.kubeconfig, kubeContext: settings.kubeContext,
                          registryServer: registry.server, registryImageRepo: registry.imageRepo,
                          registryLoggedIn: try registry.server.map { try credentials(for: $0) != nil } ?? false)
        }
    }

    /// The refusal the deploy gate gives an app set to kubernetes when this server has
    /// no cluster (no `kubeconfig` setting): never a silent local deploy.
    static func refusal(_ app: AppName) -> UserFacingError {
        UserFacingError(.unavailable, "\(app) is set to the kubernetes scheduler, and this server has no cluster configured (an admin sets kubeconfig in etc/slipway.toml; k8s:render \(app) shows what it would apply); nothing was deployed. scheduler:set \(app) local deploys it on this host again")
    }

    // MARK: The registry

    static func registry(_ db: Database) throws -> Registry {
        func value(_ property: RegistryProperty) throws -> String? {
            try String.fetchOne(db, sql: "SELECT value FROM server_settings WHERE key = ?", arguments: [property.settingKey])
        }
        return Registry(server: try value(.server), imageRepo: try value(.imageRepo))
    }

    public func registry() throws -> Registry { try store.read { db in try Self.registry(db) } }

    /// `registry:set server|image-repo VALUE` (an empty value unsets it).
    public func setRegistry(_ property: RegistryProperty, to raw: String, by caller: Caller) throws {
        let value = raw.isEmpty ? nil : try Self.validated(property, raw)
        try store.write { db in
            if let value {
                try db.execute(sql: "INSERT INTO server_settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                               arguments: [property.settingKey, value])
            } else {
                try db.execute(sql: "DELETE FROM server_settings WHERE key = ?", arguments: [property.settingKey])
            }
            try db.audit(caller, app: nil, detail: value.map { "set the registry's \(property.rawValue) to \($0)" } ?? "unset the registry's \(property.rawValue)")
        }
    }

    /// A registry host (`registry.example.com`, `10.0.0.5:5000`) or an image
    /// repository path (`team/apps`): lowercase, no scheme, no spaces.
    static func validated(_ property: RegistryProperty, _ raw: String) throws -> String {
        switch property {
        case .server:
            let parts = raw.split(separator: ":", omittingEmptySubsequences: false)
            let hostOK = parts.count <= 2 && (DomainName.isValid(String(parts[0])) || parts[0] == "localhost"
                || parts[0].split(separator: ".").count == 4 && parts[0].split(separator: ".").allSatisfy { UInt8($0) != nil })
            let portOK = parts.count == 1 || UInt16(parts[1]).map { $0 > 0 } == true
            guard raw.count <= 253, hostOK, portOK, raw == raw.lowercased() else {
                throw UserFacingError.invalid("registry server \(quoted(raw)) must be a host name with an optional port, such as registry.example.com or 10.0.0.5:5000 (no https://, no path)")
            }
            return raw
        case .imageRepo:
            let component = #"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"#
            guard raw.count <= 200, raw.range(of: "^\(component)(?:/\(component))*$", options: .regularExpression) != nil else {
                throw UserFacingError.invalid("registry image-repo \(quoted(raw)) must be a repository path such as team/apps: lowercase letters, digits, '.', '_', '-' and '/'")
            }
            return raw
        }
    }

    /// Where `registry:login` keeps credentials: Docker's config format, one file, 0600,
    /// in a 0700 directory of the data directory. Never in argv, never printed.
    var credentialsFile: String { paths.root + "/registry/auth.json" }

    /// `registry:login SERVER USER` with the password read from stdin by the command.
    public func login(server rawServer: String, user: String, password: String, by caller: Caller) throws {
        let server = try Self.validated(.server, rawServer)
        guard (1...256).contains(user.count), !user.contains(":"), user.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw UserFacingError.invalid("registry user \(quoted(user)) must be 1-256 printable characters without spaces or ':'")
        }
        var secret = password
        if secret.hasSuffix("\n") { secret.removeLast() }
        if secret.hasSuffix("\r") { secret.removeLast() }
        guard !secret.isEmpty, secret.count <= 4096, !secret.contains(where: \.isNewline) else {
            throw UserFacingError.invalid("the registry password is read from standard input: one line, 1-4096 characters (e.g. echo \"$TOKEN\" | ssh ... registry:login \(server) \(user))")
        }
        try store.write { db in
            var auths = try readCredentials()
            auths[server] = Data("\(user):\(secret)".utf8).base64EncodedString()
            try writeCredentials(auths)
            try db.audit(caller, app: nil, detail: "stored registry credentials for \(user) at \(server)")
        }
    }

    /// The `auth` value (`base64(user:password)`) stored for `server`, if any.
    func credentials(for server: String) throws -> String? { try readCredentials()[server] }

    private func readCredentials() throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: credentialsFile) else { return [:] }
        struct File: Decodable { struct Auth: Decodable { let auth: String }; let auths: [String: Auth] }
        return (try JSONDecoder().decode(File.self, from: data)).auths.mapValues(\.auth)
    }

    /// Written to a temporary file created 0600 (open(2) with the mode, so it is never
    /// readable by others, not even for a moment), then renamed over the old one.
    private func writeCredentials(_ auths: [String: String]) throws {
        let directory = paths.root + "/registry"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let json = Self.dockerConfig(auths)
        let temporary = directory + "/.auth.json.\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw UserFacingError(.unavailable, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(json.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == bytes.count, rename(temporary, credentialsFile) == 0 else {
            unlink(temporary)
            throw UserFacingError(.unavailable, "cannot write \(credentialsFile): \(String(cString: strerror(errno)))")
        }
    }

    /// `{"auths":{"<server>":{"auth":"<base64>"}}}`, keys sorted: the content of a
    /// `.dockerconfigjson` pull Secret as well.
    static func dockerConfig(_ auths: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let value = ["auths": auths.mapValues { ["auth": $0] }]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    // MARK: What a cluster rendering reads

    /// Everything about an app's current release that a scheduler other than the local
    /// one needs, as plain values (SlipwayKubernetes' `KubernetesAppSpec(state:)` maps it).
    public struct AppState: Sendable {
        public let app: AppName
        /// The app's first owner by name (its creator when it has no owner left).
        public let tenant: String
        public let release: Int
        /// The release's image on this host.
        public let localImage: String
        public let snapshot: ReleaseSnapshot
        /// Process type -> effective resource limits.
        public let limits: [String: ResourceLimits]
        /// The app-level limits (`resource:limit APP`), which local deploy tasks get: the
        /// predeploy and postdeploy Jobs'.
        public let taskLimits: ResourceLimits
        /// The `run` type's limits, which local `run` and cron containers get: run and cron Jobs'.
        public let runLimits: ResourceLimits
        /// Process type -> when `ps:restart` last restarted it on the cluster (RFC 3339);
        /// a type never restarted has none.
        public let restartedAt: [String: String]
        public let checks: ProcessSettingsService.Values
        /// Every current `storage:mount` (all phases).
        public let mounts: [StorageService.MountInfo]
        /// Default domain first, then custom ones.
        public let domains: [String]
        /// PEM chain, PEM key and the domains they cover.
        public let certificate: (chain: String, key: String, names: [String])?
        /// The current cron entries (of the current release).
        public let cron: [CronEntry]
        public let registry: Registry
        /// `.dockerconfigjson` for the registry server when `registry:login` stored one.
        public let dockerConfigJSON: String?
        public let settings: Settings
    }

    /// The app's current release and what it runs with. Throws when it has none yet.
    public func clusterState(of app: AppName, storage: StorageService, routing: RoutingService, cron: CronService) throws -> AppState {
        let release = try store.read { db -> Release in
            let record = try AppService.existing(app, db)
            guard let id = record.currentReleaseId, let release = try Release.fetchOne(db, key: id) else {
                throw UserFacingError.notFound("\(app) has no release yet; deploy it once (git push) before rendering it for a cluster")
            }
            return release
        }
        let snapshot = try JSONDecoder().decode(ReleaseSnapshot.self, from: Data(release.snapshot.utf8))
        return try clusterState(of: app, release: release, snapshot: snapshot, storage: storage, routing: routing)
    }

    /// `release` of `app` with `snapshot` (a deploy's new release, its formation the
    /// app's scale now), as the cluster scheduler rolls it out. Cron entries are the
    /// release's own (app.json of its revision).
    func clusterState(of app: AppName, release: Release, snapshot: ReleaseSnapshot, storage: StorageService, routing: RoutingService,
                      restarting: ClusterRestart? = nil) throws -> AppState {
        let (record, owners, registry, restarts) = try store.read { db in
            let record = try AppService.existing(app, db)
            let owners = try String.fetchAll(db, sql: """
                SELECT u.name FROM app_members m JOIN users u ON u.id = m.user_id WHERE m.app_id = ? AND m.role = 'owner' ORDER BY u.name
                """, arguments: [record.id])
            let restarts = try Row.fetchAll(db, sql: "SELECT process_type, restarted_at FROM cluster_restarts WHERE app_id = ?", arguments: [record.id])
            return (record, owners, try Self.registry(db), Dictionary(restarts.map { ($0["process_type"] as String, $0["restarted_at"] as String) }) { _, last in last })
        }
        var restartedAt = restarts
        // A ps:restart under way: rolled out with its new time, recorded once it serves.
        if let restarting { for type in restarting.types { restartedAt[type] = restarting.at } }
        let resources = ResourceService(store: store, settings: settings)
        var limits: [String: ResourceLimits] = [:]
        for type in snapshot.plan.processes.keys { limits[type] = try resources.limits(for: app, processType: type) }
        let site = try store.read { db in try routing.site(of: record, endpoints: [], db) }
        var certificate: (String, String, [String])?
        if let tls = site.tls {
            let chain = try String(contentsOfFile: tls.certificatePath, encoding: .utf8)
            let key = try String(contentsOfFile: tls.keyPath, encoding: .utf8)
            certificate = (chain, key, tls.names)
        }
        return AppState(app: app, tenant: owners.first ?? record.createdBy ?? "admin", release: release.version, localImage: release.image,
                        snapshot: snapshot, limits: limits, taskLimits: try resources.limits(for: app, processType: nil),
                        runLimits: try resources.limits(for: app, processType: ResourceService.runType), restartedAt: restartedAt, checks: try ProcessSettingsService(store: store, settings: settings).values(of: app),
                        mounts: try storage.mounts(of: app), domains: site.names, certificate: certificate,
                        cron: snapshot.plan.cron ?? [], registry: registry,
                        dockerConfigJSON: try registry.server.flatMap { server in try credentials(for: server).map { Self.dockerConfig([server: $0]) } },
                        settings: settings)
    }
}

/// A `ps:restart` of an app on the cluster: the process types it restarts and the time
/// their pod templates are annotated with (a new value replaces every pod, as
/// `kubectl rollout restart` does).
struct ClusterRestart: Sendable {
    let types: [String]
    let at: String

    init(types: [String], at date: Date = Date()) {
        self.types = types
        let format = ISO8601DateFormatter()
        format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        at = format.string(from: date)
    }

    /// Recorded with the switch (`DeployService.makeCurrent`'s transaction).
    func record(appID: Int64, _ db: Database) throws {
        for type in types {
            try db.execute(sql: """
                INSERT INTO cluster_restarts (app_id, process_type, restarted_at) VALUES (?, ?, ?)
                ON CONFLICT(app_id, process_type) DO UPDATE SET restarted_at = excluded.restarted_at
                """, arguments: [appID, type, at])
        }
    }
}

extension Core {
    /// `scheduler:*`, `registry:*` and what `k8s:render` reads.
    public var scheduler: SchedulerService { SchedulerService(store: store, settings: settings, paths: paths) }

    /// The current release of `app` as a cluster scheduler sees it.
    public func clusterState(of app: AppName) throws -> SchedulerService.AppState {
        try scheduler.clusterState(of: app, storage: storage, routing: routing, cron: cron)
    }
}
