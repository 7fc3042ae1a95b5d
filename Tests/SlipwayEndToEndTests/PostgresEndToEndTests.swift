import Foundation
import SlipwayCore
import Testing

/// postgres:* over the real OpenSSH client, git and podman, on one server the tests
/// share (serialized: one of them restarts it). The app talks to Postgres with
/// `PostgresApp.client`, a small pure-Python client of the wire protocol: the builder
/// image has python3 and nothing else, a Procfile app needs no Dockerfile, and
/// the client's SCRAM login proves the URL's password is the one the service has.
/// Service names are random: a service's container is named `postgres.NAME` on an
/// engine other test processes share.
@Suite("Postgres end to end", .serialized)
struct PostgresEndToEndTests {
    /// One server for the suite; the last test to finish stops it and removes its
    /// containers, networks and data (the service image stays, as the builder does).
    final class Shared: @unchecked Sendable {
        static let instance = Shared()
        private let lock = NSLock()
        private var current: TestServer?
        private var users: (bob: TestUser, eve: TestUser)?
        private var count = 0

        func acquire() throws -> (TestServer, TestUser, TestUser) {
            try lock.withLock {
                if current == nil {
                    _ = try BuilderImage.bootstrap.get()
                    let started = try TestServer()
                    current = started
                    users = (try TestUser.register("bob", on: started.slipway), try TestUser.register("eve", on: started.slipway))
                }
                count += 1
                return (current!, users!.bob, users!.eve)
            }
        }

        /// Stops the server (SIGTERM) and starts another on the same data.
        func restart() throws -> TestServer {
            try lock.withLock {
                let old = current!
                _ = old.stop()
                current = try TestServer(slipway: old.slipway)
                return current!
            }
        }

        func release() {
            lock.withLock {
                count -= 1
                guard count == 0, let server = current else { return }
                _ = server.stop()
                server.slipway.cleanUp()
                try? FileManager.default.removeItem(atPath: server.slipway.dataDir)
                current = nil
            }
        }
    }

    /// `ssh ... COMMAND < input > output` through the shell, for bytes a String would mangle.
    func sshFiles(_ server: TestServer, _ user: TestUser, _ command: String, stdin: String = "/dev/null", stdout: String) throws -> Slipway.Result {
        let ssh = (["/usr/bin/ssh"] + server.sshOptions(key: user.key) + ["127.0.0.1", command]).map { "'\($0)'" }.joined(separator: " ")
        return try run("/bin/sh", ["-c", "\(ssh) < '\(stdin)' > '\(stdout)'"])
    }

    /// The service container's address on each network it is on, by network name.
    func addresses(_ service: String) throws -> [String: String] {
        let answer = try run("/usr/bin/curl", ["-s", "--unix-socket", "/run/podman/podman.sock", "http://d/v1.41/containers/postgres.\(service)/json"])
        let object = try JSONSerialization.jsonObject(with: Data(answer.out.utf8)) as? [String: Any]
        let networks = (object?["NetworkSettings"] as? [String: Any])?["Networks"] as? [String: [String: Any]] ?? [:]
        return networks.compactMapValues { $0["IPAddress"] as? String }.filter { !$0.value.isEmpty }
    }

    func networkExists(_ name: String) throws -> Bool {
        let answer = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", "/run/podman/podman.sock", "http://d/v1.41/networks/\(name)"])
        return answer.out == "200"
    }

    /// psql's answer to `sql` (no terminal: SQL from stdin).
    func psql(_ server: TestServer, _ user: TestUser, _ service: String, _ sql: String) throws -> Slipway.Result {
        try server.ssh(user.key, ["postgres:connect", service], stdin: sql + "\n")
    }

    func push(_ server: TestServer, _ user: TestUser, _ app: String, _ files: [String: Data]) throws -> Slipway.Result {
        let repo = try makeRepository(files)
        return try server.git(user.key, ["push", "-f", server.url(app), "main"], in: repo)
    }

    /// A row written through DATABASE_URL is read back after the server restarts, the
    /// service restarts and the app is redeployed; export then import into a second
    /// service gives the same rows; a broken dump changes nothing.
    @Test func rowsSurviveRestartsAndExportImportCopiesThem() async throws {
        let (first, bob, _) = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        var server = first
        let db = randomServiceName("notes"), copy = randomServiceName("copy"), app = "notes"

        let created = try server.ssh(bob.key, "postgres:create", db)
        #expect(created.status == 0, "\(created.out) \(created.err)")
        defer { _ = try? server.ssh(bob.key, "postgres:destroy", copy, "--force"); _ = try? server.ssh(bob.key, "postgres:destroy", db, "--force") }
        #expect(try server.ssh(bob.key, "apps:create", app).status == 0)
        defer { _ = try? server.ssh(bob.key, "postgres:unlink", db, app, "--no-restart"); _ = try? server.ssh(bob.key, "apps:destroy", app, "--force") }
        let linked = try server.ssh(bob.key, "postgres:link", db, app)
        #expect(linked.status == 0, "\(linked.err)")
        let pushed = try push(server, bob, app, PostgresApp.files)
        #expect(pushed.status == 0, "\(pushed.err)")
        let url = server.slipway.url(app)

        let written = try await httpGetWhenReady(url + "write?body=first-row")
        #expect(written.status == 200 && written.body == "ok", "\(written) \(server.log.suffix(2000))")
        #expect(try httpGet(url + "rows").body == "first-row")

        // The server restarts: the app and the service keep their state.
        server = try Shared.instance.restart()
        #expect(try await httpGetWhenReady(url + "rows").body == "first-row")
        // The service restarts: a new container on the same data, back on the app's network.
        let restarted = try server.ssh(bob.key, "postgres:restart", db)
        #expect(restarted.status == 0, "\(restarted.err)")
        #expect(try await httpGetWhenReady(url + "rows").body == "first-row")
        // The app is redeployed.
        let rebuilt = try server.ssh(bob.key, "ps:rebuild", app)
        #expect(rebuilt.status == 0, "\(rebuilt.err)")
        #expect(try await httpGetWhenReady(url + "rows").body == "first-row")
        #expect(try httpGet(url + "write?body=second-row").body == "ok")

        // psql without a terminal: SQL from stdin; an error is a non-zero status.
        let selected = try psql(server, bob, db, "SELECT body FROM notes ORDER BY id;")
        #expect(selected.status == 0 && selected.out.contains("first-row") && selected.out.contains("second-row"), "\(selected.out) \(selected.err)")
        let failing = try psql(server, bob, db, "SELECT nosuch FROM notes;")
        #expect(failing.status != 0 && failing.err.contains("nosuch"), "\(failing.err)")

        // Export (binary, to a file), import into a second service: the same rows.
        let dump = try temporaryDirectory("pg-dump") + "/db.dump"
        let exported = try sshFiles(server, bob, "postgres:export \(db)", stdout: dump)
        #expect(exported.status == 0, "\(exported.err)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dump))
        #expect(bytes.starts(with: Data("PGDMP".utf8)) && bytes.count > 500, "\(bytes.prefix(40))")
        #expect(try server.ssh(bob.key, "postgres:create", copy).status == 0)
        let imported = try sshFiles(server, bob, "postgres:import \(copy)", stdin: dump, stdout: "/dev/null")
        #expect(imported.status == 0, "\(imported.err)")
        let copied = try psql(server, bob, copy, "SELECT body FROM notes ORDER BY id;")
        #expect(copied.status == 0 && copied.out == selected.out, "\(copied.out) \(copied.err)")
        // Importing the same dump again replaces the tables (no duplicate rows).
        #expect(try sshFiles(server, bob, "postgres:import \(copy)", stdin: dump, stdout: "/dev/null").status == 0)
        #expect(try psql(server, bob, copy, "SELECT body FROM notes ORDER BY id;").out == selected.out)
        // A truncated dump fails and changes nothing (one transaction).
        let truncated = dump + ".half"
        try bytes.prefix(bytes.count * 2 / 3).write(to: URL(fileURLWithPath: truncated))
        #expect(try psql(server, bob, copy, "INSERT INTO notes (body) VALUES ('third-row');").status == 0)
        let before = try psql(server, bob, copy, "SELECT body FROM notes ORDER BY id;").out
        let broken = try sshFiles(server, bob, "postgres:import \(copy)", stdin: truncated, stdout: "/dev/null")
        #expect(broken.status != 0, "\(broken.err)")
        #expect(try psql(server, bob, copy, "SELECT body FROM notes ORDER BY id;").out == before)
        #expect(before.contains("third-row"))
    }

    /// Another tenant cannot connect, link, export or import bob's service, nor reach
    /// its port from a container of their own app; bob's own run reaches it (the probe
    /// can succeed). Destroy while linked is refused.
    @Test func anotherTenantCannotReachTheService() async throws {
        let (server, bob, eve) = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let db = randomServiceName("secret"), app = "ledger", evil = "evil"
        #expect(try server.ssh(bob.key, "postgres:create", db).status == 0)
        defer { _ = try? server.ssh(bob.key, "postgres:destroy", db, "--force") }
        #expect(try server.ssh(bob.key, "apps:create", app).status == 0)
        defer { _ = try? server.ssh(bob.key, "postgres:unlink", db, app, "--no-restart"); _ = try? server.ssh(bob.key, "apps:destroy", app, "--force") }
        #expect(try server.ssh(bob.key, "postgres:link", db, app).status == 0)
        #expect(try push(server, bob, app, PostgresApp.files).status == 0)
        #expect(try await httpGetWhenReady(server.slipway.url(app) + "write?body=bobs-secret").body == "ok")
        #expect(try push(server, eve, evil, DeployTests.appFiles("v1")).status == 0)
        defer { _ = try? server.ssh(eve.key, "apps:destroy", evil, "--force") }

        // eve's commands answer as for a missing service, and do nothing.
        let missing = try server.ssh(eve.key, "postgres:info", "nosuch")
        let expected = missing.err.replacingOccurrences(of: "nosuch", with: db)
        for command in [["postgres:connect", db], ["postgres:link", db, evil], ["postgres:export", db], ["postgres:import", db], ["postgres:info", db]] {
            let refused = try server.ssh(eve.key, command, stdin: "DROP TABLE notes;\n")
            #expect(refused.status == 1 && refused.out.isEmpty && refused.err == expected, "\(command): \(refused.out) \(refused.err)")
        }
        #expect(try httpGet(server.slipway.url(app) + "rows").body == "bobs-secret")

        // Her containers cannot open the service's port on any of its addresses.
        let addresses = try addresses(db)
        #expect(addresses.count == 2, "\(addresses)")
        let probe = "import socket,sys; socket.create_connection((sys.argv[1], 5432), timeout=3); print(\"open\")"
        for (network, address) in addresses {
            let hers = try server.ssh(eve.key, "run", evil, "python3", "-c", "'\(probe)'", address)
            #expect(hers.status != 0 && !hers.out.contains("open"), "eve reached \(address) on \(network): \(hers.out)")
        }
        // The same probe from bob's app reaches it by its alias (so the probe can succeed).
        let bobs = try server.ssh(bob.key, "run", app, "python3", "-c", "'\(probe)'", "postgres-\(db)")
        #expect(bobs.status == 0 && bobs.out.contains("open"), "\(bobs.out) \(bobs.err)")

        // Destroy while linked is refused, and the service keeps serving.
        let destroy = try server.ssh(bob.key, "postgres:destroy", db, "--force")
        #expect(destroy.status != 0 && destroy.err.contains("linked to \(app)"), "\(destroy.err)")
        #expect(try httpGet(server.slipway.url(app) + "rows").body == "bobs-secret")
    }

    /// apps:destroy of a linked app takes the service off the app's network, so the
    /// network goes; the service loses the link and can then be destroyed.
    @Test func destroyingALinkedAppRemovesItsNetwork() async throws {
        let (server, bob, _) = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let db = randomServiceName("gone"), app = "shortlived"
        #expect(try server.ssh(bob.key, "postgres:create", db).status == 0)
        defer { _ = try? server.ssh(bob.key, "postgres:destroy", db, "--force") }
        #expect(try server.ssh(bob.key, "apps:create", app).status == 0)
        #expect(try server.ssh(bob.key, "postgres:link", db, app, "--no-restart").status == 0)
        let linkedNetworks = try addresses(db).keys.sorted()
        #expect(linkedNetworks.count == 2, "\(linkedNetworks)")
        let appNetwork = try #require(linkedNetworks.first { $0.contains("-app-") })

        let destroyed = try server.ssh(bob.key, "apps:destroy", app, "--force")
        #expect(destroyed.status == 0, "\(destroyed.err)")
        #expect(try addresses(db).keys.sorted() == linkedNetworks.filter { $0 != appNetwork })
        #expect(try !networkExists(appNetwork))
        let info = try server.ssh(bob.key, "postgres:info", db, "--format", "json")
        #expect(info.out.contains("\"links\":[]"), "\(info.out)")
        let gone = try server.ssh(bob.key, "postgres:destroy", db, "--force")
        #expect(gone.status == 0, "\(gone.err)")
        #expect(try addresses(db).isEmpty)
    }
}

/// The test app: a tiny HTTP server that writes and reads rows of `notes` through
/// DATABASE_URL with a pure-Python client of Postgres's wire protocol (startup,
/// SCRAM-SHA-256, simple queries).
enum PostgresApp {
    static let client = #"""
        import base64, hashlib, hmac, os, socket, struct, urllib.parse

        class PG:
            def __init__(self, url):
                u = urllib.parse.urlparse(url)
                self.password = urllib.parse.unquote(u.password or "")
                self.sock = socket.create_connection((u.hostname, u.port or 5432), timeout=10)
                self.buf = b""
                params = b"user\0" + urllib.parse.unquote(u.username).encode() + b"\0database\0" + u.path[1:].encode() + b"\0\0"
                self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
                self.login()

            def send(self, kind, payload):
                self.sock.sendall(kind + struct.pack("!i", len(payload) + 4) + payload)

            def receive(self):
                while True:
                    if len(self.buf) >= 5:
                        size = struct.unpack("!i", self.buf[1:5])[0]
                        if len(self.buf) >= 1 + size:
                            kind, body, self.buf = self.buf[:1], self.buf[5:1 + size], self.buf[1 + size:]
                            return kind, body
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise IOError("the server closed the connection")
                    self.buf += chunk

            @staticmethod
            def error(body):
                fields = dict((f[:1], f[1:]) for f in body.split(b"\0") if f)
                return fields.get(b"M", b"error").decode()

            def login(self):
                nonce = base64.b64encode(os.urandom(18)).decode()
                first = "n=,r=" + nonce
                while True:
                    kind, body = self.receive()
                    if kind == b"E":
                        raise IOError(self.error(body))
                    if kind == b"Z":
                        return
                    if kind != b"R":
                        continue
                    code = struct.unpack("!i", body[:4])[0]
                    if code == 10:
                        message = ("n,," + first).encode()
                        self.send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(message)) + message)
                    elif code == 11:
                        server_first = body[4:].decode()
                        attrs = dict(item.split("=", 1) for item in server_first.split(","))
                        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
                        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
                        final = "c=biws,r=" + attrs["r"]
                        signature = hmac.new(hashlib.sha256(client_key).digest(), ",".join([first, server_first, final]).encode(), "sha256").digest()
                        proof = bytes(a ^ b for a, b in zip(client_key, signature))
                        self.send(b"p", (final + ",p=" + base64.b64encode(proof).decode()).encode())
                    elif code not in (0, 12):
                        raise IOError("unsupported authentication %d" % code)

            def query(self, sql):
                self.send(b"Q", sql.encode() + b"\0")
                rows, failure = [], None
                while True:
                    kind, body = self.receive()
                    if kind == b"D":
                        count, at, row = struct.unpack("!h", body[:2])[0], 2, []
                        for _ in range(count):
                            size = struct.unpack("!i", body[at:at + 4])[0]
                            at += 4
                            row.append(None if size < 0 else body[at:at + size].decode())
                            at += max(size, 0)
                        rows.append(row)
                    elif kind == b"E":
                        failure = self.error(body)
                    elif kind == b"Z":
                        if failure:
                            raise IOError(failure)
                        return rows

            def close(self):
                self.send(b"X", b"")
                self.sock.close()

        """#

    static let server = #"""
        import http.server, os, urllib.parse
        from pg import PG

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                try:
                    db = PG(os.environ["DATABASE_URL"])
                    db.query("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL)")
                    if url.path == "/write":
                        body = urllib.parse.parse_qs(url.query)["body"][0].replace("'", "''")
                        db.query("INSERT INTO notes (body) VALUES ('%s')" % body)
                        text, status = "ok", 200
                    else:
                        text, status = "\n".join(r[0] for r in db.query("SELECT body FROM notes ORDER BY id")), 200
                    db.close()
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
        ["Procfile": Data("web: python3 server.py\n".utf8), "server.py": Data(server.utf8), "pg.py": Data(client.utf8)]
    }
}
