import Foundation
import TOMLKit

/// The server's settings, from `/etc/slipway/slipway.toml` (see `etc/slipway.toml`
/// for every key with its default). A missing default file means all defaults.
public struct Settings: Sendable, Equatable {
    public static let defaultConfigPath = "/etc/slipway/slipway.toml"
    public static let defaultDataDir = "/var/lib/slipway"

    /// Where the state, repos and storage live.
    public var dataDir: String = Settings.defaultDataDir
    /// `HOST:PORT` the SSH front listens on.
    public var listen: String = "0.0.0.0:2222"
    /// Whether non-admin users may run `apps:create` (and create apps by pushing).
    public var usersCanCreateApps: Bool = true
    /// Public key lines registered to the user `admin` on first start when there are no users.
    public var initialAdminKeys: [String] = []
    /// Concurrent SSH sessions served; past it a session gets a clear refusal.
    public var maxSessions: Int = 256
    /// `max_sessions_per_user` as the config file sets it; nil: the default.
    public var sessionsPerUserSetting: Int?
    /// Concurrent SSH sessions of one non-admin user; past it their new sessions get a
    /// clear refusal. By default 64, or half of `maxSessions` when that is less: one user
    /// must never be able to take every session.
    public var maxSessionsPerUser: Int { sessionsPerUserSetting ?? min(64, max(1, maxSessions / 2)) }
    /// Seconds without traffic before an SSH session with nothing running is dropped.
    public var idleTimeout: Int = 600
    /// Seconds `serve` waits for running sessions after SIGTERM before exiting.
    public var shutdownGrace: Int = 30
    /// Unauthenticated SSH handshakes in progress at once; past it a client waits in line.
    public var maxStartups = MaxStartups(start: 128, rate: 100, full: 128)
    /// Seconds from connect to authentication before an SSH connection is cut.
    public var loginGraceTime: Int = 30
    /// Seconds a new SSH connection may stay silent before sending its version line.
    public var bannerTimeout: Int = 5
    /// Silent new SSH connections held at once; past it the oldest is dropped.
    public var maxSilentConnections: Int = 1024
    /// SSH clients waiting in line for a handshake place; past it a newcomer is dropped.
    public var maxWaitingConnections: Int = 1024
    /// The container engine's unix socket; nil: the first of podman's and Docker's usual ones.
    public var engineSocket: String?
    /// The image Procfile apps (no Dockerfile) are built on; `builder:bootstrap` makes it locally.
    public var builderImage: String = "slipway/builder:bookworm"
    /// The Debian mirror `builder:bootstrap` installs from.
    public var builderMirror: String = "http://deb.debian.org/debian"
    /// The image `postgres:create` uses without `--image`; nil: Slipway's own
    /// (`slipway/postgres:15`, built from Debian's packages when missing). Another image
    /// must already be on the server and keep the official image's contract.
    public var postgresImage: String?
    /// CA files (PEM) every dependency install trusts besides the system's (a private
    /// index, a TLS-intercepting proxy); admin-only, mounted read-only into installs.
    public var buildCACertificates: [String] = []

    /// Images of this many latest successful releases are kept; older ones are removed.
    public var releasesToKeep: Int = 5
    /// Seconds the old processes keep running after the switch (in-flight requests finish).
    public var waitToRetire: Int = 5
    /// Seconds the default check waits for a new web process to answer HTTP.
    public var checkTimeout: Int = 30
    /// Apps are served at `<app>.<global_domain>`.
    public var globalDomain: String = "localhost"
    /// The port nginx serves apps' HTTP on.
    public var proxyPort: Int = 8080
    /// The port nginx serves HTTPS on, for apps with a certificate (certs:add).
    public var tlsPort: Int = 8443
    /// The loopback port the ACME client (lego) answers HTTP-01 challenges on while it
    /// runs; nginx passes every site's `/.well-known/acme-challenge/` there.
    public var acmeChallengePort: Int = 8402
    /// Which nginx serves the apps.
    public var proxyMode: ProxyMode = .managed
    /// System mode: the directory Slipway owns, included by the system nginx's http block.
    public var nginxIncludeDir: String = "/etc/nginx/slipway"
    /// System mode: the system nginx's main config (for `nginx -t` and reloads).
    public var nginxConfig: String = "/etc/nginx/nginx.conf"
    /// An app's access log is rotated past this size (one older generation is kept).
    public var accessLogMaxBytes: Int = 16 << 20
    /// Stored outputs (builds, deploys, tasks, cron and detached runs) kept per app and kind.
    public var outputRecordsToKeep: Int = 20
    /// The most one stored output keeps; past it the middle is left out, head and tail kept.
    public var outputMaxBytes: Int = 1 << 20
    /// The timezone cron schedules are read in (`cron_timezone`, an IANA name, valid).
    public var cronTimezone: String = "UTC"
    /// Seconds a cron run may take before it is stopped, unless its entry sets `timeout`.
    public var cronTimeout: Int = 3600
    /// Limits of every tenant container and build whose app sets none (`default_memory`,
    /// `default_cpus`, `default_pids`); see etc/slipway.toml for why these values.
    public var defaultLimits = ResourceLimits(memoryBytes: 512 << 20, nanoCPUs: 1_000_000_000, pids: 512)
    /// The most `resource:limit` may set (`max_memory`, `max_cpus`, `max_pids`), for everyone.
    public var maxLimits = ResourceLimits(memoryBytes: 4 << 30, nanoCPUs: 2_000_000_000, pids: 4096)
    /// The cluster of the kubernetes scheduler (issue 20): a kubeconfig file
    /// (`kubeconfig`, absolute) and the context in it (`kube_context`; nil: its current one).
    public var kubeconfig: String?
    public var kubeContext: String?
    /// The storage class and ingress class rendered objects name (`kube_storage_class`,
    /// `kube_ingress_class`; nil: the cluster's defaults).
    public var kubeStorageClass: String?
    public var kubeIngressClass: String?

    public enum ProxyMode: String, Sendable, Equatable {
        /// `slipway serve` runs and supervises its own nginx, config under `<data-dir>/nginx`.
        case managed
        /// The host's nginx includes `nginx_include_dir`; Slipway writes there and reloads it.
        case system
    }

    /// `max_startups`: at most `start` unauthenticated handshakes run at once; a client
    /// that speaks past it waits in line (`max_waiting_connections`) instead of being
    /// dropped. Written as one number, or as OpenSSH's `"start:rate:full"`, whose
    /// `rate` and `full` (its random early drop) are checked and otherwise unused:
    /// waiting costs an fd, not a thread, so there is nothing to shed at random.
    public struct MaxStartups: Sendable, Equatable {
        public var start: Int
        public var rate: Int
        public var full: Int

        public init(start: Int, rate: Int, full: Int) {
            (self.start, self.rate, self.full) = (start, rate, full)
        }

        /// One number, or OpenSSH's form; nil unless 1 <= start <= full and rate is 1-100.
        public init?(_ text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == 1 || parts.count == 3, let start = parts[0], let full = parts.last!, let rate = parts.count == 3 ? parts[1] : 100,
                  start >= 1, start <= full, (1...100).contains(rate) else { return nil }
            self.init(start: start, rate: rate, full: full)
        }

        /// Handshakes that run at once.
        public var places: Int { start }
    }

    public init() {}

    /// Reads `path`. `required` is false for the default path, which may be absent.
    public static func load(path: String, required: Bool) throws -> Settings {
        guard FileManager.default.fileExists(atPath: path) else {
            if required { throw UserFacingError.invalid("config file \(quoted(path)) does not exist; check --config") }
            return Settings()
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw UserFacingError.invalid("config file \(quoted(path)) cannot be read as UTF-8 text")
        }
        return try parse(text, source: path)
    }

    /// Parses TOML text; unknown keys and wrong types are errors, so typos do not go unnoticed.
    public static func parse(_ text: String, source: String) throws -> Settings {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw UserFacingError.invalid("config file \(source), line \(error.source.begin.line): \(error.description)")
        }
        var settings = Settings()
        for (key, value) in table {
            func wrongType(_ expected: String) -> UserFacingError {
                .invalid("config file \(source): \(key) must be \(expected)")
            }
            switch key {
            case "data_dir":
                guard let s = value.string, s.hasPrefix("/") else { throw wrongType("an absolute path") }
                settings.dataDir = s
            case "listen":
                guard let s = value.string else { throw wrongType("a \"HOST:PORT\" string") }
                settings.listen = s
            case "users_can_create_apps":
                guard let b = value.bool else { throw wrongType("true or false") }
                settings.usersCanCreateApps = b
            case "engine_socket":
                guard let path = value.string, path.hasPrefix("/") else { throw wrongType("an absolute socket path") }
                settings.engineSocket = path
            case "builder_image":
                guard let image = value.string, !image.isEmpty, !image.contains(where: { $0.isWhitespace }) else { throw wrongType("an image reference such as slipway/builder:bookworm") }
                settings.builderImage = image
            case "postgres_image":
                guard let image = value.string, !image.isEmpty, !image.hasPrefix("-"), !image.contains(where: { $0.isWhitespace }) else {
                    throw wrongType("an image reference on this server, such as postgres:15")
                }
                settings.postgresImage = image
            case "builder_mirror":
                guard let mirror = value.string, mirror.hasPrefix("http://") || mirror.hasPrefix("https://") else { throw wrongType("an http(s) URL") }
                settings.builderMirror = mirror
            case "max_sessions", "max_sessions_per_user", "idle_timeout", "shutdown_grace", "releases_to_keep", "check_timeout", "proxy_port", "tls_port", "access_log_max_bytes",
                 "output_records_to_keep", "output_max_bytes", "acme_challenge_port":
                guard let n = value.int, n > 0 else { throw wrongType("a positive whole number") }
                switch key {
                case "max_sessions": settings.maxSessions = n
                case "max_sessions_per_user": settings.sessionsPerUserSetting = n
                case "idle_timeout": settings.idleTimeout = n
                case "releases_to_keep": settings.releasesToKeep = n
                case "check_timeout": settings.checkTimeout = n
                case "access_log_max_bytes": settings.accessLogMaxBytes = n
                case "output_records_to_keep": settings.outputRecordsToKeep = n
                case "output_max_bytes":
                    guard n >= OutputRecording.minimumBytes else { throw wrongType("at least \(OutputRecording.minimumBytes) bytes") }
                    settings.outputMaxBytes = n
                case "proxy_port", "tls_port", "acme_challenge_port":
                    guard n <= 65535 else { throw wrongType("a port number") }
                    switch key {
                    case "proxy_port": settings.proxyPort = n
                    case "tls_port": settings.tlsPort = n
                    default: settings.acmeChallengePort = n
                    }
                default: settings.shutdownGrace = n
                }
            case "max_startups":
                guard let limit = value.string.flatMap(MaxStartups.init) else { throw wrongType("a number of handshakes in quotes (e.g. \"128\"), or \"start:rate:full\" as OpenSSH's MaxStartups") }
                settings.maxStartups = limit
            case "login_grace_time", "banner_timeout", "max_silent_connections", "max_waiting_connections":
                guard let n = value.int, n > 0 else { throw wrongType("a positive whole number") }
                switch key {
                case "login_grace_time": settings.loginGraceTime = n
                case "banner_timeout": settings.bannerTimeout = n
                case "max_waiting_connections": settings.maxWaitingConnections = n
                default: settings.maxSilentConnections = n
                }
            case "wait_to_retire":
                guard let n = value.int, n >= 0 else { throw wrongType("a whole number of seconds") }
                settings.waitToRetire = n
            case "global_domain":
                guard let domain = value.string, DomainName.isValid(domain) else { throw wrongType("a DNS name such as example.com") }
                settings.globalDomain = domain.lowercased()
            case "proxy_mode":
                guard let mode = value.string.flatMap(ProxyMode.init(rawValue:)) else { throw wrongType("\"managed\" or \"system\"") }
                settings.proxyMode = mode
            case "nginx_include_dir", "nginx_config":
                guard let path = value.string, path.hasPrefix("/"), !path.contains(where: { $0.isWhitespace || $0 == ";" }) else {
                    throw wrongType("an absolute path without spaces")
                }
                if key == "nginx_config" { settings.nginxConfig = path } else { settings.nginxIncludeDir = path }
            case "default_memory", "max_memory", "default_cpus", "max_cpus", "default_pids", "max_pids":
                try settings.setResource(key, value.string ?? value.int.map(String.init) ?? value.double.map { String($0) }, source: source)
            case "cron_timezone":
                guard let name = value.string, TimeZone(identifier: name) != nil else { throw wrongType("an IANA timezone name such as \"UTC\" or \"Europe/Berlin\"") }
                settings.cronTimezone = name
            case "cron_timeout":
                guard let n = value.int, CronEntry.timeoutRange.contains(n) else {
                    throw wrongType("a whole number of seconds from \(CronEntry.timeoutRange.lowerBound) to \(CronEntry.timeoutRange.upperBound)")
                }
                settings.cronTimeout = n
            case "build_ca_certificates":
                guard let array = value.array else { throw wrongType("an array of absolute paths of PEM files") }
                settings.buildCACertificates = try array.map { item in
                    guard let path = item.string, path.hasPrefix("/") else { throw wrongType("an array of absolute paths of PEM files") }
                    return path
                }
            case "kubeconfig":
                guard let path = value.string, path.hasPrefix("/"), !path.contains("\0") else { throw wrongType("an absolute path of a kubeconfig file") }
                settings.kubeconfig = path
            case "kube_context", "kube_storage_class", "kube_ingress_class":
                // Contexts are kubeconfig keys; classes are DNS-1123 subdomains.
                guard let name = value.string, (1...253).contains(name.count),
                      name.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }),
                      key == "kube_context" || name.range(of: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", options: .regularExpression) != nil else {
                    throw wrongType(key == "kube_context" ? "a context name from the kubeconfig file" : "a class name such as \"standard\" (lowercase, digits, '-', '.')")
                }
                switch key {
                case "kube_context": settings.kubeContext = name
                case "kube_storage_class": settings.kubeStorageClass = name
                default: settings.kubeIngressClass = name
                }
            case "initial_admin_keys":
                guard let array = value.array else { throw wrongType("an array of public key lines") }
                settings.initialAdminKeys = try array.map { try $0.string ?? { throw wrongType("an array of public key lines") }() }
            default:
                throw UserFacingError.invalid("config file \(source): unknown key \(quoted(key)); see man slipway for the keys")
            }
        }
        try settings.validateResources(source: source)
        if let perUser = settings.sessionsPerUserSetting, perUser >= settings.maxSessions {
            throw UserFacingError.invalid("config file \(source): max_sessions_per_user (\(perUser)) must be less than max_sessions (\(settings.maxSessions)), "
                + "or one user could take every session; lower it or raise max_sessions")
        }
        return settings
    }
}

/// The data directory's layout (ARCHITECTURE.md, "Data layout").
public struct DataPaths: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public var database: String { root + "/slipway.db" }
    public var repositories: String { root + "/repos" }
    public var storageRoot: String { root + "/storage" }
    /// Scratch space for builds; safe to delete.
    public var builds: String { root + "/builds" }
    /// Stored outputs (`OutputService`), one folder per app id: ids are never handed
    /// out again and survive renames.
    public var outputsRoot: String { root + "/outputs" }
    public func outputs(ofApp appID: Int64) -> String { "\(outputsRoot)/\(appID)" }
    public func output(_ record: OutputRecord) -> String { "\(outputs(ofApp: record.appId))/\(record.id ?? 0).log" }

    /// A random id made on first use, labelling this data dir's containers: servers
    /// that share an engine never touch each other's.
    public func instanceID() throws -> String {
        let file = root + "/instance-id"
        if let id = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !id.isEmpty {
            return id
        }
        let id = String(UUID().uuidString.lowercased().prefix(12))
        try id.write(toFile: file, atomically: true, encoding: .utf8)
        return id
    }

    /// Per-app build caches (dependency installs and download caches), by app id:
    /// a name used again never finds another app's.
    public var buildCacheRoot: String { root + "/build-cache" }
    public func buildCache(ofApp appID: Int64) -> String { "\(buildCacheRoot)/\(appID)" }

    public func repository(_ app: AppName) -> String { "\(repositories)/\(app).git" }
    public func storage(_ name: StorageName) -> String { "\(storageRoot)/\(name)" }

    /// Creates the root (mode 0700: the database holds every tenant's secrets) and its folders.
    public func prepare() throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for dir in [repositories, storageRoot, builds] {
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            }
        } catch {
            throw UserFacingError.invalid("cannot use data directory \(quoted(root)): \(error.localizedDescription); pick another with --data-dir or SLIPWAY_DATA_DIR")
        }
    }
}
