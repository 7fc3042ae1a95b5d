import Foundation
import GRDB

/// `apps:destroy` and `apps:rename`: each one call, holding the app's deploy lock
/// throughout, so no deploy starts on an app that is going or changing its name.
extension DeployService {
    /// Destroys the app: its containers, proxy config, certificate files, images and
    /// network, then its rows and repo (`AppService.destroy`). Managed storage is kept
    /// unless `purgeStorage`, and then only storage no other app mounts.
    public func destroy(_ app: AppName, purgeStorage: Bool, by caller: Caller) throws -> [StorageName] {
        let lock = try locks.acquire(app, by: caller)
        // The lock row goes with the app's; releasing it then finds nothing.
        defer { locks.release(lock) }
        return try destroyHoldingLock(app, purgeStorage: purgeStorage, by: caller)
    }

    /// Removes an app that a first push created when that push left it empty: no
    /// branch and no release. Under the app's deploy lock, and not at all while the
    /// lock is held, so a concurrent push of the same new app that is building or
    /// deploying keeps it (its release row exists before it lets the lock go).
    public func destroyIfNeverDeployed(_ app: AppName, by caller: Caller) throws {
        guard let lock = try? locks.acquire(app, by: caller) else { return }
        defer { locks.release(lock) }
        let record = try existing(app)
        let released = try store.read { db in try Release.filter(Column("app_id") == record.id!).fetchCount(db) > 0 }
        guard !released, try !git.hasBranches(app) else { return }
        _ = try destroyHoldingLock(app, purgeStorage: false, by: caller)
    }

    private func destroyHoldingLock(_ app: AppName, purgeStorage: Bool, by caller: Caller) throws -> [StorageName] {
        let record = try existing(app)
        try containers.remove(try containers.list(app: app, kind: nil).map(\.id))
        try routing.unpublish(app)
        CertificateFiles.remove(paths: paths, appID: record.id!)
        let images = try store.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT image FROM builds WHERE app_id = ?", arguments: [record.id])
        }
        _ = try? containers.call { engine in for image in images { try? await engine.removeImage(image) } }
        if let sandbox = try? TenantSandbox(appID: record.id!, instance: instance) {
            _ = try? containers.call { engine in try await engine.removeNetwork(of: sandbox) }
        }
        return try apps.destroy(app, purgeStorage: purgeStorage, by: caller)
    }

    /// Renames an app that was never deployed (a deployed one's processes, images
    /// and domain carry its name); its proxy file (a 503 page, custom domains) follows.
    public func rename(_ old: AppName, to new: AppName, by caller: Caller) throws {
        let lock = try locks.acquire(old, by: caller)
        defer { locks.release(lock) }
        guard try existing(old).currentReleaseId == nil else {
            throw UserFacingError.conflict("\(old) is deployed, and its processes, images and domain carry its name; renaming a deployed app is not supported yet (apps:destroy it and push to the new name)")
        }
        try apps.rename(old, to: new, by: caller)
        try routing.unpublish(old)
        try routing.publish(new)
    }
}
