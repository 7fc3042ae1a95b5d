import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// `run` end to end: real ssh, git, and engine.
@Suite("Ephemeral run end to end", .serialized)
struct RunTests {
    let engine = DockerEngine.locate(configured: nil)

    /// A server with alice (admin) and a pushed Procfile app `web`.
    func deployedApp() throws -> (TestServer, TestUser) {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\n".utf8)])
        let push = try server.git(alice.key, ["push", "-q", server.url("web"), "main"], in: repo)
        precondition(push.status == 0, push.err)
        return (server, alice)
    }

    func leftovers() async throws -> [ContainerSummary] {
        try await engine.listContainers(labels: ["org.slipway.kind": "run"])
    }

    @Test func exitStatusStdinAndConfigReachTheCommand() async throws {
        let (server, alice) = try deployedApp()
        #expect(try server.ssh(alice.key, ["run", "web", "sh", "-c", "'exit 7'"]).status == 7)
        let echoed = try server.ssh(alice.key, ["run", "web", "cat"], stdin: "hi\n")
        #expect(echoed.status == 0 && echoed.out == "hi\n")
        #expect(try server.ssh(alice.key, ["config:set", "web", "'GREETING=hello world'"]).status == 0)
        let env = try server.ssh(alice.key, "run", "web", "env")
        #expect(env.out.split(separator: "\n").contains("GREETING=hello world"))
        let split = try server.ssh(alice.key, ["run", "web", "sh", "-c", "'echo out; echo err >&2'"])
        #expect(split.out == "out\n" && split.err == "err\n")
        #expect(try server.ssh(alice.key, "run", "web", "id", "-un").out == "app\n")
    }

    @Test func storagePersistsAndEverythingElseIsDiscardedWithANotice() async throws {
        let (server, alice) = try deployedApp()
        #expect(try server.ssh(alice.key, "storage:mount", "web", "data:/app/data").status == 0)
        let write = try server.ssh(alice.key, ["run", "web", "sh", "-c", "'echo kept > /app/data/file; echo lost > /app/scratch.txt'"])
        #expect(write.status == 0, "\(write.err)")
        #expect(write.err.contains("-----> Discarded"))
        #expect(write.err.contains("       /app/scratch.txt"))
        #expect(!write.err.contains("/app/data"))
        #expect(write.err.contains("storage:mount web"))
        // The app's non-root user wrote to managed storage; the next run reads it, the scratch file is gone.
        let read = try server.ssh(alice.key, ["run", "web", "sh", "-c", "'cat /app/data/file; ls /app/scratch.txt'"])
        #expect(read.out == "kept\n")
        #expect(read.status != 0 && !read.err.contains("Discarded"))
        // A new push keeps the storage.
        let repo = try makeRepository(["Procfile": Data("web: python3 -m http.server $PORT\nworker: sleep 1\n".utf8)])
        #expect(try server.git(alice.key, ["push", "-q", "-f", server.url("web"), "main"], in: repo).status == 0)
        #expect(try server.ssh(alice.key, "run", "web", "cat", "/app/data/file").out == "kept\n")
        // A readonly mount refuses writes.
        #expect(try server.ssh(alice.key, "storage:mount", "web", "data:/ro", "--readonly").status == 0)
        let refused = try server.ssh(alice.key, ["run", "web", "sh", "-c", "'echo x > /ro/y'"])
        #expect(refused.status != 0 && refused.err.contains("Read-only file system"))
    }

    @Test func noContainerIsLeftBehindEvenWhenTheClientIsKilled() async throws {
        let (server, alice) = try deployedApp()
        for _ in 0..<16 { #expect(try server.ssh(alice.key, "run", "web", "true").status == 0) }
        // Four clients killed while their command runs.
        for _ in 0..<4 {
            // Its stdin a pipe left open, as a user's terminal is.
            let (read, write) = try PosixSpawn.pipe()
            defer { close(write) }
            let process = try ChildProcess("/usr/bin/ssh", server.sshOptions(key: alice.key) + ["127.0.0.1", "run", "web", "sleep", "600"],
                                           stdin: .descriptor(read))
            close(read)
            usleep(1_500_000)
            process.signal(SIGINT)
            process.signal(SIGKILL)
            process.wait()
        }
        // Only this server's kind: runs over SSH (stale ones from elsewhere go when a server starts).
        func mine(_ c: ContainerSummary) -> Bool { c.labels["org.slipway.app"] == "web" && c.labels["org.slipway.origin"] == "ssh" }
        var remaining = try await leftovers().filter(mine)
        for _ in 0..<40 where !remaining.isEmpty {
            usleep(250_000)
            remaining = try await leftovers().filter(mine)
        }
        #expect(remaining.isEmpty, "\(remaining.map(\.names))")
    }

    @Test func withATerminalTheCommandGetsATtyOfTheClientsSize() async throws {
        let (server, alice) = try deployedApp()
        // script(1) gives ssh a real terminal of a known size, as an interactive user has.
        func throughATerminal(_ command: [String]) throws -> Slipway.Result {
            let line = (["/usr/bin/ssh", "-tt"] + server.sshOptions(key: alice.key) + ["127.0.0.1"] + command)
                .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            return try run("/usr/bin/script", ["-qec", "stty cols 123 rows 45; " + line, "/dev/null"])
        }
        let result = try throughATerminal(["run", "web", "sh", "-c", "'tty; sleep 0.5; stty size; echo TERM=$TERM; exit 3'"])
        #expect(result.status == 3, "\(result.out)")
        #expect(result.out.contains("/dev/pts/"))
        #expect(result.out.contains("45 123\r\n"))
        #expect(result.out.contains("TERM=xterm") || result.out.contains("TERM=screen") || result.out.contains("TERM=dumb"))
        // Other commands write CR LF line ends that the client's raw-mode terminal shows properly.
        let listed = try throughATerminal(["apps:list"])
        #expect(listed.status == 0 && listed.out.contains("web\r\n"), "\(listed.out)")
        // Without -t there is no tty.
        #expect(try server.ssh(alice.key, "run", "web", "tty").status != 0)
    }

    @Test func detachedRunsAreListedStoppedAndGoWhenTheyEnd() async throws {
        let (server, alice) = try deployedApp()
        let started = try server.ssh(alice.key, "run:detached", "web", "sleep", "600")
        #expect(started.status == 0, "\(started.err)")
        let name = started.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(name.hasPrefix("web.detached."))
        let listed = try server.ssh(alice.key, "run:list", "web")
        #expect(listed.status == 0 && listed.out.contains(name) && listed.out.contains("sleep 600") && listed.out.contains("alice"), "\(listed.out)")
        let bob = try TestUser.register("bob", on: server.slipway)
        #expect(try server.ssh(bob.key, "run:list", "web").status == 1)
        #expect(try server.ssh(bob.key, "run:stop", "web", name).status == 1)
        let unknown = try server.ssh(alice.key, "run:stop", "web", "web.detached.nothere")
        #expect(unknown.status == 1 && unknown.err.contains("run:list web"))

        #expect(try server.ssh(alice.key, "run:stop", "web", name).status == 0)
        #expect(try await engine.listContainers(labels: ["org.slipway.app": "web"]).allSatisfy { !$0.names.contains { $0.hasSuffix(name) } })
        #expect(try server.ssh(alice.key, "run:list", "web").err.contains("no running one-off containers"))
        // One that ends by itself is removed by the engine.
        let brief = try server.ssh(alice.key, "run:detached", "web", "true").out.trimmingCharacters(in: .whitespacesAndNewlines)
        var present = true
        for _ in 0..<80 where present {
            usleep(250_000)
            present = try await engine.listContainers(labels: ["org.slipway.app": "web"]).contains { $0.names.contains { $0.hasSuffix(brief) } }
        }
        #expect(!present)
    }

    @Test func tenantsCannotRunOthersAppsAndNeedABuild() async throws {
        let (server, alice) = try deployedApp()
        let bob = try TestUser.register("bob", on: server.slipway)
        let hidden = try server.ssh(bob.key, "run", "web", "id")
        #expect(hidden.status == 1 && hidden.err.contains("app \"web\" not found"))
        #expect(try server.ssh(alice.key, "apps:create", "empty").status == 0)
        let unbuilt = try server.ssh(alice.key, "run", "empty", "true")
        #expect(unbuilt.status == 1 && unbuilt.err.contains("has no build yet"))
    }

    @Test func runContainersLostByACrashedServerGoOnTheNextStart() async throws {
        let (server, _) = try deployedApp()
        var orphan = ContainerSpec(image: BuilderImage.reference, command: ["sleep", "600"])
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8)
        orphan.labels = ["org.slipway.app": "web", "org.slipway.kind": "run", "org.slipway.origin": "ssh", "org.slipway.instance": instance]
        var local = orphan
        local.labels["org.slipway.origin"] = "local"
        local.labels["org.slipway.app"] = "local-\(UUID().uuidString.prefix(8).lowercased())"
        // Another server's run over SSH, on the same engine: not this server's to remove.
        var foreign = orphan
        foreign.labels["org.slipway.instance"] = "another-server"
        let orphanID = try await engine.createContainer(orphan)
        let localID = try await engine.createContainer(local)
        let foreignID = try await engine.createContainer(foreign)
        #expect(server.stop() == 0)
        let restarted = try TestServer(slipway: server.slipway)
        _ = restarted.port
        let remaining = Set(try await leftovers().map(\.id))
        #expect(!remaining.contains(orphanID))
        #expect(remaining.contains(localID))
        #expect(remaining.contains(foreignID))
        try await engine.removeContainer(localID, force: true)
        try await engine.removeContainer(foreignID, force: true)
    }
}
