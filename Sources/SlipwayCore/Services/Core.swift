import Foundation

/// Everything a command handler calls: the store and one service per noun.
/// Opened once per process (CLI) or once per server.
public final class Core: Sendable {
    public let settings: Settings
    public let paths: DataPaths
    public let store: Store
    public let authorizer: Authorizer
    public let users: UserService
    public let apps: AppService
    public let config: ConfigService
    public let storage: StorageService
    public let events: EventLog
    public let git: GitService
    public let engine: ContainerEngine
    public let builder: BuilderService
    public let builds: BuildService
    public let pushes: PushService
    public let runs: RunService
    public let routing: RoutingService
    public let certificates: CertificateService
    /// letsencrypt:*: certificates obtained and renewed over ACME (renewal runs in `slipway serve`).
    public let acme: ACMEService
    public let deploys: DeployService
    public let access: AccessService
    /// app.json cron: entries, runs, suspensions (the scheduler lives in `slipway serve`).
    public let cron: CronService
    /// Stored output of builds, deploys, deploy tasks, cron and detached runs.
    public let outputs: OutputService
    /// Backing services (postgres:, redis:) and their links to apps.
    public let datastores: DatastoreService

    /// Prepares the data directory and opens (migrating) the database. The engine is
    /// only contacted when a command needs it; the proxy only when routing changes.
    public init(settings: Settings, engine: ContainerEngine, probe: HTTPProbe, proxy: any Proxy, processes: any HostProcesses,
                acme acmeClient: any ACMEClient = NoACMEClient(), cluster: (any ClusterScheduler)? = nil) throws {
        self.engine = engine
        self.settings = settings
        paths = DataPaths(root: settings.dataDir)
        try paths.prepare()
        store = try Store(path: paths.database)
        outputs = OutputService(store: store, paths: paths, settings: settings)
        authorizer = Authorizer(store: store)
        users = UserService(store: store)
        apps = AppService(store: store, authorizer: authorizer, settings: settings, paths: paths)
        config = ConfigService(store: store)
        storage = StorageService(store: store, paths: paths, containers: Containers(engine: engine, instance: try paths.instanceID()),
                                 releasesToKeep: settings.releasesToKeep)
        events = EventLog(store: store)
        git = GitService(store: store, paths: paths, apps: apps)
        builder = BuilderService(store: store, paths: paths, settings: settings, engine: engine)
        let locks = DeployLocks(store: store, processes: processes)
        builds = BuildService(store: store, paths: paths, settings: settings, engine: engine, config: config, git: git, builder: builder, locks: locks)
        routing = RoutingService(store: store, apps: apps, settings: settings, paths: paths, proxy: proxy, locks: locks)
        certificates = CertificateService(store: store, paths: paths, routing: routing)
        acme = ACMEService(store: store, paths: paths, settings: settings, authorizer: authorizer, routing: routing,
                           certificates: certificates, client: acmeClient)
        deploys = DeployService(store: store, apps: apps, paths: paths, settings: settings, engine: engine, probe: probe, config: config,
                                storage: storage, builds: builds, git: git, routing: routing, locks: locks,
                                instance: try paths.instanceID(), cluster: cluster)
        // After deploys: `run` of an app set to kubernetes is a Job on its cluster.
        runs = RunService(settings: settings, paths: paths, engine: engine, config: config, storage: storage, builds: builds, events: events,
                          deploys: deploys)
        cron = CronService(store: store, settings: settings, apps: apps, deploys: deploys, runs: runs, outputs: outputs, registry: CronRunRegistry())
        access = AccessService(apps: apps, users: users, runs: runs)
        datastores = DatastoreService(store: store, paths: paths, settings: settings,
                                      containers: Containers(engine: engine, instance: try paths.instanceID()),
                                      deploys: deploys, authorizer: authorizer)
        pushes = PushService(apps: apps, git: git, deploys: deploys, users: users, authorizer: authorizer)
        // domains:* and certs:* of an app on a cluster reach its Ingress at once. Through a
        // weak Core: the deploy service holds the routing service, whose hook this is, so
        // capturing the deploy service would keep the whole Core (its database pool) forever.
        routing.cluster.set { [weak self] app in
            guard let self else { throw UserFacingError(.unavailable, "the server is shutting down; \(app)'s routing was not applied to its cluster, try again") }
            try self.deploys.applyClusterRouting(app)
        }
    }
}
