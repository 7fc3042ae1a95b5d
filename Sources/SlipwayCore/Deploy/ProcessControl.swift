import Foundation
import GRDB

/// `ps:*`, `releases` and `logs`: the app's processes between deploys.
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
        /// Its restart policy and checks (`ps:set`, `checks:*`).
        public let settings: ProcessSettingsService.Values
        /// Whether the current release's app.json `formation` sets the scale (ps:scale is then refused).
        public let scaleFromAppJSON: Bool
    }

    public func report(_ app: AppName) throws -> Report {
        let record = try existing(app)
        let current = try currentRelease(of: record)
        let processes = try clusterProcesses(of: record) ?? processContainers(app).map {
            ProcessInfo(name: $0.name, type: $0.slipway.type.isEmpty ? "?" : $0.slipway.type, index: Int($0.slipway.index) ?? 0,
                        release: "v" + ($0.slipway.release.isEmpty ? "?" : $0.slipway.release), state: $0.state)
        }.sorted { ($0.type, $0.index) < ($1.type, $1.index) }
        let formation = try current.map { try self.formation(of: record.id!, plan: $0.snapshot.plan) } ?? [:]
        return Report(current: current?.release, formation: formation, stopped: record.processesStopped, processes: processes,
                      endpoints: try currentEndpoints(record.id!).map(\.address), url: try routing.url(for: app),
                      settings: try processSettings.values(of: app), scaleFromAppJSON: current?.snapshot.plan.formation != nil)
    }

    /// `ps:scale web=2 worker=1`: records the scale and, on a deployed app, starts
    /// or retires containers of the changed types (zero downtime for web). Passes
    /// the deploy gate: a locked app's scale is refused, unchanged.
    public func scale(_ app: AppName, _ quantities: [String: Int], by caller: Caller, output: @escaping Output) throws {
        let record = try existing(app)
        let current = try currentRelease(of: record)
        if let plan = current?.snapshot.plan {
            for type in quantities.keys where plan.processes[type] == nil {
                throw UserFacingError.invalid("\(app) has no process type \(quoted(type)); its Procfile has \(plan.processes.keys.sorted().joined(separator: ", "))")
            }
        }
        try admit(app, by: caller, output: output) { record, _ in
            // Read again under the lock: a deploy that just ended may have brought a formation.
            let current = try currentRelease(of: record)
            if let current, current.snapshot.plan.formation != nil {
                // Dokku's words first; then how to change the scale here.
                throw UserFacingError.conflict("App \(app) contains an app.json file with a formations key and cannot be manually scaled; its scale comes from the formation in app.json of \(current.release.label): change formation.<type>.quantity there and git push (a push without a formation lets ps:scale set it again)")
            }
            try scaleAdmitted(record, current: current, quantities, by: caller, output: output)
        }
    }

    private func scaleAdmitted(_ record: App, current: (release: Release, snapshot: ReleaseSnapshot)?, _ quantities: [String: Int],
                               by caller: Caller, output: @escaping Output) throws {
        let app = record.name
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
        try ProcessFailure.reported {
            try rollout(app, record: try existing(app), release: current.release, snapshot: current.snapshot, types: changed, output: output)
        }
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
        try rolloutCurrent(app, record, current, type: type, verb: ("Restarting", "restarted"), restarting: true, by: caller, output: output)
    }

    /// `ps:start [type]`: after ps:stop, the current release runs again.
    public func start(_ app: AppName, type: String?, by caller: Caller, output: @escaping Output) throws {
        let (record, current) = try deployed(app, type: type)
        try rolloutCurrent(app, record, current, type: type, verb: ("Starting", "started"), restarting: false, by: caller, output: output)
    }

    /// Fresh containers of the current release (of one type, or all), through the gate, audited;
    /// `restarting` (ps:restart) also gives them a new restart annotation on a cluster, where the same objects replace no pod.
    private func rolloutCurrent(_ app: AppName, _ record: App, _ current: (release: Release, snapshot: ReleaseSnapshot), type: String?,
                                verb: (heading: String, past: String), restarting: Bool, by caller: Caller, output: @escaping Output) throws {
        try admit(app, by: caller, output: output) { record, _ in
            output("-----> \(verb.heading) \(type.map { "the \($0) processes of " } ?? "")\(app) (\(current.release.label))")
            try ProcessFailure.reported {
                // On a cluster the same objects would replace no pod: a restart is a new restart annotation there.
                try rollout(app, record: record, release: current.release, snapshot: current.snapshot, types: type.map { [$0] },
                            restarting: restarting, output: output)
            }
            try store.write { db in try db.audit(caller, app: app.rawValue, detail: "\(verb.past) \(type ?? "all processes")") }
        }
    }

    /// `ps:stop [type]`: stops the containers (they stay stopped across server
    /// restarts); with web stopped the router answers 503 for the app.
    public func stop(_ app: AppName, type: String?, by caller: Caller, output: @escaping Output) throws {
        let (record, _) = try deployed(app, type: type)
        // Stopping this host's containers would leave the cluster's Deployments serving.
        if try clusterScheduler(of: record) != nil {
            throw UserFacingError.conflict("ps:stop is not supported on the kubernetes scheduler yet: \(app)'s Deployments run on the cluster, and nothing was stopped; ps:scale \(app) \(type ?? "web")=0 scales \(type == nil ? "a type" : "that type") to zero there (ps:scale back to start it)")
        }
        let lock = try locks.acquire(app, by: caller, output: output)
        defer { locks.release(lock) }
        let targets = try processContainers(app).filter { type == nil || $0.slipway.type == type }
        if type == nil || type == "web" {
            try routing.publish(app, endpoints: [])
        }
        try store.write { db in
            if type == nil { try apps.setProcessesStopped(of: record.id!, db) }
            if type == nil || type == "web" { try db.execute(sql: "DELETE FROM endpoints WHERE app_id = ?", arguments: [record.id]) }
            try db.audit(caller, app: app.rawValue, detail: "stopped \(type ?? "all processes")")
        }
        try containers.stop(targets.map(\.id), remove: false)
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
        try apps.existing(app)
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
        // An app set to kubernetes: its pods' logs through the API.
        if let cluster = try clusterScheduler(of: try existing(app)) {
            return try cluster.logs(app, processType: type, tail: tail, follow: follow, output: output, isCancelled: isCancelled)
        }
        let containers = try processContainers(app).filter { type == nil || $0.slipway.type == type }
            .sorted { $0.name < $1.name }
        guard !containers.isEmpty else {
            throw UserFacingError.notFound("\(app) has no \(type.map { "\($0) " } ?? "")processes; git push it or ps:start it")
        }
        let engine = self.engine
        if !follow {
            for container in containers {
                let prefix = "\(app)[\(container.slipway.process)]: "
                let lines = LineSplitter(output: { output(prefix + $0) })
                try self.containers.call { engine in try await engine.streamLogs(container.id, follow: false, tail: tail) { lines.feed($0.data) } }
                lines.flush()
            }
            return
        }
        // Follow: one stream per container, merged as lines arrive, until the caller leaves.
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                for container in containers {
                    let prefix = "\(app)[\(container.slipway.process)]: "
                    let lines = LineSplitter(output: { output(prefix + $0) })
                    group.addTask { try? await engine.streamLogs(container.id, follow: true, tail: tail) { lines.feed($0.data) } }
                }
            }
        }
        while !isCancelled() { Thread.sleep(forTimeInterval: 0.2) }
        task.cancel()
    }
}
