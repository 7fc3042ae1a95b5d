import Foundation
import GRDB

/// One deploy at a time per app. The lock is a row naming who holds it and which
/// process; a holder whose process is gone is stale and may be taken over.
public struct DeployLocks: Sendable {
    let store: Store
    /// Whether a lock's holder still runs.
    let processes: any HostProcesses

    /// The origin of the locks the server's recovery holds as it starts (`Recovery.swift`).
    static let recoveryOrigin = "recovery"
    /// How long a deploy waits for the server's recovery of its app.
    static let recoveryWait: Duration = .seconds(120)

    /// Takes the app's lock, or fails at once naming who has it. A lock the server's
    /// recovery holds (just after a restart) is waited for, up to `recoveryWait`,
    /// with a line to `output` saying so. `origin` marks recovery's own locks.
    func acquire(_ app: AppName, by caller: Caller, origin: String? = nil, output: (String) -> Void = { _ in }) throws -> DeployLock {
        let deadline = ContinuousClock.now + Self.recoveryWait
        var told = false
        while true {
            do {
                return try store.write { db in
                    let appID = try AppService.id(of: app, db)
                    if let held = try DeployLock.fetchOne(db, key: appID) {
                        if isHeld(held) { throw Self.busy(app, held) }
                        try Self.abandon(held, db)
                    }
                    var lock = DeployLock(appId: appID, holder: origin == Self.recoveryOrigin ? "the server's recovery after its restart" : caller.principal.name, pid: getpid(), origin: origin ?? caller.principal.channel,
                                          releaseVersion: nil, acquiredAt: Date())
                    try lock.insert(db)
                    return lock
                }
            } catch let busy as UserFacingError {
                guard let (held, stale) = try status(app), !stale, held.origin == Self.recoveryOrigin, ContinuousClock.now < deadline else { throw busy }
                if !told {
                    output("-----> Waiting for the server to finish bringing \(app) back after its restart (up to \(describe(Self.recoveryWait)))")
                    told = true
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    /// `web is being deployed by alice since 12:01 (release v7); try again when it finishes`.
    static func busy(_ app: AppName, _ lock: DeployLock) -> UserFacingError {
        if lock.origin == recoveryOrigin {
            return .conflict("\(app) is being brought back after a server restart and that did not finish in time; try again in a minute")
        }
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
        try store.read { db in try Self.held(app, db).map { ($0, !isHeld($0)) } }
    }

    /// `deploy:unlock`: removes a stale lock; a live deploy's lock stays.
    public func unlock(_ app: AppName, by caller: Caller) throws -> Bool {
        try store.write { db in
            guard let held = try Self.held(app, db) else { return false }
            if isHeld(held) {
                if held.origin == Self.recoveryOrigin { throw Self.busy(app, held) }
                throw UserFacingError.conflict("\(app) is being deployed right now by \(held.holder) (process \(held.pid)); wait for it to finish")
            }
            try Self.abandon(held, db)
            try db.audit(caller, app: app.rawValue, detail: "removed the stale deploy lock of \(held.holder)")
            return true
        }
    }

    private static func held(_ app: AppName, _ db: Database) throws -> DeployLock? {
        guard let appID = try AppService.find(app, db)?.id else { return nil }
        return try DeployLock.filter(Column("app_id") == appID).fetchOne(db)
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
}
