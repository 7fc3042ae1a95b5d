import Foundation
import GRDB

/// The rollout of an app set to the kubernetes scheduler: the same entry (`rollout`)
/// as the local one, so a push, a config change, a rollback, `ps:scale` and
/// `ps:restart` all reach the cluster the same way; `ClusterScheduler` does the work.
extension DeployService {
    /// The cluster `record` is rolled out to: nil for an app on this host; a refusal
    /// (nothing changed) for an app set to kubernetes on a server without a cluster.
    func clusterScheduler(of record: App) throws -> (any ClusterScheduler)? {
        guard try store.read({ db in try SchedulerService.scheduler(of: record, db) }) == .kubernetes else { return nil }
        guard let cluster else { throw SchedulerService.refusal(record.name) }
        return cluster
    }

    /// `release` at the app's scale now, applied on the cluster; then recorded as current
    /// (with `recording`) as the local switch does. A new release (still `deploying`)
    /// runs its predeploy Jobs first; when it does not become ready the release serving
    /// until now is applied again, and this throws. Processes the app still had on this
    /// host (it was local before) are retired once the cluster serves.
    func clusterRollout(_ cluster: any ClusterScheduler, record: App, release: Release, snapshot: ReleaseSnapshot, renamingTo: AppName?,
                        recording: (@Sendable (Database) throws -> Void)?, output: @escaping Output) throws {
        let app = record.name
        guard renamingTo == nil else {
            throw UserFacingError.conflict("\(app) runs on the kubernetes scheduler, whose namespace is named after the app; apps:rename is not supported there yet (scheduler:set \(app) local, rename, then set it back)")
        }
        func state(_ release: Release, _ snapshot: ReleaseSnapshot) throws -> SchedulerService.AppState {
            try clusterState(of: record, release: release, snapshot: snapshot)
        }
        let current = try currentRelease(of: record)
        let previous = try current.flatMap { current in current.release.id == release.id ? nil : try state(current.release, current.snapshot) }
        try cluster.rollOut(try state(release, snapshot), previous: previous, runTasks: release.status == .deploying, output: output)

        var done = release
        done.status = .succeeded
        done.finishedAt = Date()
        try store.write { [done] db in
            if done.id != nil, try Release.fetchOne(db, key: done.id)?.status == .deploying { try done.update(db) }
            try apps.setCurrentRelease(done.id, of: record.id!, db)
            try recording?(db)
            // The cluster's Ingress serves the app now; this host's router has nothing to point at.
            try db.execute(sql: "DELETE FROM endpoints WHERE app_id = ?", arguments: [record.id])
        }
        output("-----> Switched \(app) to \(release.label) on the cluster")
        let local = (try? processContainers(app)) ?? []
        guard !local.isEmpty else { return }
        output("-----> Retiring \(local.count) process\(local.count == 1 ? "" : "es") of \(app) on this host (it runs on the cluster now)")
        _ = try? routing.publish(app, endpoints: [])
        _ = try? containers.stop(local.map(\.id), remove: true)
    }

    /// `release` of `record` at the app's scale now, as the cluster runs it.
    func clusterState(of record: App, release: Release, snapshot: ReleaseSnapshot) throws -> SchedulerService.AppState {
        var scaled = snapshot
        scaled.formation = try formation(of: record.id!, plan: snapshot.plan)
        return try SchedulerService(store: store, settings: settings, paths: paths)
            .clusterState(of: record.name, release: release, snapshot: scaled, storage: storage, routing: routing)
    }

    /// For `run`: the cluster of an app set to kubernetes and its current release there;
    /// nil for an app on this host. Without a release yet there is nothing to run.
    func clusterTarget(_ app: AppName) throws -> (cluster: any ClusterScheduler, state: SchedulerService.AppState)? {
        let record = try existing(app)
        guard let cluster = try clusterScheduler(of: record) else { return nil }
        guard let current = try currentRelease(of: record) else {
            throw UserFacingError.notFound("\(app) has no release on the cluster yet; git push it first")
        }
        return (cluster, try clusterState(of: record, release: current.release, snapshot: current.snapshot))
    }

    /// `ps:report`'s processes of an app set to kubernetes: its Deployments' replicas
    /// (nil for an app on this host).
    func clusterProcesses(of record: App) throws -> [ProcessInfo]? {
        guard let cluster = try clusterScheduler(of: record) else { return nil }
        return try cluster.processes(of: record.name).map {
            ProcessInfo(name: $0.deployment, type: $0.type, index: 0, release: $0.release,
                        state: "\($0.ready)/\($0.desired) ready (Deployment on kubernetes)")
        }
    }
}
