import Foundation
import GRDB
import SlipwayHost
import Testing
@testable import SlipwayCore

/// Rollouts and the deploy gate on a fake engine and probe: no podman, no nginx.
@Suite("Rollout and the deploy gate")
struct RolloutTests {
    let engine = FakeEngine()
    let probe = FakeProbe()
    let core: Core
    var deploys: DeployService
    let caller = Caller(principal: .localAdmin, command: "test")
    let app = try! AppName("web")
    let output: DeployService.Output = { _ in }

    init() throws { try self.init(checkTimeout: nil) }

    /// A world whose default health check gives up after `checkTimeout` seconds.
    init(checkTimeout: Int?) throws {
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        settings.waitToRetire = 0
        if let checkTimeout { settings.checkTimeout = checkTimeout }
        core = try Core(settings: settings, engine: engine, probe: probe, proxy: RecordingProxy(directory: settings.dataDir + "/proxy"), processes: LocalProcesses())
        deploys = core.deploys
        deploys.runningCheckDelay = 0.01
    }

    /// The app, deployed as v1 with these processes at this scale.
    func deployV1(_ processes: [String: String], scale: [String: Int], checks: [HealthCheck] = [HealthCheck(attempts: 1, wait: 0)],
                  of app: AppName? = nil) throws {
        let app = app ?? self.app
        _ = try core.apps.create(app, by: caller)
        let record = try #require(try core.apps.find(app))
        try core.store.write { db in
            for (type, quantity) in scale {
                var entry = FormationEntry(appId: record.id!, processType: type, quantity: quantity)
                try entry.save(db)
            }
        }
        try roll(version: 1, processes, checks: checks, of: app)
    }

    /// Rolls a new release of `processes` out (no build, no tasks).
    @discardableResult
    func roll(version: Int, _ processes: [String: String], checks: [HealthCheck] = [HealthCheck(attempts: 1, wait: 0)],
              formation: [String: Int]? = nil, of app: AppName? = nil) throws -> Release {
        let app = app ?? self.app
        let record = try #require(try core.apps.find(app))
        let plan = DeployPlan(processes: processes, healthchecks: ["web": checks], formation: formation)
        let snapshot = ReleaseSnapshot(plan: plan, environment: [:], mounts: [], formation: [:])
        let release = try core.store.write { db -> Release in
            var release = Release(appId: record.id!, version: version, image: "slipway/\(app):\(version)", revision: "r\(version)", reason: "test",
                                  snapshot: try DeployService.encode(snapshot), status: .deploying, startedBy: "test", startedAt: Date())
            try release.insert(db)
            return release
        }
        try deploys.rollout(app, record: record, release: release, snapshot: snapshot, types: nil, output: output)
        return release
    }

    /// The default check's refusal says how many tries it made and what the last one saw
    /// (nothing listening, or a slow answer), and nothing is released.
    @Test func aWebProcessThatNeverAnswersIsRefusedWithWhatTheLastTrySaw() throws {
        let world = try RolloutTests(checkTimeout: 1)
        world.probe.refusal = "connection refused (127.0.0.1)"
        #expect {
            try world.deployV1(["web": "serve"], scale: ["web": 1], checks: [])
        } throws: { error in
            let message = (error as? UserFacingError)?.message ?? "\(error)"
            return message.contains("did not answer HTTP on port 5000 within 1 s (is it listening on $PORT?); ")
                && message.range(of: #"; [0-9]+ tries, the last: connection refused \(127\.0\.0\.1\)"#, options: .regularExpression) != nil
        }
        #expect(try world.currentVersion() == nil)
    }

    func currentVersion() throws -> Int? {
        try core.store.read { db in
            try Int.fetchOne(db, sql: "SELECT r.version FROM apps JOIN releases r ON r.id = apps.current_release_id WHERE apps.name = ?", arguments: [app])
        }
    }

    @Test func aFailedHealthCheckKeepsTheOldReleaseAndPutsTheLogLinesLast() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        probe.status = 500
        let error = try #require(throws: UserFacingError.self) { try deploys.deploy(app, trigger: .config, by: caller, output: output) }
        #expect(error.message == "deploy of v2 failed: web.web.1 failed its check GET /: answered 500; web still serves v1; its last log lines:\n       | boom")
        #expect(engine.names == ["web.web.1"])
        #expect(try currentVersion() == 1)
        let failed = try core.store.read { db in try Release.filter(Column("version") == 2).fetchOne(db) }
        #expect(failed?.status == .failed)
    }

    @Test func aProcessThatCrashesDuringTheCheckIsReportedWithItsRealStatus() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        try core.store.write { db in
            var entry = FormationEntry(appId: try AppService.id(of: app, db), processType: "worker", quantity: 1)
            try entry.save(db)
        }
        let failure = try #require(throws: ProcessFailure.self) { try roll(version: 2, ["web": "serve", "worker": "crash"]) }
        // podman shows 0 at first; the status it exited with is what the user reads.
        #expect(failure.problem == "web.worker.1 exited with status 1")
        #expect(failure.logLines == ["boom"])
        #expect(engine.names == ["web.web.1"])
        #expect(try currentVersion() == 1)
    }

    @Test func scalingUpAndDownConvergesOnPlainNames() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        let old = try #require(engine.container(named: "web.web.1"))
        // The old container does not go at once (podman: "container state improper").
        engine.failRemoval(of: old.id, times: 1)
        try deploys.scale(app, ["web": 2], by: caller, output: output)
        #expect(engine.names == ["web.web.1", "web.web.2"])
        #expect(engine.container(named: "web.web.1")?.id != old.id)
        #expect(try deploys.report(app).endpoints.count == 2)

        try deploys.scale(app, ["web": 1], by: caller, output: output)
        #expect(engine.names == ["web.web.1"])
        #expect(try deploys.report(app).endpoints.count == 1)
    }

    /// app.json `formation` (Dokku's docs, process-management "Manually managing process
    /// scaling"): it decides how many containers run, types it leaves out run 0, ps:scale
    /// is refused while such a release is current, and a later release without one keeps
    /// the scale the formation set, which ps:scale then changes again.
    @Test func anAppJSONFormationDecidesTheScaleAndTurnsPsScaleOff() throws {
        let processes = ["web": "serve", "worker": "work", "clock": "tick"]
        try deployV1(processes, scale: ["web": 1, "clock": 3])
        #expect(engine.names == ["web.clock.1", "web.clock.2", "web.clock.3", "web.web.1"])

        // v2 comes with web 2, worker 1: clock, left out, runs 0.
        try roll(version: 2, processes, formation: ["web": 2, "worker": 1])
        #expect(engine.names == ["web.web.1", "web.web.2", "web.worker.1"])
        var report = try deploys.report(app)
        #expect(report.formation == ["web": 2, "worker": 1, "clock": 0] && report.scaleFromAppJSON)
        #expect(report.endpoints.count == 2)

        // ps:scale is refused with Dokku's words and how to change it; nothing changes.
        let storedBefore = try storedScale()
        let refused = #expect(throws: UserFacingError.self) { try deploys.scale(app, ["web": 5], by: caller, output: output) }
        #expect(refused?.message == "App web contains an app.json file with a formations key and cannot be manually scaled; its scale comes from the formation in app.json of v2: change formation.<type>.quantity there and git push (a push without a formation lets ps:scale set it again)")
        #expect(try storedScale() == storedBefore)
        #expect(engine.names == ["web.web.1", "web.web.2", "web.worker.1"])

        // A restart and a redeploy (config change) keep the formation's scale; the deploy
        // stores it as the app's scale in the switch's transaction, with its audit event.
        try deploys.restart(app, type: nil, by: caller, output: output)
        #expect(engine.names == ["web.web.1", "web.web.2", "web.worker.1"])
        try deploys.deploy(app, trigger: .config, by: caller, output: output)
        #expect(engine.names == ["web.web.1", "web.web.2", "web.worker.1"])
        #expect(try storedScale() == ["clock": 0, "web": 2, "worker": 1])
        let events = try core.store.read { db in try String.fetchAll(db, sql: "SELECT detail FROM events WHERE detail LIKE 'scaled %'") }
        #expect(events == ["scaled clock=0 web=2 worker=1 (app.json formation of v3)"])

        // v4 has no formation: the scale the formation set stays, and ps:scale works again.
        try roll(version: 4, processes)
        report = try deploys.report(app)
        #expect(report.formation == ["web": 2, "worker": 1, "clock": 0] && !report.scaleFromAppJSON)
        try deploys.scale(app, ["worker": 0, "clock": 1], by: caller, output: output)
        #expect(engine.names == ["web.clock.1", "web.web.1", "web.web.2"])

        // A rollback to the release with the formation brings its scale and the refusal back.
        try deploys.deploy(app, trigger: .rollback(version: 3), by: caller, output: output)
        #expect(engine.names == ["web.web.1", "web.web.2", "web.worker.1"])
        #expect(throws: UserFacingError.self) { try deploys.scale(app, ["web": 1], by: caller, output: output) }
    }

    /// A deploy with a formation that fails its checks leaves the app's stored scale as
    /// it was: the formation is recorded only by the transaction that makes it current.
    @Test func aFailedDeployWithAFormationLeavesTheStoredScale() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        try roll(version: 2, ["web": "serve"], formation: ["web": 3])
        #expect(engine.names == ["web.web.1", "web.web.2", "web.web.3"])
        probe.status = 500
        #expect(throws: UserFacingError.self) { try deploys.deploy(app, trigger: .config, by: caller, output: output) }
        #expect(try storedScale() == ["web": 1])
        #expect(try currentVersion() == 2)
        #expect(engine.names == ["web.web.1", "web.web.2", "web.web.3"])
    }

    /// The app's scale as ps:scale (or a formation's deploy) stored it.
    func storedScale() throws -> [String: Int] {
        try core.store.read { db in
            Dictionary(uniqueKeysWithValues: try FormationEntry.fetchAll(db).map { ($0.processType, $0.quantity) })
        }
    }

    @Test func aLockedAppRefusesEveryDeploySourceAndChangesNothing() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        try core.apps.setLocked(app, true, by: caller)
        let before = try core.store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM releases UNION ALL SELECT app_id, key, value, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM config_vars") }
        let key = try EnvKey("GREETING")
        let sources: [(String, () throws -> Void)] = [
            ("push", { try deploys.deploy(app, trigger: .push(revision: "abc", branch: "main"), by: caller, output: output) }),
            ("config:set", { try deploys.changeConfig(.app(app), .set([(key, "hi")]), restart: true, by: caller, changed: {}, output: output) }),
            ("config:unset", { try deploys.changeConfig(.app(app), .unset([key]), restart: true, by: caller, changed: {}, output: output) }),
            ("config:clear", { try deploys.changeConfig(.app(app), .clear, restart: true, by: caller, changed: {}, output: output) }),
            ("ps:rebuild", { try deploys.deploy(app, trigger: .rebuild, by: caller, output: output) }),
            ("releases:rollback", { try deploys.deploy(app, trigger: .rollback(version: 1), by: caller, output: output) }),
            ("ps:scale", { try deploys.scale(app, ["web": 2], by: caller, output: output) }),
            ("ps:restart", { try deploys.restart(app, type: nil, by: caller, output: output) }),
            ("ps:start", { try deploys.start(app, type: nil, by: caller, output: output) }),
        ]
        for (source, run) in sources {
            let error = #expect(throws: UserFacingError.self, "\(source)") { try run() }
            #expect(error?.message == "web is locked; nothing was deployed (apps:unlock web allows deploys again)", "\(source)")
        }
        let after = try core.store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM releases UNION ALL SELECT app_id, key, value, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM config_vars") }
        #expect(before == after)
        #expect(engine.names == ["web.web.1"])
        // --no-restart deploys nothing, so a locked app's config may change.
        try deploys.changeConfig(.app(app), .set([(key, "hi")]), restart: false, by: caller, changed: {}, output: output)
        #expect(try core.config.get(key, in: .app(app)) == "hi")
    }

    @Test func aDeployWaitsForTheServersRecoveryOfItsAppAndNamesNoInternalPrincipal() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        let recovery = try deploys.locks.acquire(app, by: caller, origin: DeployLocks.recoveryOrigin)
        let lines = TextCollector()
        let locks = deploys.locks
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { locks.release(recovery) }
        let started = Date()
        try deploys.restart(app, type: nil, by: caller) { lines.append(Data(($0 + "\n").utf8)) }
        #expect(Date().timeIntervalSince(started) >= 0.25)
        #expect(lines.value.contains("-----> Waiting for the server to finish bringing web back after its restart"))
        #expect(!lines.value.contains("root@host"))
        // Not given up: the message says what happens and names no one.
        let held = try deploys.locks.acquire(app, by: caller, origin: DeployLocks.recoveryOrigin)
        defer { locks.release(held) }
        #expect(DeployLocks.busy(app, held).message == "web is being brought back after a server restart and that did not finish in time; try again in a minute")
    }

    /// After a host restart no container is left. An app whose release now fails its
    /// check is reported; the apps after it are brought back all the same.
    @Test func anAppThatFailsAtStartKeepsNoOtherAppDown() throws {
        let first = try AppName("aaa"), second = try AppName("bbb")
        try deployV1(["web": "serve"], scale: ["web": 1], of: first)
        try deployV1(["worker": "work"], scale: ["worker": 1], of: second)
        for summary in try core.deploys.containers.list(app: nil, kind: nil) { try core.deploys.containers.remove([summary.id]) }
        #expect(engine.names.isEmpty)
        probe.status = 500
        var lines: [String] = []
        try deploys.reconcile { lines.append($0) }
        #expect(lines.contains { $0.hasPrefix("aaa: not brought back: ") }, "\(lines)")
        #expect(lines.contains("bbb: restarted the processes of v1"), "\(lines)")
        #expect(engine.names.contains("bbb.worker.1"), "\(engine.names)")
    }

    /// A start the engine never finishes: the call gives up, and the container it
    /// created is removed all the same, though the work that made it was cancelled.
    @Test func aContainerWhoseStartTimedOutIsRemoved() throws {
        let containers = core.deploys.containers
        var spec = ContainerSpec(image: "slipway/web:1", command: ["hang"])
        spec.name = "web.hung"
        #expect(throws: UserFacingError.self) { _ = try containers.start(spec, labels: containers.labels(app: app, kind: .task), timeout: .milliseconds(200)) }
        // The cleanup runs after the call gave up: wait for it (long: the pool may be busy).
        let deadline = Date().addingTimeInterval(30)
        while engine.container(named: "web.hung") != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(engine.container(named: "web.hung") == nil, "\(engine.names)")
    }

    /// The switch's state write fails after the proxy took the new containers: they
    /// go, and the proxy points at the old release's again (not at nothing).
    @Test func aFailedSwitchPutsTrafficBackOnTheOldRelease() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        let proxy = try #require(core.routing.proxy as? RecordingProxy)
        let old = try #require(proxy.live(app)).endpoints
        #expect(old.count == 1)
        let record = try #require(try core.apps.find(app))
        let plan = DeployPlan(processes: ["web": "serve"], healthchecks: ["web": [HealthCheck(attempts: 1, wait: 0)]])
        let snapshot = ReleaseSnapshot(plan: plan, environment: [:], mounts: [], formation: [:])
        let release = try core.store.write { db -> Release in
            var release = Release(appId: record.id!, version: 2, image: "slipway/web:2", revision: "r2", reason: "test",
                                  snapshot: try DeployService.encode(snapshot), status: .deploying, startedBy: "test", startedAt: Date())
            try release.insert(db)
            return release
        }
        #expect(throws: UserFacingError.self) {
            try deploys.rollout(app, record: record, release: release, snapshot: snapshot, types: nil,
                                recording: { _ in throw UserFacingError.invalid("disk full") }, output: output)
        }
        #expect(try currentVersion() == 1)
        #expect(proxy.live(app)?.endpoints == old, "\(proxy.live(app)?.endpoints ?? [])")
        #expect(engine.names == ["web.web.1"], "\(engine.names)")
    }
}
