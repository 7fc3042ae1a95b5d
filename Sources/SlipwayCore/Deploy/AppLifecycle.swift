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
        try removeFromCluster(record)
        try containers.remove(try containers.list(app: app, kind: nil).map(\.id))
        try routing.unpublish(app)
        CertificateFiles.remove(paths: paths, appID: record.id!)
        let images = try store.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT image FROM builds WHERE app_id = ?", arguments: [record.id])
        }
        _ = try? containers.call { engine in for image in images { try? await engine.removeImage(image) } }
        builds.removeLeftovers(appID: record.id!, keeping: 0)
        builds.installer.purge(appID: record.id!)
        // Linked services leave the app's network first: the engine keeps a network a
        // container is on, and a later app given this id would share it with them.
        // The link rows go in AppService.destroy's transaction.
        try DatastoreService.leaveNetwork(ofApp: record.id!, store: store, containers: containers)
        if let sandbox = try? TenantSandbox(appID: record.id!, instance: instance) {
            _ = try? containers.call { engine in try await engine.removeNetwork(of: sandbox) }
        }
        return try apps.destroy(app, purgeStorage: purgeStorage, by: caller)
    }

    /// What `apps:clone` did.
    public struct CloneResult: Sendable {
        /// Mounts of the source not copied, each with why.
        public let skippedMounts: [String]
        /// The source's service links (config var, how to link), not copied.
        public var skippedLinks: [String] = []
        /// The new app's first release; nil with `deploy` false or when the source was never pushed.
        public var release: Release? = nil
        /// `ignoreExisting` and the name was taken: nothing was done.
        public var nameTaken = false
    }

    /// `apps:clone`: a new app owned by the caller with `source`'s repository (every
    /// branch and tag), config, the mounts the caller may make, resource limits, scale
    /// and deploy branch (`AppService.clone`), then, unless `deploy` is false, the
    /// source's deployed revision built and deployed as the new app. The source is only
    /// read: no lock of its is taken, and nothing of it changes. A failed deploy leaves
    /// the new app in place (as a failed first push would), which the error says.
    /// With `ignoreExisting`, a name already taken (by any app) is not an error: nothing is done.
    public func clone(_ source: AppName, to name: AppName, deploy: Bool, ignoreExisting: Bool = false, by caller: Caller,
                      output: @escaping Output) throws -> CloneResult {
        if ignoreExisting, try apps.find(name) != nil { return CloneResult(skippedMounts: [], nameTaken: true) }
        output("-----> Cloning \(source) to \(name)")
        let original = try existing(source)
        let revision = try currentRelease(of: original)?.release.revision ?? original.deployedRevision
        let staging = try git.stagedCopy(of: source, head: original.deployBranch)
        let copy: AppService.CloneCopy
        do {
            copy = try apps.clone(source, to: name, repository: staging, by: caller)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        guard deploy, let revision else { return CloneResult(skippedMounts: copy.skippedMounts, skippedLinks: copy.skippedLinks) }
        do {
            let release = try self.deploy(name, trigger: .clone(source: source, revision: revision, branch: original.deployBranch), by: caller, output: output)
            return CloneResult(skippedMounts: copy.skippedMounts, skippedLinks: copy.skippedLinks, release: release)
        } catch {
            let why = (error as? UserFacingError)?.message ?? "\(error)"
            throw UserFacingError(.conflict, "\(name) was created as a clone of \(source), but its deploy failed: \(why); ps:rebuild \(name) tries again")
        }
    }

    /// Renames an app, deployed or not. Its rows (config, access, domains, mounts,
    /// releases) keep their app id and so move with it; the repository moves; the
    /// images its builds made are tagged under the new name; a running app's current
    /// release starts under the new name and is checked, and the switch moves its site
    /// (the old default domain is no longer routed, custom domains stay) and records
    /// the rename in one transaction; then the old processes (and runs) go. Until that
    /// transaction nothing has changed for users: any failure before it leaves the app
    /// serving under its old name, as the error says. Both names stay reserved until
    /// the end (`app_renames`), so a rename cut short by a crash is finished or undone
    /// by the server's recovery (`finishInterruptedRename`).
    public func rename(_ old: AppName, to new: AppName, by caller: Caller, output: @escaping Output = { _ in }) throws {
        let lock = try locks.acquire(old, by: caller, output: output)
        defer { locks.release(lock) }
        try finishInterruptedRename(of: try existing(old))
        let record = try apps.beginRename(old, to: new, by: caller)
        let appID = record.id!
        // Old name → new name of every image the app's builds made that still exists.
        var tagged: [String: String] = [:]
        do {
            let builds = try store.read { db in
                try Row.fetchAll(db, sql: "SELECT DISTINCT image, revision FROM builds WHERE app_id = ? AND status = 'succeeded'", arguments: [appID])
                    .map { ($0["image"] as String, $0["revision"] as String) }
            }
            for (image, revision) in builds where try containers.inspectImage(image) != nil {
                let renamed = BuildService.imageTag(app: new, revision: revision)
                try containers.call { engine in try await engine.tagImage(image, as: renamed) }
                tagged[image] = renamed
            }
            let commit: @Sendable (Database) throws -> Void = { [apps, tagged] db in
                try apps.commitRename(appID, from: old, to: new, images: tagged, by: caller, db)
            }
            if let current = try currentRelease(of: record), !record.processesStopped {
                var release = current.release
                release.image = tagged[release.image] ?? release.image
                output("-----> Starting \(old)'s processes as \(new)")
                try ProcessFailure.reported {
                    try rollout(old, record: record, release: release, snapshot: current.snapshot, types: nil,
                                renamingTo: new, recording: commit, output: output)
                }
            } else {
                // Nothing runs: only the site (a 503 page, custom domains) moves.
                try routing.switchName(of: record, to: new, endpoints: [])
                do { try store.write(commit) } catch {
                    routing.restoreName(of: record, from: new)
                    throw error
                }
            }
        } catch {
            // A repository moved by a transaction that then failed goes back.
            if !FileManager.default.fileExists(atPath: paths.repository(old)), FileManager.default.fileExists(atPath: paths.repository(new)),
               (try? apps.find(old))?.id == appID {
                try? FileManager.default.moveItem(atPath: paths.repository(new), toPath: paths.repository(old))
            }
            _ = try? containers.call { [tagged] engine in for image in tagged.values { try? await engine.removeImage(image) } }
            try? apps.endRename(appID)
            let why = (error as? UserFacingError)?.message ?? "\(error)"
            throw UserFacingError(.conflict, "renaming \(old) to \(new) failed, so the app keeps the name \(old) and serves as before: \(why)")
        }
        // Renamed: whatever still runs under the old name (runs, an old process that did not go) goes.
        do {
            try containers.remove(try containers.list(app: old, kind: nil).map(\.id))
            _ = try? containers.call { [tagged] engine in for image in tagged.keys { try? await engine.removeImage(image) } }
            try apps.endRename(appID)
        } catch {
            output(" !     \(new) serves, but cleaning up after its old name failed (\((error as? UserFacingError)?.message ?? "\(error)")); the server finishes it at its next start")
        }
    }

    /// A rename of this app cut short (the process that ran it ended): the name the
    /// app does not have now loses its containers and proxy file, the image names
    /// under it go, and both names are free again. Called with the app's lock held,
    /// by the server's recovery and before a new rename.
    func finishInterruptedRename(of app: App) throws {
        guard let pending = try apps.pendingRename(of: app.id!) else { return }
        let loser = app.name == pending.old ? pending.new : pending.old
        try containers.remove(try containers.list(app: loser, kind: nil).map(\.id))
        try routing.unpublish(loser)
        let revisions = try store.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT revision FROM builds WHERE app_id = ? AND status = 'succeeded'", arguments: [app.id])
        }
        _ = try? containers.call { engine in
            for revision in revisions { try? await engine.removeImage(BuildService.imageTag(app: loser, revision: revision)) }
        }
        try apps.endRename(app.id!)
    }
}
