import Foundation
import GRDB

/// Starting a release's processes next to the running ones, checking them, switching
/// traffic, and retiring the old ones: the part of a deploy that keeps the app up.
extension DeployService {
    /// Final container name of a process: `web.worker.2`.
    static func processName(_ app: AppName, _ type: String, _ index: Int) -> String { "\(app).\(type).\(index)" }

    /// The app's process containers on the engine (this server's only).
    func processContainers(_ app: AppName) throws -> [ContainerSummary] {
        try containers.list(app: app, kind: .process)
    }

    /// Starts new containers for `types` (nil: every type of the plan) of `release`,
    /// checks them, points the router at the new web containers, records the
    /// release as current, and retires the containers they replace. On failure the
    /// new containers are removed and nothing else has changed (a failed check
    /// throws `ProcessFailure`). `recording` writes more in the transaction that
    /// makes the release current (a push's revision).
    ///
    /// The app's process settings shape it: containers get its restart policy; a
    /// type whose checks are skipped (`checks:skip`) is switched to unchecked; one
    /// whose checks are disabled (`checks:disable`) is not checked either, and its
    /// old containers stop before the new ones start, as Dokku does (for apps that
    /// must never run twice at once). Unlike Dokku, those old containers are only
    /// removed once the new ones serve: if the new ones fail, they start again.
    ///
    /// With `renamingTo` (apps:rename) the new containers carry that name, the switch
    /// moves the app's site to it, and `recording` must record the rename.
    ///
    /// `restarting` (ps:restart) matters on a cluster only, where applying the same
    /// objects replaces no pod: those types get a new restart annotation.
    func rollout(_ app: AppName, record: App, release: Release, snapshot: ReleaseSnapshot, types: Set<String>?,
                 renamingTo: AppName? = nil, restarting: Bool = false, recording: (@Sendable (Database) throws -> Void)? = nil,
                 output: @escaping Output) throws {
        if let cluster = try clusterScheduler(of: record) {
            let restart = restarting ? ClusterRestart(types: (types.map(Array.init) ?? Array(snapshot.plan.processes.keys)).sorted()) : nil
            return try clusterRollout(cluster, record: record, release: release, snapshot: snapshot, renamingTo: renamingTo,
                                      restarting: restart, recording: recording, output: output)
        }
        let containers = self.containers
        // The name the new containers carry, in their names and labels.
        let label = renamingTo ?? app
        let formation = try formation(of: record.id!, plan: snapshot.plan)
        let process = try processSettings.values(of: app)
        let before = try processContainers(app)
        let replacing = types ?? Set(snapshot.plan.processes.keys).union(before.map(\.slipway.type).filter { !$0.isEmpty })
        var spec = ContainerSpec(image: release.image)
        spec.environment = environment(snapshot)
        spec.sandbox = try TenantSandbox(appID: record.id!, instance: instance)
        spec.binds = try binds(snapshot.mounts, image: release.image, sandbox: spec.sandbox!)
        spec.restartPolicy = process.computedRestartPolicy
        let port = self.port(snapshot)
        if let commandless = snapshot.plan.processes.filter({ replacing.contains($0.key) && $0.value.isEmpty && (formation[$0.key] ?? 0) > 0 }).keys.first,
           try containers.inspectImage(release.image)?.hasCommand == false {
            throw UserFacingError.invalid("\(commandless) has no command: the image has no CMD or ENTRYPOINT; add one to the Dockerfile, or a Procfile line such as \(quoted("\(commandless): python3 server.py"))")
        }

        // Start.
        var started: [(type: String, index: Int, id: String, name: String)] = []
        var published = false
        // checks:disable: the old containers of those types stop first (kept until the switch).
        let stoppedFirst = before.filter { replacing.contains($0.slipway.type) && process.checkMode(of: $0.slipway.type) == .disabled && $0.state == "running" }
        do {
            if !stoppedFirst.isEmpty {
                let types = Set(stoppedFirst.map(\.slipway.type)).sorted().joined(separator: ", ")
                output("-----> Zero downtime is disabled for \(types) (checks:disable): stopping the old processes first")
                try containers.stop(stoppedFirst.map(\.id), remove: false)
            }
            for type in snapshot.plan.processes.keys.sorted() where replacing.contains(type) {
                let quantity = formation[type] ?? 0
                guard quantity > 0 else { continue }
                output("-----> Starting \(quantity) \(type) process\(quantity == 1 ? "" : "es")")
                for index in 1...quantity {
                    var one = spec
                    let command = snapshot.plan.processes[type] ?? ""
                    one.command = command.isEmpty ? nil : ["/bin/sh", "-c", command]
                    one.name = "\(Self.processName(label, type, index)).new-\(UUID().uuidString.prefix(6).lowercased())"
                    var labels = labels(label, kind: .process, release: release)
                    (labels.type, labels.index) = (type, String(index))
                    one.publishedPort = type == "web" ? port : nil
                    one.limits = try resources.limits(for: app, processType: type)
                    started.append((type, index, try containers.start(one, labels: labels), one.name!))
                }
            }
            // Check.
            var endpoints: [(name: String, address: String)] = []
            for one in started where one.type == "web" {
                let name = Self.processName(label, one.type, one.index)
                if let mode = process.checkMode(of: one.type) {
                    output("-----> Checks of \(name) are \(mode.rawValue) (checks:enable \(app) \(one.type) turns them on)")
                    endpoints.append((name, try address(web: one.id, name: name, port: port)))
                    continue
                }
                let address = try check(web: one.id, name: name, port: port, checks: snapshot.plan.healthchecks[one.type] ?? [], output: output)
                endpoints.append((name, address))
            }
            for one in started where one.type != "web" {
                let name = Self.processName(label, one.type, one.index)
                if let mode = process.checkMode(of: one.type) {
                    output("-----> Checks of \(name) are \(mode.rawValue) (checks:enable \(app) \(one.type) turns them on)")
                    continue
                }
                try checkRunning(one.id, name: name, output: output)
            }
            // Switch: the router first (validated), then the state, in one transaction.
            let webReplaced = replacing.contains("web")
            let liveEndpoints = webReplaced ? endpoints : try currentEndpoints(record.id!)
            if webReplaced || record.currentReleaseId == nil || renamingTo != nil {
                published = true
                if let renamingTo {
                    try routing.switchName(of: record, to: renamingTo, endpoints: liveEndpoints.map(\.address))
                } else {
                    try routing.publish(app, endpoints: liveEndpoints.map(\.address))
                }
                output("-----> Switched \(label) to \(release.label)\(webReplaced ? " (\(liveEndpoints.count) web)" : "")")
            }
            try makeCurrent(release, of: record, recording: recording, endpoints: webReplaced ? liveEndpoints : nil)
        } catch {
            _ = try? containers.remove(started.map(\.id))
            if !stoppedFirst.isEmpty { restartStoppedFirst(app, record: record, stoppedFirst, port: port, output: output) }
            // Traffic goes back to the endpoints still recorded: the old release's.
            if published {
                if let renamingTo { routing.restoreName(of: record, from: renamingTo) } else { _ = try? routing.publish(app) }
            }
            throw error
        }

        // Retire what the new containers replace, after in-flight requests had time to finish.
        let retiring = before.filter { replacing.contains($0.slipway.type) }
        if !retiring.isEmpty {
            let wait = process.computedWaitToRetire
            if retiring.contains(where: { $0.slipway.type == "web" && $0.state == "running" && !stoppedFirst.map(\.id).contains($0.id) }) && wait > 0 {
                output("-----> Retiring the old processes in \(wait) s")
                Thread.sleep(forTimeInterval: TimeInterval(wait))
            }
            for old in retiring {
                // One that does not stop or go now (the engine restarting it) is taken by the renames below.
                _ = try? containers.stop([old.id], remove: true)
            }
        }
        // The new containers take the plain names now that those are free.
        for failure in converge(label, started.map { ($0.id, Self.processName(label, $0.type, $0.index)) }) {
            output(" !     could not rename \(failure) (it runs under its temporary name)")
        }
    }

    /// The switch's state change, for this host's rollout and the cluster's alike, in one
    /// transaction: a new release (still `deploying`) is marked succeeded and finished,
    /// it becomes the app's current release, `recording` writes its part (a push's
    /// revision, an app.json formation), and the app's recorded web endpoints become
    /// `endpoints` (nil: they stay as they are).
    func makeCurrent(_ release: Release, of record: App, recording: (@Sendable (Database) throws -> Void)?,
                     endpoints: [(name: String, address: String)]?) throws {
        var done = release
        done.status = .succeeded
        done.finishedAt = Date()
        try store.write { [done] db in
            if done.id != nil, try Release.fetchOne(db, key: done.id)?.status == .deploying { try done.update(db) }
            try apps.setCurrentRelease(done.id, of: record.id!, db)
            try recording?(db)
            if let endpoints {
                try db.execute(sql: "DELETE FROM endpoints WHERE app_id = ?", arguments: [record.id])
                for endpoint in endpoints {
                    var row = Endpoint(appId: record.id!, containerName: endpoint.name, address: endpoint.address)
                    try row.insert(db)
                }
            }
        }
    }

    /// Renames each container to its plain name (`web.web.1`). The engine may take a
    /// moment to free a removed container's name; a name still held by another
    /// container of the app's processes (an old one that did not go, or a stray of an
    /// earlier deploy) is freed by removing that one: these ids are the app's processes
    /// now. Returns what still failed after 10 s.
    func converge(_ app: AppName, _ renames: [(id: String, name: String)], within bound: Duration = .seconds(10)) -> [String] {
        let containers = self.containers
        let live = Set(renames.map(\.id))
        var pending = renames
        var failures: [String: String] = [:]
        let deadline = ContinuousClock.now + bound
        while !pending.isEmpty {
            pending = pending.filter { id, name in
                do {
                    try containers.call { engine in try await engine.renameContainer(id, to: name) }
                    failures[name] = nil
                    return false
                } catch {
                    failures[name] = "\(name): \((error as? UserFacingError)?.message ?? "\(error)")"
                    if let holder = (try? processContainers(app))?.first(where: { $0.name == name && !live.contains($0.id) }) {
                        _ = try? containers.remove([holder.id])
                    }
                    return true
                }
            }
            guard !pending.isEmpty, ContinuousClock.now < deadline else { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return pending.compactMap { failures[$0.name] }
    }

    /// After a failed rollout that had stopped the old containers first
    /// (checks:disable): they start again, and when the engine gave the web ones
    /// other host ports, the router and the recorded endpoints follow them.
    private func restartStoppedFirst(_ app: AppName, record: App, _ stopped: [ContainerSummary], port: Int, output: @escaping Output) {
        let containers = self.containers
        output("-----> Starting the old processes again")
        var endpoints: [(name: String, address: String)] = []
        for old in stopped {
            do {
                try containers.call("starting \(old.name) again") { engine in try await engine.startContainer(old.id) }
                if old.slipway.type == "web", let hostPort = try containers.inspect(old.id)?.hostPorts[port] {
                    endpoints.append((old.name, "127.0.0.1:\(hostPort)"))
                }
            } catch {
                output(" !     could not start \(old.name) again: \((error as? UserFacingError)?.message ?? "\(error)"); ps:restart \(app) starts the app's processes")
            }
        }
        guard !endpoints.isEmpty, let recorded = try? currentEndpoints(record.id!),
              Set(recorded.map(\.address)) != Set(endpoints.map(\.address)) else { return }
        do {
            try routing.publish(app, endpoints: endpoints.map(\.address))
            try store.write { db in
                try db.execute(sql: "DELETE FROM endpoints WHERE app_id = ?", arguments: [record.id])
                for endpoint in endpoints {
                    var row = Endpoint(appId: record.id!, containerName: endpoint.name, address: endpoint.address)
                    try row.insert(db)
                }
            }
        } catch {
            output(" !     could not point the router at the old processes again: \((error as? UserFacingError)?.message ?? "\(error)"); ps:restart \(app) does")
        }
    }

    /// A new web container's loopback address, without checking it (checks skipped or disabled).
    func address(web id: String, name: String, port: Int) throws -> String {
        guard let details = try containers.inspect(id), let hostPort = details.hostPorts[port] else {
            throw UserFacingError(.conflict, "\(name) has no published port \(port)")
        }
        return "127.0.0.1:\(hostPort)"
    }

    func currentEndpoints(_ appID: Int64) throws -> [(name: String, address: String)] {
        try store.read { db in
            try Endpoint.filter(Column("app_id") == appID).order(Column("container_name")).fetchAll(db).map { ($0.containerName, $0.address) }
        }
    }

    // MARK: Checks

    /// A new web container passes when it answers HTTP on its port (default), or
    /// passes the app.json checks. Returns its loopback address.
    func check(web id: String, name: String, port: Int, checks: [HealthCheck], output: @escaping Output) throws -> String {
        let address = try address(web: id, name: name, port: port)
        if checks.isEmpty {
            output("-----> Checking \(name): HTTP on port \(port) within \(settings.checkTimeout) s")
            let deadline = Date().addingTimeInterval(TimeInterval(settings.checkTimeout))
            var tries = 0
            while true {
                try ensureRunning(id, name: name)
                tries += 1
                let answer = Result { try waitFor(timeout: .seconds(5), { [probe] in try await probe.get("http://\(address)/", timeout: 2) }) }
                guard case .failure(let error) = answer else { break }
                guard Date() < deadline else {
                    // What the last try saw tells a slow start (a timeout) from nothing listening.
                    let seen = String(((error as? UserFacingError)?.message ?? "\(error)").prefix(200))
                    throw failure(id, name: name, "did not answer HTTP on port \(port) within \(settings.checkTimeout) s (is it listening on $PORT?); \(tries) tries, the last: \(seen)")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        } else {
            for check in checks {
                let path = check.path ?? "/"
                let attempts = check.attempts ?? 5, timeout = check.timeout ?? 5, wait = check.wait ?? 5
                output("-----> Checking \(name): \(check.name ?? "GET \(path)")\(check.content.map { " for \(quoted($0))" } ?? "") (\(attempts) attempts)")
                if let delay = check.initialDelay, delay > 0 { Thread.sleep(forTimeInterval: TimeInterval(delay)) }
                var lastProblem = ""
                var passed = false
                for attempt in 1...attempts {
                    try ensureRunning(id, name: name)
                    do {
                        let answer = try waitFor(timeout: .seconds(Int64(timeout) + 5)) { [probe] in try await probe.get("http://\(address)\(path)", timeout: TimeInterval(timeout)) }
                        if !(200..<400).contains(answer.status) {
                            lastProblem = "answered \(answer.status)"
                        } else if let content = check.content, !answer.body.contains(content) {
                            lastProblem = "answered without \(quoted(content))"
                        } else {
                            passed = true
                            break
                        }
                    } catch {
                        lastProblem = "did not answer within \(timeout) s"
                    }
                    output("       attempt \(attempt)/\(attempts): \(lastProblem)")
                    if attempt < attempts { Thread.sleep(forTimeInterval: TimeInterval(wait)) }
                }
                guard passed else { throw failure(id, name: name, "failed its check GET \(path): \(lastProblem)") }
            }
        }
        output("       \(name) is healthy")
        return address
    }

    /// Other process types pass when they are still running a moment after start.
    func checkRunning(_ id: String, name: String, output: @escaping Output) throws {
        Thread.sleep(forTimeInterval: runningCheckDelay)
        try ensureRunning(id, name: name)
        output("       \(name) is running")
    }

    private func ensureRunning(_ id: String, name: String) throws {
        let details = try containers.inspect(id)
        guard let details, details.running, details.restartCount == 0 else {
            guard let ended = containers.exitStatus(id, details) else { throw failure(id, name: name, "is gone (removed while it was checked)") }
            throw failure(id, name: name, OutOfMemory.reason(ended.details, settings: settings) ?? ended.description)
        }
    }

    /// The check's error, with the container's last log lines.
    private func failure(_ id: String, name: String, _ problem: String) -> ProcessFailure {
        ProcessFailure(problem: "\(name) \(problem)", logLines: containers.lastLines(id, count: 10))
    }

    // MARK: Housekeeping

    /// Keeps the images of the last `releases_to_keep` successful releases and the
    /// latest build; removes the app's other images (the engine keeps one still in use).
    func housekeeping(_ app: AppName, appID: Int64, output: @escaping Output) {
        let keep = settings.releasesToKeep
        guard let (kept, all) = try? store.read({ db -> (Set<String>, Set<String>) in
            let kept = try String.fetchAll(db, sql: """
                SELECT image FROM releases WHERE app_id = ? AND status = 'succeeded' ORDER BY version DESC LIMIT ?
                """, arguments: [appID, keep])
            let latestBuild = try String.fetchAll(db, sql: "SELECT image FROM builds WHERE app_id = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1", arguments: [appID])
            let all = try String.fetchAll(db, sql: "SELECT DISTINCT image FROM builds WHERE app_id = ? AND status = 'succeeded'", arguments: [appID])
            return (Set(kept + latestBuild), Set(all))
        }) else { return }
        let old = all.subtracting(kept).sorted()
        guard !old.isEmpty else { return }
        _ = try? containers.call { engine in for image in old { try? await engine.removeImage(image) } }
        output("-----> Removed \(old.count) image\(old.count == 1 ? "" : "s") older than the last \(keep) releases")
    }
}


/// A process that failed its check: what happened, and its last log lines kept
/// apart, so that whatever a caller adds to the summary does not run into them.
struct ProcessFailure: Error {
    let problem: String
    let logLines: [String]

    /// `; its last log lines:` and the lines, each on its own line (empty without lines).
    var logSuffix: String {
        logLines.isEmpty ? "" : "; its last log lines:" + logLines.map { "\n       | \($0)" }.joined()
    }

    /// The summary and the log suffix of any error a deploy step throws.
    static func parts(of error: Error) -> (problem: String, logSuffix: String) {
        if let failure = error as? ProcessFailure { return (failure.problem, failure.logSuffix) }
        return ((error as? UserFacingError)?.message ?? "\(error)", "")
    }

    /// Runs `body`, turning a failed check into the user-facing error it reads as.
    static func reported<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let failure as ProcessFailure {
            throw UserFacingError(.conflict, failure.problem + failure.logSuffix)
        }
    }
}
