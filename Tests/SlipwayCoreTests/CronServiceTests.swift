import Foundation
import GRDB
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// Cron entries of the live release, suspensions, the concurrency policy's skip,
/// recovery, and the access gate, on a temp store (no container runs: those are in
/// CronEndToEndTests).
@Suite struct CronServiceTests {
    let w: TestWorld
    let app = try! AppName("bobs-app")
    let report = CronEntry(command: "bin/report --daily", schedule: "*/5 * * * *", concurrencyPolicy: .forbid)
    let cleanup = CronEntry(command: "bin/cleanup", schedule: "0 3 * * *")

    init() throws {
        w = try TestWorld()
        for (name, admin) in [("alice", true), ("bob", false), ("carol", false), ("eve", false)] {
            #expect(w.run(["users:add", name] + (admin ? ["--admin"] : [])).status == 0)
        }
        #expect(try w.run(["apps:create", "bobs-app"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "bobs-app", "carol", "read"], asUser: "bob").status == 0)
    }

    /// Makes a release with these entries the app's current one, as a rollout's switch does.
    func goLive(_ version: Int, _ cron: [CronEntry]?) throws {
        var plan = DeployPlan(processes: ["web": "serve"])
        plan.cron = cron
        let snapshot = ReleaseSnapshot(plan: plan, environment: [:], mounts: [], formation: ["web": 1])
        let record = try #require(try w.core.apps.find(app))
        try w.core.store.write { db in
            var release = Release(appId: record.id!, version: version, image: "slipway/bobs-app:\(version)", revision: "r\(version)", reason: "test",
                                  snapshot: try DeployService.encode(snapshot), status: .succeeded, startedBy: "test", startedAt: Date())
            try release.insert(db)
            try w.core.apps.setCurrentRelease(release.id, of: record.id!, db)
        }
    }

    func utc(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text)!
    }

    @Test func entriesFollowTheLiveRelease() throws {
        #expect(try w.core.cron.list(app).isEmpty)
        try goLive(1, [report, cleanup])
        let listed = try w.core.cron.list(app, now: utc("2026-03-01T12:01:30Z"))
        #expect(listed.map(\.id) == [report.id, cleanup.id])
        #expect(listed[0].nextRun == utc("2026-03-01T12:05:00Z") && listed[0].timezone == "UTC")
        #expect(listed[0].timeout == 3600 && listed[0].concurrencyPolicy == "forbid" && listed[0].lastRun == nil)
        // A release that changes only the policy keeps the id; one without the entry removes it.
        var changed = report
        changed.concurrencyPolicy = .replace
        try goLive(2, [changed])
        #expect(try w.core.cron.list(app).map(\.id) == [report.id])
        try goLive(3, nil)
        #expect(try w.core.cron.list(app).isEmpty)
        #expect(try w.core.cron.due(at: utc("2026-03-01T12:05:00Z")).isEmpty)
    }

    /// Only the current minute is due (a missed one is never looked at again), suspended ones never.
    @Test func dueEntriesAndSuspensions() throws {
        try goLive(1, [report, cleanup])
        func due(_ time: String) throws -> [String] { try w.core.cron.due(at: utc(time)).map { "\($0.app) \($0.entry.id)" } }
        #expect(try due("2026-03-01T12:05:00Z") == ["bobs-app \(report.id)"])
        #expect(try due("2026-03-01T12:06:00Z") == [])
        #expect(try due("2026-03-01T03:00:00Z") == ["bobs-app \(report.id)", "bobs-app \(cleanup.id)"])

        #expect(try w.run(["cron:suspend", "bobs-app", report.id], asUser: "bob").status == 0)
        #expect(try due("2026-03-01T12:05:00Z") == [])
        #expect(try due("2026-03-01T03:00:00Z") == ["bobs-app \(cleanup.id)"])
        #expect(try due("2026-03-01T03:03:00Z") == [])
        let listed = try w.run(["cron:list", "bobs-app"], asUser: "carol")
        #expect(listed.status == 0 && listed.out.contains("suspended") && listed.out.contains("NEXT RUN (UTC)"))
        #expect(try w.run(["cron:suspend", "bobs-app", report.id], asUser: "bob").err.contains("already suspended"))
        #expect(try w.run(["cron:suspend", "bobs-app"], asUser: "bob").status == 0)
        #expect(try due("2026-03-01T03:00:00Z") == [])
        let one = try w.run(["cron:resume", "bobs-app", report.id], asUser: "bob")
        #expect(one.status == 1 && one.err.contains("cron:resume bobs-app resumes them all"))
        #expect(try w.run(["cron:resume", "bobs-app"], asUser: "bob").status == 0)
        #expect(try due("2026-03-01T12:05:00Z").count == 1 && due("2026-03-01T03:00:00Z").count == 2)
        #expect(try w.run(["cron:resume", "bobs-app"], asUser: "bob").err.contains("no cron entry of bobs-app is suspended"))
        let unknown = try w.run(["cron:suspend", "bobs-app", "0000000000"], asUser: "bob")
        #expect(unknown.status == 1 && unknown.err.contains("cron:list bobs-app shows them"))
        let events = try w.core.store.read { db in try String.fetchAll(db, sql: "SELECT detail FROM events WHERE detail LIKE '%cron entr%' AND outcome = 'ok' ORDER BY id") }
        #expect(events == ["suspended cron entry \(report.id)", "suspended every cron entry", "resumed every cron entry"])
    }

    /// `forbid`: a run due while another runs is skipped, recorded in cron_runs and events.
    @Test func forbidSkipsWhileARunRuns() throws {
        try goLive(1, [report])
        let appID = try #require(try w.core.apps.find(app)?.id)
        try w.core.store.write { db in
            var busy = CronRun(appId: appID, entryId: report.id, command: report.command, trigger: "schedule", origin: "cron",
                               status: .running, startedAt: Date().addingTimeInterval(-90))
            try busy.insert(db)
        }
        let run = try w.core.cron.execute(app, entry: report, trigger: "schedule", scheduledFor: utc("2026-03-01T12:05:00Z"),
                                          by: CronService.scheduler, io: nil)
        #expect(run.status == .skipped && run.detail?.contains("concurrency_policy forbid") == true)
        let runs = try w.core.cron.runs(of: app, id: report.id)
        #expect(runs.map(\.status) == [.skipped, .running])
        let event = try w.core.store.read { db in try Row.fetchOne(db, sql: "SELECT outcome, detail FROM events WHERE detail LIKE 'cron %' ORDER BY id DESC") }
        #expect(event?["outcome"] == "skipped")
        #expect((event?["detail"] as String?)?.hasPrefix("cron \(report.id) skipped") == true)
        let json = try w.run(["cron:list", "bobs-app", "--format", "json"], asUser: "carol")
        #expect(json.out.split(separator: "\n").count == 1 && json.out.contains("\"lastStatus\":\"skipped\""))

        // The next server marks what the previous one left running as interrupted.
        let repairs = try w.core.cron.endInterruptedRuns()
        #expect(repairs.contains("marked 1 cron run interrupted"))
        #expect(try w.core.cron.runs(of: app, id: report.id).map(\.status) == [.skipped, .interrupted])
        let interrupted = try w.core.store.read { db in try Row.fetchOne(db, sql: "SELECT outcome, detail FROM events WHERE detail LIKE 'cron %' ORDER BY id DESC") }
        #expect(interrupted?["outcome"] == "interrupted")
        #expect(interrupted?["detail"] == "cron \(report.id) interrupted: the server stopped during the run")
    }

    /// Read to see, write to act; a stranger gets the same answer as for a missing app.
    @Test func accessFromTheAttackersSide() throws {
        try goLive(1, [report])
        let before = try w.dump()
        for argv in [["cron:list", "bobs-app"], ["cron:logs", "bobs-app", report.id], ["cron:run", "bobs-app", report.id],
                     ["cron:suspend", "bobs-app"], ["cron:resume", "bobs-app", report.id]] {
            let hidden = try w.run(argv, asUser: "eve")
            let missing = try w.run(argv.map { $0 == "bobs-app" ? "no-such-app" : $0 }, asUser: "eve")
            #expect(hidden.status == 1 && hidden.status == missing.status, "\(argv)")
            #expect(hidden.err.replacingOccurrences(of: "bobs-app", with: "APP") == missing.err.replacingOccurrences(of: "no-such-app", with: "APP"), "\(argv)")
        }
        // A reader sees, but cannot run, suspend or resume.
        #expect(try w.run(["cron:list", "bobs-app"], asUser: "carol").status == 0)
        for argv in [["cron:run", "bobs-app", report.id], ["cron:run", "bobs-app", report.id, "--detach"], ["cron:suspend", "bobs-app"],
                     ["cron:suspend", "bobs-app", report.id], ["cron:resume", "bobs-app"]] {
            let refused = try w.run(argv, asUser: "carol")
            #expect(refused.status == 1 && refused.err.contains("you have read access"), "\(argv)")
        }
        // Hostile ids are just unknown ids.
        for id in ["../../etc/passwd", "' OR 1=1 --", "*", String(repeating: "a", count: 5000)] {
            let result = try w.run(["cron:suspend", "bobs-app", id], asUser: "bob")
            #expect(result.status == 1 && result.err.contains("has no cron entry"), "\(id.prefix(20))")
        }
        #expect(try w.run(["cron:logs", "bobs-app", "*"], asUser: "bob").err.contains("has no cron entry"))
        #expect(try w.run(["cron:logs", "bobs-app", report.id], asUser: "bob").err.contains("no stored output yet"))
        #expect(try w.run(["cron:logs", "bobs-app", report.id, "-n", "20000"], asUser: "bob").err.contains("-n takes"))
        let after = try w.dump()
        #expect(before.split(separator: "\n").filter { !$0.hasPrefix("events") } == after.split(separator: "\n").filter { !$0.hasPrefix("events") })
    }

    @Test func settingsTakeTheTimezoneAndTimeout() throws {
        let settings = try Settings.parse("cron_timezone = \"Europe/Berlin\"\ncron_timeout = 120\n", source: "test")
        #expect(settings.cronTimezone == "Europe/Berlin" && settings.cronTimeout == 120)
        #expect(throws: UserFacingError.self) { try Settings.parse("cron_timezone = \"Mars/Olympus\"\n", source: "test") }
        #expect(throws: UserFacingError.self) { try Settings.parse("cron_timeout = 0\n", source: "test") }
        #expect(Settings().cronTimezone == "UTC")
    }
}

extension CronServiceTests {
    /// An every-minute entry keeps its latest runs only (a skipped run prunes too).
    @Test func runsArePrunedPerEntry() throws {
        try goLive(1, [report])
        let appID = try #require(try w.core.apps.find(app)?.id)
        try w.core.store.write { db in
            for index in 0..<(CronService.runsToKeep + 5) {
                var old = CronRun(appId: appID, entryId: report.id, command: report.command, trigger: "schedule", origin: "cron",
                                  status: index == 0 ? .running : .succeeded, startedAt: Date().addingTimeInterval(-Double(1000 - index)))
                try old.insert(db)
            }
        }
        _ = try w.core.cron.execute(app, entry: report, trigger: "schedule", scheduledFor: nil, by: CronService.scheduler, io: nil)
        let runs = try w.core.cron.runs(of: app, id: report.id)
        // The newest 100 (the skip among them) and the oldest, which still runs.
        #expect(runs.count == CronService.runsToKeep + 1)
        #expect(runs.first?.status == .skipped && runs.last?.status == .running)
    }
}
