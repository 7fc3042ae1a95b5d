import Foundation
import SlipwayCore
import Testing

/// HTTP routing end to end: real nginx, curl with --resolve and --cacert, openssl
/// for the certificates a user would bring.
@Suite("Routing end to end", .serialized)
struct RoutingTests {
    /// Answers "<version> from <container hostname>", so balancing shows.
    static func appFiles(_ version: String) -> [String: Data] {
        [
            "Procfile": Data("web: python3 server.py\n".utf8),
            "server.py": Data("""
                import http.server, os, socket
                class H(http.server.BaseHTTPRequestHandler):
                    def do_GET(self):
                        body = ("%s from %s\\n" % ("\(version)", socket.gethostname())).encode()
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    def log_message(self, *args): pass
                http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()

                """.utf8),
        ]
    }

    func start() throws -> (TestServer, TestUser) {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        return (server, alice)
    }

    func deploy(_ server: TestServer, _ user: TestUser, _ app: String, _ version: String = "v1") throws -> Slipway.Result {
        let repo = try makeRepository(Self.appFiles(version))
        // A fresh history each time: forced, as a user replacing the app would.
        return try server.git(user.key, ["push", "--force", server.url(app), "main"], in: repo)
    }

    /// curl as a user would: `name` resolved to 127.0.0.1, on this instance's ports.
    func curl(_ server: TestServer, _ name: String, https: Bool = false, cacert: String? = nil) throws -> (status: Int, body: String, redirect: String) {
        let port = https ? server.slipway.tlsPort : server.slipway.proxyPort
        var args = ["-s", "-m", "5", "--resolve", "\(name):\(port):127.0.0.1", "-o", "-", "-w", "\n%{http_code} %{redirect_url}"]
        if let cacert { args += ["--cacert", cacert] }
        let result = try run("/usr/bin/curl", args + ["\(https ? "https" : "http")://\(name):\(port)/"])
        guard let split = result.out.lastIndex(of: "\n") else { return (0, result.out, "") }
        let tail = result.out[result.out.index(after: split)...].split(separator: " ", maxSplits: 1).map(String.init)
        return (Int(tail.first ?? "") ?? 0, String(result.out[..<split]), tail.count > 1 ? tail[1] : "")
    }

    /// A self-signed certificate and key for `names`, made as a user would with openssl.
    func certificate(_ names: [String], in directory: String, name: String) throws -> (cert: String, key: String) {
        let cert = "\(directory)/\(name).crt", key = "\(directory)/\(name).key"
        let made = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=\(names[0])",
                                                "-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ",")])
        #expect(made.status == 0, "\(made.err)")
        return (cert, key)
    }

    func liveConfig(_ server: TestServer) throws -> [String: String] {
        let dir = server.slipway.dataDir + "/nginx/apps"
        var files: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            files[name] = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
        }
        return files
    }

    @Test func customDomainsBelongToOneAppAndHostileNamesChangeNothing() throws {
        let (server, alice) = try start()
        let bob = try TestUser.register("bob", on: server.slipway)
        let push = try deploy(server, alice, "web")
        #expect(push.status == 0, "\(push.err)")
        #expect(try curl(server, "web.localhost").body.hasPrefix("v1 from "))

        // A custom domain answers as soon as it is added.
        let added = try server.ssh(alice.key, "domains:add", "web", "WWW.Example.test", "api.example.test")
        #expect(added.status == 0, "\(added.err)")
        #expect(try curl(server, "www.example.test").body.hasPrefix("v1 from "))
        #expect(try curl(server, "api.example.test").body.hasPrefix("v1 from "))
        let report = try JSONSerialization.jsonObject(with: Data(try server.ssh(alice.key, "domains:report", "web", "--format", "json").out.utf8)) as? [String: Any]
        #expect(report?["customDomains"] as? [String] == ["api.example.test", "www.example.test"])
        #expect(report?["defaultDomain"] as? String == "web.localhost")

        // Another tenant cannot take it, nor a name reserved for an app, nor touch web's.
        #expect(try server.ssh(bob.key, "apps:create", "shop").status == 0)
        let taken = try server.ssh(bob.key, "domains:add", "shop", "www.example.test")
        #expect(taken.status != 0 && taken.err.contains("error: www.example.test is already a domain of another app"), "\(taken.err)")
        let reserved = try server.ssh(bob.key, "domains:add", "shop", "web.localhost")
        #expect(reserved.status != 0 && reserved.err.contains("reserved"), "\(reserved.err)")
        let foreign = try server.ssh(bob.key, "domains:add", "web", "bob.example.test")
        #expect(foreign.status != 0, "\(foreign.out)")
        #expect(try curl(server, "www.example.test").body.hasPrefix("v1 from "))

        // Hostile names: refused with an error, the live config byte for byte the same.
        let before = try liveConfig(server)
        for hostile in ["a.com;", "a.com{", "'a b.com'", "$'a.com\\nserver_name evil.test;'", String(repeating: "a", count: 300) + ".com",
                        "'*'", "'*.example.test'", "wéb.example.test", "a.com}", "'$host'", "-x.com", "a..com", "'a.com #'"] {
            let refused = try server.ssh(alice.key, "domains:add web " + hostile)
            #expect(refused.status != 0, "\(hostile) was accepted")
            #expect(refused.err.hasPrefix("error: "), "\(hostile): \(refused.err)")
            let set = try server.ssh(alice.key, "domains:set web good.example.test " + hostile)
            #expect(set.status != 0, "domains:set took \(hostile)")
        }
        #expect(try liveConfig(server) == before)
        #expect(try server.ssh(bob.key, "domains:set-global", "evil.test").status != 0)

        // A live config nginx would refuse (an operator's bad edit of another file):
        // the change is refused, web's file and its domains stay as they were.
        let broken = server.slipway.dataDir + "/nginx/apps/zz-broken.conf"
        try "server { listen oops; }\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let refused = try server.ssh(alice.key, "domains:add", "web", "late.example.test")
        #expect(refused.status != 0 && refused.err.contains("did not validate, so the live one was kept"), "\(refused.err)")
        try FileManager.default.removeItem(atPath: broken)
        #expect(try liveConfig(server) == before)
        #expect(!(try server.ssh(alice.key, "domains:report", "web").out.contains("late.example.test")))

        // Remove, set, clear: each takes effect at once.
        #expect(try server.ssh(alice.key, "domains:remove", "web", "api.example.test").status == 0)
        #expect(try curl(server, "api.example.test").status == 404)
        let missing = try server.ssh(alice.key, "domains:remove", "web", "api.example.test")
        #expect(missing.status != 0 && missing.err.contains("web has no domain api.example.test"))
        #expect(try server.ssh(alice.key, "domains:set", "web", "new.example.test").status == 0)
        #expect(try curl(server, "www.example.test").status == 404)
        #expect(try curl(server, "new.example.test").body.hasPrefix("v1 from "))
        // Freed by web, the name can go to shop now.
        #expect(try server.ssh(bob.key, "domains:add", "shop", "www.example.test").status == 0)
        #expect(try curl(server, "www.example.test").status == 503, "shop has no web process yet")
        #expect(try curl(server, "www.example.test").body.contains("shop has no running web process"))
        // Its domains follow a rename.
        #expect(try server.ssh(bob.key, "apps:rename", "shop", "store").status == 0)
        #expect(try curl(server, "www.example.test").body.contains("store has no running web process"))
        #expect(try curl(server, "shop.localhost").status == 404)
        #expect(try server.ssh(alice.key, "domains:clear", "web").status == 0)
        #expect(try curl(server, "new.example.test").status == 404)
        #expect(try curl(server, "web.localhost").body.hasPrefix("v1 from "))

        // The global domain moves every app's default name.
        #expect(try server.ssh(alice.key, "domains:set-global", "apps.example.test").status == 0)
        #expect(try curl(server, "web.apps.example.test").body.hasPrefix("v1 from "))
        #expect(try curl(server, "web.localhost").status == 404)
        let redeploy = try deploy(server, alice, "web", "v2")
        #expect(redeploy.err.contains("=====> Application deployed: http://web.apps.example.test:\(server.slipway.proxyPort)"), "\(redeploy.err)")
        let proxy = try server.ssh(alice.key, "proxy:report", "web")
        #expect(proxy.out.contains("web.apps.example.test") && proxy.out.contains("127.0.0.1:"), "\(proxy.out)")
        #expect(proxy.out.contains(server.slipway.dataDir + "/nginx/apps/web.conf"))
    }

    @Test func certificatesServeHTTPSAndRedirectHTTP() throws {
        let (server, alice) = try start()
        #expect(try deploy(server, alice, "web").status == 0)
        #expect(try server.ssh(alice.key, "domains:add", "web", "secure.example.test").status == 0)
        let dir = try temporaryDirectory("slipway-certs")
        let good = try certificate(["secure.example.test"], in: dir, name: "good")
        let other = try certificate(["secure.example.test"], in: dir, name: "other")
        let elsewhere = try certificate(["elsewhere.example.test"], in: dir, name: "elsewhere")
        func pem(_ cert: String, _ key: String) throws -> String {
            try String(contentsOfFile: cert, encoding: .utf8) + String(contentsOfFile: key, encoding: .utf8)
        }
        let before = try liveConfig(server)

        // Refused: a key of another certificate, a certificate for other names, no key, garbage.
        let mismatched = try server.ssh(alice.key, ["certs:add", "web"], stdin: try pem(good.cert, other.key))
        #expect(mismatched.status != 0 && mismatched.err.contains("error: the private key does not match the certificate"), "\(mismatched.err)")
        let uncovered = try server.ssh(alice.key, ["certs:add", "web"], stdin: try pem(elsewhere.cert, elsewhere.key))
        #expect(uncovered.status != 0 && uncovered.err.contains("does not cover secure.example.test"), "\(uncovered.err)")
        let keyless = try server.ssh(alice.key, ["certs:add", "web"], stdin: try String(contentsOfFile: good.cert, encoding: .utf8))
        #expect(keyless.status != 0 && keyless.err.contains("no private key"), "\(keyless.err)")
        #expect(try server.ssh(alice.key, ["certs:add", "web"], stdin: "hello").status != 0)
        #expect(try liveConfig(server) == before)
        #expect(try server.ssh(alice.key, "certs:report", "web").out.contains("Enabled:      no"))

        // Accepted: HTTPS with the user's CA, HTTP redirected, the key kept 0600.
        let added = try server.ssh(alice.key, ["certs:add", "web"], stdin: try pem(good.cert, good.key))
        #expect(added.status == 0, "\(added.err)")
        let https = try curl(server, "secure.example.test", https: true, cacert: good.cert)
        #expect(https.status == 200 && https.body.hasPrefix("v1 from "), "\(https)")
        let http2 = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_version}", "--http2", "--cacert", good.cert, "--resolve",
                                              "secure.example.test:\(server.slipway.tlsPort):127.0.0.1", "https://secure.example.test:\(server.slipway.tlsPort)/"])
        #expect(http2.out == "2", "HTTPS should offer HTTP/2: \(http2)")
        let http = try curl(server, "secure.example.test")
        #expect(http.status == 301 && http.redirect == "https://secure.example.test:\(server.slipway.tlsPort)/", "\(http)")
        // The default name is not covered: it stays plain HTTP.
        #expect(try curl(server, "web.localhost").body.hasPrefix("v1 from "))
        let keys = try FileManager.default.subpathsOfDirectory(atPath: server.slipway.dataDir + "/certs").filter { $0.hasSuffix(".key") }
        #expect(keys.count == 1)
        let mode = try FileManager.default.attributesOfItem(atPath: server.slipway.dataDir + "/certs/" + keys[0])[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let report = try JSONSerialization.jsonObject(with: Data(try server.ssh(alice.key, "certs:report", "web", "--format", "json").out.utf8)) as? [String: Any]
        #expect(report?["httpsDomains"] as? [String] == ["secure.example.test"])
        let fingerprint = try run("/usr/bin/openssl", ["x509", "-in", good.cert, "-noout", "-fingerprint", "-sha256"]).out
        #expect(fingerprint.contains(report?["fingerprint"] as? String ?? "none"), "\(fingerprint)")

        // A bad replacement keeps the good one serving.
        #expect(try server.ssh(alice.key, ["certs:add", "web"], stdin: try pem(good.cert, other.key)).status != 0)
        #expect(try curl(server, "secure.example.test", https: true, cacert: good.cert).status == 200)
        // A redeploy keeps HTTPS, and says where the app is.
        let push = try deploy(server, alice, "web", "v2")
        #expect(push.err.contains("=====> Application deployed: https://secure.example.test:\(server.slipway.tlsPort)"), "\(push.err)")
        #expect(try curl(server, "secure.example.test", https: true, cacert: good.cert).body.hasPrefix("v2 from "))
        // A name no app has a certificate for gets no certificate at all.
        #expect(try run("/usr/bin/curl", ["-s", "-k", "-m", "5", "--resolve", "web.localhost:\(server.slipway.tlsPort):127.0.0.1",
                                          "https://web.localhost:\(server.slipway.tlsPort)/"]).status != 0)

        #expect(try server.ssh(alice.key, "certs:remove", "web").status == 0)
        #expect(try curl(server, "secure.example.test").body.hasPrefix("v2 from "))
        #expect(try FileManager.default.subpathsOfDirectory(atPath: server.slipway.dataDir + "/certs").filter { $0.hasSuffix(".key") }.isEmpty)
    }

    @Test func scaledWebIsBalancedAndKilledNginxComesBack() throws {
        let (server, alice) = try start()
        #expect(try deploy(server, alice, "web").status == 0)
        let scaled = try server.ssh(alice.key, "ps:scale", "web", "web=3")
        #expect(scaled.status == 0, "\(scaled.err)")
        var hosts = Set<String>()
        for _ in 0..<30 { hosts.insert(String(try curl(server, "web.localhost").body.split(separator: " ").last ?? "")) }
        #expect(hosts.count == 3, "\(hosts)")

        // Kill the managed nginx outright, master and workers: serve starts it again.
        let pidFile = server.slipway.dataDir + "/nginx/nginx.pid"
        let master = pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
        let workers = try run("/usr/bin/pgrep", ["-P", "\(master)"]).out.split(separator: "\n").compactMap { pid_t($0) }
        #expect(!workers.isEmpty)
        kill(master, SIGKILL)
        for worker in workers { kill(worker, SIGKILL) }
        var answered = false
        for _ in 0..<100 {
            if try curl(server, "web.localhost").body.hasPrefix("v1 from ") { answered = true; break }
            usleep(100_000)
        }
        #expect(answered, "nginx did not come back within 10 s")
        let newMaster = pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(newMaster != master)

        // Only the master killed: its orphaned workers hold the port; they go too.
        kill(newMaster!, SIGKILL)
        answered = false
        for _ in 0..<100 {
            if let now = pid_t((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""),
               now != newMaster, kill(now, 0) == 0, try curl(server, "web.localhost").body.hasPrefix("v1 from ") {
                answered = true
                break
            }
            usleep(100_000)
        }
        #expect(answered, "nginx did not come back after its master was killed")
    }

    /// A WebSocket app: the RFC 6455 handshake, then every text frame echoed back;
    /// plain GETs answer the forwarding headers the app was given.
    static let webSocketApp: [String: Data] = [
        "Procfile": Data("web: python3 server.py\n".utf8),
        "server.py": Data("""
            import base64, hashlib, http.server, os
            class H(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def do_GET(self):
                    if self.headers.get("Upgrade", "").lower() == "websocket":
                        key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
                        self.send_response(101)
                        self.send_header("Upgrade", "websocket")
                        self.send_header("Connection", "Upgrade")
                        self.send_header("Sec-WebSocket-Accept", base64.b64encode(hashlib.sha1(key.encode()).digest()).decode())
                        self.end_headers()
                        while True:  # short masked text frames in, unmasked ones out
                            head = self.rfile.read(2)
                            if len(head) < 2: return
                            mask = self.rfile.read(4)
                            text = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(head[1] & 0x7F)))
                            reply = b"echo: " + text
                            self.wfile.write(bytes([0x81, len(reply)]) + reply)
                    names = ["Host", "Connection", "Upgrade", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port"]
                    body = "".join("%s=%s\\n" % (name, self.headers.get(name)) for name in names).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args): pass
            http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()

            """.utf8),
    ]

    @Test func webSocketsAndForwardingHeadersPassThrough() throws {
        let (server, alice) = try start()
        let push = try server.git(alice.key, ["push", server.url("chat"), "main"], in: try makeRepository(Self.webSocketApp))
        #expect(push.status == 0, "\(push.err)")
        let port = server.slipway.proxyPort

        // The RFC 6455 example key: its accept value is known.
        let connection = try TCPConnection(port: port)
        connection.send(Data("""
            GET /socket HTTP/1.1\r
            Host: chat.localhost:\(port)\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
            Sec-WebSocket-Version: 13\r
            \r

            """.utf8))
        let handshake = String(decoding: connection.receive { $0.range(of: Data("\r\n\r\n".utf8)) != nil }, as: UTF8.self)
        #expect(handshake.hasPrefix("HTTP/1.1 101 "), "\(handshake)")
        #expect(handshake.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "\(handshake)")
        // Messages both ways on the one connection, each after the last one's answer.
        for message in ["hello", "second message"] {
            let mask: [UInt8] = [0x1f, 0x2e, 0x3d, 0x4c]
            let masked = message.utf8.enumerated().map { $0.element ^ mask[$0.offset % 4] }
            connection.send(Data([0x81, 0x80 | UInt8(message.utf8.count)] + mask + masked))
            let reply = "echo: " + message
            let frame = connection.receive { $0.count >= 2 + reply.utf8.count }
            #expect(frame == Data([0x81, UInt8(reply.utf8.count)] + Array(reply.utf8)), "\(Array(frame))")
        }

        // The header's value is matched ignoring case, as clients send it both ways (RFC 9110).
        let capitalized = try TCPConnection(port: port)
        capitalized.send(Data("GET /socket HTTP/1.1\r\nHost: chat.localhost:\(port)\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8))
        let capitalizedHandshake = String(decoding: capitalized.receive { $0.range(of: Data("\r\n\r\n".utf8)) != nil }, as: UTF8.self)
        #expect(capitalizedHandshake.hasPrefix("HTTP/1.1 101 "), "\(capitalizedHandshake)")

        // Plain requests keep the pooled upstream connections, and say where they came from.
        let plain = try curl(server, "chat.localhost")
        #expect(plain.status == 200, "\(plain)")
        #expect(plain.body == """
            Host=chat.localhost:\(port)
            Connection=None
            Upgrade=None
            X-Forwarded-For=127.0.0.1
            X-Forwarded-Proto=http
            X-Forwarded-Port=\(port)

            """, "\(plain.body)")
        // The app gets the name nginx routed on, not a client's other Host header, and no
        // upgrade but WebSocket's (h2c would tunnel requests past nginx).
        let sneaky = try TCPConnection(port: port)
        sneaky.send(Data("GET http://chat.localhost:\(port)/ HTTP/1.1\r\nHost: evil.example\r\nUpgrade: h2c\r\nConnection: Upgrade, close\r\n\r\n".utf8))
        let answer = String(decoding: sneaky.receive { _ in false }, as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 200 ") && answer.contains("Host=chat.localhost:\(port)\nConnection=None\nUpgrade=None\n"), "\(answer)")
    }

    @Test func accessLogsShowFollowAcrossRotationAndGoWithTheApp() throws {
        _ = try BuilderImage.bootstrap.get()
        // A small rotation size, so that a few dozen requests cross it; the data dir 0700
        // as in production (nginx's workers, as nobody, cannot reach into it).
        let slipway = try Slipway(extraConfig: "access_log_max_bytes = 4000")
        #expect(chmod(slipway.dataDir, 0o700) == 0)
        let server = try TestServer(slipway: slipway)
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let bob = try TestUser.register("bob", on: server.slipway)
        #expect(try deploy(server, alice, "web").status == 0)
        // Over a socket, not curl: no process may start while the follower below runs
        // (Foundation's Process can then miss a child's exit and hang the test).
        func request(_ path: String) throws {
            let connection = try TCPConnection(port: server.slipway.proxyPort)
            connection.send(Data("GET /\(path) HTTP/1.1\r\nHost: web.localhost\r\nUser-Agent: e2e-agent\r\nConnection: close\r\n\r\n".utf8))
            let answer = String(decoding: connection.receive { _ in false }, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(path): \(answer)")
        }

        // nginx writes its buffer within a second.
        try request("first")
        var shown = ""
        for _ in 0..<40 where !shown.contains("\"GET /first HTTP/1.1\" 200 ") {
            shown = try server.ssh(alice.key, "proxy:logs", "web", "-n", "5").out
            usleep(100_000)
        }
        #expect(shown.contains("\"GET /first HTTP/1.1\" 200 ") && shown.contains("\"e2e-agent\""), "\(shown)")
        let refused = try server.ssh(bob.key, "proxy:logs", "web")
        #expect(refused.status != 0 && refused.err.hasPrefix("error: "), "\(refused)")
        let tooMany = try server.ssh(alice.key, "proxy:logs", "web", "-n", "20000")
        #expect(tooMany.status != 0 && tooMany.err.contains("error: -n takes 0 to 10000 lines"), "\(tooMany)")

        // Following: new requests arrive, and keep arriving across a rotation, none lost.
        let follower = try RunningCommand("/usr/bin/ssh", server.sshOptions(key: alice.key) + ["127.0.0.1", "proxy:logs", "web", "-t"], environment: [:])
        // SIGKILL: a child of the test process starts with most signals blocked, SIGTERM too.
        defer { if follower.process.isRunning { kill(follower.process.processIdentifier, SIGKILL) } }
        #expect(follower.waitFor("GET /first ", seconds: 10), "\(follower.output)")
        try request("second")
        #expect(follower.waitFor("GET /second ", seconds: 5), "\(follower.output)")
        let padding = String(repeating: "x", count: 200)
        for n in 0..<30 { try request("bulk-\(n)-\(padding)") }
        let log = server.slipway.dataDir + "/nginx/logs/web.access.log"
        var rotated = false
        for _ in 0..<100 where !rotated {
            usleep(100_000)
            // Moved, and reopened: nginx made a new file.
            rotated = FileManager.default.fileExists(atPath: log + ".1") && FileManager.default.fileExists(atPath: log)
        }
        #expect(rotated, "the log was not rotated within 10 s")
        // A worker that has not reopened yet writes this to the moved file: followed all the same.
        try request("after-rotation")
        #expect(follower.waitFor("GET /after-rotation ", seconds: 10), "\(follower.output.suffix(600))")
        for n in 0..<30 { #expect(follower.output.contains("GET /bulk-\(n)-x"), "bulk-\(n) was not followed") }
        let current = try String(contentsOfFile: log, encoding: .utf8), previous = try String(contentsOfFile: log + ".1", encoding: .utf8)
        #expect(!current.contains("GET /first "), "\(current)")
        #expect((current + previous).contains("GET /after-rotation "))
        // Once rotated, new requests go to the new file.
        try request("later")
        var later = false
        for _ in 0..<50 where !later {
            usleep(100_000)
            later = (try String(contentsOfFile: log, encoding: .utf8)).contains("GET /later ")
        }
        #expect(later, "a request after the rotation did not reach the new log")
        #expect((try FileManager.default.attributesOfItem(atPath: log + ".1")[.size] as? Int ?? 0) < 4000 + 30 * 400)
        kill(follower.process.processIdentifier, SIGKILL)
        follower.wait()

        // The app's logs go with it.
        #expect(try server.ssh(alice.key, "apps:destroy", "web", "--force").status == 0)
        #expect(!FileManager.default.fileExists(atPath: log) && !FileManager.default.fileExists(atPath: log + ".1"))
    }

    @Test func aSystemNginxIncludesSlipwaysDirectory() throws {
        _ = try BuilderImage.bootstrap.get()
        // The host's nginx, as an admin would set it up: its own main config including Slipway's directory.
        let host = try temporaryDirectory("slipway-system-nginx")
        let include = host + "/slipway"
        try FileManager.default.createDirectory(atPath: include, withIntermediateDirectories: true)
        let port = try freePort()
        try """
            pid \(host)/nginx.pid;
            error_log \(host)/error.log;
            events {}
            http {
                access_log off;
                server { listen \(port) default_server; return 404; }
                server { listen \(port); server_name intranet.example.test; return 200 "the host's own site"; }
                include \(include)/*.conf;
            }
            """.write(toFile: host + "/nginx.conf", atomically: true, encoding: .utf8)
        // In the foreground, as a service manager runs it.
        let nginx = try ChildProcess("/usr/sbin/nginx", ["-p", host, "-c", host + "/nginx.conf", "-g", "daemon off;"])
        defer { nginx.terminate(); nginx.waitUntilExit() }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: host + "/nginx.pid") { usleep(50_000) }
        #expect(nginx.isRunning)
        let slipway = try Slipway(extraConfig: """
            proxy_mode = "system"
            nginx_include_dir = "\(include)"
            nginx_config = "\(host)/nginx.conf"
            """, proxyPort: port)
        let server = try TestServer(slipway: slipway)
        let alice = try TestUser.register("alice", admin: true, on: slipway)
        let push = try deploy(server, alice, "web")
        #expect(push.status == 0, "\(push.err)")
        #expect(FileManager.default.fileExists(atPath: include + "/web.conf"))
        #expect(try curl(server, "web.localhost").body.hasPrefix("v1 from "))
        #expect(try server.ssh(alice.key, "domains:add", "web", "www.example.test").status == 0)
        #expect(try curl(server, "www.example.test").body.hasPrefix("v1 from "))
        #expect(!FileManager.default.fileExists(atPath: slipway.dataDir + "/nginx/nginx.pid"), "no managed nginx in system mode")

        // A name the host's own nginx serves cannot be taken (nginx only warns of it).
        let taken = try server.ssh(alice.key, "domains:add", "web", "intranet.example.test")
        #expect(taken.status != 0 && taken.err.contains("conflicting server name"), "\(taken.err)")
        #expect(try curl(server, "intranet.example.test").body == "the host's own site")

        // The system's own config clashes with the new file (the same upstream name):
        // nginx -t of the whole refuses it, and the previous file is put back.
        let main = try String(contentsOfFile: host + "/nginx.conf", encoding: .utf8)
        let live = try String(contentsOfFile: include + "/web.conf", encoding: .utf8)
        try main.replacingOccurrences(of: "access_log off;", with: "access_log off; upstream slipway-web { server 127.0.0.1:9; }")
            .write(toFile: host + "/nginx.conf", atomically: true, encoding: .utf8)
        let clash = try server.ssh(alice.key, "domains:add", "web", "clash.example.test")
        #expect(clash.status != 0 && clash.err.contains("the system nginx rejected the config for web"), "\(clash.err)")
        #expect(try String(contentsOfFile: include + "/web.conf", encoding: .utf8) == live)
        #expect(!(try server.ssh(alice.key, "domains:report", "web").out.contains("clash.example.test")))
        try main.write(toFile: host + "/nginx.conf", atomically: true, encoding: .utf8)
        #expect(try curl(server, "www.example.test").body.hasPrefix("v1 from "))
    }
}
