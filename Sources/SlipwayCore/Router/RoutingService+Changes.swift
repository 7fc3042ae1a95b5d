import Foundation
import GRDB

/// How a routing change is made: recorded first, in one short transaction, then
/// applied by the proxy outside it (a check and a reload take up to seconds, and no
/// other writer may wait on them), then undone if the proxy does not take it.
extension RoutingService {
    /// The apps a change may alter the site of.
    enum Scope {
        case app(AppName)
        /// `domains:set-global`: every app's default name moves.
        case every
    }

    /// Runs `body` holding the routing lock: one change at a time, from its commit to
    /// the proxy taking it, across every Slipway process, so the proxy takes changes
    /// in the order the state records them and an undo restores rows nobody changed
    /// meanwhile. Taken after any deploy lock and outside any transaction.
    func serialized<T>(_ body: () throws -> T) throws -> T {
        try FileLock.holding(paths.root + "/routing.lock", body)
    }

    /// One change of one app's routing state (the caller holds the app's deploy lock).
    func changing<T>(_ app: AppName, by caller: Caller, _ body: (App, Database) throws -> T) throws -> T {
        try committing(.app(app), by: caller) { db, records in try body(records[0], db) }
    }

    /// Records `body`'s change (with its audit event) in one transaction, then has the
    /// proxy take the new site of every app in `scope`. If the proxy refuses one or
    /// fails to load it, the rows the change touched go back to what they were (the
    /// audit log, append-only, records the undo), the sites already applied are
    /// applied as they were before, and the proxy's error is thrown: the previous
    /// routing keeps serving. An app on the kubernetes scheduler gets the change on its
    /// cluster too (Ingress, TLS Secret), at once; a cluster that does not take it undoes
    /// the change the same way.
    func committing<T>(_ scope: Scope, by caller: Caller, _ body: (Database, [App]) throws -> T) throws -> T {
        try serialized {
            let (result, before, after, undo) = try store.write { db in
                let records: [App]
                switch scope {
                case .app(let name): records = [try AppService.existing(name, db)]
                case .every: records = try AppService.all(db)
                }
                var undo = try RoutingRows(appIDs: scope.isEvery ? nil : records.map { $0.id! }, db)
                let before = try records.map { try recordedSite(of: $0, db) }
                let result = try body(db, records)
                try undo.noteEvents(db)
                let after = try records.compactMap { try AppService.find(id: $0.id, db) }.map { try recordedSite(of: $0, db) }
                return (result, before, after, undo)
            }
            var attempted: Set<AppName> = []
            do {
                for site in after {
                    attempted.insert(site.app)
                    try proxy.apply(site)
                }
                for site in after { try cluster.apply(site.app) }
            } catch {
                // If this write fails too, the state keeps the change: the next start
                // of the server publishes every app as its state says.
                try? store.write { db in try undo.restore(db, by: caller, because: error) }
                for site in before where attempted.contains(site.app) { try? proxy.apply(site) }
                // A cluster that took part of it gets the rows as they are again.
                for site in before where attempted.contains(site.app) { try? cluster.apply(site.app) }
                throw error
            }
            return result
        }
    }
}

extension RoutingService.Scope {
    var isEvery: Bool { if case .every = self { true } else { false } }
}

/// The rows a routing change may touch, as they were before it, and what its audit
/// events said: what an undo writes back and records.
struct RoutingRows {
    /// The apps whose domains and certificates are kept; nil: every app.
    let appIDs: [Int64]?
    let domains: [Domain]
    let certificates: [CertificateRecord]
    let globalDomain: String?
    let lastEventID: Int64
    /// The app and detail of each event the change wrote.
    private(set) var events: [(app: String?, detail: String)] = []

    init(appIDs: [Int64]?, _ db: Database) throws {
        self.appIDs = appIDs
        domains = try Self.scoped(Domain.self, appIDs).fetchAll(db)
        certificates = try Self.scoped(CertificateRecord.self, appIDs).fetchAll(db)
        globalDomain = try String.fetchOne(db, sql: "SELECT value FROM server_settings WHERE key = 'global_domain'")
        lastEventID = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM events") ?? 0
    }

    /// Notes the events written since `init`, in the same transaction (so no other writer's).
    mutating func noteEvents(_ db: Database) throws {
        events = try Event.filter(Column("id") > lastEventID).order(Column("id")).fetchAll(db).map { ($0.app, $0.detail) }
    }

    func restore(_ db: Database, by caller: Caller, because error: Error) throws {
        _ = try Self.scoped(Domain.self, appIDs).deleteAll(db)
        _ = try Self.scoped(CertificateRecord.self, appIDs).deleteAll(db)
        for var row in domains { try row.insert(db) }
        for var row in certificates { try row.insert(db) }
        if let globalDomain {
            try db.execute(sql: "INSERT INTO server_settings (key, value) VALUES ('global_domain', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [globalDomain])
        } else {
            try db.execute(sql: "DELETE FROM server_settings WHERE key = 'global_domain'")
        }
        let reason = (error as? UserFacingError)?.message ?? "\(error)"
        for event in events {
            try db.audit(caller, app: event.app, outcome: "failed", detail: "undone, the proxy did not take it (\(reason)): \(event.detail)")
        }
    }

    /// The rows of a table keyed by app that belong to these apps (nil: every app).
    private static func scoped<Record: TableRecord>(_ table: Record.Type, _ appIDs: [Int64]?) -> QueryInterfaceRequest<Record> {
        appIDs.map { table.filter($0.contains(Column("app_id"))) } ?? table.all()
    }
}

/// The cluster side of routing changes: `DeployService.applyClusterRouting`, set by
/// `Core` after it made the deploy service (which needs the routing service first).
/// A class so every copy of `RoutingService` shares the one that is set.
final class ClusterRoutingHook: @unchecked Sendable {
    private let lock = NSLock()
    private var body: (@Sendable (AppName) throws -> Void)?

    func set(_ body: @escaping @Sendable (AppName) throws -> Void) { lock.withLock { self.body = body } }

    /// Applies `app`'s routing on its cluster (nothing for an app on this host).
    func apply(_ app: AppName) throws { try lock.withLock { body }?(app) }
}
