import Foundation
import GRDB

/// One deploy at a time per app. The lock is a row naming who holds it and which
/// process; a holder whose process is gone is stale and may be taken over.
public struct DeployLocks: Sendable {
    let store: Store

    /// Takes the app's lock, or fails at once naming who has it.
    func acquire(_ app: AppName, by caller: Caller) throws -> DeployLock {
        try store.write { db in
            guard let appID = try Int64.fetchOne(db, sql: "SELECT id FROM apps WHERE name = ?", arguments: [app]) else {
                throw UserFacingError.appNotFound(app.rawValue)
            }
            if let held = try DeployLock.fetchOne(db, key: appID) {
                if Self.isAlive(held.pid) { throw Self.busy(app, held) }
                try Self.abandon(held, db)
            }
            var lock = DeployLock(appId: appID, holder: caller.principal.name, pid: getpid(), origin: caller.principal.channel,
                                  releaseVersion: nil, acquiredAt: Date())
            try lock.insert(db)
            return lock
        }
    }

    /// `web is being deployed by alice since 12:01 (release v7); try again when it finishes`.
    static func busy(_ app: AppName, _ lock: DeployLock) -> UserFacingError {
        let since = lock.acquiredAt.formatted(Date.FormatStyle(date: .omitted, time: .shortened).locale(Locale(identifier: "en_GB")))
        let version = lock.releaseVersion.map { " (release v\($0))" } ?? ""
        return .conflict("\(app) is being deployed by \(lock.holder) since \(since)\(version); try again when it finishes")
    }

    func setVersion(_ lock: DeployLock, _ version: Int) throws {
        try store.write { db in
            try db.execute(sql: "UPDATE deploy_locks SET release_version = ? WHERE app_id = ? AND pid = ?",
                           arguments: [version, lock.appId, lock.pid])
        }
    }

    func release(_ lock: DeployLock) {
        _ = try? store.write { db in
            try db.execute(sql: "DELETE FROM deploy_locks WHERE app_id = ? AND pid = ?", arguments: [lock.appId, lock.pid])
        }
    }

    /// The app's lock, if held.
    public func status(_ app: AppName) throws -> (lock: DeployLock, stale: Bool)? {
        try store.read { db in try Self.held(app, db).map { ($0, !Self.isAlive($0.pid)) } }
    }

    /// `deploy:unlock`: removes a stale lock; a live deploy's lock stays.
    public func unlock(_ app: AppName, by caller: Caller) throws -> Bool {
        try store.write { db in
            guard let held = try Self.held(app, db) else { return false }
            if Self.isAlive(held.pid) {
                throw UserFacingError.conflict("\(app) is being deployed right now by \(held.holder) (process \(held.pid)); wait for it to finish")
            }
            try Self.abandon(held, db)
            try db.audit(caller, app: app.rawValue, detail: "removed the stale deploy lock of \(held.holder)")
            return true
        }
    }

    private static func held(_ app: AppName, _ db: Database) throws -> DeployLock? {
        try DeployLock.fetchOne(db, sql: """
            SELECT deploy_locks.* FROM deploy_locks JOIN apps ON apps.id = deploy_locks.app_id WHERE apps.name = ?
            """, arguments: [app])
    }

    /// Every lock (server start: reconcile).
    func all() throws -> [DeployLock] { try store.read { db in try DeployLock.fetchAll(db) } }

    /// Drops a lock whose holder is gone, and fails the release it was making.
    static func abandon(_ lock: DeployLock, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM deploy_locks WHERE app_id = ?", arguments: [lock.appId])
        try db.execute(sql: """
            UPDATE releases SET status = 'failed', error = 'interrupted (the deploying process ended)', finished_at = ?
            WHERE app_id = ? AND status = 'deploying'
            """, arguments: [Date(), lock.appId])
    }

    static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return false }
        // A zombie (reaped later by its parent) is not deploying anything.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return false }
        return true
    }
}
