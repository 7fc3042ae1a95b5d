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
    ///
    /// `restarting` (`ps:restart`): those types' pod templates get a new restart time, so
    /// the cluster replaces their pods (rolling); the time is recorded with the switch and
    /// rendered by every later rollout, so nothing drops it.
    func clusterRollout(_ cluster: any ClusterScheduler, record: App, release: Release, snapshot: ReleaseSnapshot, renamingTo: AppName?,
                        restarting: ClusterRestart? = nil, recording: (@Sendable (Database) throws -> Void)?, output: @escaping Output) throws {
        let app = record.name
        guard renamingTo == nil else {
            // Not "switch to local, rename, switch back": leaving the cluster deletes the namespace, claims and data with it.
            throw UserFacingError.conflict("\(app) runs on the kubernetes scheduler, where apps:rename is not supported yet; nothing was changed. Its namespace (scheduler:report \(app) names it) is named after the app and holds its PersistentVolumeClaims: a renamed app would start in a new, empty namespace and leave its storage's data behind. Copy that data out before moving the app anywhere (scheduler:set \(app) local deletes the namespace and its claims)")
        }
        let current = try currentRelease(of: record)
        let previous = try current.flatMap { current in
            current.release.id == release.id ? nil : try clusterState(of: record, release: current.release, snapshot: current.snapshot)
        }
        let next = try clusterState(of: record, release: release, snapshot: snapshot, restarting: restarting)
        try cluster.rollOut(next, previous: previous, runTasks: release.status == .deploying, output: output)

        // The cluster's Ingress serves the app now; this host's router has nothing to point at.
        let appID = record.id!
        try makeCurrent(release, of: record, recording: { db in
            try restarting?.record(appID: appID, db)
            try recording?(db)
        }, endpoints: [])
        output("-----> Switched \(app) to \(release.label) on the cluster")
        let local = (try? processContainers(app)) ?? []
        guard !local.isEmpty else { return }
        output("-----> Retiring \(local.count) process\(local.count == 1 ? "" : "es") of \(app) on this host (it runs on the cluster now)")
        _ = try? routing.publish(app, endpoints: [])
        _ = try? containers.stop(local.map(\.id), remove: true)
    }

    /// Postdeploy task `number` (from 1) of a new `release` on the cluster, once it serves:
    /// its Job's output shown and stored as a local task's (`releases:output`'s "vN
    /// postdeploy"). Throws as `runTask` does; the caller reports it and keeps the release.
    func runClusterPostdeploy(_ cluster: any ClusterScheduler, _ number: Int, record: App, release: Release, snapshot: ReleaseSnapshot,
                              output: @escaping Output) throws {
        try recordingTask(record.name, release: release, phase: "postdeploy", output: output) { output in
            try cluster.runPostdeployTask(number, of: try clusterState(of: record, release: release, snapshot: snapshot), output: output)
        }
    }

    /// `scheduler:set APP SCHEDULER`, under the app's deploy lock. Leaving kubernetes for
    /// local removes the app's namespace and objects from the cluster first (else the
    /// cluster would keep serving it and running its cron next to this host); when the
    /// cluster cannot be reached nothing changes, unless `force`, which switches anyway
    /// and says the objects were left there. The app serves from this host from its next deploy.
    public func setScheduler(_ app: AppName, _ scheduler: Scheduler, force: Bool, by caller: Caller, output: @escaping Output) throws {
        let lock = try locks.acquire(app, by: caller)
        defer { locks.release(lock) }
        let record = try existing(app)
        let was = try store.read { db in try SchedulerService.scheduler(of: record, db) }
        var detail = ""
        if was == .kubernetes, scheduler == .local {
            if let cluster {
                do {
                    try cluster.remove(app, output: output)
                    detail = "; removed its objects from the cluster"
                } catch {
                    let reason = (error as? UserFacingError)?.message ?? "\(error)"
                    guard force else {
                        throw UserFacingError(.unavailable, "cannot remove \(app)'s objects from the cluster, so it stays on the kubernetes scheduler (the cluster would go on serving it and running its cron next to this host): \(reason). Retry when the cluster answers, or switch anyway with scheduler:set --force \(app) local, which leaves them running there")
                    }
                    output(" !     Could not remove \(app)'s objects from the cluster (\(reason)); --force: they are left running there (an admin deletes its namespace, which scheduler:report \(app) names, with kubectl)")
                    detail = "; --force: left its objects on the cluster"
                }
            } else {
                output(" !     This server has no cluster configured (kubeconfig): nothing was removed from one")
                detail = "; no cluster configured, nothing removed"
            }
        }
        try SchedulerService(store: store, settings: settings, paths: paths).set(app, scheduler, by: caller, detail: detail)
    }

    /// `apps:destroy` of an app set to kubernetes: its namespace and objects go from the
    /// cluster first; a cluster that cannot be reached refuses the destroy (nothing changed).
    func removeFromCluster(_ record: App) throws {
        guard try store.read({ db in try SchedulerService.scheduler(of: record, db) }) == .kubernetes, let cluster else { return }
        do {
            try cluster.remove(record.name, output: { _ in })
        } catch {
            let reason = (error as? UserFacingError)?.message ?? "\(error)"
            throw UserFacingError(.unavailable, "cannot remove \(record.name)'s objects from the cluster, so it was not destroyed: \(reason). Retry when the cluster answers, or scheduler:set --force \(record.name) local first to leave them there")
        }
    }

    /// After a `domains:*`/`certs:*` change is recorded (`RoutingService.committing`): an
    /// app on the kubernetes scheduler with a release gets its Ingress and TLS Secret from
    /// the new rows now, not at its next rollout. Throws (the change is then undone) when
    /// the cluster does not take them.
    func applyClusterRouting(_ app: AppName) throws {
        // Without a cluster configured there is nothing to update (a deploy says so).
        guard let record = try apps.find(app), let cluster,
              try store.read({ db in try SchedulerService.scheduler(of: record, db) }) == .kubernetes,
              let current = try currentRelease(of: record) else { return }
        do {
            try cluster.applyRouting(try clusterState(of: record, release: current.release, snapshot: current.snapshot))
        } catch {
            let reason = (error as? UserFacingError)?.message ?? "\(error)"
            throw UserFacingError(.unavailable, "cannot update \(app)'s Ingress on the cluster, so the change was undone: \(reason). Retry when the cluster answers")
        }
    }

    /// `release` of `record` at the app's scale now, as the cluster runs it.
    func clusterState(of record: App, release: Release, snapshot: ReleaseSnapshot, restarting: ClusterRestart? = nil) throws -> SchedulerService.AppState {
        var scaled = snapshot
        scaled.formation = try formation(of: record.id!, plan: snapshot.plan)
        return try SchedulerService(store: store, settings: settings, paths: paths)
            .clusterState(of: record.name, release: release, snapshot: scaled, storage: storage, routing: routing, restarting: restarting)
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
