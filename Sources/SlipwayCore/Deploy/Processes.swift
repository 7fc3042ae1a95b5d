import Foundation
import GRDB

/// `ps:*`, `logs`, and bringing the engine back in line with the state when the
/// server starts.
extension DeployService {
    /// One process container as `ps:report` shows it.
    public struct ProcessInfo: Sendable {
        public let name: String
        public let type: String
        public let index: Int
        public let release: String
        public let state: String
    }

    public struct Report: Sendable {
        public let current: Release?
        public let formation: [String: Int]
        public let stopped: Bool
        public let processes: [ProcessInfo]
        public let endpoints: [String]
        public let url: String
    }

    public func report(_ app: AppName) throws -> Report {
        let record = try existing(app)
        let current = try currentRelease(of: record)
        let processes = try processContainers(app).map {
            ProcessInfo(name: $0.name, type: $0.labels["org.slipway.type"] ?? "?", index: Int($0.labels["org.slipway.index"] ?? "") ?? 0,
                        release: "v" + ($0.labels["org.slipway.release"] ?? "?"), state: $0.state)
        }.sorted { ($0.type, $0.index) < ($1.type, $1.index) }
        let formation = try current.map { try self.formation(of: record.id!, plan: $0.snapshot.plan) } ?? [:]
        return Report(current: current?.release, formation: formation, stopped: record.processesStopped, processes: processes,
                      endpoints: try currentEndpoints(record.id!).map(\.address), url: try routing.url(for: app))
    }

    /// `ps:scale web=2 worker=1`: records the scale and, on a deployed app, starts
    /// or retires containers of the changed types (zero downtime for web).
    public func scale(_ app: AppName, _ quantities: [String: Int], by caller: Caller, output: @escaping Output) throws {
        let record = try existing(app)
        let current = try currentRelease(of: record)
        if let plan = current?.snapshot.plan {
            for type in quantities.keys where plan.processes[type] == nil {
                throw UserFacingError.invalid("\(app) has no process type \(quoted(type)); its Procfile has \(plan.processes.keys.sorted().joined(separator: ", "))")
            }
        }
        let lock = try locks.acquire(app, by: caller)
        defer { locks.release(lock) }
        let before = try current.map { try formation(of: record.id!, plan: $0.snapshot.plan) } ?? [:]
        try store.write { db in
            for (type, quantity) in quantities {
                var entry = FormationEntry(appId: record.id!, processType: type, quantity: quantity)
                try entry.save(db)
            }
            try db.audit(caller, app: app.rawValue, detail: "scaled " + quantities.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        }
        guard let current, !record.processesStopped else {
            output("-----> Scale recorded; it applies at the next deploy\(record.processesStopped ? " or ps:start" : "")")
            return
        }
        let changed = Set(quantities.filter { before[$0.key] != $0.value }.keys)
        guard !changed.isEmpty else { output("-----> \(app) already runs that scale"); return }
        output("-----> Scaling \(app): " + quantities.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        try rollout(app, record: try existing(app), release: current.release, snapshot: current.snapshot, types: changed, output: output)
    }

    /// `ps:restart [type]`: fresh containers of the current release, switched without
    /// downtime. Config or storage changed since (config:set --no-restart) makes it a
    /// new release with them instead, as Dokku users expect.
    public func restart(_ app: AppName, type: String?, by caller: Caller, output: @escaping Output) throws {
        let (record, current) = try deployed(app, type: type)
        let environment = try config.environmentVariables(of: app), mounts = try deployMounts(of: app)
        if environment != current.snapshot.environment || mounts != current.snapshot.mounts {
            output("-----> Config or storage changed since \(current.release.label): restarting with a new release")
            try deploy(app, trigger: .config, by: caller, output: output)
            return
        }
        try rolloutCurrent(app, record, current, type: type, verb: ("Restarting", "restarted"), by: caller, output: output)
    }

    /// `ps:start [type]`: after ps:stop, the current release runs again.
    public func start(_ app: AppName, type: String?, by caller: Caller, output: @escaping Output) throws {
        let (record, current) = try deployed(app, type: type)
        try rolloutCurrent(app, record, current, type: type, verb: ("Starting", "started"), by: caller, output: output)
    }

    /// Fresh containers of the current release (of one type, or all), under the lock, audited.
    private func rolloutCurrent(_ app: AppName, _ record: App, _ current: (release: Release, snapshot: ReleaseSnapshot), type: String?,
                                verb: (heading: String, past: String), by caller: Caller, output: @escaping Output) throws {
        let lock = try locks.acquire(app, by: caller)
        defer { locks.release(lock) }
        output("-----> \(verb.heading) \(type.map { "the \($0) processes of " } ?? "")\(app) (\(current.release.label))")
        try rollout(app, record: record, release: current.release, snapshot: current.snapshot, types: type.map { [$0] }, output: output)
        try store.write { db in try db.audit(caller, app: app.rawValue, detail: "\(verb.past) \(type ?? "all processes")") }
    }

    /// `ps:stop [type]`: stops the containers (they stay stopped across server
    /// restarts); with web stopped the router answers 503 for the app.
    public func stop(_ app: AppName, type: String?, by caller: Caller, output: @escaping Output) throws {
        let (record, _) = try deployed(app, type: type)
        let lock = try locks.acquire(app, by: caller)
        defer { locks.release(lock) }
        let targets = try processContainers(app).filter { type == nil || $0.labels["org.slipway.type"] == type }
        if type == nil || type == "web" {
            try routing.publish(app, endpoints: [])
        }
        try store.write { db in
            if type == nil { try db.execute(sql: "UPDATE apps SET processes_stopped = 1 WHERE id = ?", arguments: [record.id]) }
            if type == nil || type == "web" { try db.execute(sql: "DELETE FROM endpoints WHERE app_id = ?", arguments: [record.id]) }
            try db.audit(caller, app: app.rawValue, detail: "stopped \(type ?? "all processes")")
        }
        let engine = self.engine
        let ids = targets.map(\.id)
        try waitFor { [engine] in for id in ids { try await engine.stopContainer(id, timeoutSeconds: 10) } }
        output("-----> Stopped \(targets.count) process\(targets.count == 1 ? "" : "es") of \(app)")
    }

    private func deployed(_ app: AppName, type: String?) throws -> (App, (release: Release, snapshot: ReleaseSnapshot)) {
        let record = try existing(app)
        guard let current = try currentRelease(of: record) else {
            throw UserFacingError.conflict("\(app) has not been deployed yet; git push it first")
        }
        if let type, current.snapshot.plan.processes[type] == nil {
            throw UserFacingError.invalid("\(app) has no process type \(quoted(type)); it has \(current.snapshot.plan.processes.keys.sorted().joined(separator: ", "))")
        }
        return (record, current)
    }

    func existing(_ app: AppName) throws -> App {
        guard let record = try apps.find(app) else { throw UserFacingError.appNotFound(app.rawValue) }
        return record
    }

    /// The app's releases, newest first.
    public func releases(_ app: AppName, limit: Int = 100) throws -> (releases: [Release], currentID: Int64?) {
        let record = try existing(app)
        let list = try store.read { db in
            try Release.filter(Column("app_id") == record.id).order(Column("version").desc).limit(limit).fetchAll(db)
        }
        return (list, record.currentReleaseId)
    }

    // MARK: Logs

    /// `logs`: the app's process output with `type.n` prefixes; `follow` streams
    /// until `isCancelled` (the client went away).
    public func logs(_ app: AppName, type: String?, tail: Int, follow: Bool, output: @escaping Output,
                     isCancelled: @escaping @Sendable () -> Bool) throws {
        _ = try existing(app)
        let containers = try processContainers(app).filter { type == nil || $0.labels["org.slipway.type"] == type }
            .sorted { $0.name < $1.name }
        guard !containers.isEmpty else {
            throw UserFacingError.notFound("\(app) has no \(type.map { "\($0) " } ?? "")processes; git push it or ps:start it")
        }
        let engine = self.engine
        if !follow {
            for container in containers {
                let prefix = "\(app)[\(container.labels["org.slipway.type"] ?? "?").\(container.labels["org.slipway.index"] ?? "?")]: "
                let lines = LineSplitter(output: { output(prefix + $0) })
                try waitFor { [engine] in try await engine.streamLogs(container.id, follow: false, tail: tail) { lines.feed($0.data) } }
                lines.flush()
            }
            return
        }
        // Follow: one stream per container, merged as lines arrive, until the caller leaves.
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                for container in containers {
                    let prefix = "\(app)[\(container.labels["org.slipway.type"] ?? "?").\(container.labels["org.slipway.index"] ?? "?")]: "
                    let lines = LineSplitter(output: { output(prefix + $0) })
                    group.addTask { try? await engine.streamLogs(container.id, follow: true, tail: tail) { lines.feed($0.data) } }
                }
            }
        }
        while !isCancelled() { Thread.sleep(forTimeInterval: 0.2) }
        task.cancel()
    }

    /// Before apps:destroy: under the app's lock (no deploy may be running), its
    /// containers go, and its proxy config.
    public func teardown(_ app: AppName, by caller: Caller) throws {
        let lock = try locks.acquire(app, by: caller)
        defer { locks.release(lock) }
        let engine = self.engine, instance = self.instance
        try waitFor { [engine] in
            for container in try await engine.listContainers(labels: ["org.slipway.app": app.rawValue, "org.slipway.instance": instance]) {
                try await engine.removeContainer(container.id, force: true)
            }
        }
        try routing.unpublish(app)
        if let id = try apps.find(app)?.id { CertificateFiles.remove(paths: paths, appID: id) }
        let images = try store.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT image FROM builds JOIN apps ON apps.id = builds.app_id WHERE apps.name = ?", arguments: [app])
        }
        _ = try? waitFor { [engine] in for image in images { try? await engine.removeImage(image) } }
        if let id = try apps.find(app)?.id, let sandbox = try? TenantSandbox(appID: id, instance: instance) {
            _ = try? waitFor { [engine] in try await engine.removeNetwork(of: sandbox) }
        }
    }

    // MARK: Recovery

    /// Called as `slipway serve` starts, before any session: deploys that ran under
    /// the previous server (its hooks may outlive it) are stopped and failed, and
    /// their locks released. Returns one line per repair.
    public func endInterruptedDeploys() throws -> [String] {
        var repairs: [String] = []
        for lock in try locks.all() where lock.origin == "ssh" || !DeployLocks.isAlive(lock.pid) {
            if DeployLocks.isAlive(lock.pid) && lock.pid != getpid() {
                kill(lock.pid, SIGKILL)
                for _ in 0..<50 where DeployLocks.isAlive(lock.pid) { Thread.sleep(forTimeInterval: 0.1) }
            }
            try store.write { db in try DeployLocks.abandon(lock, db) }
            repairs.append("released the deploy lock of \(lock.holder) (process \(lock.pid))")
        }
        // Their deploy tasks died with them.
        let engine = self.engine, instance = self.instance
        let stillDeploying = try store.read { db in
            Set(try String.fetchAll(db, sql: "SELECT apps.name FROM deploy_locks JOIN apps ON apps.id = deploy_locks.app_id"))
        }
        let tasks = try waitFor { [engine] in
            let tasks = try await engine.listContainers(labels: ["org.slipway.kind": "task", "org.slipway.instance": instance])
                .filter { !stillDeploying.contains($0.labels["org.slipway.app"] ?? "") }
            for task in tasks { try await engine.removeContainer(task.id, force: true) }
            return tasks.count
        }
        if tasks > 0 { repairs.append("removed \(tasks) deploy task container\(tasks == 1 ? "" : "s") of interrupted deploys") }
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
    public func reconcile(report: (String) -> Void) throws {
        let engine = self.engine
        let apps = try store.read { db in try App.fetchAll(db) }
        let caller = Caller(principal: .localAdmin, command: "serve (reconcile)")
        for record in apps {
            guard let lock = try? locks.acquire(record.name, by: caller) else { continue }
            defer { locks.release(lock) }
            let containers = try processContainers(record.name)
            let current = try currentRelease(of: record)
            // Containers of other releases (a deploy cut short before or after its switch).
            let strays = containers.filter { $0.labels["org.slipway.release"] != current.map { String($0.release.version) } }
            if !strays.isEmpty {
                let ids = strays.map(\.id)
                try waitFor { [engine] in for id in ids { try await engine.removeContainer(id, force: true) } }
                report("\(record.name): removed \(strays.count) container\(strays.count == 1 ? "" : "s") of an unfinished deploy")
            }
            guard let current, !record.processesStopped else {
                try routing.publish(record.name, endpoints: [])
                continue
            }
            let formation = try formation(of: record.id!, plan: current.snapshot.plan)
            let kept = containers.filter { !strays.contains($0) }
            let expected = formation.reduce(0) { $0 + $1.value }
            let healthy = kept.filter { $0.state == "running" }
            let endpoints = try currentEndpoints(record.id!)
            if healthy.count == expected && kept.count == expected && endpoints.count == (formation["web"] ?? 0) {
                try routing.publish(record.name, endpoints: endpoints.map(\.address))
                continue
            }
            // Missing, stopped or half-switched processes: a fresh rollout of the current release.
            try rollout(record.name, record: record, release: current.release, snapshot: current.snapshot, types: nil) { _ in }
            report("\(record.name): restarted the processes of \(current.release.label)")
        }
    }
}
