import Foundation
import GRDB

/// Starting a release's processes next to the running ones, checking them, switching
/// traffic, and retiring the old ones: the part of a deploy that keeps the app up.
extension DeployService {
    /// Final container name of a process: `web.worker.2`.
    static func processName(_ app: AppName, _ type: String, _ index: Int) -> String { "\(app).\(type).\(index)" }

    /// The app's process containers on the engine (this server's only).
    func processContainers(_ app: AppName) throws -> [ContainerSummary] {
        let engine = self.engine, instance = self.instance
        return try waitFor { [engine] in
            try await engine.listContainers(labels: ["org.slipway.app": app.rawValue, "org.slipway.kind": "process",
                                                     "org.slipway.instance": instance])
        }
    }

    /// Starts new containers for `types` (nil: every type of the plan) of `release`,
    /// checks them, points the router at the new web containers, records the
    /// release as current, and retires the containers they replace. On failure the
    /// new containers are removed and nothing else has changed. `recording` writes
    /// more in the transaction that makes the release current (a push's revision).
    func rollout(_ app: AppName, record: App, release: Release, snapshot: ReleaseSnapshot, types: Set<String>?,
                 recording: (@Sendable (Database) throws -> Void)? = nil, output: @escaping Output) throws {
        let engine = self.engine
        let formation = try formation(of: record.id!, plan: snapshot.plan)
        let before = try processContainers(app)
        let replacing = types ?? Set(snapshot.plan.processes.keys).union(before.compactMap { $0.labels["org.slipway.type"] })
        var spec = ContainerSpec(image: release.image)
        spec.environment = environment(snapshot)
        spec.sandbox = try TenantSandbox(appID: record.id!, instance: instance)
        spec.binds = try binds(snapshot.mounts, image: release.image, sandbox: spec.sandbox!)
        spec.restartPolicy = .onFailure
        let port = self.port(snapshot)
        if let commandless = snapshot.plan.processes.filter({ replacing.contains($0.key) && $0.value.isEmpty && (formation[$0.key] ?? 0) > 0 }).keys.first,
           try waitFor({ [engine] in try await engine.inspectImage(release.image) })?.hasCommand == false {
            throw UserFacingError.invalid("\(commandless) has no command: the image has no CMD or ENTRYPOINT; add one to the Dockerfile, or a Procfile line such as \(quoted("\(commandless): python3 server.py"))")
        }

        // Start.
        var started: [(type: String, index: Int, id: String, name: String)] = []
        func removeStarted() {
            let ids = started.map(\.id)
            _ = try? waitFor { [engine] in for id in ids { try? await engine.removeContainer(id, force: true) } }
        }
        do {
            for type in snapshot.plan.processes.keys.sorted() where replacing.contains(type) {
                let quantity = formation[type] ?? 0
                guard quantity > 0 else { continue }
                output("-----> Starting \(quantity) \(type) process\(quantity == 1 ? "" : "es")")
                for index in 1...quantity {
                    var one = spec
                    let command = snapshot.plan.processes[type] ?? ""
                    one.command = command.isEmpty ? nil : ["/bin/sh", "-c", command]
                    one.name = "\(Self.processName(app, type, index)).new-\(UUID().uuidString.prefix(6).lowercased())"
                    one.labels = labels(app, kind: "process", release: release)
                        .merging(["org.slipway.type": type, "org.slipway.index": String(index)]) { $1 }
                    one.publishedPort = type == "web" ? port : nil
                    one.limits = try resources.limits(for: app, processType: type)
                    let id = try waitFor { [engine, one] in
                        let id = try await engine.createContainer(one)
                        do { try await engine.startContainer(id) } catch {
                            try? await engine.removeContainer(id, force: true)
                            throw error
                        }
                        return id
                    }
                    started.append((type, index, id, one.name!))
                }
            }
            // Check.
            var endpoints: [(name: String, address: String)] = []
            for process in started {
                let checks = snapshot.plan.healthchecks[process.type] ?? []
                if process.type == "web" {
                    let address = try check(web: process.id, name: Self.processName(app, process.type, process.index),
                                            port: port, checks: checks, output: output)
                    endpoints.append((Self.processName(app, process.type, process.index), address))
                }
            }
            for process in started where process.type != "web" {
                try checkRunning(process.id, name: Self.processName(app, process.type, process.index), output: output)
            }
            // Switch: the router first (validated), then the state, in one transaction.
            let webReplaced = replacing.contains("web")
            let liveEndpoints = webReplaced ? endpoints : try currentEndpoints(record.id!)
            if webReplaced || record.currentReleaseId == nil {
                try routing.publish(app, endpoints: liveEndpoints.map(\.address))
                output("-----> Switched \(app) to \(release.label)\(webReplaced ? " (\(liveEndpoints.count) web)" : "")")
            }
            var done = release
            done.status = "succeeded"
            done.finishedAt = Date()
            try store.write { [done] db in
                if done.id != nil, try Release.fetchOne(db, key: done.id)?.status == "deploying" { try done.update(db) }
                try db.execute(sql: "UPDATE apps SET current_release_id = ?, processes_stopped = 0 WHERE id = ?", arguments: [done.id, record.id])
                try recording?(db)
                if webReplaced {
                    try db.execute(sql: "DELETE FROM endpoints WHERE app_id = ?", arguments: [record.id])
                    for endpoint in liveEndpoints {
                        var row = Endpoint(appId: record.id!, containerName: endpoint.name, address: endpoint.address)
                        try row.insert(db)
                    }
                }
            }
        } catch {
            removeStarted()
            throw error
        }

        // Retire what the new containers replace, after in-flight requests had time to finish.
        let retiring = before.filter { replacing.contains($0.labels["org.slipway.type"] ?? "") }
        if !retiring.isEmpty {
            if retiring.contains(where: { $0.labels["org.slipway.type"] == "web" && $0.state == "running" }) && settings.waitToRetire > 0 {
                output("-----> Retiring the old processes in \(settings.waitToRetire) s")
                Thread.sleep(forTimeInterval: TimeInterval(settings.waitToRetire))
            }
            let ids = retiring.map(\.id)
            try waitFor { [engine] in
                for id in ids {
                    try await engine.stopContainer(id, timeoutSeconds: 10)
                    try await engine.removeContainer(id, force: true)
                }
            }
        }
        // The new containers take the plain names now that those are free.
        // (The engine may take a moment to release a removed container's name.)
        let renames = started.map { ($0.id, Self.processName(app, $0.type, $0.index)) }
        let failed = (try? waitFor { [engine] () -> [String] in
            var failed: [String] = []
            for (id, name) in renames {
                var lastError: Error?
                for _ in 0..<50 {
                    do { try await engine.renameContainer(id, to: name); lastError = nil; break } catch { lastError = error }
                    try await Task.sleep(for: .milliseconds(200))
                }
                if let lastError { failed.append("\(name): \(lastError)") }
            }
            return failed
        }) ?? []
        for failure in failed { output(" !     could not rename \(failure) (it runs under its temporary name)") }
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
        let engine = self.engine
        guard let details = try waitFor({ [engine] in try await engine.inspectContainer(id) }),
              let hostPort = details.hostPorts[port] else {
            throw UserFacingError(.conflict, "\(name) has no published port \(port)")
        }
        let address = "127.0.0.1:\(hostPort)"
        if checks.isEmpty {
            output("-----> Checking \(name): HTTP on port \(port) within \(settings.checkTimeout) s")
            let deadline = Date().addingTimeInterval(TimeInterval(settings.checkTimeout))
            while true {
                try ensureRunning(id, name: name)
                if (try? waitFor({ [probe] in try await probe.get("http://\(address)/", timeout: 2) })) != nil { break }
                guard Date() < deadline else {
                    throw failure(id, name: name, "did not answer HTTP on port \(port) within \(settings.checkTimeout) s (is it listening on $PORT?)")
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
                        let answer = try waitFor { [probe] in try await probe.get("http://\(address)\(path)", timeout: TimeInterval(timeout)) }
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
        Thread.sleep(forTimeInterval: 1)
        try ensureRunning(id, name: name)
        output("       \(name) is running")
    }

    private func ensureRunning(_ id: String, name: String) throws {
        let engine = self.engine
        let details = try waitFor { [engine] in try await engine.inspectContainer(id) }
        guard let details, details.running, details.restartCount == 0 else {
            let ended = details.map { lastExit(id, $0) }
            throw failure(id, name: name, ended.flatMap { OutOfMemory.reason($0, settings: settings) } ?? "exited with status \(ended?.exitCode ?? -1)")
        }
    }

    /// The check's error, with the container's last log lines.
    private func failure(_ id: String, name: String, _ problem: String) -> UserFacingError {
        let engine = self.engine
        let lines = TextCollector()
        _ = try? waitFor { [engine] in try await engine.streamLogs(id, follow: false, tail: 10) { lines.append($0.data) } }
        let tail = lines.value.split(separator: "\n").suffix(10).map { "\n       | \($0)" }.joined()
        return UserFacingError(.conflict, "\(name) \(problem)\(tail.isEmpty ? "" : "; its last log lines:\(tail)")")
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
        let engine = self.engine
        _ = try? waitFor { [engine] in for image in old { try? await engine.removeImage(image) } }
        output("-----> Removed \(old.count) image\(old.count == 1 ? "" : "s") older than the last \(keep) releases")
    }
}

