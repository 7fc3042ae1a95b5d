import Foundation
import GRDB

/// Bringing the engine back in line with the state when the server starts:
/// deploys cut short by the previous server end, and every app runs its current
/// release again.
extension DeployService {
    /// Called as `slipway serve` starts, before any session: deploys that ran under
    /// the previous server (its hooks may outlive it) are stopped and failed, and
    /// their locks released. Returns one line per repair.
    public func endInterruptedDeploys() throws -> [String] {
        var repairs: [String] = []
        for lock in try locks.all() where lock.origin == "ssh" || !locks.isHeld(lock) {
            if locks.isHeld(lock) && lock.pid != getpid() {
                locks.processes.forceStop(lock.pid, startedBy: lock.acquiredAt)
                for _ in 0..<50 where locks.isHeld(lock) { Thread.sleep(forTimeInterval: 0.1) }
            }
            try store.write { db in try DeployLocks.abandon(lock, db) }
            repairs.append("released the deploy lock of \(lock.holder) (process \(lock.pid))")
        }
        // Their deploy tasks died with them.
        let stillDeploying = try store.read { db in
            let names = try AppService.names(db)
            return Set(try DeployLock.fetchAll(db).compactMap { names[$0.appId]?.rawValue })
        }
        // And no helper (an image-user lookup) outlives the server that started it.
        let orphans = try containers.list(app: nil, kind: .task).filter { !stillDeploying.contains($0.slipway.app) }
            + containers.list(app: nil, kind: .helper)
        try containers.remove(orphans.map(\.id))
        let tasks = orphans.count
        if tasks > 0 { repairs.append("removed \(tasks) deploy task or helper container\(tasks == 1 ? "" : "s") of interrupted deploys") }
        try store.write { db in
            try db.execute(sql: """
                UPDATE releases SET status = 'failed', error = 'interrupted (the server stopped)', finished_at = ?
                WHERE status = 'deploying' AND app_id NOT IN (SELECT app_id FROM deploy_locks)
                """, arguments: [Date()])
            try db.execute(sql: """
                UPDATE builds SET status = 'failed', error = 'interrupted (the server stopped)', finished_at = ?
                WHERE status = 'building' AND app_id NOT IN (SELECT app_id FROM deploy_locks)
                """, arguments: [Date()])
        }
        return repairs
    }

    /// Brings every app's containers back in line with its state: containers of
    /// unfinished deploys go, the current release runs at its formation (unless
    /// ps:stop), and the router points at the recorded endpoints. Each app is
    /// repaired under its lock; one being deployed meanwhile is left to that deploy.
    /// A deploy that asks for an app being repaired waits for it (`DeployLocks.acquire`).
    /// An app that cannot be repaired (its release fails its check) is reported, and
    /// the others are repaired still: one tenant's app never keeps another's down.
    public func reconcile(report: (String) -> Void) throws {
        let apps = try store.read { db in try AppService.all(db) }
        let caller = Caller(principal: .localAdmin, command: "serve (reconcile)")
        for record in apps {
            guard let lock = try? locks.acquire(record.name, by: caller, origin: DeployLocks.recoveryOrigin) else { continue }
            defer { locks.release(lock) }
            do {
                if try self.apps.pendingRename(of: record.id!) != nil {
                    try finishInterruptedRename(of: record)
                    report("\(record.name): finished a rename cut short (the other name's processes and routing removed)")
                }
                try repair(record, report: report)
            } catch {
                report("\(record.name): not brought back: \((error as? UserFacingError)?.message ?? "\(error)")")
            }
        }
    }

    /// One app of `reconcile`, its lock held.
    private func repair(_ record: App, report: (String) -> Void) throws {
        let containers = try processContainers(record.name)
        let current = try currentRelease(of: record)
        // Containers of other releases (a deploy cut short before or after its switch).
        let strays = containers.filter { $0.slipway.release != current.map { String($0.release.version) } }
        if !strays.isEmpty {
            try self.containers.remove(strays.map(\.id))
            report("\(record.name): removed \(strays.count) container\(strays.count == 1 ? "" : "s") of an unfinished deploy")
        }
        guard let current, !record.processesStopped else {
            try routing.publish(record.name, endpoints: [])
            return
        }
        let formation = try formation(of: record.id!, plan: current.snapshot.plan)
        let kept = containers.filter { !strays.contains($0) }
        let expected = formation.reduce(0) { $0 + $1.value }
        let healthy = kept.filter { $0.state == "running" }
        let endpoints = try currentEndpoints(record.id!)
        if healthy.count == expected && kept.count == expected && endpoints.count == (formation["web"] ?? 0) {
            try routing.publish(record.name, endpoints: endpoints.map(\.address))
            // Names left temporary by an interrupted rename converge on `<app>.<type>.<n>`.
            let renames = kept.filter { $0.name != Self.processName(record.name, $0.slipway.type, Int($0.slipway.index) ?? 0) }
                .map { ($0.id, Self.processName(record.name, $0.slipway.type, Int($0.slipway.index) ?? 0)) }
            for failure in converge(record.name, renames) { report("\(record.name): could not rename \(failure)") }
            return
        }
        // Missing, stopped or half-switched processes: a fresh rollout of the current release.
        try ProcessFailure.reported {
            try rollout(record.name, record: record, release: current.release, snapshot: current.snapshot, types: nil) { _ in }
        }
        report("\(record.name): restarted the processes of \(current.release.label)")
    }
}
