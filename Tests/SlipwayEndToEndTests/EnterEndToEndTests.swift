import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// `enter` end to end: real ssh, git and engine, a command inside a running process.
@Suite("enter end to end", .serialized)
struct EnterEndToEndTests {
    let engine = DockerEngine.locate(configured: nil)

    /// A server with alice (admin) and a pushed Procfile app `web`.
    func deployedApp() throws -> (TestServer, TestUser) {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let push = try server.git(alice.key, ["push", "-q", server.url("web"), "main"], in: try Self.repository())
        precondition(push.status == 0, push.err)
        return (server, alice)
    }

    static func repository() throws -> String {
        try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8)])
    }

    @Test func aCommandRunsInTheRunningProcessAsItsUserWithItsExitStatus() async throws {
        let (server, alice) = try deployedApp()
        let cmdline = try server.ssh(alice.key, "enter", "web", "web.1", "cat", "/proc/1/cmdline")
        #expect(cmdline.status == 0 && cmdline.out.contains("http.server"), "\(cmdline.err)")
        #expect(try server.ssh(alice.key, ["enter", "web", "web.1", "sh", "-c", "'exit 7'"]).status == 7)
        #expect(try server.ssh(alice.key, ["enter", "web", "web", "sh", "-c", "'exit 8'"]).status == 8)
        #expect(try server.ssh(alice.key, "enter", "web", "--", "id", "-un").out == "app\n")
        // In the app's user namespace: its root is not the host's.
        let map = try server.ssh(alice.key, "enter", "web", "web.1", "cat", "/proc/self/uid_map")
        let fields = map.out.split(whereSeparator: { $0 == " " || $0 == "\n" })
        #expect(fields.count >= 3 && fields[0] == "0" && fields[1] != "0", "\(map.out)")
        // stdin, stdout and stderr, apart; no tty without ssh -t.
        #expect(try server.ssh(alice.key, ["enter", "web", "web.1", "cat"], stdin: "hi\n").out == "hi\n")
        let split = try server.ssh(alice.key, ["enter", "web", "web.1", "sh", "-c", "'echo out; echo err >&2'"])
        #expect(split.out == "out\n" && split.err == "err\n")
        #expect(try server.ssh(alice.key, "enter", "web", "web.1", "tty").status != 0)
        // The default is a shell, reading its commands from stdin here.
        let shell = try server.ssh(alice.key, ["enter", "web"], stdin: "echo \"in $(hostname)\"; exit 5\n")
        #expect(shell.status == 5 && shell.out.hasPrefix("in "), "\(shell.out) \(shell.err)")
        // The app's config is the process's environment.
        #expect(try server.ssh(alice.key, "enter", "web", "web.1", "printenv", "PORT").out == "5000\n")
    }

    @Test func whatItWritesStaysInThatContainerAndTheNoticeSaysSo() async throws {
        let (server, alice) = try deployedApp()
        let write = try server.ssh(alice.key, ["enter", "web", "web.1", "sh", "-c", "'echo kept-here > /app/scratch.txt'"])
        #expect(write.status == 0, "\(write.err)")
        #expect(write.err.contains("-----> Written outside persistent storage: these paths stay only in this container (web.1) until its next deploy or restart:"), "\(write.err)")
        #expect(write.err.contains("       /app/scratch.txt\n"))
        // Still there for the next enter (same container), and not named again.
        let read = try server.ssh(alice.key, "enter", "web", "web.1", "cat", "/app/scratch.txt")
        #expect(read.out == "kept-here\n" && read.err.isEmpty, "\(read.err)")
        // Gone after a restart.
        #expect(try server.ssh(alice.key, "ps:restart", "web").status == 0)
        #expect(try server.ssh(alice.key, "enter", "web", "web.1", "cat", "/app/scratch.txt").status != 0)
    }

    @Test func withATerminalTheCommandGetsATty() async throws {
        let (server, alice) = try deployedApp()
        func throughATerminal(_ command: [String]) throws -> Slipway.Result {
            let line = (["/usr/bin/ssh", "-tt"] + server.sshOptions(key: alice.key) + ["127.0.0.1"] + command)
                .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            return try run("/usr/bin/script", ["-qec", "stty cols 123 rows 45; " + line, "/dev/null"])
        }
        let result = try throughATerminal(["enter", "web", "web.1", "sh", "-c", "'tty; sleep 0.5; stty size; echo TERM=$TERM; exit 3'"])
        #expect(result.status == 3, "\(result.out)")
        #expect(result.out.contains("/dev/pts/"), "\(result.out)")
        #expect(result.out.contains("45 123\r\n"), "\(result.out)")
        #expect(result.out.contains("TERM=xterm") || result.out.contains("TERM=screen") || result.out.contains("TERM=dumb"))
    }

    @Test func readersStrangersAndForgedProcessesReachNothing() async throws {
        let (server, alice) = try deployedApp()
        let bob = try TestUser.register("bob", on: server.slipway)
        let carol = try TestUser.register("carol", on: server.slipway)
        #expect(try server.ssh(alice.key, "acl:add", "web", "carol", "read").status == 0)
        let stranger = try server.ssh(bob.key, "enter", "web", "web.1", "echo", "PWNED")
        #expect(stranger.status == 1 && stranger.err.contains("app \"web\" not found") && !stranger.out.contains("PWNED"), "\(stranger.err)")
        let reader = try server.ssh(carol.key, "enter", "web", "web.1", "echo", "PWNED")
        #expect(reader.status == 1 && !reader.out.contains("PWNED"), "\(reader.err)")

        // bob's own app, deployed; then alice's process named every way bob can think of.
        let push = try server.git(bob.key, ["push", "-q", server.url("bobs"), "main"], in: try Self.repository())
        #expect(push.status == 0, "\(push.err)")
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let victim = try #require(try await engine.listContainers(labels: ["org.slipway.app": "web", "org.slipway.instance": instance, "org.slipway.kind": "process"]).first)
        for forged in ["../web.web.1", "web.web.1", victim.id, String(victim.id.prefix(12)), "web.1/../../web", "/web.web.1", "web.1;echo"] {
            let result = try server.ssh(bob.key, ["enter", "bobs", "'\(forged)'", "echo", "PWNED"])
            #expect(result.status == 1 && !result.out.contains("PWNED"), "\(forged): \(result.out)")
            #expect(result.err.contains("(running: web.1)"), "\(forged): \(result.err)")
        }
        // bob's own process is reachable.
        #expect(try server.ssh(bob.key, "enter", "bobs", "web.1", "echo", "mine").out == "mine\n")
        let unknown = try server.ssh(alice.key, "enter", "web", "worker.2", "true")
        #expect(unknown.status == 1 && unknown.err.contains("web has no running process \"worker.2\" (running: web.1)"), "\(unknown.err)")
    }
}
