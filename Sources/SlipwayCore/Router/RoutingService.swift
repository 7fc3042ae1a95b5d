import Foundation
import GRDB

/// Which names reach which app: every app answers at `<app>.<global domain>`, plus
/// the custom domains its writers add. A name belongs to one app only; names are
/// DNS names (RFC 1123), so nothing typed here reaches the proxy as anything but a name.
/// A change is checked against the state and recorded in one transaction, then the
/// proxy takes it outside any transaction; a change the proxy refuses or fails to
/// load is undone (RoutingService+Changes.swift).
public struct RoutingService: Sendable {
    let store: Store
    let apps: AppService
    let settings: Settings
    let paths: DataPaths
    /// nginx in the product (Sources/SlipwayNginx), a recording fake in core tests.
    public let proxy: any Proxy
    /// The apps' deploy locks: a routing change of an app waits for no deploy but is
    /// refused while one runs (its switch publishes the app's file too).
    let locks: DeployLocks
    /// Where a change of an app on the kubernetes scheduler goes too (its Ingress and
    /// TLS Secret); `Core` sets it once `DeployService` exists.
    let cluster = ClusterRoutingHook()

    /// Runs `body` holding the app's deploy lock.
    func locked<T>(_ app: AppName, by caller: Caller, _ body: () throws -> T) throws -> T {
        let lock = try locks.acquire(app, by: caller)
        defer { locks.release(lock) }
        return try body()
    }

    /// Custom domains one app may have.
    public static let maxDomainsPerApp = 50

    // MARK: Names

    func globalDomain(_ db: Database) throws -> String { try Self.globalDomain(db, settings: settings) }

    /// The global domain: set by `domains:set-global`, else the config file's `global_domain`.
    static func globalDomain(_ db: Database, settings: Settings) throws -> String {
        try String.fetchOne(db, sql: "SELECT value FROM server_settings WHERE key = 'global_domain'") ?? settings.globalDomain
    }

    /// The app's names: `<app>.<global>` first, then its custom domains (sorted).
    func names(of app: App, _ db: Database) throws -> [String] {
        let custom = try String.fetchAll(db, sql: "SELECT name FROM domains WHERE app_id = ? ORDER BY name", arguments: [app.id])
        let main = "\(app.name).\(try globalDomain(db))"
        return [main] + custom.filter { $0 != main }
    }

    /// Where users reach the app: its first custom domain if it has one, else the
    /// default name; https when the certificate covers that name.
    public func url(for app: AppName) throws -> String {
        try store.read { db in
            let served = try site(of: try AppService.existing(app, db), endpoints: [], db)
            return url(of: served, name: served.names.count > 1 ? served.names[1] : served.names[0])
        }
    }

    func url(of site: Site, name: String) -> String {
        if site.tls?.names.contains(name) == true {
            return "https://\(name)\(settings.tlsPort == 443 ? "" : ":\(settings.tlsPort)")"
        }
        return "http://\(name)\(settings.proxyPort == 80 ? "" : ":\(settings.proxyPort)")"
    }

    // MARK: Publishing

    /// The app's site from state, with these endpoints.
    func site(of app: App, endpoints: [String], _ db: Database) throws -> Site {
        let names = try names(of: app, db)
        var site = Site(app: app.name, names: names, endpoints: endpoints)
        if let certificate = try CertificateRecord.fetchOne(db, key: app.id) {
            let files = CertificateFiles(paths: paths, appID: app.id!, fingerprint: certificate.fingerprint)
            site.tls = .init(certificatePath: files.certificate, keyPath: files.key,
                             names: names.filter { CertificateService.covers(certificate.nameList, $0) })
        }
        return site
    }

    /// Points the app's names at `endpoints` (nil: the recorded ones, none while
    /// stopped), validated and reloaded. A deploy calls it before it records the switch.
    public func publish(_ app: AppName, endpoints: [String]? = nil) throws {
        try serialized {
            let current = try store.read { db in
                let record = try AppService.existing(app, db)
                return try site(of: record, endpoints: endpoints ?? recordedEndpoints(record, db), db)
            }
            try proxy.apply(current)
        }
    }

    /// Takes the app's names out of the proxy, and its access logs (apps:destroy; apps:rename for the old name).
    public func unpublish(_ app: AppName) throws {
        try serialized { try proxy.remove(app: app) }
    }

    /// `apps:rename`'s switch, before the state records the rename: the app's site
    /// moves to `new` and points at `endpoints`; its old default domain (and any
    /// custom domain under it) is no longer routed. The old site first loses its
    /// custom domains (a name is served by one file only), then the new one takes
    /// them, then the old file goes: custom domains are never unrouted. If a step
    /// fails the old site is put back as the state records it, and the error thrown.
    func switchName(of app: App, to new: AppName, endpoints: [String]) throws {
        try serialized {
            let (before, renamed) = try store.read { db in
                let record = try AppService.find(id: app.id, db) ?? app
                var renamed = record
                renamed.name = new
                let global = try globalDomain(db)
                var site = try self.site(of: renamed, endpoints: endpoints, db)
                site.names = site.names.filter { Self.reservation(of: $0, global: global) != .app(record.name.rawValue) }
                site.tls?.names.removeAll { !site.names.contains($0) }
                return (try recordedSite(of: record, db), site)
            }
            var narrowed = before
            narrowed.names = [before.names[0]]
            narrowed.tls?.names.removeAll { $0 != before.names[0] }
            if narrowed.tls?.names.isEmpty == true { narrowed.tls = nil }
            var appliedNew = false
            do {
                try proxy.apply(narrowed)
                try proxy.apply(renamed)
                appliedNew = true
                try proxy.remove(app: before.app)
            } catch {
                if appliedNew { try? proxy.remove(app: new) }
                try? proxy.apply(before)
                throw error
            }
        }
    }

    /// Undoes `switchName` when the rename could not be recorded: the new name's file
    /// goes and the app's site is applied again as the state (its old name) has it.
    func restoreName(of app: App, from new: AppName) {
        try? serialized {
            try? proxy.remove(app: new)
            if let site = try? store.read({ db in try AppService.find(id: app.id, db).map { try recordedSite(of: $0, db) } }) {
                try? proxy.apply(site)
            }
        }
    }

    /// The app's site as recorded: its names, and its endpoints unless it is stopped.
    func recordedSite(of app: App, _ db: Database) throws -> Site {
        try site(of: app, endpoints: try recordedEndpoints(app, db), db)
    }

    private func recordedEndpoints(_ app: App, _ db: Database) throws -> [String] {
        if app.processesStopped { return [] }
        return try String.fetchAll(db, sql: "SELECT address FROM endpoints WHERE app_id = ? ORDER BY container_name", arguments: [app.id])
    }

    /// What `proxy:report` shows.
    public struct ProxyReport: Sendable, Codable {
        public let app: String
        public let mode: String
        public let httpPort: Int
        public let httpsPort: Int
        public let domains: [String]
        public let urls: [String]
        public let upstreams: [String]
        public let tlsDomains: [String]
        public let configPath: String
        public let configPresent: Bool
    }

    public func proxyReport(_ app: AppName) throws -> ProxyReport {
        let served = try store.read { db in try recordedSite(of: try AppService.existing(app, db), db) }
        let path = proxy.configPath(for: app)
        return ProxyReport(app: app.rawValue, mode: settings.proxyMode.rawValue, httpPort: settings.proxyPort, httpsPort: settings.tlsPort,
                           domains: served.names, urls: served.names.map { url(of: served, name: $0) }, upstreams: served.endpoints,
                           tlsDomains: served.tls?.names ?? [], configPath: path, configPresent: FileManager.default.fileExists(atPath: path))
    }

    // MARK: Access log

    /// `proxy:logs`: the last `lines` requests nginx logged for the app, then, with
    /// `follow`, each new one (nginx writes its buffer at least every second) until
    /// the caller leaves, across rotations. `isAllowed` is asked again every 2 s and
    /// before a new file is opened: a follower whose access ends (or whose app is
    /// destroyed, its name perhaps taken by another tenant's app) stops.
    public func accessLog(_ app: AppName, lines: Int, follow: Bool, output: @escaping @Sendable (String) -> Void,
                          isCancelled: @escaping @Sendable () -> Bool, isAllowed: @escaping @Sendable () -> Bool) throws {
        _ = try store.read { try AppService.existing(app, $0) }
        let path = proxy.accessLogPath(for: app)
        var file = FileHandle(forReadingAtPath: path)
        if let file, lines > 0 {
            // The tail: at most the last 4 MiB, enough for any sane `-n`.
            let end = try file.seekToEnd(), start = end > 4 << 20 ? end - (4 << 20) : 0
            try file.seek(toOffset: start)
            var text = try file.readToEnd() ?? Data()
            if start > 0, let newline = text.firstIndex(of: UInt8(ascii: "\n")) { text = text[text.index(after: newline)...] }  // a partial line
            String(decoding: text, as: UTF8.self).split(separator: "\n").suffix(lines).forEach { output(String($0)) }
        } else {
            _ = try file?.seekToEnd()
        }
        guard follow else { return }
        let splitter = LineSplitter(output: output)
        // After a rotation nginx may still flush a worker's buffer into the moved file
        // (until every worker has reopened, or its flush timer fires): that file is
        // read too, with a splitter of its own, until it has been quiet for 3 s.
        var moved: (file: FileHandle, splitter: LineSplitter, grewAt: Date)?
        var info = stat()
        var reading = file.flatMap { fstat($0.fileDescriptor, &info) == 0 ? info.st_ino : nil }
        var lastAllowed = Date()
        while !isCancelled() {
            if Date().timeIntervalSince(lastAllowed) >= 2 {
                guard isAllowed() else { return }
                lastAllowed = Date()
            }
            if let data = try? file?.readToEnd() { splitter.feed(data) }
            if let old = moved {
                if let data = try? old.file.readToEnd(), !data.isEmpty {
                    old.splitter.feed(data)
                    moved?.grewAt = Date()
                } else if Date().timeIntervalSince(old.grewAt) > 3 {
                    old.splitter.flush()
                    moved = nil
                }
            }
            // Rotated (a new file at the path), or there at last.
            if stat(path, &info) == 0, info.st_ino != reading {
                guard isAllowed() else { return }
                if let file { moved = (file, LineSplitter(output: output), Date()) }
                file = FileHandle(forReadingAtPath: path)
                reading = info.st_ino
                continue
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    // MARK: Domains

    /// What `domains:report` shows.
    public struct DomainReport: Sendable, Codable {
        public let app: String
        public let defaultDomain: String
        public let customDomains: [String]
        public let globalDomain: String
        public let urls: [String]
    }

    public func report(_ app: AppName) throws -> DomainReport {
        try store.read { db in
            let record = try AppService.existing(app, db)
            let served = try site(of: record, endpoints: [], db)
            return DomainReport(app: app.rawValue, defaultDomain: served.names[0], customDomains: Array(served.names.dropFirst()),
                                globalDomain: try globalDomain(db), urls: served.names.map { url(of: served, name: $0) })
        }
    }

    /// `domains:add`: names already on the app are left as they are. Returns the ones added.
    @discardableResult
    public func add(_ app: AppName, _ domains: [String], by caller: Caller) throws -> [String] {
        let wanted = try validated(domains)
        return try locked(app, by: caller) { try changing(app, by: caller) { record, db in
            let current = Set(try names(of: record, db))
            let new = wanted.filter { !current.contains($0) }
            try claim(new, for: record, by: caller, db)
            if !new.isEmpty { try db.audit(caller, app: app.rawValue, detail: "added domains \(new.joined(separator: " "))") }
            return new
        } }
    }

    /// `domains:set`: the app's custom domains become exactly these. Returns the names the app did not have.
    @discardableResult
    public func set(_ app: AppName, _ domains: [String], by caller: Caller) throws -> [String] {
        let names = try validated(domains)
        return try locked(app, by: caller) { try changing(app, by: caller) { record, db in
            let before = Set(try self.names(of: record, db))
            try db.execute(sql: "DELETE FROM domains WHERE app_id = ?", arguments: [record.id])
            try claim(names.filter { $0 != "\(app).\(try globalDomain(db))" }, for: record, by: caller, db)
            try db.audit(caller, app: app.rawValue, detail: "set domains to \(names.joined(separator: " "))")
            return names.filter { !before.contains($0) }
        } }
    }

    /// `domains:remove`: each name must be one of the app's custom domains.
    public func remove(_ app: AppName, _ domains: [String], by caller: Caller) throws {
        let names = try validated(domains)
        try locked(app, by: caller) { try changing(app, by: caller) { record, db in
            let custom = Set(try String.fetchAll(db, sql: "SELECT name FROM domains WHERE app_id = ?", arguments: [record.id]))
            for name in names where !custom.contains(name) {
                if name == "\(app).\(try globalDomain(db))" {
                    throw UserFacingError.invalid("\(name) is \(app)'s default domain (<app>.<global domain>) and cannot be removed")
                }
                throw UserFacingError.notFound("\(app) has no domain \(name); domains:report \(app) lists them")
            }
            for name in names { try db.execute(sql: "DELETE FROM domains WHERE name = ?", arguments: [name]) }
            try db.audit(caller, app: app.rawValue, detail: "removed domains \(names.joined(separator: " "))")
        } }
    }

    /// `domains:clear`: no custom domains (the default one stays).
    public func clear(_ app: AppName, by caller: Caller) throws {
        try locked(app, by: caller) { try changing(app, by: caller) { record, db in
            try db.execute(sql: "DELETE FROM domains WHERE app_id = ?", arguments: [record.id])
            try db.audit(caller, app: app.rawValue, detail: "cleared custom domains")
        } }
    }

    /// `domains:set-global` (admin): every app's default domain moves with it.
    public func setGlobal(_ domain: String, by caller: Caller) throws {
        guard let global = try validated([domain]).first else { return }
        // Every app's file changes: no deploy may run meanwhile.
        var held: [DeployLock] = []
        defer { held.forEach(locks.release) }
        for app in try store.read({ db in try AppService.all(db) }) { held.append(try locks.acquire(app.name, by: caller)) }
        try committing(.every, by: caller) { db, _ in
            // A custom domain must not turn into another app's default one.
            let apps = try AppService.names(db)
            for (name, owner) in try Row.fetchAll(db, sql: "SELECT name, app_id FROM domains")
                .compactMap({ row in apps[row[1] as Int64].map { (row[0] as String, $0.rawValue) } }) {
                switch Self.reservation(of: name, global: global) {
                case .global?:
                    throw UserFacingError.conflict("\(owner) has the custom domain \(name), which would become the global domain itself; domains:remove it first")
                case .app(let label)? where label != owner:
                    throw UserFacingError.conflict("\(owner) has the custom domain \(name), which would fall under the default domain of an app named \(label); domains:remove it first")
                default:
                    break
                }
            }
            try db.execute(sql: "INSERT INTO server_settings (key, value) VALUES ('global_domain', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [global])
            // A custom domain that becomes its own app's default one is simply that now.
            for (id, app) in apps {
                try db.execute(sql: "DELETE FROM domains WHERE app_id = ? AND name = ?", arguments: [id, "\(app).\(global)"])
            }
            try db.audit(caller, app: nil, detail: "set the global domain to \(global)")
        }
    }

    /// Lowercased, deduplicated, each a DNS name (else an error naming the first bad one).
    func validated(_ domains: [String]) throws -> [String] {
        guard !domains.isEmpty else { throw UserFacingError(.usage, "give at least one domain, such as www.example.com") }
        var seen: [String] = []
        for domain in domains {
            guard DomainName.isValid(domain) else {
                throw UserFacingError.invalid("\(quoted(domain)) is not a domain name; use letters, digits, hyphens and dots (at most 253 characters, labels of at most 63), such as www.example.com")
            }
            let name = domain.lowercased()
            if !seen.contains(name) { seen.append(name) }
        }
        return seen
    }

    /// Who a name under the global domain is reserved for.
    enum Reservation: Equatable {
        /// The global domain itself: nobody's.
        case global
        /// `[...].<label>.<global>`: the app named `label` (whether or not it exists yet).
        case app(String)
    }

    /// nil for a name outside the global domain. Everything under it belongs to the app
    /// named by the label right before it, so no tenant can answer for another app's
    /// subdomains, or for an app's before that app is created.
    static func reservation(of name: String, global: String) -> Reservation? {
        if name == global { return .global }
        guard name.hasSuffix("." + global) else { return nil }
        let inner = name.dropLast(global.count + 1)
        return .app(String(inner.split(separator: ".").last ?? inner))
    }

    /// Records `names` as the app's, refusing any that another app has or that is
    /// reserved: the global domain, and names under another app's default domain.
    private func claim(_ names: [String], for app: App, by caller: Caller, _ db: Database) throws {
        let global = try globalDomain(db)
        let existing = try String.fetchOne(db, sql: "SELECT COUNT(*) FROM domains WHERE app_id = ?", arguments: [app.id]).flatMap(Int.init) ?? 0
        guard existing + names.count <= Self.maxDomainsPerApp else {
            throw UserFacingError.invalid("an app has at most \(Self.maxDomainsPerApp) custom domains; \(app.name) would have \(existing + names.count)")
        }
        for name in names {
            switch Self.reservation(of: name, global: global) {
            case .global?:
                throw UserFacingError.conflict("\(name) is the global domain itself, under which every app answers; no app may claim it. Add a domain of your own, such as www.example.com")
            case .app(let label)? where label != app.name.rawValue:
                throw UserFacingError.conflict("\(name) is reserved: names under <app>.\(global) belong to the app of that name (\(label)); add a domain of your own, or one under \(app.name).\(global)")
            case .app? where name == "\(app.name).\(global)":
                continue  // the app's default domain, implied
            case .app?, nil:
                break
            }
            if let owner = try Int64.fetchOne(db, sql: "SELECT app_id FROM domains WHERE name = ?", arguments: [name]), owner != app.id {
                throw UserFacingError.conflict("\(name) is already a domain of another app; a domain belongs to one app only")
            }
            var row = Domain(name: name, appId: app.id!, addedBy: caller.principal.name, addedAt: Date())
            try row.save(db)
        }
    }
}
