import Foundation
import GRDB

extension DataPaths {
    /// Everything of backing services: `services/<id>/data` is one service's data.
    public var servicesRoot: String { root + "/services" }
    public func serviceData(_ id: Int64) -> String { "\(servicesRoot)/\(id)/data" }
}

/// Backing services (`postgres:*`, later `redis:*`): the rows, their links to apps,
/// and their one container each.
///
/// - A service is owned by its creator; admins manage all; writers of a linked app may
///   use it (`DatastoreAccess`). Others get the missing service's answer.
/// - Its container runs in a sandbox of its own (`TenantSandbox(serviceID:)`: its own
///   uid range and network), restart policy always, no published port, its data bound
///   from `<data-dir>/services/<id>/data`. It joins the network of each linked app
///   (reachable there as `<kind>-<name>`) and no other.
/// - The password is generated here, passed as the container's environment through
///   the engine's API (never a command line), and shown only by `info --show-password`.
public struct DatastoreService: Sendable {
    let store: Store
    let paths: DataPaths
    let settings: Settings
    let containers: Containers
    let deploys: DeployService
    let authorizer: Authorizer

    /// The image Slipway builds itself (from Debian's packages on the builder) when
    /// `create` finds it missing.
    public static func defaultImage(_ kind: DatastoreKind) -> String {
        switch kind {
        case .postgres: "slipway/postgres:15"
        case .redis: "slipway/redis:7"
        }
    }

    /// The answer for a missing service and for one the caller may not see.
    public static func notFoundMessage(_ kind: DatastoreKind, _ rawName: String) -> String {
        let hint = DatastoreName.isValid(rawName) ? "; \(kind.namespace):create \(rawName) makes it" : ""
        return "\(kind.namespace) service \(quoted(rawName)) not found\(hint)"
    }

    static func find(_ kind: DatastoreKind, _ name: DatastoreName, _ db: Database) throws -> Datastore? {
        try Datastore.filter(Column("kind") == kind.rawValue && Column("name") == name.rawValue).fetchOne(db)
    }

    static func existing(_ kind: DatastoreKind, _ name: DatastoreName, _ db: Database) throws -> Datastore {
        guard let service = try find(kind, name, db) else { throw UserFacingError.notFound(notFoundMessage(kind, name.rawValue)) }
        return service
    }

    /// The container's name: `postgres.db` (app containers always have three parts).
    static func containerName(_ service: Datastore) -> String { "\(service.kind.rawValue).\(service.name)" }
    /// The host name linked apps reach it by, on their own network.
    public static func hostAlias(_ service: Datastore) -> String { "\(service.kind.rawValue)-\(service.name)" }
    /// The database Postgres creates at first start: the service's name, '-' as '_'.
    static func databaseName(_ service: Datastore) -> String { service.name.rawValue.replacingOccurrences(of: "-", with: "_") }

    /// The URL a link puts in the app's config.
    public static func url(_ service: Datastore) -> String {
        switch service.kind {
        case .postgres: "postgres://postgres:\(service.password)@\(hostAlias(service)):\(service.kind.port)/\(databaseName(service))"
        case .redis: "redis://:\(service.password)@\(hostAlias(service)):\(service.kind.port)"
        }
    }

    // MARK: Reading

    /// One service as `list` and `info` show it.
    public struct Info: Sendable, Codable, Equatable {
        public let kind: String
        public let name: String
        public let owner: String
        public let image: String
        /// From the image's `org.slipway.service-version` label; "unknown" for other images.
        public var version: String
        public let state: String
        public let createdAt: Date
        /// Where linked apps reach it (their own network only).
        public let host: String
        public let port: Int
        public let database: String
        /// Each linked app with its config var: `web (DATABASE_URL)`.
        public let links: [String]
        /// Only with `--show-password`, to its owner or an admin.
        public var password: String?
    }

    /// The services of `kind` the principal may see (owners their own, admins all,
    /// writers of a linked app those), by name.
    public func list(_ kind: DatastoreKind, for principal: Principal) throws -> [Info] {
        try store.read { db in
            try Datastore.filter(Column("kind") == kind.rawValue).order(Column("name")).fetchAll(db)
                .filter { try authorizer.access(of: principal, to: $0, in: db) != nil }
                .map { try describe($0, db) }
        }
    }

    /// One service; the authorizer has checked the caller may use it, and `showPassword`
    /// that it manages it.
    public func info(_ kind: DatastoreKind, _ name: DatastoreName, showPassword: Bool) throws -> Info {
        var info = try store.read { db in
            let service = try Self.existing(kind, name, db)
            var found = try describe(service, db)
            if showPassword { found.password = service.password }
            return found
        }
        let labels = (try? containers.inspectImage(info.image))??.labels ?? [:]
        info.version = labels[Self.versionLabel] ?? "unknown"
        return info
    }

    private func describe(_ service: Datastore, _ db: Database) throws -> Info {
        let owner = try service.ownerId.flatMap { try String.fetchOne(db, sql: "SELECT name FROM users WHERE id = ?", arguments: [$0]) } ?? "root@host"
        let names = try AppService.names(db)
        let links = try DatastoreLink.filter(Column("service_id") == service.id).fetchAll(db)
            .compactMap { link in names[link.appId].map { "\($0) (\(link.alias))" } }.sorted()
        return Info(kind: service.kind.rawValue, name: service.name.rawValue, owner: owner, image: service.image, version: "unknown",
                    state: service.state, createdAt: service.createdAt, host: Self.hostAlias(service), port: service.kind.port,
                    database: service.kind == .postgres ? Self.databaseName(service) : "", links: links)
    }

    // MARK: Create and destroy

    /// Creates the service owned by the caller and starts its container, building the
    /// default image first when it is missing. A failed start leaves nothing behind.
    public func create(_ kind: DatastoreKind, _ name: DatastoreName, image: String?, by caller: Caller,
                       progress: @escaping @Sendable (String) -> Void) throws -> Datastore {
        let image = try checkedImage(kind, image ?? (kind == .postgres ? settings.postgresImage : nil) ?? Self.defaultImage(kind), progress: progress)
        let service = try store.write { db -> Datastore in
            guard try Self.find(kind, name, db) == nil else {
                throw UserFacingError.conflict("\(kind.namespace) service \(quoted(name.rawValue)) already exists; choose another name")
            }
            var service = Datastore(kind: kind, name: name, ownerId: caller.principal.userID, image: image,
                                    password: Self.newPassword(), state: "created", createdAt: Date())
            try service.insert(db)
            try db.audit(caller, app: nil, detail: "created \(kind.namespace) service \(name) (\(image))")
            return service
        }
        do {
            try makeDataDirectory(service)
            try start(service)
            try setState(service, "running")
        } catch {
            // Nothing half-made stays: the container, its data and the row go.
            try? removeContainer(service)
            try? FileManager.default.removeItem(atPath: "\(paths.servicesRoot)/\(service.id!)")
            _ = try? store.write { db in try Datastore.deleteOne(db, key: service.id) }
            throw error
        }
        return try store.read { db in try Self.existing(kind, name, db) }
    }

    /// Removes the service: refused while an app is linked to it (before `confirm`, the
    /// caller's question, is asked). Its container, data and row go.
    public func destroy(_ kind: DatastoreKind, _ name: DatastoreName, by caller: Caller, confirm: () throws -> Void = {}) throws {
        let service = try store.read { db -> Datastore in
            let service = try Self.existing(kind, name, db)
            try refuseWhileLinked(service, db)
            return service
        }
        try confirm()
        try removeContainer(service)
        try store.write { db in
            // Linked meanwhile: the container is gone, the row and data stay; link again restarts it.
            try refuseWhileLinked(service, db)
            try Datastore.deleteOne(db, key: service.id)
            try db.audit(caller, app: nil, detail: "destroyed \(kind.namespace) service \(name) and its data")
        }
        try? FileManager.default.removeItem(atPath: "\(paths.servicesRoot)/\(service.id!)")
        if let sandbox = try? sandbox(of: service) { _ = try? containers.call { engine in try await engine.removeNetwork(of: sandbox) } }
    }

    private func refuseWhileLinked(_ service: Datastore, _ db: Database) throws {
        let names = try AppService.names(db)
        let apps = try DatastoreLink.filter(Column("service_id") == service.id).fetchAll(db).compactMap { names[$0.appId]?.rawValue }.sorted()
        guard apps.isEmpty else {
            throw UserFacingError.conflict("\(service.kind.namespace) service \(service.name) is linked to \(apps.joined(separator: ", ")); \(service.kind.namespace):unlink \(service.name) <app> first")
        }
    }

    // MARK: Links

    /// Links the service to `app`: its URL in the app's config as `alias`, the service
    /// on the app's network, and a redeploy of a deployed app (unless `restart` is false).
    public func link(_ kind: DatastoreKind, _ name: DatastoreName, to app: AppName, alias: EnvKey?, restart: Bool,
                     by caller: Caller, output: @escaping DeployService.Output) throws {
        let service = try store.read { db in try Self.existing(kind, name, db) }
        let alias = alias ?? kind.defaultAlias
        try deploys.changeAppConfig(app, restart: restart, by: caller, output: output, store: {
            try store.write { db in
                let record = try AppService.existing(app, db)
                if try DatastoreLink.filter(Column("service_id") == service.id && Column("app_id") == record.id).fetchOne(db) != nil {
                    throw UserFacingError.conflict("\(kind.namespace) service \(name) is already linked to \(app)")
                }
                if try String.fetchOne(db, sql: "SELECT key FROM config_vars WHERE app_id = ? AND key = ?", arguments: [record.id, alias.rawValue]) != nil {
                    throw UserFacingError.conflict("\(app) already has config var \(alias); link with --alias OTHER_NAME, or config:unset \(app) \(alias) first")
                }
                var link = DatastoreLink(serviceId: service.id!, appId: record.id!, alias: alias.rawValue, createdAt: Date())
                try link.insert(db)
                try db.execute(sql: "INSERT INTO config_vars (app_id, key, value) VALUES (?, ?, ?)",
                               arguments: [record.id, alias.rawValue, Self.url(service)])
                try db.audit(caller, app: app.rawValue, detail: "linked \(kind.namespace) service \(name) as \(alias)")
            }
        }, stored: {
            try joinNetwork(of: app, service)
        })
    }

    /// Undoes `link`: the config var and the network go, a deployed app is redeployed.
    public func unlink(_ kind: DatastoreKind, _ name: DatastoreName, from app: AppName, restart: Bool,
                       by caller: Caller, output: @escaping DeployService.Output) throws {
        let service = try store.read { db in try Self.existing(kind, name, db) }
        try deploys.changeAppConfig(app, restart: restart, by: caller, output: output, store: {
            try store.write { db in
                let record = try AppService.existing(app, db)
                guard let link = try DatastoreLink.filter(Column("service_id") == service.id && Column("app_id") == record.id).fetchOne(db) else {
                    throw UserFacingError.conflict("\(kind.namespace) service \(name) is not linked to \(app)")
                }
                try db.execute(sql: "DELETE FROM service_links WHERE service_id = ? AND app_id = ?", arguments: [service.id, record.id])
                try db.execute(sql: "DELETE FROM config_vars WHERE app_id = ? AND key = ?", arguments: [record.id, link.alias])
                try db.audit(caller, app: app.rawValue, detail: "unlinked \(kind.namespace) service \(name) (\(link.alias))")
            }
        }, stored: {
            let appID = try store.read { db in try AppService.existing(app, db).id! }
            let appSandbox = try TenantSandbox(appID: appID, instance: containers.instance)
            try containers.call { engine in try await engine.disconnectNetwork(of: appSandbox, container: Self.containerName(service)) }
        })
    }

    // MARK: The container

    /// Stops and starts the container again (made anew if it is gone), on its linked apps' networks.
    public func restart(_ kind: DatastoreKind, _ name: DatastoreName, by caller: Caller) throws {
        let service = try store.read { db in try Self.existing(kind, name, db) }
        try removeContainer(service)
        try start(service)
        try setState(service, "running")
        try store.write { db in try db.audit(caller, app: nil, detail: "restarted \(kind.namespace) service \(name)") }
    }

    /// The container's id, for logs, connect, export and import.
    public func containerID(_ kind: DatastoreKind, _ name: DatastoreName) throws -> String {
        let service = try store.read { db in try Self.existing(kind, name, db) }
        guard let details = try containers.inspect(Self.containerName(service)), details.running else {
            throw UserFacingError.conflict("\(kind.namespace) service \(name) is not running; \(kind.namespace):restart \(name) starts it")
        }
        return details.id
    }

    /// The container's output (the last `tail` lines); `follow` streams until `isCancelled`.
    public func logs(_ kind: DatastoreKind, _ name: DatastoreName, tail: Int, follow: Bool, output: @escaping DeployService.Output,
                     isCancelled: @escaping @Sendable () -> Bool) throws {
        let id = try containerID(kind, name)
        let lines = LineSplitter(output: output)
        guard follow else {
            try containers.call { engine in try await engine.streamLogs(id, follow: false, tail: tail) { lines.feed($0.data) } }
            return lines.flush()
        }
        let engine = containers.engine
        let task = Task { try? await engine.streamLogs(id, follow: true, tail: tail) { lines.feed($0.data) } }
        while !isCancelled() { Thread.sleep(forTimeInterval: 0.2) }
        task.cancel()
        lines.flush()
    }

    func sandbox(of service: Datastore) throws -> TenantSandbox {
        try TenantSandbox(serviceID: service.id!, instance: containers.instance)
    }

    /// The container, on the service's own network, then on each linked app's.
    func start(_ service: Datastore) throws {
        let sandbox = try sandbox(of: service)
        var spec = ContainerSpec(image: service.image)
        spec.name = Self.containerName(service)
        spec.sandbox = sandbox
        spec.restartPolicy = .always
        spec.binds = ["\(paths.serviceData(service.id!)):\(Self.dataPath(service.kind))"]
        // Through the API's Env: no command line on the host shows it.
        switch service.kind {
        case .postgres:
            spec.environment = ["POSTGRES_PASSWORD": service.password, "POSTGRES_DB": Self.databaseName(service)]
        case .redis:
            spec.environment = ["REDIS_PASSWORD": service.password]
        }
        var labels = containers.labels(app: nil, kind: .service)
        labels.type = service.kind.rawValue
        labels.index = service.name.rawValue
        labels.by = try store.read { db in try service.ownerId.flatMap { try String.fetchOne(db, sql: "SELECT name FROM users WHERE id = ?", arguments: [$0]) } } ?? ""
        try containers.call { engine in try await engine.ensureNetwork(of: sandbox) }
        let id = try containers.start(spec, labels: labels)
        let apps = try store.read { db in try Int64.fetchAll(db, sql: "SELECT app_id FROM service_links WHERE service_id = ?", arguments: [service.id]) }
        for appID in apps { try joinNetwork(appID: appID, service) }
        try waitUntilReady(service, containerID: id)
    }

    /// Waits until the service accepts connections in its container, so that
    /// `create && import` and a linked app's first request find it up (the first start
    /// runs initdb first), and a restore, import or upgrade knows its image works.
    /// `pg_isready` asks 127.0.0.1 there, not the socket: the official image's
    /// first-start server listens on its socket only, then restarts. Redis must answer
    /// PING with PONG (while it loads its data it answers LOADING).
    func waitUntilReady(_ service: Datastore, containerID: String, seconds: Double = 90) throws {
        let deadline = Date().addingTimeInterval(seconds), ns = service.kind.namespace
        let (probe, environment): ([String], [String: String]) = switch service.kind {
        case .postgres: (["pg_isready", "-q", "-h", "127.0.0.1", "-p", "\(service.kind.port)"], [:])
        case .redis: (["sh", "-c", "[ \"$(redis-cli --no-auth-warning -h 127.0.0.1 -p \(service.kind.port) ping)\" = PONG ]"],
                      ["REDISCLI_AUTH": service.password])
        }
        while true {
            if let answer = try? execInService(containerID, probe, environment: environment, input: nil, output: nil), answer.status == 0 { return }
            if let details = try containers.inspect(containerID), !details.running {
                let why = containers.lastLines(containerID, count: 5).joined(separator: " / ")
                throw UserFacingError(.unavailable, "\(ns) service \(service.name) stopped while starting (\(why)); \(ns):logs \(service.name) shows more")
            }
            guard Date() < deadline else {
                throw UserFacingError(.unavailable, "\(ns) service \(service.name) accepted no connection within \(Int(seconds)) s; \(ns):logs \(service.name) shows why")
            }
            Thread.sleep(forTimeInterval: 0.25)
        }
    }

    private func joinNetwork(of app: AppName, _ service: Datastore) throws {
        try joinNetwork(appID: try store.read { db in try AppService.existing(app, db).id! }, service)
    }

    private func joinNetwork(appID: Int64, _ service: Datastore) throws {
        let appSandbox = try TenantSandbox(appID: appID, instance: containers.instance)
        let name = Self.containerName(service), alias = Self.hostAlias(service)
        try containers.call { engine in
            try await engine.ensureNetwork(of: appSandbox)
            try await engine.connectNetwork(of: appSandbox, container: name, alias: alias)
        }
    }

    /// Disconnects every service linked to the app from the app's network
    /// (`apps:destroy`, before the network goes).
    static func leaveNetwork(ofApp appID: Int64, store: Store, containers: Containers) throws {
        let services = try store.read { db in
            try Datastore.fetchAll(db, sql: "SELECT s.* FROM services s JOIN service_links l ON l.service_id = s.id WHERE l.app_id = ? ORDER BY s.id",
                                   arguments: [appID])
        }
        guard !services.isEmpty else { return }
        let appSandbox = try TenantSandbox(appID: appID, instance: containers.instance)
        for service in services {
            try containers.call { engine in try await engine.disconnectNetwork(of: appSandbox, container: containerName(service)) }
        }
    }

    func removeContainer(_ service: Datastore) throws {
        guard let details = try containers.inspect(Self.containerName(service)) else { return }
        try containers.stop([details.id], grace: 20, remove: true)
    }

    private func setState(_ service: Datastore, _ state: String) throws {
        try store.write { db in try db.execute(sql: "UPDATE services SET state = ? WHERE id = ?", arguments: [state, service.id]) }
    }

    /// Where the image keeps its data (the official images' paths too).
    static func dataPath(_ kind: DatastoreKind) -> String {
        switch kind {
        case .postgres: "/var/lib/postgresql/data"
        case .redis: "/data"
        }
    }

    /// The data directory, owned by root of the service's user namespace (the image's
    /// entrypoint gives it to its own user), mode 0700.
    private func makeDataDirectory(_ service: Datastore) throws {
        let directory = paths.serviceData(service.id!)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let sandbox = try sandbox(of: service)
        let base = try containers.call { engine in try await engine.userNamespaceBase(of: sandbox) }
        // The server runs as root in production; a test's data dir owned by its user stays so.
        if getuid() == 0, chown(directory, base, base) != 0 {
            throw UserFacingError(.unavailable, "cannot give \(directory) to the service's user range (errno \(errno))")
        }
    }

    static func newPassword() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(UInt8.random(in: 0...15, using: &generator), radix: 16) }.joined()
    }

    // MARK: Images

    /// The label Slipway's service images carry their version in.
    public static let versionLabel = "org.slipway.service-version"

    /// Builds the default image when it is missing; another image must be on the server.
    func ensureImage(_ kind: DatastoreKind, _ image: String, progress: @escaping @Sendable (String) -> Void) throws {
        guard try containers.inspectImage(image) == nil else { return }
        guard image == Self.defaultImage(kind) else {
            throw UserFacingError.invalid("image \(quoted(image)) is not on this server (Slipway pulls from no registry); leave --image out for \(Self.defaultImage(kind)), or ask an admin to load it")
        }
        try bootstrap(kind, progress: progress)
    }

    /// Builds Slipway's image of `kind` FROM the builder image, with Debian's package
    /// from the configured mirror (`services:bootstrap`; `create` runs it when missing).
    public func bootstrap(_ kind: DatastoreKind, by caller: Caller? = nil, progress: @escaping @Sendable (String) -> Void) throws {
        let builder = settings.builderImage, image = Self.defaultImage(kind)
        guard try containers.inspectImage(builder) != nil else {
            throw UserFacingError(.unavailable, "the builder image \(builder) is missing; an admin can make it with builder:bootstrap")
        }
        let scratch = paths.builds + "/service-image-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch + "/context", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let recipe = DatastoreImages.recipe(kind, builder: builder, mirror: settings.builderMirror)
        for (file, text) in recipe.files {
            try text.write(toFile: scratch + "/context/" + file, atomically: true, encoding: .utf8)
        }
        let tar = try ProcessRunner.run("/bin/tar", ["-C", scratch + "/context", "-cf", scratch + "/context.tar", "."])
        guard tar.status == 0 else { throw UserFacingError(.unavailable, "packing the build context of \(image) failed: \(tar.stderr)") }
        progress("-----> Building \(image) from Debian's \(recipe.package) on \(builder) (once; a minute or two)")
        let started = ContinuousClock.now
        try BuildService.runBuild(BuildRequest(contextTarFile: scratch + "/context.tar", tag: image), on: containers.engine) { line in
            if line.hasPrefix("STEP") || line.hasPrefix("Step") { progress("       " + line) }
        }
        if let caller { try store.write { db in try db.audit(caller, app: nil, detail: "built service image \(image)") } }
        progress("=====> \(image) ready in \(started.duration(to: .now).components.seconds) s")
    }
}

/// How Slipway's own service images are made: a Dockerfile FROM the builder and the
/// entrypoint it copies. The entrypoint keeps the official images' contract
/// (POSTGRES_PASSWORD, POSTGRES_DB, data in /var/lib/postgresql/data), so `--image`
/// may name an official image loaded on the server.
enum DatastoreImages {
    struct Recipe {
        let package: String
        let files: [(String, String)]
    }

    static func recipe(_ kind: DatastoreKind, builder: String, mirror: String) -> Recipe {
        switch kind {
        case .postgres:
            let dockerfile = """
                FROM \(builder)
                RUN printf 'deb \(mirror) bookworm main\\n' > /etc/apt/sources.list && rm -f /etc/apt/sources.list.d/*.list \\
                    && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-15 \\
                    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
                COPY entrypoint.sh /usr/local/bin/slipway-postgres
                RUN chmod 0755 /usr/local/bin/slipway-postgres
                ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
                LABEL \(DatastoreService.versionLabel)=15 org.slipway.service=postgres
                STOPSIGNAL SIGINT
                CMD ["/usr/local/bin/slipway-postgres"]

                """
            // Runs as root of the service's user namespace: gives the data to postgres,
            // makes the cluster on first start (password from a file, never argv), then
            // becomes postgres without the password in its environment.
            let entrypoint = """
                #!/bin/sh
                set -eu
                mkdir -p "$PGDATA" /run/postgresql
                chown postgres:postgres "$PGDATA" /run/postgresql
                chmod 0700 "$PGDATA"
                if [ ! -s "$PGDATA/PG_VERSION" ]; then
                    pwfile=$(mktemp)
                    printf '%s\\n' "$POSTGRES_PASSWORD" > "$pwfile"
                    chown postgres "$pwfile"
                    runuser -u postgres -- initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \\
                        --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pwfile" >/dev/null
                    rm -f "$pwfile"
                    printf "listen_addresses = '*'\\n" >> "$PGDATA/postgresql.conf"
                    printf 'host all all 0.0.0.0/0 scram-sha-256\\nhost all all ::/0 scram-sha-256\\n' >> "$PGDATA/pg_hba.conf"
                    if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
                        echo "CREATE DATABASE \\"$POSTGRES_DB\\";" | runuser -u postgres -- postgres --single -D "$PGDATA" postgres >/dev/null
                    fi
                    echo "slipway-postgres: database cluster made"
                fi
                unset POSTGRES_PASSWORD
                exec runuser -u postgres -- postgres -D "$PGDATA"

                """
            return Recipe(package: "postgresql-15", files: [("Dockerfile", dockerfile), ("entrypoint.sh", entrypoint)])
        case .redis:
            let dockerfile = """
                FROM \(builder)
                RUN printf 'deb \(mirror) bookworm main\\n' > /etc/apt/sources.list && rm -f /etc/apt/sources.list.d/*.list \\
                    && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server \\
                    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
                LABEL \(DatastoreService.versionLabel)=7 org.slipway.service=redis
                # printf is the shell's own: the password reaches a file, never a command line.
                CMD ["/bin/sh", "-c", "mkdir -p /data && chown redis /data && printf 'requirepass %s\\ndir /data\\nappendonly yes\\n' \\"$REDIS_PASSWORD\\" > /etc/redis/slipway.conf && chown redis /etc/redis/slipway.conf && chmod 0600 /etc/redis/slipway.conf && unset REDIS_PASSWORD && exec runuser -u redis -- redis-server /etc/redis/slipway.conf"]

                """
            return Recipe(package: "redis-server", files: [("Dockerfile", dockerfile)])
        }
    }
}
