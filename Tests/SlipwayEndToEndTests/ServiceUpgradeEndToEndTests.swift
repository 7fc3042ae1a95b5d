import Foundation
import SlipwayCore
import Testing

/// Upgrades, Redis sessions and long silent statements, on the Postgres suite's shared
/// server (real ssh, git and podman).
extension PostgresEndToEndTests {
    /// `podman` on the host, for the test's own images.
    func podman(_ args: [String]) throws -> Slipway.Result { try run("/usr/bin/podman", args) }

    /// One silent 40 s statement returns its result, without a terminal and under
    /// `ssh -tt` from a script (a terminal of no size: psql's pager used to wait there
    /// for a key press, and the session never ended).
    @Test func aFortySecondSilentStatementReturns() async throws {
        let (server, bob, _) = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let db = randomServiceName("slow")
        #expect(try server.ssh(bob.key, "postgres:create", db).status == 0)
        defer { _ = try? server.ssh(bob.key, "postgres:destroy", db, "--force") }
        let answers = try inParallel(2) { index -> (Slipway.Result, TimeInterval) in
            let started = Date()
            let options = index == 0 ? [] : ["-tt"]
            let result = try server.ssh(bob.key, ["postgres:connect", db], stdin: "select pg_sleep(40), 'slept-' || \(index);\n\\q\n", options: options)
            return (result, Date().timeIntervalSince(started))
        }
        for (index, (result, seconds)) in answers.enumerated() {
            #expect(result.status == 0 && result.out.contains("slept-\(index)") && result.out.contains("(1 row)"), "\(index): \(result.out.suffix(500)) \(result.err)")
            #expect(seconds >= 40 && seconds < 80, "\(index): \(seconds) s")
        }
    }

    /// redis:export writes an RDB; redis:import of it into a second service gives the
    /// same keys (binary values too); stdin that is not an RDB is refused and changes
    /// nothing. Another tenant gets the missing service's answer from all three.
    @Test func redisExportThenImportCopiesTheKeys() async throws {
        let (server, bob, eve) = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let first = randomServiceName("kv"), second = randomServiceName("kvcopy")
        for name in [first, second] { #expect(try server.ssh(bob.key, "redis:create", name).status == 0) }
        defer { for name in [first, second] { _ = try? server.ssh(bob.key, "redis:destroy", name, "--force") } }
        let set = try server.ssh(bob.key, ["redis:connect", first], stdin: "SET greeting hello\nRPUSH list a b c\nSET n 42\n")
        #expect(set.status == 0 && set.out.contains("OK"), "\(set.out) \(set.err)")
        #expect(try server.ssh(bob.key, ["redis:connect", second], stdin: "SET stale yes\n").status == 0)

        let file = try temporaryDirectory("rdb") + "/kv.rdb"
        let exported = try sshFiles(server, bob, "redis:export \(first)", stdout: file)
        #expect(exported.status == 0, "\(exported.err)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        #expect(bytes.starts(with: Data("REDIS".utf8)) && bytes.count > 40, "\(bytes.prefix(20))")

        // Not an RDB: refused, the data as it was.
        let junk = file + ".txt"
        try Data("FLUSHALL\n".utf8).write(to: URL(fileURLWithPath: junk))
        let refused = try sshFiles(server, bob, "redis:import \(second)", stdin: junk, stdout: "/dev/null")
        #expect(refused.status != 0 && refused.err.contains("error: ") && refused.err.contains("RDB"), "\(refused.err)")
        #expect(try server.ssh(bob.key, ["redis:connect", second], stdin: "GET stale\n").out.contains("yes"))

        // A stranger: the missing service's answer.
        for command in ["redis:export", "redis:import", "redis:connect"] {
            let denied = try sshFiles(server, eve, "\(command) \(second)", stdin: file, stdout: "/dev/null")
            #expect(denied.status != 0 && denied.err.contains("redis service \"\(second)\" not found"), "\(command): \(denied.err)")
        }

        let imported = try sshFiles(server, bob, "redis:import \(second)", stdin: file, stdout: "/dev/null")
        #expect(imported.status == 0, "\(imported.err)")
        let read = "GET greeting\nLRANGE list 0 -1\nGET n\nEXISTS stale\n"
        let original = try server.ssh(bob.key, ["redis:connect", first], stdin: read)
        let copied = try server.ssh(bob.key, ["redis:connect", second], stdin: read)
        #expect(copied.status == 0 && copied.out.contains("hello") && copied.out.contains("42"), "\(copied.out) \(copied.err)")
        #expect(original.out == copied.out, "\(original.out) vs \(copied.out)")
        let events = try server.ssh(bob.key, "events", "-n", "200")
        #expect(events.out.contains("imported an RDB") && events.out.contains("connected to redis service"), "\(events.out.suffix(1500))")
    }

    /// postgres:upgrade to another image on the server: a backup first (listed), the
    /// linked app keeps answering with the same DATABASE_URL and its rows; info shows the
    /// new image. An image that exits at once rolls back with an error: the old image
    /// runs, the rows are there, the app answers.
    @Test func upgradeKeepsTheRowsAndAFailingImageRollsBack() async throws {
        let (server, bob, eve) = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let db = randomServiceName("upg"), app = "upgraded"
        let suffix = String(db.suffix(6))
        // A second name for the service image (a "new version"), and an image that exits at once.
        let newer = "localhost/pg-upgrade-test:\(suffix)", broken = "localhost/pg-broken-test:\(suffix)"
        #expect(try podman(["tag", "slipway/postgres:15", newer]).status == 0)
        let context = try temporaryDirectory("broken-image")
        try "FROM slipway/postgres:15\nCMD [\"/bin/false\"]\n".write(toFile: context + "/Containerfile", atomically: true, encoding: .utf8)
        let built = try podman(["build", "-q", "-t", broken, context])
        #expect(built.status == 0, "\(built.err)")
        defer { _ = try? podman(["rmi", newer]); _ = try? podman(["rmi", broken]) }

        #expect(try server.ssh(bob.key, "postgres:create", db).status == 0)
        defer { _ = try? server.ssh(bob.key, "postgres:destroy", db, "--force") }
        #expect(try server.ssh(bob.key, "apps:create", app).status == 0)
        defer { _ = try? server.ssh(bob.key, "postgres:unlink", db, app, "--no-restart"); _ = try? server.ssh(bob.key, "apps:destroy", app, "--force") }
        #expect(try server.ssh(bob.key, "postgres:link", db, app).status == 0)
        #expect(try push(server, bob, app, PostgresApp.files).status == 0)
        let url = server.slipway.url(app)
        #expect(try await httpGetWhenReady(url + "write?body=before-upgrade").body == "ok")
        let databaseURL = try server.ssh(bob.key, "config:get", app, "DATABASE_URL").out

        // Another tenant: the missing service's answer, nothing runs.
        let denied = try server.ssh(eve.key, "postgres:upgrade", db, "--image", newer)
        #expect(denied.status != 0 && denied.err.contains("postgres service \"\(db)\" not found"), "\(denied.err)")
        // Another tenant's app image is not a service image.
        let appImage = try server.ssh(bob.key, "postgres:upgrade", db, "--image", "slipway/\(app):latest")
        #expect(appImage.status != 0 && appImage.err.contains("Slipway's own images"), "\(appImage.err)")

        let upgraded = try server.ssh(bob.key, "postgres:upgrade", db, "--image", newer)
        #expect(upgraded.status == 0 && upgraded.out.contains("upgraded from slipway/postgres:15 to \(newer)"), "\(upgraded.out) \(upgraded.err)")
        let info = try server.ssh(bob.key, "postgres:info", db, "--format", "json")
        #expect(info.out.contains("\"image\":\"\(newer)\"") && info.out.contains("\"version\":\"15\""), "\(info.out)")
        let backups = try server.ssh(bob.key, "postgres:backups", db, "--format", "json")
        #expect(backups.out.contains("\"backups\":[{"), "\(backups.out)")
        #expect(try server.ssh(bob.key, "config:get", app, "DATABASE_URL").out == databaseURL)
        #expect(try await httpGetWhenReady(url + "rows").body == "before-upgrade")
        #expect(try httpGet(url + "write?body=after-upgrade").body == "ok")

        let failed = try server.ssh(bob.key, "postgres:upgrade", db, "--image", broken)
        #expect(failed.status != 0 && failed.err.contains("error: ") && failed.err.contains("back on \(newer)"), "\(failed.out) \(failed.err)")
        let after = try server.ssh(bob.key, "postgres:info", db, "--format", "json")
        #expect(after.out.contains("\"image\":\"\(newer)\"") && after.out.contains("\"state\":\"running\""), "\(after.out)")
        #expect(try psql(server, bob, db, "SELECT body FROM notes ORDER BY id;").out.contains("after-upgrade"))
        let rows = try await httpGetWhenReady(url + "rows")
        #expect(rows.body.contains("before-upgrade") && rows.body.contains("after-upgrade"), "\(rows)")
        let events = try server.ssh(bob.key, "events", "-n", "300")
        #expect(events.out.contains("upgraded postgres service \(db)") && events.out.contains("upgrade of postgres service \(db) to \(broken) failed"),
                "\(events.out.suffix(2000))")
    }
}
