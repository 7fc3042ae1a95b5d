import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// Security regressions written from a hostile tenant's side (ATTACK / EXPECTED):
/// the real binary, the real OpenSSH client, real shells and the real engine.
/// Tenants are hostile; admins are trusted.
@Suite("Tenant attacks end to end", .serialized)
struct TenantAttackTests {
    let engine = DockerEngine.locate(configured: nil)

    /// A fresh server with alice (admin) and two tenants, bob and eve.
    /// (Each test's `defer` stops the server's nginx and containers, then removes its data.)
    func start() throws -> (server: TestServer, alice: TestUser, bob: TestUser, eve: TestUser) {
        let server = try TestServer()
        return (server, try TestUser.register("alice", admin: true, on: server.slipway),
                try TestUser.register("bob", on: server.slipway), try TestUser.register("eve", on: server.slipway))
    }

    /// Runs `script` with `shell` (`bash` or `sh`, which is dash here) in `directory`.
    func shell(_ shell: String, _ script: String, in directory: String, environment: [String: String] = [:]) throws -> Slipway.Result {
        try run("/bin/" + shell, ["-c", "cd \"$0\" && " + script, directory], environment: environment)
    }

    // MARK: 3. config:export output is eval'ed or sourced

    /// ATTACK: a writer stores values whose quote (or backtick) carries a combining
    /// mark (one Swift Character with it), or a CR LF pair, hoping that a reader who
    /// runs `eval "$(ssh host config:export web)"` or sources the envfile runs the
    /// command inside. EXPECTED: no command runs in any format and shell, and every
    /// value comes back exactly.
    @Test func configExportNeverRunsAValueAndRoundTripsIt() throws {
        let (server, alice, bob, eve) = try start()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let work = try temporaryDirectory("slipway-export")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let marker = work + "/pwned-\(UUID().uuidString.prefix(8))"
        let values: [String: String] = [
            "SINGLE": "a'\u{301}$(touch \(marker)-single)'\u{301}b",
            "SEMI": "'\u{301};touch \(marker)-semi;'\u{301}",
            "DOUBLE": "x\"\u{301}$(touch \(marker)-double)\"\u{301}y",
            "BACKTICK": "`\u{301};touch \(marker)-backtick;`\u{301}",
            "DOLLAR": "$\u{301}(touch \(marker)-dollar)",
            "BACKSLASH": "\\\u{301}\"$(touch \(marker)-backslash)\"",
            "CRLF": "first\r\nINJECTED=1",
            "PLAIN": "hello world",
        ]
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        #expect(try server.ssh(alice.key, "acl:add", "web", eve.name, "write").status == 0)
        #expect(try server.ssh(alice.key, "acl:add", "web", bob.name, "read").status == 0)
        let encoded = values.sorted { $0.key < $1.key }.map { "\($0.key)=\(Data($0.value.utf8).base64EncodedString())" }
        let set = try server.ssh(eve.key, ["config:set", "--no-restart", "--encoded", "web"] + encoded)
        #expect(set.status == 0, "\(set.err)")

        // The reader's exact habit: eval the command substitution, in bash and in sh.
        let ssh = (["/usr/bin/ssh"] + server.sshOptions(key: bob.key) + ["127.0.0.1"]).map { "'\($0)'" }.joined(separator: " ")
        let dump = values.keys.sorted().map { "printf '%s' \"$\($0)\" | base64 -w0; echo" }.joined(separator: "; ")
        func decoded(_ out: String) -> [String] {
            out.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { String(decoding: Data(base64Encoded: String($0)) ?? Data(), as: UTF8.self) }
        }
        let expected = values.keys.sorted().map { values[$0]! }
        for sh in ["bash", "sh"] {
            for format in ["exports", "shell"] {
                let result = try shell(sh, "eval \"$(\(ssh) config:export --format \(format) web)\"; \(dump)", in: work)
                #expect(decoded(result.out) == expected, "\(sh) eval of \(format): \(result.err)")
            }
            // Sourced from a file, as `config:export web > .env; . ./.env` users do.
            let exports = try server.ssh(bob.key, "config:export", "web")
            try exports.out.write(toFile: work + "/exports.sh", atomically: true, encoding: .utf8)
            let sourced = try shell(sh, ". ./exports.sh; \(dump)", in: work)
            #expect(decoded(sourced.out) == expected, "\(sh) sourcing exports: \(sourced.err)")
            // The envfile is sourced too (set -a; . ./.env); a newline is \n there, so only the others compare.
            let envfile = try server.ssh(bob.key, "config:export", "--format", "envfile", "web")
            try envfile.out.write(toFile: work + "/.env", atomically: true, encoding: .utf8)
            let env = try shell(sh, "set -a; . ./.env; \(dump)", in: work)
            let got = decoded(env.out)
            for (index, key) in values.keys.sorted().enumerated() where key != "CRLF" {
                #expect(got.count == values.count && got[index] == values[key], "\(sh) sourcing the envfile: \(key): \(env.err)")
            }
        }
        // The envfile is one line per variable: a CR LF in a value never starts another.
        let envfile = try server.ssh(bob.key, "config:export", "--format", "envfile", "web").out
        let lines = envfile.unicodeScalars.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
        #expect(lines.count == values.count, "\(envfile.debugDescription)")
        #expect(lines.allSatisfy { line in values.keys.contains { String(String.UnicodeScalarView(line)).hasPrefix($0 + "=\"") } })
        #expect(envfile.contains(#"CRLF="first\r\nINJECTED=1""#))
        // JSON round-trips too.
        let json = try JSONSerialization.jsonObject(with: Data(try server.ssh(bob.key, "config:export", "--format", "json", "web").out.utf8)) as? [String: String]
        #expect(json == values)
        // A value may start with a combining mark: "=" and the mark are one Character, not the key's end.
        #expect(try server.ssh(eve.key, "config:set", "--no-restart", "web", "MARK=\u{301}x").status == 0)
        #expect(try server.ssh(bob.key, "config:get", "web", "MARK").out == "\u{301}x\n")
        // No command ran.
        let ran = try FileManager.default.contentsOfDirectory(atPath: work).filter { $0.hasPrefix("pwned") }
        #expect(ran.isEmpty, "commands ran: \(ran)")
    }

    // MARK: 14. Domain claims under the global domain

    /// ATTACK: eve claims the bare global domain (every app's parent) and names under
    /// bob's app's default domain (and under the default domain of an app not made yet).
    /// EXPECTED: each claim is refused with `error:` and a non-zero exit, nothing of
    /// eve's or bob's domains changes; names under eve's own default domain are hers.
    @Test func domainsUnderTheGlobalDomainBelongToTheAppTheyName() throws {
        let (server, _, bob, eve) = try start()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        #expect(try server.ssh(bob.key, "apps:create", "shop").status == 0)
        #expect(try server.ssh(eve.key, "apps:create", "evil").status == 0)
        func report(_ user: TestUser, _ app: String) throws -> String { try server.ssh(user.key, "domains:report", app, "--format", "json").out }
        let (bobBefore, eveBefore) = (try report(bob, "shop"), try report(eve, "evil"))
        for attack in [["domains:add", "evil", "localhost"], ["domains:add", "evil", "LocalHost"],
                       ["domains:add", "evil", "x.shop.localhost"], ["domains:add", "evil", "a.b.shop.localhost"],
                       ["domains:add", "evil", "www.later.localhost"], ["domains:set", "evil", "x.shop.localhost"],
                       ["domains:add", "evil", "ok.example.com", "localhost"]] {
            let result = try server.ssh(eve.key, attack)
            #expect(result.status != 0 && result.err.hasPrefix("error: "), "\(attack): \(result.err)")
        }
        #expect(try report(bob, "shop") == bobBefore)
        #expect(try report(eve, "evil") == eveBefore)
        // Nothing nginx serves names shop's subdomain for evil.
        let proxy = try JSONSerialization.jsonObject(with: Data(try server.ssh(eve.key, "proxy:report", "evil", "--format", "json").out.utf8)) as? [String: Any]
        let config = (try? String(contentsOfFile: proxy?["configPath"] as? String ?? "", encoding: .utf8)) ?? ""  // none: nothing served
        #expect(!config.contains("shop.localhost") && !config.contains(" localhost;"), "\(config)")
        // Her own namespace stays hers.
        let own = try server.ssh(eve.key, "domains:add", "evil", "api.evil.localhost")
        #expect(own.status == 0, "\(own.err)")
        #expect(try server.ssh(bob.key, "domains:add", "shop", "api.evil.localhost").status != 0)
    }

    // MARK: 12. Events of a destroyed app that had the same name

    /// ATTACK: eve's app `shop` had config, a collaborator and a domain, then was
    /// destroyed; bob creates his own `shop` and reads `events` hoping to learn its
    /// history. EXPECTED: bob sees only what happened to his `shop` and his own
    /// actions; an admin still sees every event.
    @Test func aReusedAppNameStartsACleanHistory() throws {
        let (server, alice, bob, eve) = try start()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let nonce = "K\(UUID().uuidString.prefix(8))"
        _ = try TestUser.register("mallory", on: server.slipway)
        for step in [["apps:create", "shop"], ["config:set", "--no-restart", "shop", "\(nonce)_SECRET=x"],
                     ["acl:add", "shop", "mallory", "read"], ["domains:add", "shop", "\(nonce.lowercased()).example.com"],
                     ["apps:destroy", "shop", "--force"]] {
            let result = try server.ssh(eve.key, step)
            #expect(result.status == 0, "\(step): \(result.err)")
        }
        #expect(try server.ssh(bob.key, "apps:create", "shop").status == 0)
        #expect(try server.ssh(bob.key, "config:set", "--no-restart", "shop", "MINE=1").status == 0)
        let seen = try server.ssh(bob.key, "events", "-n", "1000")
        #expect(seen.status == 0, "\(seen.err)")
        #expect(!seen.out.contains(nonce) && !seen.out.contains(nonce.lowercased()) && !seen.out.contains("mallory") && !seen.out.contains("eve"), "\(seen.out)")
        #expect(seen.out.contains("created app shop") && seen.out.contains("set MINE"), "\(seen.out)")
        // The admin's view is whole.
        let all = try server.ssh(alice.key, "events", "-n", "1000").out
        #expect(all.contains("\(nonce)_SECRET") && all.contains("gave mallory read access") && all.contains("set MINE"), "\(all)")
        // A renamed app keeps its history (it is the same app).
        #expect(try server.ssh(bob.key, "apps:rename", "shop", "store").status == 0)
        #expect(try server.ssh(bob.key, "events", "-n", "1000").out.contains("set MINE"))
    }

    // MARK: 8. Followers and detached runs outlive the access they started with

    /// alice's app `web`, deployed; its web process prints a line as it starts.
    func deployedWeb(_ server: TestServer, _ alice: TestUser) throws {
        _ = try BuilderImage.bootstrap.get()
        let repo = try makeRepository(["Procfile": Data("web: echo started; exec python3 -m http.server $PORT\n".utf8)])
        let push = try server.git(alice.key, ["push", "-q", server.url("web"), "main"], in: repo)
        try? FileManager.default.removeItem(atPath: repo)
        guard push.status == 0 else { throw HarnessError("push: \(push.err)") }
    }

    /// The app's detached runs started by `user`.
    func detachedRuns(of user: String) async throws -> [ContainerSummary] {
        try await engine.listContainers(labels: ["org.slipway.app": "web", "org.slipway.kind": "detached", "org.slipway.by": user])
    }

    /// ATTACK: bob (read), eve (write), carol and dan keep `logs -t` open, and eve a
    /// detached run, while alice takes their access away: acl:remove (bob, eve),
    /// users:remove (carol), ssh-keys:remove (dan's only key). EXPECTED: each removed
    /// party's stream ends within 2 s with `error:` and a non-zero exit, eve's detached
    /// run is gone, and alice's own stream and app carry on.
    @Test func revokedAccessEndsFollowersAndDetachedRuns() async throws {
        let (server, alice, bob, eve) = try start()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let carol = try TestUser.register("carol", on: server.slipway)
        let dan = try TestUser.register("dan", on: server.slipway)
        try deployedWeb(server, alice)
        for (user, role) in [(bob, "read"), (eve, "write"), (carol, "read"), (dan, "read")] {
            #expect(try server.ssh(alice.key, "acl:add", "web", user.name, role).status == 0)
        }
        let detached = try server.ssh(eve.key, "run:detached", "web", "sleep", "600")
        #expect(detached.status == 0, "\(detached.err)")
        let fingerprint = try run("/usr/bin/ssh-keygen", ["-lf", dan.key + ".pub"]).out.split(separator: " ")[1]
        // The followers run from a shell, as a user's terminal runs them: in the background,
        // writing to files; the script reports which had ended 2 s after each removal.
        let work = try temporaryDirectory("slipway-follow")
        defer { try? FileManager.default.removeItem(atPath: work) }
        func ssh(_ key: String) -> String {
            (["timeout", "-s", "KILL", "60", "/usr/bin/ssh"] + server.sshOptions(key: key) + ["127.0.0.1"]).map { "'\($0)'" }.joined(separator: " ")
        }
        let script = """
            follow() {
                \(ssh("KEY").replacingOccurrences(of: "'timeout' '-s' 'KILL' '60' ", with: "").replacingOccurrences(of: "'KEY'", with: "\"$2\"")) logs web -t </dev/null >"$1.out" 2>&1 &
                echo $! >"$1.pid"; wait $!; echo "exit $?" >>"$1.out"
            }
            started() { for i in $(seq 150); do grep -q started "$1.out" 2>/dev/null && return; sleep 0.1; done; echo "$1 never streamed"; }
            ended() { sleep 2; grep -q '^exit' "$1.out" && echo "$1 ended" || echo "$1 still streaming"; }
            follow alice '\(alice.key)' & follow bob '\(bob.key)' & follow eve '\(eve.key)' & follow carol '\(carol.key)' & follow dan '\(dan.key)' &
            for u in alice bob eve carol dan; do started $u; done
            \(ssh(alice.key)) acl:remove web bob </dev/null >/dev/null; ended bob
            \(ssh(alice.key)) acl:remove web eve </dev/null >/dev/null; ended eve
            \(ssh(alice.key)) users:remove carol </dev/null >/dev/null; ended carol
            \(ssh(alice.key)) ssh-keys:remove dan --fingerprint \(fingerprint) </dev/null >/dev/null; ended dan
            grep -q '^exit' alice.out && echo "alice ended" || echo "alice still streaming"
            # SIGKILL (the test process may pass SIGTERM on blocked), and only to followers
            # still streaming: an ended one's pid may already be another process's.
            for u in alice bob eve carol dan; do grep -q '^exit' "$u.out" || kill -9 "$(cat "$u.pid")" 2>/dev/null; done; wait
            """
        let result = try shell("bash", script, in: work)
        #expect(result.out == "bob ended\neve ended\ncarol ended\ndan ended\nalice still streaming\n", "\(result.out)\(result.err)")
        for user in ["bob", "eve", "carol", "dan"] {
            let out = (try? String(contentsOfFile: "\(work)/\(user).out", encoding: .utf8)) ?? ""
            #expect(out.contains("error: your access ended") && out.hasSuffix("exit 1\n"), "\(user): \(out)")
        }
        #expect(try await detachedRuns(of: eve.name).isEmpty)
        // The owner's app carries on.
        let report = try server.ssh(alice.key, "ps:report", "web")
        #expect(report.status == 0 && report.out.contains("running"), "\(report.out)")
        #expect(try server.ssh(alice.key, "apps:destroy", "web", "--force").status == 0)  // its containers and images
    }

    // MARK: 9. A writer's own storage as a path into the app

    /// ATTACK: eve, a writer on alice's `web`, mounts storage she owns (new or made
    /// before) into it, to keep reading and writing the app's files through her own
    /// app once her access is gone. EXPECTED: refused with `error:`, no mount and no
    /// storage made; the owner may still mount storage, and eve her own into her own app.
    @Test func aWriterCannotMountStorageSheOwnsIntoAnotherOwnersApp() throws {
        let (server, alice, _, eve) = try start()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        #expect(try server.ssh(alice.key, "acl:add", "web", eve.name, "write").status == 0)
        #expect(try server.ssh(eve.key, "storage:create", "evekeep").status == 0)
        for mount in ["evekeep:/app/static", "evenew:/app/uploads"] {
            let result = try server.ssh(eve.key, "storage:mount", "web", mount)
            #expect(result.status != 0 && result.err.hasPrefix("error: "), "\(mount): \(result.err)")
        }
        let mounts = try JSONSerialization.jsonObject(with: Data(try server.ssh(alice.key, "storage:list", "web", "--format", "json").out.utf8)) as? [Any]
        #expect(mounts?.isEmpty == true, "\(String(describing: mounts))")
        #expect(try !server.ssh(eve.key, "storage:list").out.contains("evenew"))
        #expect(try server.ssh(alice.key, "storage:mount", "web", "uploads:/app/uploads").status == 0)
        #expect(try server.ssh(eve.key, "apps:create", "evil").status == 0)
        #expect(try server.ssh(eve.key, "storage:mount", "evil", "evekeep:/data").status == 0)
    }

    // MARK: 4. A stale release snapshot and a storage name taken again

    /// ATTACK: eve mounts her storage `loot` into `evil`, restarts (the release binds
    /// it), unmounts without restarting, destroys `loot`; bob makes his own `loot` and
    /// keeps a secret in it; eve scales `evil` up, starting a container from the old
    /// snapshot, whose web process prints what /data holds. EXPECTED: the destroy is
    /// refused naming the release that holds the storage, so the name is never bob's,
    /// and nothing of bob's reaches eve's logs.
    @Test func aStaleReleaseNeverMountsAnotherTenantsStorage() async throws {
        let (server, _, bob, eve) = try start()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        _ = try BuilderImage.bootstrap.get()
        let secret = "secret-\(UUID().uuidString.prefix(8))"
        let repo = try makeRepository(["Procfile": Data("web: cat /data/* 2>/dev/null; exec python3 -m http.server $PORT\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: repo) }
        let push = try server.git(eve.key, ["push", "-q", server.url("evil"), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        for step in [["storage:mount", "evil", "loot:/data"], ["ps:restart", "evil"], ["storage:unmount", "evil", "loot:/data"]] {
            let result = try server.ssh(eve.key, step)
            #expect(result.status == 0, "\(step): \(result.err)")
        }
        let destroy = try server.ssh(eve.key, "storage:destroy", "loot", "--force")
        #expect(destroy.status != 0 && destroy.err.hasPrefix("error: ") && destroy.err.contains("evil v2"), "\(destroy.err)")
        // bob takes the name if he can, and his app keeps a secret there.
        let create = try server.ssh(bob.key, "storage:create", "loot")
        #expect(create.status != 0, "\(create.out)")
        let mine = try JSONSerialization.jsonObject(with: Data(try server.ssh(bob.key, "storage:list", "--format", "json").out.utf8)) as? [[String: Any]]
        if create.status == 0, let directory = mine?.first(where: { $0["name"] as? String == "loot" })?["directory"] as? String {
            try (secret + "\n").write(toFile: directory + "/s", atomically: true, encoding: .utf8)
        }
        // eve's scale starts a web container from the release that bound loot.
        let scale = try server.ssh(eve.key, "ps:scale", "evil", "web=2")
        #expect(scale.status == 0, "\(scale.err)")
        let logs = try server.ssh(eve.key, "logs", "evil")
        #expect(!logs.out.contains(secret), "\(logs.out)")
        #expect(try server.ssh(eve.key, "apps:destroy", "evil", "--force").status == 0)  // its containers and images
        // With the app (and so its releases) gone, nothing holds loot any more.
        let freed = try server.ssh(eve.key, "storage:destroy", "loot", "--force")
        #expect(freed.status == 0, "\(freed.err)")
    }

    /// Finding 4 (running containers): eve starts a detached run while `loot` is
    /// mounted, unmounts it and destroys it, so the run would keep writing into a
    /// directory whose name bob could take next. EXPECTED: the destroy is refused,
    /// naming the run, until the run is stopped.
    @Test func aRunStartedBeforeTheUnmountKeepsTheStorageFromBeingDestroyed() async throws {
        let (server, _, _, eve) = try start()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        _ = try BuilderImage.bootstrap.get()
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: repo) }
        #expect(try server.git(eve.key, ["push", "-q", server.url("evil"), "main"], in: repo).status == 0)
        defer { _ = try? server.ssh(eve.key, "apps:destroy", "evil", "--force") }
        #expect(try server.ssh(eve.key, "storage:mount", "evil", "loot:/data").status == 0)
        let started = try server.ssh(eve.key, "run:detached", "evil", "sleep", "600")
        #expect(started.status == 0, "\(started.err)")
        let name = try #require(started.out.split(whereSeparator: \.isWhitespace).map(String.init).first { $0.hasPrefix("evil.detached.") },
                                "\(started.out) \(started.err)")
        #expect(try server.ssh(eve.key, "storage:unmount", "evil", "loot:/data").status == 0)
        let refused = try server.ssh(eve.key, "storage:destroy", "loot", "--force")
        #expect(refused.status != 0 && refused.err.hasPrefix("error: ") && refused.err.contains(name), "\(refused.err)")
        #expect(try server.ssh(eve.key, "storage:list").out.contains("loot"))
        #expect(try server.ssh(eve.key, "run:stop", "evil", name).status == 0)
        let destroyed = try server.ssh(eve.key, "storage:destroy", "loot", "--force")
        #expect(destroyed.status == 0, "\(destroyed.err)")
    }
}
