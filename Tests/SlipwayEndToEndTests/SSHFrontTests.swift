import Foundation
import SlipwayCore
import Testing

/// The SSH front, end to end: the real binary serving the real OpenSSH client and git.
@Suite("SSH front end to end", .serialized)
struct SSHFrontTests {
    @Test func keysOfEveryAcceptedTypeLogInAndRemovedKeysStop() throws {
        let server = try TestServer()
        let ed = try TestUser.register("alice", admin: true, on: server.slipway)
        let ecdsa = try TestUser.register("bob", type: "ecdsa", bits: 256, on: server.slipway)
        let rsa = try TestUser.register("carol", type: "rsa", bits: 3072, on: server.slipway)
        for user in [ed, ecdsa, rsa] {
            let who = try server.ssh(user.key, "whoami", "--format", "json")
            #expect(who.status == 0, "\(user.name): \(who.err)")
            #expect(who.out.contains("\"name\":\"\(user.name)\""))
        }
        let stranger = try generateKey()
        let denied = try server.ssh(stranger.privatePath, "apps:list")
        #expect(denied.status == 255 && denied.err.contains("Permission denied (publickey)"))

        // A key removed over SSH stops working on the next connection, without a restart.
        #expect(try server.ssh(ed.key, "ssh-keys:remove", "bob", "bob@test").status == 0)
        #expect(try server.ssh(ecdsa.key, "whoami").err.contains("Permission denied (publickey)"))
        // And a key added over SSH starts working on the next one.
        let fresh = try generateKey("ed25519", comment: "bob@new")
        let added = try server.ssh(ed.key, "ssh-keys:add", "bob", "new", stdin: fresh.publicLine)
        #expect(added.status == 0 && added.out.contains("SHA256:"))
        #expect(try server.ssh(fresh.privatePath, "whoami").out.hasPrefix("bob"))
    }

    @Test func commandsStatusAndStderrReachTheClientExactly() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        let list = try server.ssh(alice.key, "apps:list", "--format", "json")
        #expect(try JSONSerialization.jsonObject(with: Data(list.out.utf8)) as? [String] == ["web"])
        let missing = try server.ssh(alice.key, "config:get", "web", "MISSING")
        #expect(missing.status == 1 && missing.out.isEmpty)
        let bad = try server.ssh(alice.key, "apps:create", "Bad_Name")
        #expect(bad.status == 1)
        #expect(bad.err == "error: invalid app name \"Bad_Name\": use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit\n")
        let unknown = try server.ssh(alice.key, "apps:explode")
        #expect(unknown.status == 2 && unknown.err.hasPrefix("error: unknown command \"apps:explode\""))
        // Words are split as a shell would, and no shell runs them.
        #expect(try server.ssh(alice.key, ["config:set web 'A=two words' \"B=it's\" C=\\$HOME\\;id $'D=line\\nbreak'"]).status == 0)
        #expect(try server.ssh(alice.key, "config:get", "web", "A").out == "two words\n")
        #expect(try server.ssh(alice.key, "config:get", "web", "B").out == "it's\n")
        #expect(try server.ssh(alice.key, "config:get", "web", "C").out == "$HOME;id\n")
        #expect(try server.ssh(alice.key, "config:get", "web", "D").out == "line\nbreak\n")
        // `ssh host`: who you are and what you may run.
        let banner = try server.ssh(alice.key, [])
        #expect(banner.status == 0 && banner.out.contains("Hi alice!") && banner.out.contains("users:add"))
    }

    @Test func tenantsSeeOnlyTheirOwnApps() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        // The admin adds a user and their key over SSH.
        let bobKey = try generateKey(comment: "bob@laptop")
        #expect(try server.ssh(alice.key, "users:add", "bob").status == 0)
        #expect(try server.ssh(alice.key, "ssh-keys:add", "bob", "laptop", stdin: bobKey.publicLine).status == 0)
        let bob = bobKey.privatePath
        let carol = try TestUser.register("carol", on: server.slipway)

        #expect(try server.ssh(bob, "apps:create", "bobs").status == 0)
        #expect(try server.ssh(carol.key, "apps:create", "carols").status == 0)
        _ = try BuilderImage.bootstrap.get()  // the push builds (a Procfile app)
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8)])
        #expect(try server.git(carol.key, ["push", "-q", server.url("carols"), "main"], in: repo).status == 0)

        #expect(try server.ssh(bob, "apps:list").out.contains("bobs"))
        #expect(!(try server.ssh(bob, "apps:list").out.contains("carols")))
        let notFound = "error: app \"carols\" not found; apps:list shows the apps you can use\n"
        for command in [["apps:report", "carols"], ["config:get", "carols", "X"], ["config:set", "carols", "X=1"],
                        ["apps:destroy", "carols", "--force"], ["acl:add", "carols", "bob"], ["storage:list", "carols"]] {
            let result = try server.ssh(bob, command)
            #expect(result.status == 1 && result.err == notFound, "\(command): \(result.err)")
        }
        let clone = try server.git(bob, ["clone", "-q", server.url("carols"), try temporaryDirectory("clone") + "/x"])
        #expect(clone.status != 0 && clone.err.contains(notFound.dropLast()))
        let push = try server.git(bob, ["push", "-q", server.url("carols"), "main"], in: repo)
        #expect(push.status != 0 && push.err.contains(notFound.dropLast()))
        // ... and the hidden app was not touched.
        #expect(try server.git(carol.key, ["ls-remote", server.url("carols")]).out.contains("refs/heads/main"))
    }

    @Test func pushAndCloneRoundTripInEveryRemoteForm() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        _ = try BuilderImage.bootstrap.get()  // pushes to the deploy branch build (Procfile apps)
        let procfile = Data("web: python3 -m http.server $PORT\n".utf8)
        let repo = try makeRepository(["Procfile": procfile, "app.py": Data("print('hi')\n".utf8), "sub/dir/file.txt": Data("nested\n".utf8)])
        // Pushing to an unknown app creates it, with the pusher as owner.
        let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        let head = try run("/usr/bin/git", ["-C", repo, "rev-parse", "HEAD"]).out.trimmingCharacters(in: .newlines)
        let report = try server.ssh(alice.key, "apps:report", "web", "--format", "json").out
        #expect(report.contains("\"deploy-source-metadata\":\"\(head)\"") && report.contains("\"deploy-branch\":\"main\""))

        // ssh://host:port/web.git and host:web (scp-like, through an ssh config alias).
        let first = try temporaryDirectory("clone") + "/a"
        #expect(try server.git(alice.key, ["clone", "-q", server.url("web.git"), first]).status == 0)
        let config = try temporaryDirectory("sshcfg") + "/config"
        try """
            Host slipway-test
              HostName 127.0.0.1
              Port \(server.port)
              IdentityFile \(alice.key)
              IdentitiesOnly yes
              BatchMode yes
              UserKnownHostsFile \(server.knownHosts)
              LogLevel ERROR
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let second = try temporaryDirectory("clone") + "/b"
        let scpLike = try run("/usr/bin/git", ["clone", "-q", "slipway-test:web", second], environment: ["GIT_SSH_COMMAND": "ssh -F \(config)"])
        #expect(scpLike.status == 0, "\(scpLike.err)")
        for clone in [first, second] {
            let diff = try run("/usr/bin/diff", ["-r", "-x", ".git", repo, clone])
            #expect(diff.status == 0, "\(diff.out)")
            #expect(try run("/usr/bin/git", ["-C", clone, "rev-parse", "HEAD"]).out.trimmingCharacters(in: .newlines) == head)
        }

        // A first push on master (no main) makes master the deploy branch.
        let masterRepo = try makeRepository(["Procfile": procfile], branch: "master")
        #expect(try server.git(alice.key, ["push", "-q", server.url("legacy"), "master"], in: masterRepo).status == 0)
        #expect(try server.ssh(alice.key, "apps:report", "legacy", "--format", "json").out.contains("\"deploy-branch\":\"master\""))
    }

    @Test func aFiftyMegabytePushArrivesIntactAndAKilledPushHarmsNothing() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        var files: [String: Data] = [:]
        for i in 0..<5 { files["blob\(i).bin"] = randomData(10 * 1024 * 1024) }
        let repo = try makeRepository(files)
        // A branch that is not the deploy branch: this is about transport, not builds.
        let push = try server.git(alice.key, ["push", "-q", server.url("big"), "main:blobs"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        let bare = server.slipway.dataDir + "/repos/big.git"
        #expect(try run("/usr/bin/git", ["--git-dir", bare, "fsck", "--full"]).status == 0)
        let clone = try temporaryDirectory("clone") + "/big"
        #expect(try server.git(alice.key, ["clone", "-q", "-b", "blobs", server.url("big"), clone]).status == 0)
        #expect(try run("/usr/bin/diff", ["-r", "-x", ".git", repo, clone]).status == 0)

        // Kill the client in the middle of a second large push.
        var more = files
        for i in 0..<5 { more["more\(i).bin"] = randomData(10 * 1024 * 1024) }
        let bigger = try makeRepository(more)
        let process = try ChildProcess("/usr/bin/git", ["-C", bigger, "push", "-q", "-f", server.url("big"), "main:blobs"],
                                       environment: ProcessInfo.processInfo.environment.merging(server.gitEnvironment(key: alice.key)) { $1 },
                                       newProcessGroup: true)
        usleep(700_000)
        // git's own ssh client first (found as git's child: a pattern over every command
        // line on the host also matched other tests' processes), then git.
        _ = try run("/usr/bin/pkill", ["-9", "-P", "\(process.processIdentifier)", "-x", "ssh"])
        kill(-process.pid, SIGKILL)
        process.wait()

        #expect(server.isRunning)
        #expect(try run("/usr/bin/git", ["--git-dir", bare, "fsck", "--full"]).status == 0)
        let head = try run("/usr/bin/git", ["-C", repo, "rev-parse", "HEAD"]).out
        #expect(try server.git(alice.key, ["ls-remote", server.url("big"), "blobs"]).out.hasPrefix(head.trimmingCharacters(in: .newlines)))
        #expect(try server.ssh(alice.key, "apps:list").status == 0)
    }

    @Test func aHundredParallelSessionsAllSucceed() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        let failures = concurrently(100) { _ in
            let result = try server.ssh(alice.key, "apps:list")
            return result.status == 0 && result.out.contains("web") ? nil : "\(result.status) \(result.err)"
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    /// A script's burst far past max_startups (2 here): those that find no handshake
    /// place wait in line for one instead of being reset, and every one gets its answer.
    @Test func aBurstFarPastMaxStartupsWaitsInLineAndEverySessionSucceeds() throws {
        let slipway = try Slipway(extraConfig: "max_startups = \"2\"")
        let server = try TestServer(slipway: slipway)
        defer { slipway.cleanUp() }
        let alice = try TestUser.register("alice", admin: true, on: slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        let failures = concurrently(60) { _ in
            let result = try server.ssh(alice.key, "apps:list")
            return result.status == 0 && result.out == "=====> My Apps\nweb\n" ? nil : "\(result.status) \(result.out) \(result.err)"
        }
        #expect(failures.isEmpty, "\(failures.count) of 60 failed: \(failures.prefix(5))")
    }

    @Test func hostileInputChangesNothingAndTheServerKeepsServing() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        let before = try server.slipway("events", "-n", "100000").out
        let hostile: [[String]] = [
            ["git-receive-pack '../../etc'"], ["git-receive-pack 'web;id'"], ["git-upload-pack '-uhelp'"],
            ["git-upload-pack '/etc/passwd'"], ["git-receive-pack '/../../../tmp/x.git'"], ["git-upload-pack"],
            ["apps:list\nid"], ["apps:list 'unterminated"], ["rm -rf /"], ["sh -c id"], ["git-upload-archive 'web'"],
            // Far past the 64 KiB limit (an argv string cannot exceed 128 KiB, so this is what OpenSSH can send).
            [String(repeating: "a", count: 120_000)],
        ]
        for command in hostile {
            let result = try server.ssh(alice.key, command)
            #expect(result.status != 0, "\(command.first!.prefix(60))")
            #expect(!result.out.contains("uid="), "a shell ran")
        }
        // Password auth, pty/shell, sftp and port forwarding are refused.
        let password = try run("/usr/bin/ssh", server.sshOptions(key: alice.key) + ["-o", "PreferredAuthentications=password,keyboard-interactive", "127.0.0.1", "whoami"])
        #expect(password.status == 255 && password.err.contains("Permission denied"))
        let pty = try server.ssh(alice.key, ["whoami"], options: ["-tt"])
        #expect(pty.out.contains("alice") || pty.err.contains("PTY allocation request failed"))
        let sftp = try server.ssh(alice.key, ["sftp"], options: ["-s"])
        #expect(sftp.status != 0)
        let forward = try server.ssh(alice.key, ["whoami"], options: ["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"])
        #expect(forward.status != 0)
        let local = try server.ssh(alice.key, ["-W", "127.0.0.1:\(server.port)"], options: [])
        #expect(local.status != 0)

        #expect(server.isRunning)
        #expect(try server.ssh(alice.key, "apps:list").out.contains("web"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/x.git"))
        let apps = try server.ssh(alice.key, "apps:list", "--format", "json").out
        #expect((try JSONSerialization.jsonObject(with: Data(apps.utf8)) as? [Any])?.count == 1)
        #expect(try server.slipway("events", "-n", "100000").out == before)
    }

    @Test func sigtermExitsCleanlyAndTheHostKeyIsReused() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        #expect(try server.ssh(alice.key, "whoami").status == 0)
        let keyFile = server.slipway.dataDir + "/ssh/host_ed25519_key"
        let attributes = try FileManager.default.attributesOfItem(atPath: keyFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(server.stop() == 0)
        #expect(server.log.contains("command=whoami") && server.log.contains("status=0") && server.log.contains("user=alice"))
        // A restart reuses the key: the old known_hosts entry still verifies.
        let again = try TestServer(slipway: server.slipway)
        try String(contentsOfFile: server.knownHosts, encoding: .utf8)
            .replacingOccurrences(of: "]:\(server.port) ", with: "]:\(again.port) ")
            .write(toFile: again.knownHosts, atomically: true, encoding: .utf8)
        #expect(try again.ssh(alice.key, "whoami").status == 0)
    }

    @Test func configuredLimitsAndTheInitialAdmin() throws {
        let key = try generateKey(comment: "first@admin")
        let slipway = try Slipway(extraConfig: """
            initial_admin_keys = ["\(key.publicLine.trimmingCharacters(in: .newlines))"]
            max_sessions = 1
            idle_timeout = 2
            """)
        let server = try TestServer(slipway: slipway)
        let who = try server.ssh(key.privatePath, "whoami")
        #expect(who.out.hasPrefix("admin (admin)"), "\(who.err)")

        // Hold the only session open: a command waiting for its stdin, which ends after
        // 4 s, past the 2 s idle timeout. (A shell feeds it: Foundation's Process waits
        // for its children in turn, so a long-lived one would hold up every other run.)
        final class Held: @unchecked Sendable { var result: Slipway.Result? }
        let held = Held(), holding = DispatchGroup()
        let holder = ["-c", #"sleep 4 | exec /usr/bin/ssh "$@""#, "ssh"] + server.sshOptions(key: key.privatePath) + ["127.0.0.1", "ssh-keys:add", "admin", "held"]
        holding.enter()
        Thread.detachNewThread {
            held.result = try? run("/bin/bash", holder)
            holding.leave()
        }
        usleep(1_000_000)
        let refused = try server.ssh(key.privatePath, "whoami")
        #expect(refused.status == 1 && refused.err.contains("limit of 1 concurrent sessions"), "\(refused.err)")

        // The idle timeout is for sessions with nothing running: the silent command ran
        // to its end (its empty stdin refused), it was not cut (status 255).
        holding.wait()
        #expect(held.result?.status == 1 && held.result?.err.hasPrefix("error: ") == true, "\(String(describing: held.result))")
        #expect(try server.ssh(key.privatePath, "whoami").status == 0)
    }

    /// idle_timeout (2 s here) cuts a session with nothing running, never a command
    /// that is still running without a byte either way.
    @Test func aSilentRunningCommandOutlivesTheIdleTimeoutAndAnIdleSessionDoesNot() throws {
        let slipway = try Slipway(extraConfig: "idle_timeout = 2")
        let server = try TestServer(slipway: slipway)
        defer { slipway.cleanUp() }
        let alice = try TestUser.register("alice", admin: true, on: slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        // config:import waits for its stdin, which comes after 5 s: nothing crosses the
        // connection meanwhile, as with a long statement or a quiet build step.
        let script = #"(sleep 5; printf 'QUIET=done\n') | exec /usr/bin/ssh "$@""#
        let started = Date()
        let silent = try run("/bin/bash", ["-c", script, "ssh"] + server.sshOptions(key: alice.key) + ["127.0.0.1", "config:import", "--no-restart", "web"])
        #expect(silent.status == 0, "\(silent.status) \(silent.err)")
        #expect(Date().timeIntervalSince(started) >= 5)
        #expect(try server.ssh(alice.key, "config:get", "web", "QUIET").out == "done\n")
        // Logged in with nothing running (`ssh -N` opens no channel): cut after 2 s
        // (timeout(1) ends the client with 124 if it is not).
        let idleStart = Date()
        let idle = try run("/usr/bin/timeout", ["20", "/usr/bin/ssh", "-N"] + server.sshOptions(key: alice.key) + ["127.0.0.1"])
        let idleFor = Date().timeIntervalSince(idleStart)
        #expect(idle.status == 255 && idleFor >= 2 && idleFor < 10, "\(idle.status) after \(idleFor) s: \(idle.err)")
    }

    @Test func sha1RSASignaturesAreRefusedAndGitSpeaksProtocolV2() throws {
        let server = try TestServer()
        let rsa = try TestUser.register("alice", admin: true, type: "rsa", bits: 2048, on: server.slipway)
        let sha1 = try server.ssh(rsa.key, ["whoami"], options: ["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"])
        #expect(sha1.status == 255 && sha1.err.contains("Permission denied"))
        #expect(try server.ssh(rsa.key, ["whoami"], options: ["-o", "PubkeyAcceptedAlgorithms=rsa-sha2-512"]).status == 0)

        let repo = try makeRepository(["f": Data("v2".utf8)])
        #expect(try server.git(rsa.key, ["push", "-q", server.url("web"), "main:transport"], in: repo).status == 0)
        var env = server.gitEnvironment(key: rsa.key)
        env["GIT_TRACE_PACKET"] = "1"
        let listing = try run("/usr/bin/git", ["-c", "protocol.version=2", "ls-remote", server.url("web")], environment: env)
        #expect(listing.status == 0 && listing.out.contains("refs/heads/transport"))
        #expect(listing.err.contains("version 2"), "GIT_PROTOCOL did not reach git")
    }
}
