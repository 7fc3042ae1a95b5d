import Foundation
import GRDB

/// `git push` ends with the new code serving, or with the old code still serving
/// and a clear reason. Every deploy (push, config change, rollback, rebuild) goes
/// through `deploy`: the gate, build, release, deploy tasks, start, check, switch,
/// retire, postdeploy, housekeeping; each step a headline line to the caller.
///
/// The parts: this file is the pipeline and its gate (`admit`, which every deploy
/// source passes: ps:scale/restart/start too); `Rollout.swift` starts, checks and
/// switches processes; `ProcessControl.swift` is `ps:*` and `logs`;
/// `AppLifecycle.swift` destroys and renames apps under their lock; `Recovery.swift`
/// brings the engine back in line with the state when the server starts. All
/// container work goes through `Containers`.
public struct DeployService: Sendable {
    let store: Store
    let apps: AppService
    let paths: DataPaths
    let settings: Settings
    let engine: ContainerEngine
    let probe: HTTPProbe
    let config: ConfigService
    let storage: StorageService
    let builds: BuildService
    let git: GitService
    let routing: RoutingService
    public let locks: DeployLocks
    /// Labels this server's containers, so that servers sharing an engine never touch each other's.
    let instance: String
    /// Where apps set to the kubernetes scheduler are rolled out (nil: no cluster configured).
    var cluster: (any ClusterScheduler)? = nil

    public typealias Output = @Sendable (String) -> Void

    /// What starts a deploy.
    public enum Trigger: Sendable {
        /// A push to the deploy branch: build this revision, then release it; once it
        /// serves, the app records the branch and revision (with the push's audit event).
        case push(revision: String, branch: String)
        /// Same image, the app's current config (config:set and friends).
        case config
        /// An earlier release's image and config, no build.
        case rollback(version: Int?)
        /// Build the deployed revision again.
        case rebuild
        /// apps:clone: build this revision of the app's repository (copied from `source`);
        /// once it serves, the app records the branch and revision as a push does.
        case clone(source: AppName, revision: String, branch: String?)
    }

    /// How long a new non-web process must keep running to pass its check.
    var runningCheckDelay: TimeInterval = 1

    /// The facade for this server's containers.
    var containers: Containers { Containers(engine: engine, instance: instance) }

    /// Where deploys' and deploy tasks' output is kept.
    var outputs: OutputService { OutputService(store: store, paths: paths, settings: settings) }

    // MARK: The gate

    /// The one way into a deploy, for every source: waits (bounded) for the server's
    /// recovery of the app, takes its deploy lock, refuses a locked app (apps:lock),
    /// and runs `body` holding the lock. Nothing is changed when it refuses.
    func admit<T>(_ app: AppName, by caller: Caller, output: @escaping Output, _ body: (App, DeployLock) throws -> T) throws -> T {
        let lock = try locks.acquire(app, by: caller, output: output)
        defer { locks.release(lock) }
        let record = try existing(app)
        guard !record.locked else {
            throw UserFacingError.conflict("\(app) is locked; nothing was deployed (apps:unlock \(app) allows deploys again)")
        }
        // An app set to kubernetes on a server without a cluster is never deployed here instead.
        _ = try clusterScheduler(of: record)
        return try body(record, lock)
    }

    // MARK: The pipeline

    /// Runs a whole deploy through the gate. Returns nil when there was nothing
    /// to do (a config change on an app that was never deployed). Throws with the
    /// failed step; the previous release then still serves.
    @discardableResult
    public func deploy(_ app: AppName, trigger: Trigger, by caller: Caller, output: @escaping Output) throws -> Release? {
        if case .config = trigger, try !isDeployed(app) { return nil }
        return try admit(app, by: caller, output: output) { record, lock in
            try deploy(record, lock: lock, trigger: trigger, by: caller, output: output)
        }
    }

    /// How config changes (`config:set/unset/clear`).
    public enum ConfigChange: Sendable {
        case set([(EnvKey, String)])
        /// The pairs become the whole config (`config:import --replace`).
        case replace([(EnvKey, String)])
        case unset([EnvKey])
        case clear
    }

    /// A config change and, for a deployed app unless `restart` is false, the
    /// redeploy that carries it, in one call holding the app's lock throughout: no
    /// other deploy runs in between, and a refusal (apps:lock, a deploy running)
    /// changes nothing. `changed` runs once the change is stored, before the
    /// redeploy. Global vars reach each app at its next deploy.
    public func changeConfig(_ scope: ConfigScope, _ change: ConfigChange, restart: Bool, by caller: Caller,
                             changed: () -> Void, output: @escaping Output) throws {
        func store() throws {
            switch change {
            case .set(let pairs): try config.set(pairs, in: scope, by: caller)
            case .replace(let pairs): try config.replace(with: pairs, in: scope, by: caller)
            case .unset(let keys): try config.unset(keys, in: scope, by: caller)
            case .clear: try config.clear(scope, by: caller)
            }
            changed()
        }
        guard case .app(let app) = scope, restart, try isDeployed(app) else { return try store() }
        try admit(app, by: caller, output: output) { record, lock in
            try store()
            try deploy(try existing(app), lock: lock, trigger: .config, by: caller, output: output)
        }
    }

    /// The same for a change to one app's config made by another service (a backing
    /// service's link writes its row and the URL in one transaction, `store`):
    /// `stored` runs after it (joining networks), then a deployed app is redeployed
    /// unless `restart` is false, all under the app's lock.
    public func changeAppConfig(_ app: AppName, restart: Bool, by caller: Caller, output: @escaping Output,
                                store: () throws -> Void, stored: () throws -> Void) throws {
        guard restart, try isDeployed(app) else { try store(); return try stored() }
        try admit(app, by: caller, output: output) { record, lock in
            try store()
            try stored()
            try deploy(try existing(app), lock: lock, trigger: .config, by: caller, output: output)
        }
    }

    /// The pipeline proper, the gate passed.
    @discardableResult
    private func deploy(_ record: App, lock: DeployLock, trigger: Trigger, by caller: Caller, output emit: @escaping Output) throws -> Release? {
        let app = record.name
        // The whole stream the caller sees is stored with the release (releases:output
        // APP vN): held back until the release has its number, then written through.
        let stored = DeployOutput(emit)
        defer { stored.finish(.failed) }
        let output: Output = stored.line
        let current = try currentRelease(of: record)

        // 1. What to release: image, revision, plan.
        let image: String, revision: String, plan: DeployPlan, reason: String
        var environment = try config.environmentVariables(of: app)
        switch trigger {
        case .push(let pushed, _):
            plan = try readPlan(app, revision: pushed)
            noteIgnoredKeys(plan, output)
            let build = try builds.build(app, revision: pushed, by: caller, output: output)
            (image, revision, reason) = (build.image, pushed, "push of \(pushed.prefix(12))")
        case .rebuild:
            // A clone not deployed yet (--skip-deploy, or its deploy failed) was never
            // pushed but has its source's repository: it builds its deploy branch, as Dokku does.
            guard let deployed = current?.release.revision ?? record.deployedRevision ?? git.head(of: app, branch: record.deployBranch) else {
                throw UserFacingError.conflict("\(app) has never been pushed; git push it first")
            }
            plan = try readPlan(app, revision: deployed)
            let build = try builds.build(app, revision: deployed, by: caller, output: output)
            (image, revision, reason) = (build.image, deployed, "rebuild of \(deployed.prefix(12))")
        case .clone(let source, let cloned, _):
            plan = try readPlan(app, revision: cloned)
            noteIgnoredKeys(plan, output)
            let build = try builds.build(app, revision: cloned, by: caller, output: output)
            (image, revision, reason) = (build.image, cloned, "clone of \(source) at \(cloned.prefix(12))")
        case .config:
            guard let current else { return nil }
            (image, revision, plan) = (current.release.image, current.release.revision, current.snapshot.plan)
            reason = "config change"
        case .rollback(let version):
            let target = try rollbackTarget(record, version: version, current: current?.release)
            let snapshot = try Self.decode(target.snapshot)
            guard try containers.inspectImage(target.image) != nil else {
                throw UserFacingError.conflict("the image of \(target.label) is gone (only the last \(settings.releasesToKeep) releases keep theirs); ps:rebuild or push instead")
            }
            (image, revision, plan, environment) = (target.image, target.revision, snapshot.plan, snapshot.environment)
            reason = "rollback to \(target.label)"
        }

        // 2. The release, numbered, with everything it runs with.
        let snapshot = ReleaseSnapshot(plan: plan, environment: environment, mounts: try deployMounts(of: app), formation: try formation(of: record.id!, plan: plan))
        var release = try store.write { db -> Release in
            let version = (try Int.fetchOne(db, sql: "SELECT MAX(version) FROM releases WHERE app_id = ?", arguments: [record.id]) ?? 0) + 1
            var release = Release(appId: record.id!, version: version, image: image, revision: revision, reason: reason,
                                  snapshot: try Self.encode(snapshot), status: .deploying, startedBy: caller.principal.name, startedAt: Date())
            try release.insert(db)
            return release
        }
        try? locks.setVersion(lock, release.version)
        stored.begin(try? outputs.start(app: app, kind: .deploy, ref: release.label))
        output("-----> Releasing \(app) \(release.label) (\(reason))")

        do {
            // 3. Deploy tasks: ephemeral containers; only storage keeps what they write (on a cluster: Jobs, run by the rollout).
            for task in plan.predeploy where try clusterScheduler(of: record) == nil {
                try runTask(app, release: release, snapshot: snapshot, command: task, phase: "predeploy", output: output)
            }
            // 4-6. Start, check, switch, retire.
            let push = recordingPush(trigger, app: app, caller: caller)
            let scale = recordingFormation(of: plan, appID: record.id!, app: app, release: release, caller: caller)
            try rollout(app, record: record, release: release, snapshot: snapshot, types: nil,
                        recording: { db in try push?(db); try scale(db) }, output: output)
        } catch {
            // The summary first, then the failed process's last log lines (if any), each on its own line.
            let (problem, logLines) = ProcessFailure.parts(of: error)
            release.status = .failed
            release.error = problem + logLines
            release.finishedAt = Date()
            try store.write { [release] db in
                try release.update(db)
                try db.audit(caller, app: app.rawValue, outcome: "failed", detail: "deploy of \(release.label) failed: \(problem)")
            }
            let serving = current.map { "\(app) still serves \($0.release.label)" } ?? "nothing of \(app) was started"
            let failure = UserFacingError(.conflict, "deploy of \(release.label) failed: \(problem); \(serving)\(logLines)")
            stored.finish(.failed, lastWords: "\(failure)")
            throw failure
        }
        try store.write { [release] db in
            try db.audit(caller, app: app.rawValue, detail: "deployed \(release.label) (\(reason))")
        }
        // 7. After the switch: postdeploy tasks report, but the release stays (on a cluster: its Jobs, one by one).
        let cluster = try clusterScheduler(of: record)
        for (index, task) in plan.postdeploy.enumerated() {
            do {
                if let cluster {
                    try runClusterPostdeploy(cluster, index + 1, record: record, release: release, snapshot: snapshot, output: output)
                } else {
                    try runTask(app, release: release, snapshot: snapshot, command: task, phase: "postdeploy", output: output)
                }
            } catch {
                output(" !     \((error as? UserFacingError)?.message ?? "\(error)"); \(release.label) stays deployed")
            }
        }
        housekeeping(app, appID: record.id!, output: output)
        output("=====> Application deployed: \(try routing.url(for: app))")
        stored.finish(.succeeded)
        return release
    }

    /// For a push: the deploy branch and its revision, written with the release.
    private func recordingPush(_ trigger: Trigger, app: AppName, caller: Caller) -> (@Sendable (Database) throws -> Void)? {
        if case .clone(_, let revision, let branch) = trigger {
            return { [apps] db in try apps.recordPush(branch: branch ?? "main", revision: revision, of: app, db) }
        }
        guard case .push(let revision, let branch) = trigger else { return nil }
        return { [apps] db in
            try apps.recordPush(branch: branch, revision: revision, of: app, db)
            try db.audit(caller, app: app.rawValue, detail: "pushed \(branch) at \(revision.prefix(12))")
        }
    }

    /// For a release with an app.json formation: the app's stored scale becomes it as
    /// the release becomes current (Dokku: a later deploy without one keeps that scale,
    /// and ps:scale changes it again); types it leaves out are stored at 0.
    private func recordingFormation(of plan: DeployPlan, appID: Int64, app: AppName, release: Release,
                                    caller: Caller) -> @Sendable (Database) throws -> Void {
        guard plan.formation != nil else { return { _ in } }
        let scale = Self.formation(plan: plan, stored: [])
        return { db in
            let before = try FormationEntry.filter(Column("app_id") == appID).fetchAll(db)
            guard Set(before.map { "\($0.processType)=\($0.quantity)" }) != Set(scale.map { "\($0.key)=\($0.value)" }) else { return }
            try FormationEntry.filter(Column("app_id") == appID).deleteAll(db)
            for (type, quantity) in scale {
                var entry = FormationEntry(appId: appID, processType: type, quantity: quantity)
                try entry.insert(db)
            }
            try db.audit(caller, app: app.rawValue, detail: "scaled " + scale.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                         + " (app.json formation of \(release.label))")
        }
    }

    /// Whether the app has a current release (config changes then redeploy it).
    public func isDeployed(_ app: AppName) throws -> Bool {
        try apps.find(app)?.currentReleaseId != nil
    }

    /// The app's deploy-phase mounts as a release records them.
    func deployMounts(of app: AppName) throws -> [ReleaseSnapshot.MountSnapshot] {
        try storage.mounts(of: app).filter { $0.phases.contains(.deploy) }.map(\.snapshot)
    }

    /// The release serving now, with its snapshot.
    func currentRelease(of app: App) throws -> (release: Release, snapshot: ReleaseSnapshot)? {
        guard let id = app.currentReleaseId, let release = try store.read({ db in try Release.fetchOne(db, key: id) }) else { return nil }
        return (release, try Self.decode(release.snapshot))
    }

    private func rollbackTarget(_ app: App, version: Int?, current: Release?) throws -> Release {
        try store.read { db in
            if let version {
                guard let release = try Release.filter(Column("app_id") == app.id && Column("version") == version).fetchOne(db) else {
                    throw UserFacingError.notFound("\(app.name) has no release v\(version); releases \(app.name) lists them")
                }
                guard release.status == .succeeded else {
                    throw UserFacingError.conflict("v\(version) of \(app.name) never deployed successfully; roll back to one that did")
                }
                return release
            }
            guard let previous = try Release.filter(Column("app_id") == app.id && Column("status") == ReleaseStatus.succeeded.rawValue && Column("id") != current?.id)
                .order(Column("version").desc).fetchOne(db) else {
                throw UserFacingError.conflict("\(app.name) has no earlier successful release to roll back to")
            }
            return previous
        }
    }

    /// Procfile and app.json of a revision (inside a push, from git's quarantine).
    func readPlan(_ app: AppName, revision: String) throws -> DeployPlan {
        let env = BuildService.gitEnvironment(git)
        func show(_ file: String) throws -> String? {
            let result = try ProcessRunner.run(GitService.gitExecutable, ["--git-dir", paths.repository(app), "show", "\(revision):\(file)"], environment: env)
            return result.status == 0 ? result.stdout : nil
        }
        return try DeployPlan.parse(procfile: try show("Procfile"), appJSON: try show("app.json"))
    }

    /// Says which app.json keys the deploy does not act on, and the scale its formation sets.
    private func noteIgnoredKeys(_ plan: DeployPlan, _ output: Output) {
        if !plan.ignoredKeys.isEmpty {
            output("-----> app.json: ignoring \(plan.ignoredKeys.joined(separator: ", ")) (Slipway does not read them)")
        }
        if plan.formation != nil {
            let scale = Self.formation(plan: plan, stored: []).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            output("-----> app.json formation sets the scale: \(scale) (ps:scale is off while it does)")
        }
    }

    /// The app's scale for the plan's types: app.json's formation if the plan has one
    /// (types it leaves out run 0), else what ps:scale set, else web=1 and others 0.
    func formation(of appID: Int64, plan: DeployPlan) throws -> [String: Int] {
        if plan.formation != nil { return Self.formation(plan: plan, stored: []) }
        let set = try store.read { db in try FormationEntry.filter(Column("app_id") == appID).fetchAll(db) }
        return Self.formation(plan: plan, stored: set)
    }

    private static func formation(plan: DeployPlan, stored set: [FormationEntry]) -> [String: Int] {
        if let declared = plan.formation {
            return Dictionary(uniqueKeysWithValues: plan.processes.keys.map { ($0, declared[$0] ?? 0) })
        }
        var result: [String: Int] = [:]
        for type in plan.processes.keys {
            result[type] = set.first { $0.processType == type }?.quantity ?? (type == "web" ? 1 : 0)
        }
        return result
    }

    static func encode(_ snapshot: ReleaseSnapshot) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(snapshot), as: UTF8.self)
    }

    static func decode(_ text: String) throws -> ReleaseSnapshot {
        try JSONDecoder().decode(ReleaseSnapshot.self, from: Data(text.utf8))
    }

    // MARK: Deploy tasks

    /// One task in a fresh container from the release image, with the app's env and
    /// deploy-phase storage; output streams to the caller; a non-zero exit fails the deploy.
    func runTask(_ app: AppName, release: Release, snapshot: ReleaseSnapshot, command: String, phase: String,
                 output emit: @escaping Output) throws {
        try recordingTask(app, release: release, phase: phase, output: emit) { output in
            try runTaskContainer(app, release: release, snapshot: snapshot, command: command, phase: phase, output: output)
        }
    }

    /// Runs `body` with an output that also stores each line as the task's own output
    /// (ref "v3 predeploy"), for a task here or on a cluster; a failure's message is
    /// stored as its last line, and the recording ends succeeded or failed as `body` does.
    func recordingTask(_ app: AppName, release: Release, phase: String, output emit: @escaping Output,
                       _ body: (@escaping Output) throws -> Void) throws {
        let recording = try? outputs.start(app: app, kind: .task, ref: "\(release.label) \(phase)")
        defer { recording?.finish(.failed) }
        let output: Output = { line in recording?.write(line); emit(line) }
        do {
            try body(output)
        } catch {
            recording?.writeLines(" !     " + ((error as? UserFacingError)?.message ?? "\(error)"))
            throw error
        }
        recording?.finish(.succeeded)
    }

    private func runTaskContainer(_ app: AppName, release: Release, snapshot: ReleaseSnapshot, command: String, phase: String,
                                  output: @escaping Output) throws {
        output("-----> Running \(phase) task: \(command)")
        var spec = ContainerSpec(image: release.image, command: ["/bin/sh", "-c", command])
        spec.name = "\(app).\(phase).\(UUID().uuidString.prefix(8).lowercased())"
        spec.environment = environment(snapshot)
        spec.sandbox = try TenantSandbox(appID: release.appId, instance: instance)
        spec.binds = try binds(snapshot.mounts, image: release.image, sandbox: spec.sandbox!)
        spec.limits = try resources.limits(for: app, processType: nil)
        let lines = LineSplitter(output: { output("       " + $0) })
        let ended = try containers.runToEnd(spec, labels: labels(app, kind: .task, release: release)) { lines.feed($0.data) }
        lines.flush()
        let lost = DiscardedPaths.discarded(ended.changes, mountPoints: snapshot.mounts.map(\.containerPath))
        if let notice = DiscardedPaths.notice(app: app, discarded: lost) { output(notice) }
        guard ended.status == 0 else {
            let why = OutOfMemory.reason(exitCode: ended.status, oomKilled: ended.details?.oomKilled ?? false, memoryLimit: spec.limits.memoryBytes,
                                         app: app, processType: nil, settings: settings)
            throw UserFacingError(.conflict, "the \(phase) task \(quoted(command)) \(why ?? "exited with status \(ended.status)")")
        }
    }

    // MARK: Shared container settings

    /// The app's env for a release, with PORT (5000 unless configured).
    func environment(_ snapshot: ReleaseSnapshot) -> [String: String] {
        var env = snapshot.environment
        if env["PORT"] == nil { env["PORT"] = "5000" }
        return env
    }

    func port(_ snapshot: ReleaseSnapshot) -> Int { Int(environment(snapshot)["PORT"] ?? "") ?? 5000 }

    func labels(_ app: AppName, kind: ContainerKind, release: Release) -> ContainerLabels {
        var labels = containers.labels(app: app, kind: kind)
        labels.release = String(release.version)
        return labels
    }

    /// Binds for deploy-phase mounts; managed storage is created and owned as its `chown` says (by default the image's user).
    func binds(_ mounts: [ReleaseSnapshot.MountSnapshot], image: String, sandbox: TenantSandbox) throws -> [String] {
        guard !mounts.isEmpty else { return [] }
        try storage.ensurePresent(mounts)
        let user = try containers.inspectImage(image)?.user ?? ""
        return try ImageUser.binds(mounts, properties: try storage.properties(of: mounts), image: image, imageUser: user,
                                   sandbox: sandbox, containers: containers)
    }
}

/// A deploy's output on its way to the caller and to the store: lines before the
/// release has a number (the build's) are held, and written once `begin` gets the
/// recording. Thread-safe: build output arrives from the engine's threads.
final class DeployOutput: @unchecked Sendable {
    private let lock = NSLock()
    private let emit: DeployService.Output
    private var held: [String] = []
    private var recording: OutputRecording?
    private var begun = false

    init(_ emit: @escaping DeployService.Output) { self.emit = emit }

    /// Passes `text` on to the caller, and stores it.
    func line(_ text: String) {
        lock.withLock {
            if let recording { recording.write(text) } else if !begun { held.append(text) }
        }
        emit(text)
    }

    /// The release exists: what was held goes to `recording` (nil: storing failed;
    /// the deploy goes on without it).
    func begin(_ recording: OutputRecording?) {
        lock.withLock {
            begun = true
            self.recording = recording
            for text in held { recording?.write(text) }
            held = []
        }
    }

    /// Ends the stored output (only the first call counts); `lastWords` is what the
    /// caller is shown after it, the error, stored as its last lines.
    func finish(_ status: OutputStatus, lastWords: String? = nil) {
        let recording = lock.withLock { () -> OutputRecording? in defer { self.recording = nil }; return self.recording }
        if let lastWords { recording?.writeLines(lastWords) }
        recording?.finish(status)
    }
}
