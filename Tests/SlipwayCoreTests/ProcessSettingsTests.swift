import Foundation
import GRDB
import SlipwayHost
import Testing
@testable import SlipwayCore

/// `ps:set APP restart-policy` and `checks:*` from the side of users who should
/// not change them, and with values that must be refused (nothing changed).
@Suite("ps:set and checks:* access and values")
struct ProcessSettingsCommandTests {
    let w: TestWorld

    init() throws {
        w = try TestWorld()
        for name in ["bob", "carol", "dave", "eve"] { #expect(w.run(["users:add", name]).status == 0) }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "web", "carol", "write"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "web", "dave", "read"], asUser: "bob").status == 0)
    }

    /// The state without the audit log (a denied command is audited).
    func state() throws -> [Substring] { try w.dump().split(separator: "\n").filter { !$0.hasPrefix("events:") } }

    static let writes: [[String]] = [
        ["ps:set", "web", "restart-policy", "always"],
        ["checks:disable", "web"], ["checks:skip", "web", "web"], ["checks:enable", "web"],
        ["checks:set", "web", "wait-to-retire", "0"],
    ]

    @Test func readersAndStrangersChangeNothing() throws {
        let before = try state()
        for argv in Self.writes {
            let reader = try w.run(argv, asUser: "dave")
            #expect(reader.status != 0, "\(argv)")
            #expect(reader.err.hasPrefix("error: "), "\(argv)")
            let stranger = try w.run(argv, asUser: "eve")
            #expect(stranger.status != 0, "\(argv)")
            // A stranger learns nothing about the app: the same answer as for a missing one.
            var other = argv
            other[1] = "nope"
            let missing = try w.run(other, asUser: "eve")
            #expect(stranger.err == missing.err.replacingOccurrences(of: "nope", with: "web"), "\(argv)")
        }
        #expect(try state() == before)
        #expect(try w.run(["checks:report", "web"], asUser: "eve").status != 0)
        #expect(try w.run(["ps:report", "web"], asUser: "eve").status != 0)
        // checks:report without an app lists only apps the caller can read.
        #expect(try w.run(["checks:report", "--format", "json"], asUser: "eve").out == "[]\n")
    }

    @Test(arguments: [
        ["ps:set", "web", "restart-policy", "on-failure:0"], ["ps:set", "web", "restart-policy", "on-failure:-1"],
        ["ps:set", "web", "restart-policy", "on-failure:1001"], ["ps:set", "web", "restart-policy", "on-failure:+5"],
        ["ps:set", "web", "restart-policy", "on-failure:10 "], ["ps:set", "web", "restart-policy", "sometimes"],
        ["ps:set", "web", "restart-policy", "always;reboot"], ["ps:set", "web", "procfile-path", "/etc/passwd"],
        ["checks:set", "web", "wait-to-retire", "-1"], ["checks:set", "web", "wait-to-retire", "3601"],
        ["checks:set", "web", "wait-to-retire", "1e3"], ["checks:set", "web", "wait-to-retire", "99999999999999999999"],
        ["checks:set", "web", "attempts", "3"],
        ["checks:disable", "web", "../etc"], ["checks:skip", "web", "web,,worker"], ["checks:skip", "web", "WEB"],
    ])
    func hostileValuesAreRefusedAndChangeNothing(_ argv: [String]) throws {
        let before = try w.dump()
        let outcome = try w.run(argv, asUser: "carol")
        #expect(outcome.status != 0)
        #expect(outcome.err.hasPrefix("error: "), "\(outcome.err)")
        #expect(try w.dump() == before)
    }

    @Test func aWriterSetsThemAndAReaderSeesThem() throws {
        #expect(try w.run(["ps:set", "web", "restart-policy", "on-failure:20"], asUser: "carol").status == 0)
        #expect(try w.run(["checks:skip", "web", "web,worker"], asUser: "carol").status == 0)
        #expect(try w.run(["checks:disable", "web", "worker"], asUser: "carol").status == 0)
        #expect(try w.run(["checks:set", "web", "wait-to-retire", "30"], asUser: "carol").status == 0)

        #expect(try w.run(["ps:report", "web", "--ps-restart-policy"], asUser: "dave").out == "on-failure:20\n")
        let ps = try #require(try JSONSerialization.jsonObject(with: Data(try w.run(["ps:report", "web", "--format", "json"], asUser: "dave").out.utf8)) as? [String: Any])
        #expect(ps["restart-policy"] as? String == "on-failure:20")
        #expect(ps["computed-restart-policy"] as? String == "on-failure:20")

        let text = try w.run(["checks:report", "web"], asUser: "dave").out
        #expect(text.contains("Checks disabled list:"))
        #expect(try w.run(["checks:report", "web", "--checks-skipped-list"], asUser: "dave").out == "web\n")
        #expect(try w.run(["checks:report", "web", "--checks-disabled-list"], asUser: "dave").out == "worker\n")
        let json = try w.run(["checks:report", "web", "--format", "json"], asUser: "dave").out
        #expect(json.split(separator: "\n").count == 1)
        let checks = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String])
        #expect(checks == ["name": "web", "disabled-list": "worker", "skipped-list": "web", "wait-to-retire": "30",
                           "computed-wait-to-retire": "30", "global-wait-to-retire": "5"])

        // Empty values restore the defaults; checks:enable without types clears every list.
        #expect(try w.run(["ps:set", "web", "restart-policy"], asUser: "carol").status == 0)
        #expect(try w.run(["ps:report", "web", "--ps-restart-policy"], asUser: "dave").out == "\n")
        #expect(try w.run(["ps:report", "web", "--ps-computed-restart-policy"], asUser: "dave").out == "on-failure:10\n")
        #expect(try w.run(["checks:set", "web", "wait-to-retire"], asUser: "carol").status == 0)
        #expect(try w.run(["checks:enable", "web"], asUser: "carol").status == 0)
        #expect(try w.run(["checks:report", "web", "--format", "json"], asUser: "dave").out
            == #"{"computed-wait-to-retire":"5","disabled-list":"none","global-wait-to-retire":"5","name":"web","skipped-list":"none","wait-to-retire":""}"# + "\n")
        // Each change is audited.
        let events = try w.core.store.read { db in try String.fetchAll(db, sql: "SELECT detail FROM events WHERE command LIKE 'checks:%' OR command = 'ps:set'") }
        #expect(events.count == 7, "\(events)")
    }

    @Test func enablingOneTypeWhileAllAreDisabledNeedsTheTypes() throws {
        #expect(try w.run(["checks:disable", "web"], asUser: "carol").status == 0)
        let before = try state()
        let outcome = try w.run(["checks:enable", "web", "web"], asUser: "carol")
        #expect(outcome.status != 0)
        #expect(outcome.err.contains("checks:enable web (without types)"))
        #expect(try state() == before)
    }
}

/// What the settings change in a rollout, on the fake engine and probe.
@Suite("Process settings in the rollout")
struct ProcessSettingsRolloutTests {
    let engine = FakeEngine()
    let probe = FakeProbe()
    let core: Core
    var deploys: DeployService
    let caller = Caller(principal: .localAdmin, command: "test")
    let app = try! AppName("web")
    let lines = TextCollector()
    var output: DeployService.Output { let lines = self.lines; return { lines.append(Data(($0 + "\n").utf8)) } }

    init() throws {
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        settings.waitToRetire = 0
        core = try Core(settings: settings, engine: engine, probe: probe, proxy: RecordingProxy(directory: settings.dataDir + "/proxy"), processes: LocalProcesses())
        deploys = core.deploys
        deploys.runningCheckDelay = 0.01
    }

    var settings: ProcessSettingsService { core.processSettings }

    func deployV1(_ processes: [String: String], scale: [String: Int]) throws {
        _ = try core.apps.create(app, by: caller)
        let record = try #require(try core.apps.find(app))
        try core.store.write { db in
            for (type, quantity) in scale {
                var entry = FormationEntry(appId: record.id!, processType: type, quantity: quantity)
                try entry.save(db)
            }
        }
        try roll(version: 1, processes)
    }

    func roll(version: Int, _ processes: [String: String]) throws {
        let record = try #require(try core.apps.find(app))
        let plan = DeployPlan(processes: processes, healthchecks: ["web": [HealthCheck(attempts: 1, wait: 0)]])
        let snapshot = ReleaseSnapshot(plan: plan, environment: [:], mounts: [], formation: [:])
        let release = try core.store.write { db -> Release in
            var release = Release(appId: record.id!, version: version, image: "slipway/\(app):\(version)", revision: "r\(version)", reason: "test",
                                  snapshot: try DeployService.encode(snapshot), status: .deploying, startedBy: "test", startedAt: Date())
            try release.insert(db)
            return release
        }
        try deploys.rollout(app, record: record, release: release, snapshot: snapshot, types: nil, output: output)
    }

    func currentVersion() throws -> Int? {
        try core.store.read { db in
            try Int.fetchOne(db, sql: "SELECT r.version FROM apps JOIN releases r ON r.id = apps.current_release_id WHERE apps.name = ?", arguments: [app])
        }
    }

    @Test func theRestartPolicyReachesEveryProcessContainer() throws {
        try deployV1(["web": "serve", "worker": "work"], scale: ["web": 1, "worker": 1])
        #expect(engine.container(named: "web.web.1")?.restartPolicy == .onFailure(maxRetries: 10), "Dokku's default")
        try settings.setRestartPolicy("on-failure:3", app: app, by: caller)
        try roll(version: 2, ["web": "serve", "worker": "work"])
        #expect(engine.container(named: "web.web.1")?.restartPolicy == .onFailure(maxRetries: 3))
        #expect(engine.container(named: "web.worker.1")?.restartPolicy == .onFailure(maxRetries: 3))
        try settings.setRestartPolicy("no", app: app, by: caller)
        try deploys.restart(app, type: "worker", by: caller, output: output)
        #expect(engine.container(named: "web.worker.1")?.restartPolicy == RestartPolicy.never)
        #expect(engine.container(named: "web.web.1")?.restartPolicy == .onFailure(maxRetries: 3), "only what was restarted")
    }

    @Test func skippedChecksLetAFailingWebThroughWithZeroDowntime() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        probe.status = 500
        #expect(throws: ProcessFailure.self) { try roll(version: 2, ["web": "serve"]) }
        #expect(try currentVersion() == 1)

        try settings.setChecks(.skipped, types: ["web"], app: app, by: caller)
        try roll(version: 3, ["web": "serve"])
        #expect(try currentVersion() == 3)
        #expect(lines.value.contains("Checks of web.web.1 are skipped"))
        // Zero downtime: the new container started before the old one stopped.
        let calls = engine.calls
        let started = try #require(calls.lastIndex { $0.hasPrefix("start web.web.1.new-") })
        let stopped = try #require(calls.lastIndex(of: "stop web.web.1"))
        #expect(started < stopped)
        #expect(engine.names == ["web.web.1"])
    }

    @Test func skippingOneTypeStillChecksTheOthers() throws {
        try deployV1(["web": "serve", "worker": "work"], scale: ["web": 1, "worker": 1])
        try settings.setChecks(.skipped, types: ["worker"], app: app, by: caller)
        probe.status = 500
        #expect(throws: ProcessFailure.self) { try roll(version: 2, ["web": "serve", "worker": "work"]) }
        #expect(try currentVersion() == 1)
    }

    @Test func disabledChecksStopTheOldContainersFirstAndBringThemBackOnFailure() throws {
        try deployV1(["web": "serve", "worker": "work"], scale: ["web": 1, "worker": 1])
        try settings.setChecks(.disabled, types: ["web"], app: app, by: caller)
        probe.status = 500
        let mark = engine.calls.count
        try roll(version: 2, ["web": "serve", "worker": "work"])
        #expect(try currentVersion() == 2, "disabled checks are not run")
        var calls = Array(engine.calls.dropFirst(mark))
        let stopped = try #require(calls.firstIndex(of: "stop web.web.1"))
        let created = try #require(calls.firstIndex { $0.hasPrefix("create web.web.1.new-") })
        #expect(stopped < created, "old web stops before the new one is made: \(calls)")
        #expect(engine.names == ["web.web.1", "web.worker.1"])

        // The new worker fails its check: the old web, stopped first, runs again.
        let oldWeb = try #require(engine.container(named: "web.web.1"))
        #expect(throws: ProcessFailure.self) { try roll(version: 3, ["web": "serve", "worker": "crash"]) }
        #expect(try currentVersion() == 2)
        calls = engine.calls
        #expect(calls.last { $0.hasPrefix("st") && $0.hasSuffix("web.web.1") } == "start web.web.1")
        #expect(engine.container(named: "web.web.1")?.id == oldWeb.id)
        #expect(engine.container(named: "web.web.1")?.running == true)
        #expect(engine.names == ["web.web.1", "web.worker.1"])
    }

    @Test func anAppsWaitToRetireOverridesTheServers() throws {
        try deployV1(["web": "serve"], scale: ["web": 1])
        try roll(version: 2, ["web": "serve"])
        #expect(!lines.value.contains("Retiring the old processes in"), "the server's wait_to_retire is 0 here")
        try settings.setWaitToRetire("1", app: app, by: caller)
        let started = Date()
        try roll(version: 3, ["web": "serve"])
        #expect(lines.value.contains("Retiring the old processes in 1 s"))
        #expect(Date().timeIntervalSince(started) >= 1)
    }

    @Test func unknownProcessTypesOfADeployedAppAreRefusedWithItsTypes() throws {
        try deployV1(["web": "serve", "worker": "work"], scale: ["web": 1, "worker": 1])
        let error = #expect(throws: UserFacingError.self) { try settings.setChecks(.skipped, types: ["web,clock"], app: app, by: caller) }
        #expect(error?.message == "web has no process type \"clock\"; its types are web, worker")
        #expect(try settings.values(of: app).checkModes.isEmpty)
        // Enabling one type while all are skipped keeps the others skipped.
        try settings.setChecks(.skipped, types: [], app: app, by: caller)
        try settings.setChecks(nil, types: ["web"], app: app, by: caller)
        let values = try settings.values(of: app)
        #expect(values.checkMode(of: "web") == nil)
        #expect(values.checkMode(of: "worker") == .skipped)
        #expect(values.skippedList == "worker")
    }
}
