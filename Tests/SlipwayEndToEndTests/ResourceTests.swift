import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// Resource limits end to end: real ssh, git, podman, and what the kernel does at the limit.
@Suite("Resource limits end to end", .serialized)
struct ResourceEndToEndTests {
    let engine = DockerEngine.locate(configured: nil)

    /// The limits as the container itself sees them: memory bytes, pids, CPU quota per
    /// 100 ms (cgroups v1 or v2). No single quotes: it travels inside an SSH exec string.
    static let cgroupLimits = """
        if [ -e /sys/fs/cgroup/memory.max ]; then cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; cut -d" " -f1 /sys/fs/cgroup/cpu.max; \
        else cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us; fi
        """

    /// Forks at most 200 sleeping children whatever the limit, then kills them: bounded
    /// even if the pids limit failed. Prints how many forks succeeded.
    static let boundedForks = """
        import os, time
        kids = []
        try:
            for i in range(200):
                pid = os.fork()
                if pid == 0:
                    time.sleep(20)
                    os._exit(0)
                kids.append(pid)
        except OSError:
            print("fork refused")
        for kid in kids:
            os.kill(kid, 9)
        print("forked", len(kids))
        """

    /// A server with alice (admin) and bob, whose pushed Procfile app `web` he owns.
    func deployedApp(procfile: String = "web: python3 -m http.server $PORT\n") throws -> (TestServer, TestUser, TestUser, String) {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let bob = try TestUser.register("bob", on: server.slipway)
        let repo = try makeRepository(["Procfile": Data(procfile.utf8)])
        let push = try server.git(bob.key, ["push", "-q", server.url("web"), "main"], in: repo)
        precondition(push.status == 0, push.err)
        return (server, alice, bob, repo)
    }

    /// Replaces the repo's files with `files` and commits them.
    func commit(_ repo: String, _ files: [String: String]) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: repo) where name != ".git" {
            try FileManager.default.removeItem(atPath: repo + "/" + name)
        }
        for (name, text) in files { try text.write(toFile: repo + "/" + name, atomically: true, encoding: .utf8) }
        let env = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"]
        #expect(try run("/usr/bin/git", ["-C", repo, "add", "-A"]).status == 0)
        #expect(try run("/usr/bin/git", ["-C", repo, "commit", "-q", "-m", "next"], environment: env).status == 0)
    }

    @Test func aRunSeesItsLimitsAndIsStoppedAtThem() async throws {
        let (server, _, bob, repo) = try deployedApp()
        // apps:destroy removes the app's images too.
        defer { _ = try? server.ssh(bob.key, "apps:destroy", "web", "--force"); server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: repo) }
        // Nothing set: the server's defaults (512m, 1 CPU, 512 pids).
        let defaults = try server.ssh(bob.key, ["run", "web", "sh", "-c", "'\(Self.cgroupLimits)'"])
        #expect(defaults.status == 0 && defaults.out == "536870912\n512\n100000\n", "\(defaults.out) \(defaults.err)")

        let set = try server.ssh(bob.key, "resource:limit", "--memory", "64m", "--cpu", "0.5", "--pids", "100", "--process-type", "run", "web")
        #expect(set.status == 0, "\(set.err)")
        #expect(set.out.contains("=====> Setting resource limits for web (run)") && set.out.contains("memory: 64m")
                && set.out.contains("takes effect at the next deploy or ps:restart web"), "\(set.out)")
        let seen = try server.ssh(bob.key, ["run", "web", "sh", "-c", "'\(Self.cgroupLimits)'"])
        #expect(seen.status == 0 && seen.out == "67108864\n100\n50000\n", "\(seen.out) \(seen.err)")

        // Past its memory: the kernel kills it, and the user is told why and what to run.
        let oom = try server.ssh(bob.key, ["run", "web", "python3", "-c", "'b = bytearray(300 * 1024 * 1024)'"])
        #expect(oom.status == 137)
        #expect(oom.err.contains("error: the run of web was killed") && oom.err.contains("more than its 64 MiB memory limit; raise it with resource:limit --memory 128m --process-type run web"), "\(oom.err)")
        // Under it, the same program is fine.
        #expect(try server.ssh(bob.key, ["run", "web", "python3", "-c", "'b = bytearray(30 * 1024 * 1024)'"]).status == 0)

        // A fork loop stops at the pids limit (bounded at 200 forks, killed at once, under a timeout).
        let forks = try server.ssh(bob.key, ["run", "web", "timeout", "60", "python3", "-c", "'\(Self.boundedForks)'"])
        #expect(forks.status == 0, "\(forks.err)")
        let count = forks.out.split(separator: "\n").last.flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1
        #expect(forks.out.hasPrefix("fork refused\n") && (50..<100).contains(count), "\(forks.out)")

        // The run type's values go; the app's processes never had them.
        #expect(try server.ssh(bob.key, "resource:limit-clear", "--process-type", "run", "web").status == 0)
        #expect(try server.ssh(bob.key, ["run", "web", "sh", "-c", "'\(Self.cgroupLimits)'"]).out == "536870912\n512\n100000\n")
        let web = try await processes(server).first { $0.labels["org.slipway.type"] == "web" }
        let details = try await engine.inspectContainer(try #require(web).id)
        #expect(details?.memoryLimit == 512 << 20)
    }

    @Test func processTypesOverrideTheAppAndTasksAndBuildsAreLimitedToo() async throws {
        let (server, _, bob, repo) = try deployedApp(procfile: "web: python3 -m http.server $PORT\nworker: sleep 1000\n")
        defer { _ = try? server.ssh(bob.key, "apps:destroy", "web", "--force"); server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: repo) }
        #expect(try server.ssh(bob.key, "resource:limit", "--memory", "256m", "web").status == 0)
        #expect(try server.ssh(bob.key, "resource:limit", "--memory", "128m", "--process-type", "worker", "web").status == 0)
        // Applied at the next restart, per type.
        let scale = try server.ssh(bob.key, "ps:scale", "web", "worker=1")
        #expect(scale.status == 0, "\(scale.out) \(scale.err)")
        let restart = try server.ssh(bob.key, "ps:restart", "web")
        #expect(restart.status == 0, "\(restart.out) \(restart.err)")
        var limits: [String: Int64] = [:]
        for process in try await processes(server) {
            limits[process.labels["org.slipway.type"] ?? "?"] = try await engine.inspectContainer(process.id)?.memoryLimit
        }
        #expect(limits == ["web": 256 << 20, "worker": 128 << 20])
        let report = try server.ssh(bob.key, "resource:report", "web")
        #expect(report.out.contains("=====> web resource information"), "\(report.out)")
        let rows = report.out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(rows.contains { $0.hasPrefix("worker 128m (worker) 1 (server) 512 (server)") }, "\(report.out)")
        #expect(rows.contains { $0.hasPrefix("web 256m (app)") }, "\(report.out)")

        // A release task past its memory fails the deploy with the reason; v-current keeps serving.
        #expect(try server.ssh(bob.key, "resource:limit", "--memory", "64m", "web").status == 0)
        try commit(repo, ["Procfile": "web: python3 -m http.server $PORT\nrelease: python3 -c \"b = bytearray(300 * 1024 * 1024)\"\n"])
        let push = try server.git(bob.key, ["push", server.url("web"), "main"], in: repo)
        #expect(push.status != 0)
        #expect(push.err.contains("the predeploy task") && push.err.contains("was killed") && push.err.contains("more than its 64 MiB memory limit; raise it with resource:limit --memory 128m web")
                && push.err.contains("web still serves v"), "\(push.err)")

        // A web process past its memory fails its check, saying so.
        try commit(repo, ["Procfile": "web: python3 -c \"import time; b = bytearray(300 * 1024 * 1024); time.sleep(100)\"\n"])
        let web = try server.git(bob.key, ["push", server.url("web"), "main"], in: repo)
        #expect(web.status != 0)
        #expect(web.err.contains("web.web.1 was killed") && web.err.contains("more than its 64 MiB memory limit; raise it with resource:limit --memory 128m --process-type web web"), "\(web.err)")

        // A build step past its memory: the build's type is `build`.
        #expect(try server.ssh(bob.key, "resource:limit", "--memory", "64m", "--process-type", "build", "web").status == 0)
        try commit(repo, ["Dockerfile": "FROM \(BuilderImage.reference)\nRUN python3 -c \"b = bytearray(300 * 1024 * 1024)\"\nCMD [\"python3\", \"-m\", \"http.server\", \"5000\"]\n"])
        let build = try server.git(bob.key, ["push", server.url("web"), "main"], in: repo)
        #expect(build.status != 0)
        #expect(build.err.contains("the build was killed at STEP") && build.err.contains("more than its 64 MiB memory limit; raise it with resource:limit --memory 128m --process-type build web"), "\(build.err)")
    }

    /// ATTACK: a writer without admin rights asks for more than the server allows, for
    /// "no limit" (0, -1), for raw engine options, or a reader tries to set anything.
    /// EXPECTED: `error:`, a non-zero exit, and the report unchanged.
    @Test func capsAccessAndHostileValuesOverSSH() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp() }
        let bob = try TestUser.register("bob", on: server.slipway)
        let carol = try TestUser.register("carol", on: server.slipway)
        let dave = try TestUser.register("dave", on: server.slipway)
        #expect(try server.ssh(bob.key, "apps:create", "web").status == 0)
        #expect(try server.ssh(bob.key, "acl:add", "web", "carol", "write").status == 0)
        #expect(try server.ssh(bob.key, "acl:add", "web", "dave", "read").status == 0)
        #expect(try server.ssh(carol.key, "resource:limit", "--memory", "256m", "--pids", "200", "web").status == 0)
        let before = try server.ssh(dave.key, "resource:report", "web", "--format", "json")
        #expect(before.status == 0 && before.out.contains("\"memory\":268435456"), "\(before.out)")

        let capped = try server.ssh(bob.key, "resource:limit", "--memory", "8g", "web")
        #expect(capped.status == 1 && capped.err == "error: --memory 8g is more than this server allows (the server allows at most 4g; ask an admin)\n")
        let hostile: [[String]] = [
            ["--memory", "0"], ["--memory=-1"], ["--memory", "99999999999999999999g"], ["--memory", "'512m --privileged'"], ["--cpu", "0"],
            ["--cpu", "1000"], ["--pids", "0"], ["--pids=-1"], ["--memory-swap", "-1"], ["--privileged"], ["--process-type", "'../x'"],
        ]
        for words in hostile {
            let result = try server.ssh(bob.key, ["resource:limit"] + words + ["web"])
            #expect(result.status != 0 && result.err.hasPrefix("error: "), "\(words): \(result.err)")
        }
        let reader = try server.ssh(dave.key, "resource:limit", "--memory", "1g", "web")
        #expect(reader.status == 1 && reader.err.hasPrefix("error: "), "\(reader.err)")
        #expect(try server.ssh(dave.key, "resource:limit-clear", "web").status == 1)
        #expect(try server.ssh(dave.key, "resource:report", "web", "--format", "json").out == before.out)
        // The audit log shows the change and the refusals.
        let events = try server.ssh(bob.key, "events", "-n", "30")
        #expect(events.out.contains("memory 256m, pids 200") && events.out.contains("more than this server allows"), "\(events.out)")
    }

    func processes(_ server: TestServer) async throws -> [ContainerSummary] {
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8)
        return try await engine.listContainers(labels: ["org.slipway.app": "web", "org.slipway.kind": "process", "org.slipway.instance": instance])
    }
}
