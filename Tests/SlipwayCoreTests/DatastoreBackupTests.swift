import Foundation
import GRDB
import Logging
import SlipwayHost
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

extension TestWorld {
    /// A world on another engine (the fake one runs execs: backups and restores).
    init(engine: any ContainerEngine) throws {
        var s = Settings()
        s.dataDir = scratchPath("slipway-test")
        proxy = RecordingProxy(directory: s.dataDir + "/proxy")
        core = try Core(settings: s, engine: engine, probe: RefusingProbe(), proxy: proxy, processes: LocalProcesses())
        runner = CommandRunner(core: core, logger: Logger(label: "test"))
    }
}

/// <kind>:backup, backups, restore and backup-schedule on the fake engine (whose execs
/// print `execOutput` and exit `execStatus`): whole files only, keep, the schedule's
/// due check, recovery of half-written files, and every refusal from the side of
/// the users who must not get in.
@Suite("Backing services: backups")
struct DatastoreBackupTests {
    let engine = FakeEngine()

    /// bob owns `web` and the service `db` (linked to web); eve owns `evil`; dave writes web.
    func world() throws -> TestWorld {
        let w = try TestWorld(engine: engine)
        for name in ["bob", "eve", "dave"] { #expect(w.run(["users:add", name]).status == 0) }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["apps:create", "evil"], asUser: "eve").status == 0)
        #expect(try w.run(["acl:add", "web", "dave", "write"], asUser: "bob").status == 0)
        let created = try w.run(["postgres:create", "db"], asUser: "bob")
        #expect(created.status == 0, "\(created.err)")
        #expect(try w.run(["postgres:link", "db", "web"], asUser: "bob").status == 0)
        return w
    }

    func backupsDirectory(_ w: TestWorld) -> String { w.core.paths.serviceBackups(1) }

    func events(_ w: TestWorld) throws -> [String] {
        try w.core.store.read { db in try String.fetchAll(db, sql: "SELECT outcome || ' ' || detail FROM events ORDER BY id") }
    }

    func unchanged(_ w: TestWorld, _ before: String) throws {
        func state(_ dump: String) -> [Substring] { dump.split(separator: "\n").filter { !$0.hasPrefix("events:") } }
        #expect(state(try w.dump()) == state(before))
    }

    @Test func aBackupIsListedOnlyWholeAndKeepRemovesTheOldest() throws {
        let w = try world()
        engine.execOutput = "PGDMP the dump\n"
        let made = try w.run(["postgres:backup", "db"], asUser: "bob")
        #expect(made.status == 0 && made.out.contains("Backed up db as "), "\(made.out) \(made.err)")
        #expect(engine.calls.contains { $0.hasPrefix("exec postgres.db pg_dump -U postgres -d db --format=custom") })
        let listed = try w.run(["postgres:backups", "db", "--format", "json"], asUser: "bob")
        let backups = try JSONDecoder().decode([String: AnyJSON].self, from: Data(listed.out.utf8))
        #expect(listed.out.split(separator: "\n").count == 1 && listed.out.contains("\"bytes\":15") && backups["backups"] != nil, "\(listed.out)")
        let files = try FileManager.default.contentsOfDirectory(atPath: backupsDirectory(w))
        #expect(files.count == 1 && files[0].hasSuffix(".dump"))
        #expect(try String(contentsOfFile: backupsDirectory(w) + "/" + files[0], encoding: .utf8) == "PGDMP the dump\n")
        #expect(try events(w).contains { $0.hasPrefix("ok backed up postgres service db as ") })

        // Twice in one second: the second is refused, the first stays as it was.
        let caller = Caller(principal: .localAdmin, command: "test"), day = Date(timeIntervalSince1970: 1_900_000_000)
        try w.core.datastores.backup(.postgres, DatastoreName("db"), by: caller, now: day)
        #expect { try w.core.datastores.backup(.postgres, DatastoreName("db"), by: caller, now: day) } throws: { "\($0)".contains("this second") }
        let two = try FileManager.default.contentsOfDirectory(atPath: backupsDirectory(w)).sorted()
        #expect(two.count == 2)
        // A dump that fails leaves nothing listed and no temp file; the failure is audited.
        engine.execStatus = 1
        #expect { try w.core.datastores.backup(.postgres, DatastoreName("db"), by: caller, now: day.addingTimeInterval(1)) } throws: {
            "\($0)".contains("the backup of postgres service db failed (status 1)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: backupsDirectory(w)).sorted() == two)
        #expect(try events(w).contains { $0.hasPrefix("failed backup of postgres service db failed") })
        engine.execStatus = 0

        // keep 2: after each backup only the two newest stay.
        #expect(try w.run(["postgres:backup-schedule", "db", "0 3 * * *", "--keep", "2"], asUser: "bob").status == 0)
        for hours in [1.0, 2.0, 3.0] {
            try w.core.datastores.backup(.postgres, DatastoreName("db"), by: caller, now: day.addingTimeInterval(hours * 3600))
        }
        let ids = try w.core.datastores.backups(.postgres, DatastoreName("db")).backups.map(\.id)
        let expected = [2.0, 3.0].map { DatastoreService.backupID(for: day.addingTimeInterval($0 * 3600)) }
        #expect(ids == expected, "\(ids)")
        #expect(try events(w).contains { $0.contains("removed") && $0.contains("(keep)") })
        let text = try w.run(["postgres:backups", "db"], asUser: "bob")
        #expect(text.out.contains("Schedule: 0 3 * * * (keeps 2)") && text.out.contains(expected[1]), "\(text.out)")
    }

    @Test func halfWrittenBackupsAreNeverListedAndGoAtStart() throws {
        let w = try world()
        try FileManager.default.createDirectory(atPath: backupsDirectory(w), withIntermediateDirectories: true)
        let partial = backupsDirectory(w) + "/.20300101-000000.partial"
        FileManager.default.createFile(atPath: partial, contents: Data("PGDMP half".utf8))
        // Neither is a name a backup may have.
        FileManager.default.createFile(atPath: backupsDirectory(w) + "/20300101-000000.dump.tmp", contents: Data())
        #expect(try w.core.datastores.backups(.postgres, DatastoreName("db")).backups.isEmpty)
        let restore = try w.run(["postgres:restore", "db", "20300101-000000"], asUser: "bob")
        #expect(restore.status != 0 && restore.err.contains("has no backup"), "\(restore.err)")
        let removed = w.core.datastores.removePartialBackups()
        #expect(removed.count == 1 && !FileManager.default.fileExists(atPath: partial))
    }

    @Test func restoreRunsInOneTransactionAndIsAudited() throws {
        let w = try world()
        #expect(try w.run(["postgres:backup", "db"], asUser: "bob").status == 0)
        let id = try #require(try w.core.datastores.backups(.postgres, DatastoreName("db")).backups.first?.id)
        let restored = try w.run(["postgres:restore", "db", id], asUser: "bob")
        #expect(restored.status == 0, "\(restored.err)")
        #expect(engine.calls.contains { $0.hasPrefix("exec postgres.db pg_restore -U postgres -d db") && $0.contains("--single-transaction") })
        #expect(try events(w).contains("ok restored postgres service db from backup \(id)"))
        engine.execStatus = 1
        let failed = try w.run(["postgres:restore", "db", id], asUser: "bob")
        #expect(failed.status != 0 && failed.err.contains("nothing changed"), "\(failed.err)")
    }

    /// A stranger is told the service does not exist; a writer of the linked app (who
    /// uses it) cannot read or replace its data wholesale; nothing changes.
    @Test func onlyTheOwnerBacksUpAndRestores() throws {
        let w = try world()
        #expect(try w.run(["postgres:backup", "db"], asUser: "bob").status == 0)
        let id = try #require(try w.core.datastores.backups(.postgres, DatastoreName("db")).backups.first?.id)
        let probes: [[String]] = [
            ["postgres:backup", "db"], ["postgres:backups", "db"], ["postgres:restore", "db", id],
            ["postgres:backup-schedule", "db", "@daily"], ["postgres:backup-unschedule", "db"],
        ]
        let before = try w.dump(), execs = engine.calls.filter { $0.hasPrefix("exec") }.count
        for argv in probes {
            let stranger = try w.run(argv, asUser: "eve")
            #expect(stranger.status == 1 && stranger.err.contains("postgres service \"db\" not found"), "\(argv): \(stranger.err)")
            let user = try w.run(argv, asUser: "dave")
            #expect(user.status == 1 && user.err.contains("needs its owner"), "\(argv): \(user.err)")
        }
        try unchanged(w, before)
        #expect(engine.calls.filter { $0.hasPrefix("exec") }.count == execs)
        #expect(try FileManager.default.contentsOfDirectory(atPath: backupsDirectory(w)).count == 1)
    }

    @Test func hostileIDsSchedulesAndKeepsAreRefused() throws {
        let w = try world()
        #expect(try w.run(["postgres:backup", "db"], asUser: "bob").status == 0)
        let before = try w.dump(), execs = engine.calls.filter { $0.hasPrefix("exec") }.count
        for id in ["../data", "20300101-000000/../../x", "", "-rf", ".20300101-000000.partial", "20300101-000000.dump", "../../../etc/passwd"] {
            let r = try w.run(["postgres:restore", "db", id], asUser: "bob")
            #expect(r.status != 0 && r.err.contains("error: "), "\(id): \(r.err)")
        }
        for schedule in ["* * *", "61 * * * *", "@reboot", "* * * * * rm -rf /", ""] {
            let r = try w.run(["postgres:backup-schedule", "db", schedule], asUser: "bob")
            #expect(r.status != 0 && r.err.contains("invalid cron schedule"), "\(schedule): \(r.err)")
        }
        // Five words (as ssh delivers a quoted schedule) or one: the same schedule.
        #expect(try w.run(["postgres:backup-schedule", "db", "0", "3", "*", "*", "*", "--keep", "2"], asUser: "bob").out.contains("at 0 3 * * *, keeping 2"))
        #expect(try w.run(["postgres:backup-unschedule", "db"], asUser: "bob").status == 0)
        for keep in ["0", "-1", "1001", "x"] {
            let r = try w.run(["postgres:backup-schedule", "db", "@daily", "--keep", keep], asUser: "bob")
            #expect(r.status != 0, "\(keep)")
        }
        let unscheduled = try w.run(["postgres:backup-unschedule", "db"], asUser: "bob")
        #expect(unscheduled.status != 0 && unscheduled.err.contains("has no backup schedule"))
        try unchanged(w, before)
        #expect(engine.calls.filter { $0.hasPrefix("exec") }.count == execs)
    }

    @Test func schedulesAreDueOnTheirMinuteAndGoWithTheService() throws {
        let w = try world()
        #expect(try w.run(["postgres:backup-schedule", "db", "*/5 * * * *", "--keep", "3"], asUser: "bob").status == 0)
        let onFive = Date(timeIntervalSince1970: 1_900_000_200) // 2030-03-17 17:36:40 → the minute 17:35 below
        let minute = Date(timeIntervalSince1970: (onFive.timeIntervalSince1970 / 300).rounded(.down) * 300)
        #expect(try w.core.datastores.dueBackups(at: minute).map { "\($0.kind.namespace) \($0.name)" } == ["postgres db"])
        #expect(try w.core.datastores.dueBackups(at: minute.addingTimeInterval(60)).isEmpty)
        // A scheduled backup is audited as the owner via cron: bob's events show it, eve's do not.
        #expect(w.core.datastores.scheduledBackup(.postgres, try DatastoreName("db")) == nil)
        #expect(try w.run(["events"], asUser: "bob").out.contains("backed up postgres service db as "))
        #expect(try !w.run(["events"], asUser: "eve").out.contains("postgres service db"))
        #expect(try w.run(["postgres:backup-unschedule", "db"], asUser: "bob").status == 0)
        #expect(try w.core.datastores.dueBackups(at: minute).isEmpty)
        // A service's schedule goes with it.
        #expect(try w.run(["postgres:backup-schedule", "db", "@hourly"], asUser: "bob").status == 0)
        #expect(try w.run(["postgres:unlink", "db", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["postgres:destroy", "db", "--force"], asUser: "bob").status == 0)
        #expect(try w.core.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM service_backup_schedules") } == 0)
    }
}
