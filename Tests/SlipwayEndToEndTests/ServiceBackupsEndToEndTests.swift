import Foundation
import Testing

/// redis: and backups over the real OpenSSH client, git and podman. Each test has a
/// server of its own (one of them kills it). Service names are random: containers are
/// named `<kind>.NAME` on an engine other test processes share.
@Suite("Redis and service backups end to end", .serialized)
struct ServiceBackupsEndToEndTests {
    func server() throws -> (TestServer, TestUser, TestUser) {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        return (server, try TestUser.register("bob", on: server.slipway), try TestUser.register("eve", on: server.slipway))
    }

    func finish(_ server: TestServer) {
        if server.isRunning { _ = server.stop() }
        server.slipway.cleanUp()
        try? FileManager.default.removeItem(atPath: server.slipway.dataDir)
    }

    /// Every file in the server's service backup directories, by name.
    func backupFiles(_ server: TestServer) -> [String] {
        let root = server.slipway.dataDir + "/services"
        return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).flatMap { id in
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(id)/backups")) ?? []).map { "\(root)/\(id)/backups/\($0)" }
        }.sorted()
    }

    func backupIDs(_ server: TestServer, _ user: TestUser, _ kind: String, _ name: String) throws -> [String] {
        let listed = try server.ssh(user.key, "\(kind):backups", name, "--format", "json")
        let object = try JSONSerialization.jsonObject(with: Data(listed.out.utf8)) as? [String: Any]
        return ((object?["backups"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }
    }

    /// A counter app on REDIS_URL keeps its count across a redeploy; a backup then a
    /// restore brings the count back to the backup's; another tenant can do neither.
    @Test func aRedisCounterKeepsItsCountAndRestoresFromABackup() async throws {
        let (server, bob, eve) = try server()
        defer { finish(server) }
        let cache = randomServiceName("hits"), app = "counter"
        let created = try server.ssh(bob.key, "redis:create", cache)
        #expect(created.status == 0, "\(created.out) \(created.err)")
        defer { _ = try? server.ssh(bob.key, "redis:destroy", cache, "--force") }
        #expect(try server.ssh(bob.key, "apps:create", app).status == 0)
        defer { _ = try? server.ssh(bob.key, "redis:unlink", cache, app, "--no-restart"); _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }
        let linked = try server.ssh(bob.key, "redis:link", cache, app)
        #expect(linked.status == 0 && linked.out.contains("as REDIS_URL"), "\(linked.err)")
        let pushed = try server.git(bob.key, ["push", "-f", server.url(app), "main"], in: try makeRepository(RedisCounterApp.files))
        #expect(pushed.status == 0, "\(pushed.err)")
        let url = server.slipway.url(app) + "hit"

        #expect(try await httpGetWhenReady(url).body == "1", "\(server.log.suffix(2000))")
        #expect(try httpGet(url).body == "2")
        let rebuilt = try server.ssh(bob.key, "ps:rebuild", app)
        #expect(rebuilt.status == 0, "\(rebuilt.err)")
        #expect(try await httpGetWhenReady(url).body == "3")

        let backup = try server.ssh(bob.key, "redis:backup", cache)
        #expect(backup.status == 0 && backup.out.contains("Backed up \(cache) as "), "\(backup.out) \(backup.err)")
        let ids = try backupIDs(server, bob, "redis", cache)
        #expect(ids.count == 1)
        let files = backupFiles(server)
        #expect(files.count == 1 && files[0].hasSuffix(".rdb"), "\(files)")
        let rdb = try Data(contentsOf: URL(fileURLWithPath: files[0]))
        #expect(rdb.starts(with: Data("REDIS".utf8)), "\(rdb.prefix(16))")
        #expect(try httpGet(url).body == "4")
        #expect(try httpGet(url).body == "5")

        // eve is told the service does not exist, and nothing happens.
        for command in [["redis:backup", cache], ["redis:restore", cache, ids[0]], ["redis:backups", cache]] {
            let refused = try server.ssh(eve.key, command)
            #expect(refused.status == 1 && refused.err.contains("redis service \"\(cache)\" not found"), "\(command): \(refused.err)")
        }
        #expect(try httpGet(url).body == "6")

        let restored = try server.ssh(bob.key, "redis:restore", cache, ids[0])
        #expect(restored.status == 0, "\(restored.out) \(restored.err)")
        // The app kept running; the count is the backup's again.
        #expect(try await httpGetWhenReady(url).body == "4", "\(server.log.suffix(2000))")
        // And it is durable: a restart of the service keeps the restored data.
        #expect(try server.ssh(bob.key, "redis:restart", cache).status == 0)
        #expect(try await httpGetWhenReady(url).body == "5")
        // A schedule: the server's minute loop makes the next backup by itself.
        // As a user types it: ssh joins the words, the server takes the five fields.
        let scheduled = try server.ssh(bob.key, "redis:backup-schedule", cache, "* * * * *", "--keep", "2")
        #expect(scheduled.out.contains("scheduled at * * * * *, keeping 2"), "\(scheduled.out)")
        #expect(scheduled.status == 0, "\(scheduled.err)")
        let until = Date().addingTimeInterval(150)
        while try backupIDs(server, bob, "redis", cache).count < 2, Date() < until { try await Task.sleep(for: .seconds(2)) }
        #expect(try server.ssh(bob.key, "redis:backup-unschedule", cache).status == 0)
        let afterSchedule = try backupIDs(server, bob, "redis", cache)
        // --keep 2 holds, and the schedule made one. (Not "the manual one is the older":
        // on a loaded host a second scheduled backup may come before the unschedule, and
        // keep 2 then drops the manual one, as ci19 saw.)
        #expect(afterSchedule.count == 2 && afterSchedule.contains { $0 != ids[0] }, "\(afterSchedule)")
        let events = try server.ssh(bob.key, "events").out
        #expect(events.contains("backed up redis service \(cache) as \(ids[0])") && events.contains("restored redis service \(cache) from backup \(ids[0])"), "\(events)")
        #expect(events.contains("backed up redis service \(cache) as \(afterSchedule.last ?? "-")"), "\(events)")
    }

    /// backup, DROP TABLE, restore: the table is back. Then a server SIGKILLed while a
    /// large backup is being written: afterwards no half-written backup is listed or
    /// left on disk, and the next backup works.
    @Test func aPostgresBackupRestoresADroppedTableAndAKilledBackupLeavesNothing() async throws {
        let (first, bob, _) = try server()
        var server = first
        defer { finish(server) }
        let db = randomServiceName("ledger")
        let created = try server.ssh(bob.key, "postgres:create", db)
        #expect(created.status == 0, "\(created.out) \(created.err)")
        defer { _ = try? server.ssh(bob.key, "postgres:destroy", db, "--force") }
        func psql(_ sql: String) throws -> Slipway.Result { try server.ssh(bob.key, ["postgres:connect", db], stdin: sql + "\n") }

        let made = try psql("CREATE TABLE accounts (name text PRIMARY KEY, balance int); INSERT INTO accounts VALUES ('alice', 10), ('bob', 20);")
        #expect(made.status == 0, "\(made.out) \(made.err)")
        let backup = try server.ssh(bob.key, "postgres:backup", db)
        #expect(backup.status == 0, "\(backup.out) \(backup.err)")
        let ids = try backupIDs(server, bob, "postgres", db)
        #expect(ids.count == 1)
        #expect(try psql("DROP TABLE accounts;").status == 0)
        #expect(try psql("SELECT * FROM accounts;").status != 0)
        let restored = try server.ssh(bob.key, "postgres:restore", db, ids[0])
        #expect(restored.status == 0, "\(restored.out) \(restored.err)")
        let rows = try psql("SELECT name || '=' || balance FROM accounts ORDER BY name;")
        #expect(rows.status == 0 && rows.out.contains("alice=10") && rows.out.contains("bob=20"), "\(rows.out) \(rows.err)")
        // An id it does not have is refused.
        let unknown = try server.ssh(bob.key, "postgres:restore", db, "20000101-000000")
        #expect(unknown.status != 0 && unknown.err.contains("has no backup"), "\(unknown.err)")

        // Enough data that the dump takes a while, then SIGKILL while it is written.
        // In steps, so psql prints as it goes (about 60 MB of dump in all).
        let steps = (0..<4).map { "INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(\($0 * 400000 + 1), \(($0 + 1) * 400000)) g;" }
        let big = try psql("CREATE TABLE big (g int, t text); " + steps.joined(separator: " "))
        #expect(big.status == 0, "\(big.err)")
        let running = try RunningCommand("/usr/bin/ssh", server.sshOptions(key: bob.key) + ["127.0.0.1", "postgres:backup", db], environment: [:])
        var partial: String?
        let deadline = Date().addingTimeInterval(120)
        while partial == nil, Date() < deadline, running.process.isRunning {
            partial = backupFiles(server).first { $0.hasSuffix(".partial") && ((try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0) > 0 }
            if partial == nil { usleep(20_000) }
        }
        let seen = try #require(partial, "no backup being written seen: \(running.output)")
        kill(server.process.processIdentifier, SIGKILL)
        server.process.waitUntilExit()
        running.wait()
        #expect(FileManager.default.fileExists(atPath: seen), "the kill came after the backup ended; the test proves nothing")

        server = try TestServer(slipway: first.slipway)
        #expect(!FileManager.default.fileExists(atPath: seen))
        #expect(backupFiles(server).allSatisfy { !$0.hasSuffix(".partial") }, "\(backupFiles(server))")
        #expect(try backupIDs(server, bob, "postgres", db) == ids)
        // The service and the next backup work.
        let again = try server.ssh(bob.key, "postgres:backup", db)
        #expect(again.status == 0, "\(again.out) \(again.err)")
        #expect(try backupIDs(server, bob, "postgres", db).count == 2)
        #expect(try server.ssh(bob.key, "postgres:destroy", db, "--force").status == 0)
        // The server's log is whole once it has stopped.
        _ = server.stop()
        #expect(server.log.contains("removed the half-written backup"), "\(server.log.suffix(2000))")
    }
}

/// The Redis test app: an HTTP counter that INCRs `hits` through REDIS_URL with a few
/// lines of RESP over a socket (the builder image has python3 and nothing else) on
/// GET /hit.
enum RedisCounterApp {
    static let server = #"""
        import http.server, os, socket, urllib.parse

        def incr():
            url = urllib.parse.urlparse(os.environ["REDIS_URL"])
            with socket.create_connection((url.hostname, url.port or 6379), timeout=5) as s:
                f = s.makefile("rwb")
                def call(*args):
                    f.write(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args)).encode())
                    f.flush()
                    line = f.readline().decode().rstrip("\r\n")
                    if not line or line[0] == "-":
                        raise IOError(line or "no answer")
                    return line[1:]
                call("AUTH", urllib.parse.unquote(url.password))
                return call("INCR", "hits")

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                # Only /hit counts: health checks and other requests do not.
                try:
                    text, status = (incr() if self.path == "/hit" else "ok"), 200
                except Exception as e:
                    text, status = "error: %s" % e, 500
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()

        """#

    static var files: [String: Data] {
        ["Procfile": Data("web: python3 server.py\n".utf8), "server.py": Data(server.utf8)]
    }
}
