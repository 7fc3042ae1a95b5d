import Foundation
import SlipwayCore
import Testing

/// The SSH front from the attacker's side: floods of idle connections, forged and
/// SHA-1 signatures, exec strings the OpenSSH client cannot send, and a connection
/// that outlives its user's removal. Each test asserts what the attacker and the
/// legitimate user observe.
@Suite("SSH front under attack", .serialized)
struct SSHAttackTests {
    // MARK: Finding 5: pre-auth floods

    /// With the defaults, and with a silent set half the flood's size, so that every new
    /// flood connection pushes out an older one and the flood churns at full speed.
    @Test(arguments: ["", "max_silent_connections = 500"])
    func aThousandIdleConnectionsFromTheUsersOwnAddressDoNotLockHimOut(config: String) throws {
        let server = try TestServer(slipway: try Slipway(extraConfig: config))
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let flood = try IdleFlood(port: server.port, connections: 1000, seconds: 150, readyAt: config.isEmpty ? 900 : 500)
        let ready = flood.waitUntilReady()
        var successes = 0
        var failures: [String] = []
        for _ in 0..<(ready ? 100 : 0) {
            let who = try server.ssh(alice.key, "whoami")
            if who.status == 0 && who.out.hasPrefix("alice") { successes += 1 } else { failures.append("\(who.status) \(who.err)") }
        }
        let (opened, wasFlooding) = flood.stop()
        print("idle flood (\(config.isEmpty ? "defaults" : config)): whoami succeeded \(successes) of 100 times; the flood opened \(opened) connections; failures: \(failures)")
        #expect(ready, "the flood never held its connections")
        #expect(wasFlooding, "the flood ran out of time or budget before the last try")
        #expect(successes >= 95, "\(failures.prefix(5))")
        #expect(opened >= 1000)
        #expect(server.isRunning)
    }

    @Test func silentConnectionsAreDroppedOldestFirstAndAfterTheBannerTimeout() throws {
        let slipway = try Slipway(extraConfig: """
            max_silent_connections = 20
            banner_timeout = 3
            """)
        let server = try TestServer(slipway: slipway)
        let alice = try TestUser.register("alice", admin: true, on: slipway)
        let silent = try (0..<20).map { _ in try RawConnection(port: server.port) }
        usleep(300_000)
        // The room is full: the next silent arrival pushes out the oldest, not itself.
        let newcomer = try RawConnection(port: server.port)
        #expect(silent[0].waitForClose(seconds: 2), "the oldest silent connection is still open")
        #expect(!silent[19].waitForClose(seconds: 0.3), "a newer silent connection was dropped")
        // A real client talks at once, so it gets through while the room is full.
        #expect(try server.ssh(alice.key, "whoami").out.hasPrefix("alice"))
        // Past the banner timeout nothing silent is left.
        #expect(newcomer.waitForClose(seconds: 6), "a silent connection outlived banner_timeout")
        #expect(silent[19].waitForClose(seconds: 1))
    }

    /// Past max_startups (2 here) a client that speaks waits in line: nothing is read
    /// from it and it gets no banner until a handshake place frees up, then it is served
    /// in turn. It is dropped if its login_grace_time (counted from connecting) passes
    /// while it waits, or if it finds the line full (max_waiting_connections).
    @Test func talkersPastMaxStartupsWaitInLineUntilAPlaceOrTheirDeadline() throws {
        let slipway = try Slipway(extraConfig: """
            max_startups = "2"
            max_waiting_connections = 3
            login_grace_time = 5
            """)
        let server = try TestServer(slipway: slipway)
        defer { slipway.cleanUp() }
        let alice = try TestUser.register("alice", admin: true, on: slipway)
        let version = Data("SSH-2.0-waiting\r\n".utf8)
        func banner(_ connection: RawConnection, seconds: Double) -> String {
            String(decoding: connection.read(seconds: seconds) { $0.contains(UInt8(ascii: "\n")) }.data, as: UTF8.self)
        }
        // Silent for now: it speaks later, with less of its grace time left than the others.
        let late = try RawConnection(port: server.port)
        usleep(1_000_000)
        // Two clients send their version line and then stall: both handshake places are taken.
        let stalled = try (0..<2).map { _ in try RawConnection(port: server.port) }
        for connection in stalled {
            connection.send(version)
            #expect(banner(connection, seconds: 5).hasPrefix("SSH-2.0-"))
        }
        usleep(1_500_000)
        // Two more talkers wait in line: no banner, and not dropped either.
        let waiting = try (0..<2).map { _ in try RawConnection(port: server.port) }
        waiting.forEach { $0.send(version) }
        for connection in waiting {
            let answer = connection.read(seconds: 0.4)
            #expect(!answer.closed && answer.data.isEmpty, "a talker past max_startups was served or dropped instead of waiting")
        }
        // The silent one speaks: the third in line, which is now full, so the next talker
        // is dropped at once without a banner.
        late.send(version)
        usleep(300_000)
        let refused = try RawConnection(port: server.port)
        refused.send(version)
        let answer = refused.read(seconds: 2)
        #expect(answer.closed && answer.data.isEmpty, "a talker was kept past max_waiting_connections")
        // The late one's grace time ends about 1 s before the stalled ones': it is dropped
        // while it waits, without a banner, and they still hold their places.
        let lateAnswer = late.read(seconds: 4)
        #expect(lateAnswer.closed && lateAnswer.data.isEmpty, "a talker outlived its login_grace_time in line")
        #expect(!stalled[0].waitForClose(seconds: 0.05), "the stalled handshakes were cut before their login_grace_time")
        // The stalled ones are cut at login_grace_time; the two in line get their places in turn.
        #expect(stalled[0].waitForClose(seconds: 3) && stalled[1].waitForClose(seconds: 1), "stalled handshakes outlived login_grace_time")
        for connection in waiting {
            #expect(banner(connection, seconds: 2).hasPrefix("SSH-2.0-"), "a talker in line was not served when places freed up")
        }
        // A real client waits behind them too, and gets in.
        let who = try server.ssh(alice.key, "whoami")
        #expect(who.status == 0 && who.out.hasPrefix("alice"), "\(who.err)")
    }

    // MARK: Finding 17: signatures

    @Test func sha1RSASignaturesAreRefusedEvenFromAClientThatIgnoresServerSigAlgs() throws {
        let server = try TestServer()
        let rsa = try TestUser.register("alice", admin: true, type: "rsa", bits: 2048, on: server.slipway)
        // A client that signs with SHA-1 ssh-rsa whatever the server advertises.
        let forced = try Paramiko.client(server, "sha1", rsa.key)
        #expect(forced["login"] as? String == "failure", "\(forced)")
        // OpenSSH finds no common algorithm and gives up.
        let ssh = try server.ssh(rsa.key, ["whoami"], options: ["-o", "PubkeyAcceptedAlgorithms=ssh-rsa", "-o", "HostKeyAlgorithms=ssh-ed25519"])
        #expect(ssh.status == 255 && ssh.err.contains("Permission denied"))
        // What the server advertises is exactly SHA-2 RSA, ed25519 and ECDSA.
        let verbose = try server.ssh(rsa.key, ["whoami"], options: ["-v", "-o", "LogLevel=DEBUG1"])
        let advertised = verbose.err.split(whereSeparator: \.isNewline).first { $0.contains("server-sig-algs=") }.map(String.init) ?? ""
        #expect(advertised.hasSuffix("server-sig-algs=<ssh-ed25519,ecdsa-sha2-nistp521,ecdsa-sha2-nistp384,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256>"), "\(advertised)")
        #expect(verbose.status == 0 && verbose.out.hasPrefix("alice"))
        // The same key signing with SHA-2 logs in.
        #expect(try server.ssh(rsa.key, ["whoami"], options: ["-o", "PubkeyAcceptedAlgorithms=rsa-sha2-256"]).out.hasPrefix("alice"))
    }

    @Test func forgedSignaturesEachGetAFailureAndCountAgainstTheCap() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        // Bad signatures of alice's own (registered) key, then her real one on the same connection.
        let result = try Paramiko.client(server, "badsig", alice.key, "60")
        let outcomes = result["outcomes"] as? [String] ?? []
        #expect(!outcomes.contains("timeout"), "a forged signature got no reply: \(outcomes)")
        #expect(result["failure_replies"] as? Int == 10, "\(result)")
        #expect(outcomes.count <= 11 && outcomes.last == "closed", "not disconnected after the cap: \(outcomes.count) tries")
        #expect(result["real_login_after"] as? String == "closed", "\(result)")
        // Others, and alice on a new connection, are unaffected.
        #expect(try server.ssh(alice.key, "whoami").out.hasPrefix("alice"))
    }

    // MARK: Finding 15: exec strings

    @Test func execStringsWithNULOrInvalidUTF8AreRefusedAndNothingRuns() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        // NUL: the OpenSSH client cannot send one; a raw client can.
        let nul = try Paramiko.client(server, "exec", alice.key, Data("config:set web A=1\0B=2".utf8).map { String(format: "%02x", $0) }.joined())
        #expect(nul["status"] as? Int == 1, "\(nul)")
        #expect((nul["err"] as? String)?.hasPrefix("error: the command contains a NUL byte") == true, "\(nul)")
        // Invalid UTF-8 (a lone 0xff), straight from the OpenSSH client (through bash: Swift strings cannot hold it).
        let invalid = try run("/bin/bash", ["-c", #"exec /usr/bin/ssh "$@" "$(printf 'config:set web B=\377')""#, "ssh"] + server.sshOptions(key: alice.key) + ["127.0.0.1"])
        #expect(invalid.status == 1 && invalid.err.hasPrefix("error: the command is not valid UTF-8"), "\(invalid)")
        // Nothing ran: neither value was set.
        for key in ["A", "B"] {
            let value = try server.ssh(alice.key, "config:get", "web", key)
            #expect(value.status == 1 && value.out.isEmpty, "\(key) was set to \(value.out)")
        }
    }

    // MARK: Finding 16: identity re-read per command

    @Test func aRemovedUserOrKeyRunsNothingOnAConnectionOpenedBefore() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let bob = try TestUser.register("bob", admin: true, on: server.slipway)
        let backdoor = try generateKey(comment: "backdoor@evil")

        // The user removed (users:remove from the local CLI) while her master connection stays open.
        let aliceMaster = try ControlMaster(server, key: alice.key)
        defer { aliceMaster.close() }
        #expect(try server.slipway("users:remove", "alice").status == 0)
        let added = try aliceMaster.ssh(["ssh-keys:add", "bob", "backdoor"], stdin: backdoor.publicLine)
        #expect(added.status == 1 && added.err.hasPrefix("error: "), "\(added)")
        #expect(!(try server.slipway("ssh-keys:list").out.contains("backdoor")))
        #expect(try server.ssh(backdoor.privatePath, "whoami").status == 255)

        // A key removed (ssh-keys:remove over SSH) while a master logged in with it stays open.
        let second = try generateKey(comment: "bob@second")
        #expect(try server.ssh(bob.key, "ssh-keys:add", "bob", "second", stdin: second.publicLine).status == 0)
        let bobMaster = try ControlMaster(server, key: second.privatePath)
        defer { bobMaster.close() }
        #expect(try server.ssh(bob.key, "ssh-keys:remove", "bob", "second").status == 0)
        let another = try generateKey(comment: "another@evil")
        let again = try bobMaster.ssh(["ssh-keys:add", "bob", "another"], stdin: another.publicLine)
        #expect(again.status == 1 && again.err.hasPrefix("error: "), "\(again)")
        #expect(!(try server.slipway("ssh-keys:list").out.contains("another")))
        // bob's remaining key still works.
        #expect(try server.ssh(bob.key, "whoami").out.hasPrefix("bob"))
    }

    // MARK: One tenant's sessions

    /// A tenant holding sessions open (idle `ssh -N`s here; a `logs -t` holds one the same
    /// way) gets no more than max_sessions_per_user of them served. The ones past it are
    /// refused with a message, take no place of max_sessions, and other users, admins
    /// too (who have no limit of their own), keep being served.
    @Test func oneTenantsHeldSessionsCannotLockTheOthersOut() throws {
        let slipway = try Slipway(extraConfig: "max_sessions = 5\nmax_sessions_per_user = 2")
        let server = try TestServer(slipway: slipway)
        defer { slipway.cleanUp() }
        let alice = try TestUser.register("alice", admin: true, on: slipway)
        let bob = try TestUser.register("bob", admin: false, on: slipway)
        let carol = try TestUser.register("carol", admin: false, on: slipway)
        var bobs = [try ControlMaster(server, key: bob.key), try ControlMaster(server, key: bob.key)]
        defer { bobs.forEach { $0.close() } }

        let third = try server.ssh(bob.key, "apps:create", "bobs-third")
        #expect(third.status == 1 && third.err.hasPrefix("error: bob already has 2 SSH sessions open, the most one user may have at once (max_sessions_per_user = 2); nothing was run."), "\(third)")
        #expect(!(try server.slipway("apps:list").out.contains("bobs-third")))
        // Held past his limit too: two of bob's sessions count against max_sessions (5), not three or four.
        bobs.append(try ControlMaster(server, key: bob.key))
        // Twice his limit held (two served, two refused): a fifth is not worth a session
        // at all, and its authentication is refused. (The fourth may find the refused
        // `third` still counted for a moment after its client has gone: tried again.)
        var fourth = try? ControlMaster(server, key: bob.key)
        for _ in 0..<50 where fourth == nil {
            usleep(100_000)
            fourth = try? ControlMaster(server, key: bob.key)
        }
        bobs.append(try #require(fourth))
        let fifth = try server.ssh(bob.key, "whoami")
        #expect(fifth.status == 255 && fifth.out.isEmpty && !fifth.err.contains("max_sessions_per_user"), "\(fifth)")
        let admins = [try ControlMaster(server, key: alice.key), try ControlMaster(server, key: alice.key)]
        defer { admins.forEach { $0.close() } }
        let aliceThird = try server.ssh(alice.key, "whoami")
        #expect(aliceThird.status == 0 && aliceThird.out.hasPrefix("alice"), "\(aliceThird)")
        // Alice's session gives its place back when the server has closed it, which may
        // be just after her client has gone: until then carol is refused as the 6th.
        var carols = try server.ssh(carol.key, "apps:create", "carols")
        for _ in 0..<50 where carols.err.contains("limit of 5 concurrent sessions") {
            usleep(100_000)
            carols = try server.ssh(carol.key, "apps:create", "carols")
        }
        #expect(carols.status == 0, "\(carols)")

        // Bob's places come back as his sessions end.
        bobs.forEach { $0.close() }
        var again = try server.ssh(bob.key, "whoami")
        for _ in 0..<50 where again.status != 0 {
            usleep(100_000)
            again = try server.ssh(bob.key, "whoami")
        }
        #expect(again.status == 0 && again.out.hasPrefix("bob"), "\(again)")
        #expect(server.isRunning)
    }

    /// git's pre-receive hook is this binary; anyone who can run it (a process on the
    /// host, a hook copied into another repository) must not deploy as someone else.
    /// Without the pusher's identity, or with a removed user's, it deploys nothing.
    @Test func thePreReceiveHookDeploysNothingWithoutAPushersIdentity() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp() }
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: repo) }
        // Stored on a branch that does not deploy: the revision is in the app's repository.
        #expect(try server.git(alice.key, ["push", "-q", server.url("web"), "main:feature"], in: repo).status == 0)
        let revision = try run("/usr/bin/git", ["-C", repo, "rev-parse", "HEAD"]).out.trimmingCharacters(in: .newlines)
        let update = Data("\(String(repeating: "0", count: 40)) \(revision) refs/heads/main\n".utf8)
        #expect(try server.slipway("users:add", "carol").status == 0)
        #expect(try server.slipway("acl:add", "web", "carol", "write").status == 0)
        #expect(try server.slipway("users:remove", "carol").status == 0)
        let noIdentity = "error: the pre-receive hook was run without the pusher's identity"
        for (environment, refusal) in [(["SLIPWAY_APP": "web"], noIdentity), (["SLIPWAY_APP": "web", "SLIPWAY_PUSHER": "alice"], noIdentity),
                                       (["SLIPWAY_APP": "web", "SLIPWAY_PUSHER": "carol", "SLIPWAY_PUSHER_ID": "3"], "error: the pusher carol is no longer a user")] {
            let hook = try server.slipway(["hook:pre-receive"], stdin: update, environment: environment)
            #expect(hook.status == 1 && hook.err.hasPrefix(refusal) && hook.out.isEmpty, "\(environment): \(hook)")
        }
        #expect(try server.slipway("releases", "web").err.contains("web has no releases yet"))
        #expect(try server.slipway("builds:list", "web").out.contains(String(revision.prefix(12))) == false)
        #expect(try server.slipway("apps:report", "web", "--format", "json").out.contains(revision) == false)
        #expect(try server.slipway("apps:destroy", "web", "--force").status == 0)
    }
}

// MARK: Attack tools

/// A raw TCP connection to 127.0.0.1 that says nothing unless told to: a flooder's,
/// or a client that stalls.
final class RawConnection {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, connectLoopback(fd, port: port) == 0 else {
            if fd >= 0 { close(fd) }
            throw HarnessError("cannot connect to 127.0.0.1:\(port)")
        }
    }

    deinit { close(fd) }

    func send(_ data: Data) {
        _ = data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until `enough` says so, the peer closes (closed: true), or `seconds` pass.
    func read(seconds: Double, until enough: (Data) -> Bool = { _ in false }) -> (data: Data, closed: Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !enough(data) {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return (data, false) }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, Int32(left * 1000) + 1) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 { data.append(contentsOf: buffer[0..<n]); continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            return (data, true)  // EOF or reset
        }
        return (data, false)
    }

    /// True once the server has closed the connection, false if it is still open after `seconds`.
    func waitForClose(seconds: Double) -> Bool { read(seconds: seconds).closed }
}

private func connectLoopback(_ fd: Int32, port: Int) -> Int32 {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// Keeps `connections` idle TCP connections to 127.0.0.1:`port` open, as a flooder
/// would: each one the server closes is replaced at once. It runs as a python3 child
/// process, so that its fds churn outside the test process (Foundation's Process.run
/// is not safe against fds opened and closed by other threads meanwhile). Bounded: it
/// stops after `seconds`, or after opening 1,000 times `connections` in all; `stop()`
/// ends it, and every socket closes with it.
final class IdleFlood {
    static let script = #"""
    import json, resource, select, socket, sys, time
    port, count, seconds, ready_at = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    budget = count * 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))
    poller = select.poll()
    poller.register(0, select.POLLIN)  # stdin closes: stop
    sockets = {}  # fd -> [socket, established]
    opened, held, ready, stopped = 0, 0, False, False
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline and opened < budget and not stopped:
        while len(sockets) < count and opened < budget:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                break
            sockets[s.fileno()] = [s, False]
            poller.register(s.fileno(), select.POLLIN | select.POLLOUT)
            opened += 1
        for fd, events in poller.poll(100):
            if fd == 0:
                stopped = True
                continue
            entry = sockets.get(fd)
            if entry is None:
                continue
            if events & select.POLLOUT and not entry[1]:
                entry[1] = True
                held += 1
                poller.modify(fd, select.POLLIN)
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                # Whatever the server says is read and ignored; only a close counts.
                try:
                    if entry[0].recv(4096):
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                poller.unregister(fd)
                held -= entry[1]
                entry[0].close()
                del sockets[fd]
        if not ready and (held >= ready_at or time.monotonic() > started + 20):
            ready = True
            print("ready" if held >= ready_at else "held only %d" % held, flush=True)
    print(json.dumps({"opened": opened, "held": held, "flooding": stopped}), flush=True)
    for entry in sockets.values():
        entry[0].close()
    """#

    private let process: ChildProcess
    private let input: FileHandle
    private let output: FileHandle

    init(port: Int, connections: Int, seconds: Double, readyAt: Int) throws {
        let path = try temporaryDirectory("slipway-flood") + "/flood.py"
        try Self.script.write(toFile: path, atomically: true, encoding: .utf8)
        let (inRead, inWrite) = try PosixSpawn.pipe()
        let (outRead, outWrite) = try PosixSpawn.pipe()
        defer { close(inRead); close(outWrite) }
        input = FileHandle(fileDescriptor: inWrite, closeOnDealloc: true)
        output = FileHandle(fileDescriptor: outRead, closeOnDealloc: true)
        process = try ChildProcess("/usr/bin/python3", [path, String(port), String(connections), String(seconds), String(readyAt)],
                                   stdin: .descriptor(inRead), stdout: .descriptor(outWrite))
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    /// Waits for the flood to hold `readyAt` established connections; false if it never does.
    func waitUntilReady() -> Bool {
        String(decoding: readLine(), as: UTF8.self) == "ready"
    }

    /// Stops flooding (closing every socket); returns how many connections it opened in
    /// all, and whether it was still flooding when told to stop (not out of time or budget).
    func stop() -> (opened: Int, wasFlooding: Bool) {
        try? input.close()
        let line = readLine()
        process.waitUntilExit()
        let summary = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any]
        return (summary?["opened"] as? Int ?? 0, summary?["flooding"] as? Bool ?? false)
    }

    private func readLine() -> Data {
        var line = Data()
        while true {
            let byte = output.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { return line }
            line.append(byte)
        }
    }
}

/// An OpenSSH ControlMaster connection to the test server, logged in with `key`,
/// over which later `ssh` commands run without logging in again.
final class ControlMaster {
    private let server: TestServer
    private let key: String
    private let path: String
    private let master: ChildProcess

    init(_ server: TestServer, key: String) throws {
        self.server = server
        self.key = key
        path = try temporaryDirectory("slipway-cm") + "/master"
        master = try ChildProcess("/usr/bin/ssh", server.sshOptions(key: key) + ["-N", "-o", "ControlMaster=yes", "-o", "ControlPath=\(path)",
                                                                               "-o", "ControlPersist=60", "127.0.0.1"])
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: path) {
            guard Date() < deadline, master.isRunning else { close(); throw HarnessError("the ControlMaster did not start") }
            usleep(50_000)
        }
    }

    /// `ssh <command>` through the master: no new login.
    func ssh(_ command: [String], stdin: String? = nil) throws -> Slipway.Result {
        try run("/usr/bin/ssh", server.sshOptions(key: key) + ["-o", "ControlMaster=no", "-o", "ControlPath=\(path)", "127.0.0.1"] + command,
                stdin: stdin.map { Data($0.utf8) })
    }

    func close() {
        _ = try? run("/usr/bin/ssh", ["-o", "ControlPath=\(path)", "-O", "exit", "127.0.0.1"])
        if master.isRunning { master.terminate() }
    }
}

/// A scripted client (python3-paramiko, installed by scripts/setup.sh) for what the
/// OpenSSH client will not send: forged and SHA-1 signatures, NUL in an exec string.
enum Paramiko {
    static let script = #"""
    import json, socket, sys
    import paramiko
    from paramiko.auth_handler import AuthHandler
    from paramiko.common import MSG_USERAUTH_FAILURE

    mode, port, known_hosts, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]

    # Count every USERAUTH_FAILURE the server sends.
    failure_replies = 0
    parse_failure = AuthHandler._client_handler_table[MSG_USERAUTH_FAILURE]
    def counting_failure(handler, message):
        global failure_replies
        failure_replies += 1
        return parse_failure(handler, message)
    AuthHandler._client_handler_table[MSG_USERAUTH_FAILURE] = counting_failure

    def connect():
        t = paramiko.Transport(socket.create_connection(("127.0.0.1", port), timeout=10))
        t.start_client(timeout=10)
        if t.get_remote_server_key().get_base64() != open(known_hosts).read().split()[2]:
            sys.exit("host key mismatch")
        t.auth_timeout = 5
        return t

    def load(path):
        for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            try:
                return kind.from_private_key_file(path)
            except Exception:
                pass
        sys.exit("cannot load " + path)

    def forged(key):
        sign = key.sign_ssh_data
        def bad(data, algorithm=None):
            raw = bytearray(sign(data, algorithm).asbytes())
            raw[-1] ^= 0xFF  # the signature's last byte
            return bytes(raw)
        key.sign_ssh_data = bad
        return key

    def attempt(t, key):
        if not t.is_active():
            return "closed"
        try:
            t.auth_publickey("git", key)
            return "ok"
        except paramiko.AuthenticationException as e:
            if "timeout" in str(e):
                return "timeout"
            return "failure" if t.is_active() else "closed"
        except (paramiko.SSHException, EOFError, OSError):
            return "closed"

    if mode == "badsig":
        t = connect()
        outcomes = []
        for _ in range(int(args[1])):
            outcomes.append(attempt(t, forged(load(args[0]))))
            if outcomes[-1] != "failure":
                break
        real = attempt(t, load(args[0]))
        print(json.dumps({"outcomes": outcomes, "failure_replies": failure_replies, "real_login_after": real}))
    elif mode == "sha1":
        # Sign with SHA-1 ssh-rsa whatever the server's server-sig-algs says.
        AuthHandler._finalize_pubkey_algorithm = lambda handler, key_type: "ssh-rsa"
        print(json.dumps({"login": attempt(connect(), load(args[0]))}))
    elif mode == "exec":
        t = connect()
        t.auth_publickey("git", load(args[0]))
        channel = t.open_session()
        channel.exec_command(bytes.fromhex(args[1]))
        out = channel.makefile("rb").read()
        err = channel.makefile_stderr("rb").read()
        print(json.dumps({"status": channel.recv_exit_status(), "out": out.decode("utf-8", "replace"), "err": err.decode("utf-8", "replace")}))
    """#

    /// Runs the script's `mode` against `server`; returns its JSON answer.
    static func client(_ server: TestServer, _ mode: String, _ args: String...) throws -> [String: Any] {
        let path = try temporaryDirectory("slipway-paramiko") + "/client.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        // Debian's python3, where scripts/setup.sh installs python3-paramiko.
        let result = try run("/usr/bin/python3", [path, mode, String(server.port), server.knownHosts] + args)
        guard result.status == 0, let answer = try? JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any] else {
            throw HarnessError("paramiko client (\(mode)) failed with \(result.status): \(result.err)\(result.out)\n(python3-paramiko comes with scripts/setup.sh)")
        }
        return answer
    }
}
