import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// Push to deploy, end to end: real ssh, git, podman, nginx, and HTTP to the app.
@Suite("Deploys end to end", .serialized)
struct DeployTests {
    let engine = DockerEngine.locate(configured: nil)

    /// An HTTP server on $PORT answering "<GREETING> <version>"; /marker tells
    /// whether /app/marker exists in the running container.
    static func appFiles(_ version: String, procfile: String = "web: python3 server.py\n", appJSON: String? = nil,
                         dockerfile: String? = nil) -> [String: Data] {
        var files = [
            "server.py": Data("""
                import http.server, os
                class H(http.server.BaseHTTPRequestHandler):
                    def do_GET(self):
                        if self.path == "/marker":
                            text = "marker present" if os.path.exists("/app/marker") else "marker absent"
                        else:
                            text = os.environ.get("GREETING", "hello") + " \(version)"
                        body = (text + "\\n").encode()
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    def log_message(self, *args):
                        print("request", self.path, flush=True)
                http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()

                """.utf8),
        ]
        if let dockerfile { files["Dockerfile"] = Data(dockerfile.utf8) } else { files["Procfile"] = Data(procfile.utf8) }
        if let appJSON { files["app.json"] = Data(appJSON.utf8) }
        return files
    }

    func start() throws -> (TestServer, TestUser) {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        return (server, alice)
    }

    /// Replaces the repo's files with `files` and commits them.
    func commit(_ repo: String, _ files: [String: Data], message: String) throws {
        for name in (try FileManager.default.contentsOfDirectory(atPath: repo)) where name != ".git" {
            try FileManager.default.removeItem(atPath: repo + "/" + name)
        }
        for (name, data) in files { try data.write(to: URL(fileURLWithPath: repo + "/" + name)) }
        let env = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"]
        #expect(try run("/usr/bin/git", ["-C", repo, "add", "-A"]).status == 0)
        #expect(try run("/usr/bin/git", ["-C", repo, "commit", "-q", "-m", message], environment: env).status == 0)
    }

    func get(_ url: String, host: String? = nil) throws -> (status: Int, body: String) {
        let result = try run("/usr/bin/curl", ["-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}", url])
        // The body, then a newline and the status that -w adds.
        guard let split = result.out.lastIndex(of: "\n") else { return (0, result.out) }
        return (Int(result.out[result.out.index(after: split)...]) ?? 0, String(result.out[..<split]))
    }

    func body(_ server: TestServer, _ app: String = "web", path: String = "") throws -> String {
        try get(server.slipway.url(app) + path).body
    }

    /// This server's containers of the app, by kind.
    func containers(_ server: TestServer, _ app: String, kind: String = "process") async throws -> [ContainerSummary] {
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8)
        return try await engine.listContainers(labels: ["org.slipway.app": app, "org.slipway.kind": kind, "org.slipway.instance": instance])
    }

    @Test func pushDeploysAndFiveRedeploysDropNoRequest() async throws {
        let (server, alice) = try start()
        let repo = try makeRepository(Self.appFiles("v1"))
        let first = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(first.status == 0, "\(first.err)")
        let remoteLines = first.err.split(separator: "\n").filter { $0.hasPrefix("remote:") }
        #expect(remoteLines.last?.contains("=====> Application deployed: http://web.localhost:\(server.slipway.proxyPort)") == true, "\(first.err)")
        #expect(first.err.contains("-----> Releasing web v1"))
        #expect(try body(server) == "hello v1\n")

        // A steady request loop through the proxy while five pushes redeploy.
        let loop = RequestLoop(url: server.slipway.url("web"))
        loop.start()
        for version in 2...6 {
            try commit(repo, Self.appFiles("v\(version)"), message: "v\(version)")
            let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
            #expect(push.status == 0, "\(push.err)")
            #expect(try body(server) == "hello v\(version)\n")
        }
        let (requests, failures) = loop.stop()
        #expect(requests > 20)
        #expect(failures.isEmpty, "\(failures.prefix(5))")

        let releases = try server.ssh(alice.key, "releases", "web")
        #expect(releases.status == 0 && releases.out.contains("v6 *") && releases.out.contains("v1 "), "\(releases.out)")
        // One web container, under its plain name; the old ones were retired.
        let running = try await containers(server, "web")
        #expect(running.map(baseName) == ["web.web.1"], "\(running.map(\.name))")
        let logs = try server.ssh(alice.key, "logs", "web", "-n", "5")
        #expect(logs.status == 0 && logs.out.contains("web[web.1]: request /"), "\(logs.out) \(logs.err)")
    }

    @Test func anAppThatNeverBecomesHealthyIsRejectedAndTheOldOneKeepsServing() async throws {
        let (server, alice) = try start()
        let repo = try makeRepository(Self.appFiles("v1"))
        #expect(try server.git(alice.key, ["push", server.url("web"), "main"], in: repo).status == 0)
        let good = try run("/usr/bin/git", ["-C", repo, "rev-parse", "HEAD"]).out.trimmingCharacters(in: .whitespacesAndNewlines)

        let checks = #"{"healthchecks": {"web": [{"path": "/", "attempts": 2, "wait": 1, "timeout": 1}]}}"#
        try commit(repo, Self.appFiles("v2", procfile: "web: sleep 1000\n", appJSON: checks), message: "never listens")
        let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(push.status != 0)
        #expect(push.err.contains("deploy of v2 failed") && push.err.contains("web still serves v1"), "\(push.err)")
        #expect(push.err.contains("pre-receive hook declined"))
        let remote = try server.git(alice.key, ["ls-remote", server.url("web"), "refs/heads/main"])
        #expect(remote.out.hasPrefix(good), "\(remote.out)")
        #expect(try body(server) == "hello v1\n")
        let releases = try server.ssh(alice.key, "releases", "web")
        #expect(releases.out.contains("v2 ") && releases.out.contains("failed") && releases.out.contains("v1 *"), "\(releases.out)")
        // Rollback only to a release that once served.
        let toFailed = try server.ssh(alice.key, "releases:rollback", "web", "v2")
        #expect(toFailed.status == 1 && toFailed.err.contains("v2 of web never deployed successfully"), "\(toFailed.err)")
        let toMissing = try server.ssh(alice.key, "releases:rollback", "web", "v99")
        #expect(toMissing.status == 1 && toMissing.err.contains("web has no release v99; releases web lists them"), "\(toMissing.err)")
        #expect(try server.ssh(alice.key, "releases:rollback", "web", "latest").err.contains("is not a release such as v3"))
        let nothingEarlier = try server.ssh(alice.key, "releases:rollback", "web")
        #expect(nothingEarlier.status == 1 && nothingEarlier.err.contains("no earlier successful release"), "\(nothingEarlier.err)")
        #expect(try await containers(server, "web").count == 1)

        // A process that exits at once fails fast, with its last log lines.
        try commit(repo, Self.appFiles("v3", procfile: "web: sh -c 'echo boom; exit 3'\n"), message: "crashes")
        let crash = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(crash.status != 0 && crash.err.contains("| boom"), "\(crash.err)")
        // Its real exit status (never the 0 the engine shows between restarts), and the
        // log lines on lines of their own, after the summary.
        #expect(crash.err.contains("exited with status 3") && !crash.err.contains("status 0"), "\(crash.err)")
        let boom = crash.err.split(separator: "\n").filter { $0.contains("| boom") }
        #expect(!boom.isEmpty && boom.allSatisfy { !$0.contains("still serves") }, "\(crash.err)")
        #expect(try body(server) == "hello v1\n")
    }

    @Test func deployTasksKeepOnlyWhatTheyWriteToStorage() async throws {
        let (server, alice) = try start()
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        #expect(try server.ssh(alice.key, "storage:mount", "web", "data:/app/data").status == 0)
        let tasks = #"{"scripts": {"dokku": {"predeploy": "touch /app/marker && echo from-predeploy > /app/data/task.txt", "postdeploy": "echo postdeploy ran"}}}"#
        let repo = try makeRepository(Self.appFiles("v1", procfile: "web: python3 server.py\nrelease: echo release task ran\n", appJSON: tasks))
        let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        #expect(push.err.contains("-----> Running predeploy task: touch /app/marker"))
        #expect(push.err.contains("release task ran") && push.err.contains("postdeploy ran"))
        #expect(push.err.contains("-----> Discarded") && push.err.contains("       /app/marker"), "\(push.err)")
        #expect(try body(server, path: "marker") == "marker absent\n")
        #expect(try server.ssh(alice.key, "run", "web", "ls", "/app/marker").status != 0)
        #expect(try server.ssh(alice.key, "run", "web", "cat", "/app/data/task.txt").out == "from-predeploy\n")
        #expect(try await containers(server, "web", kind: "task").isEmpty)
        // A failing task stops the deploy before anything starts.
        try commit(repo, Self.appFiles("v2", appJSON: #"{"scripts": {"dokku": {"predeploy": "echo migrating; exit 4"}}}"#), message: "bad task")
        let failed = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(failed.status != 0 && failed.err.contains("predeploy task") && failed.err.contains("exited with status 4"), "\(failed.err)")
        #expect(try body(server) == "hello v1\n")
    }

    @Test func rollbackConfigAndScale() async throws {
        let (server, alice) = try start()
        let repo = try makeRepository(Self.appFiles("v1", procfile: "web: python3 server.py\nworker: sleep 100000\n"))
        #expect(try server.git(alice.key, ["push", server.url("web"), "main"], in: repo).status == 0)
        try commit(repo, Self.appFiles("v2", procfile: "web: python3 server.py\nworker: sleep 100000\n"), message: "v2")
        #expect(try server.git(alice.key, ["push", server.url("web"), "main"], in: repo).status == 0)
        #expect(try body(server) == "hello v2\n")

        let rollback = try server.ssh(alice.key, "releases:rollback", "web", "v1")
        #expect(rollback.status == 0 && rollback.out.contains("rollback to v1") && !rollback.out.contains("Building"), "\(rollback.out)\(rollback.err)")
        #expect(try body(server) == "hello v1\n")

        let set = try server.ssh(alice.key, "config:set", "web", "GREETING=hi")
        #expect(set.status == 0 && set.out.contains("Releasing web v4 (config change)"), "\(set.out)\(set.err)")
        #expect(try body(server) == "hi v1\n")
        #expect(try server.ssh(alice.key, "config:set", "--no-restart", "web", "GREETING=yo").status == 0)
        #expect(try body(server) == "hi v1\n")
        #expect(try server.ssh(alice.key, "ps:restart", "web").status == 0)
        #expect(try body(server) == "yo v1\n")

        let scale = try server.ssh(alice.key, "ps:scale", "web", "worker=2")
        #expect(scale.status == 0, "\(scale.err)")
        var running = try await containers(server, "web").filter { $0.state == "running" }
        #expect(running.map(baseName).sorted() == ["web.web.1", "web.worker.1", "web.worker.2"], "\(running.map(\.name))")
        let report = try server.ssh(alice.key, "ps:report", "web")
        #expect(report.out.contains("web=1 worker=2"), "\(report.out)")

        #expect(try server.ssh(alice.key, "ps:stop", "web").status == 0)
        #expect(try await containers(server, "web").filter { $0.state == "running" }.isEmpty)
        let stopped = try get(server.slipway.url("web"))
        #expect(stopped.status == 503 && stopped.body.contains("web has no running web process"), "\(stopped)")
        #expect(try server.ssh(alice.key, "ps:start", "web").status == 0)
        running = try await containers(server, "web").filter { $0.state == "running" }
        #expect(running.count == 3)
        #expect(try body(server) == "yo v1\n")
        #expect(try server.ssh(alice.key, "ps:scale", "web", "nope=1").status != 0)

        // A locked app refuses every deploy source, not only a push, and the refusal changes nothing.
        #expect(try server.ssh(alice.key, "apps:lock", "web").status == 0)
        for command in [["config:set", "web", "GREETING=locked"], ["config:unset", "web", "GREETING"], ["config:clear", "web"],
                        ["ps:rebuild", "web"], ["releases:rollback", "web", "v2"], ["ps:restart", "web"], ["ps:scale", "web", "worker=1"]] {
            let refused = try server.ssh(alice.key, command)
            #expect(refused.status != 0 && refused.err.hasPrefix("error: ") && refused.err.contains("web is locked"), "\(command): \(refused.err)")
        }
        #expect(try server.ssh(alice.key, "config:get", "web", "GREETING").out == "yo\n")
        #expect(try server.ssh(alice.key, "ps:report", "web").out.contains("web=1 worker=2"))
        #expect(try body(server) == "yo v1\n")
        #expect(try server.ssh(alice.key, "apps:unlock", "web").status == 0)
        #expect(try server.ssh(alice.key, "ps:restart", "web").status == 0)
    }

    @Test func twoPushesToOneAppOneWaitsNoneToTwoApps() async throws {
        let (server, alice) = try start()
        let slow = #"{"scripts": {"dokku": {"predeploy": "sleep 3"}}}"#
        let repoA = try makeRepository(Self.appFiles("a", appJSON: slow))
        let repoB = try makeRepository(Self.appFiles("b", appJSON: slow))
        let results = try inParallel(2) { i in
            if i == 1 { usleep(800_000) }  // the first one holds the lock by then
            return try server.git(alice.key, ["push", "-f", server.url("one"), "main"], in: i == 0 ? repoA : repoB)
        }
        #expect(results[0].status == 0, "\(results[0].err)")
        #expect(results[1].status != 0)
        #expect(results[1].err.contains("one is being deployed by alice since") && results[1].err.contains("try again when it finishes"), "\(results[1].err)")
        let one = try get(server.slipway.url("one"))
        let confs = (try? FileManager.default.contentsOfDirectory(atPath: server.slipway.dataDir + "/nginx/apps")) ?? []
        #expect(one.body == "hello a\n", "\(one) \(confs) \(results[0].err.suffix(600)) \(server.log)")

        let both = try inParallel(2) { i in
            try server.git(alice.key, ["push", server.url(i == 0 ? "left" : "right"), "main"], in: i == 0 ? repoA : repoB)
        }
        #expect(both.allSatisfy { $0.status == 0 }, "\(both.map(\.err))")
        #expect(try body(server, "left") == "hello a\n")
        #expect(try body(server, "right") == "hello b\n")
    }

    @Test func killingTheServerMidDeployLosesNothing() async throws {
        var (server, alice) = try start()
        let repo = try makeRepository(Self.appFiles("v1"))
        #expect(try server.git(alice.key, ["push", server.url("web"), "main"], in: repo).status == 0)
        let slipway = server.slipway
        let dockerfile = { (extra: String) in
            "FROM \(BuilderImage.reference)\nCOPY . /app\nWORKDIR /app\n\(extra)\nUSER app\nCMD [\"python3\", \"server.py\"]\n"
        }
        // (phase, files, the output line after which the server is killed)
        let phases: [(String, [String: Data], String)] = [
            ("build", Self.appFiles("v2", dockerfile: dockerfile("RUN sleep 4")), "Building web"),
            ("task", Self.appFiles("v3", appJSON: #"{"scripts": {"dokku": {"predeploy": "sleep 4"}}}"#), "Running predeploy task"),
            ("start", Self.appFiles("v4", appJSON: #"{"healthchecks": {"web": [{"path": "/", "initialDelay": 4}]}}"#), "Starting 1 web process"),
        ]
        for (phase, files, marker) in phases {
            try commit(repo, files, message: phase)
            let loop = RequestLoop(url: slipway.url("web"))
            loop.start()
            let push = try server.gitProcess(alice.key, ["push", server.url("web"), "main"], in: repo)
            #expect(push.waitFor(marker, seconds: 60), "\(phase): \(push.output)")
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
            push.wait()
            usleep(500_000)
            #expect(try body(server) == "hello v1\n", "\(phase)")
            server = try TestServer(slipway: slipway)
            // The restarted server cleans up: no lock, the interrupted release failed, no stray container.
            var settled = false
            var names: [String] = []
            for _ in 0..<60 where !settled {
                usleep(250_000)
                names = try await containers(server, "web").map(baseName)
                let tasks = try await containers(server, "web", kind: "task")
                settled = names == ["web.web.1"] && tasks.isEmpty
            }
            #expect(settled, "\(phase): \(names)")
            let (requests, failures) = loop.stop()
            #expect(requests > 5 && failures.isEmpty, "\(phase): \(failures.prefix(3))")
            // The server's recovery holds the app's lock while it brings it back; then it is free.
            var status = ""
            for _ in 0..<40 {
                status = try server.ssh(alice.key, "deploy:lock-status", "web").out
                if status.contains("is not being deployed") { break }
                #expect(!status.contains("root") && !status.contains("local admin"), "\(phase): \(status)")
                usleep(250_000)
            }
            #expect(status.contains("is not being deployed"), "\(phase): \(status)")
            // The interrupted attempt is on record: a release from the tasks on, a build before.
            let releases = try server.ssh(alice.key, "releases", "web").out
            #expect(releases.contains("v1 *"), "\(phase): \(releases)")
            let record = phase == "build" ? try server.ssh(alice.key, "builds:list", "web").out : releases
            #expect(record.contains("failed"), "\(phase): \(record)")
            let report = try server.ssh(alice.key, "builds:report", "web").out
            #expect(phase != "build" || report.contains("interrupted"), "\(report)")
            #expect(try body(server) == "hello v1\n")
        }
        // Killed mid-push once more, restarted, and pushed to at once: the push waits for
        // the server's recovery of the app (saying so) and deploys.
        try commit(repo, Self.appFiles("v8", appJSON: #"{"healthchecks": {"web": [{"path": "/", "initialDelay": 4}]}}"#), message: "killed again")
        let interrupted = try server.gitProcess(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(interrupted.waitFor("Starting 1 web process", seconds: 60), "\(interrupted.output)")
        kill(server.process.processIdentifier, SIGKILL)
        server.process.waitUntilExit()
        interrupted.wait()
        server = try TestServer(slipway: slipway)
        try commit(repo, Self.appFiles("v9"), message: "after the crashes")
        let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        #expect(try body(server) == "hello v9\n")
    }
}

/// A process container's name without the `.new-xxxxxx` it starts under. The rename
/// to the plain name at the end of a rollout sometimes fails on a loaded podman 4.3
/// (the deploy then says so and the container keeps serving under the longer name).
func baseName(_ container: ContainerSummary) -> String {
    guard let range = container.name.range(of: ".new-") else { return container.name }
    return String(container.name[..<range.lowerBound])
}

/// Requests the URL in a loop on its own thread and counts what failed.
final class RequestLoop: @unchecked Sendable {
    let url: String
    private let lock = NSLock()
    private var running = true
    private var count = 0
    private var failures: [String] = []
    private let done = DispatchSemaphore(value: 0)

    init(url: String) { self.url = url }

    func start() {
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                let result = try? run("/usr/bin/curl", ["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", url])
                lock.withLock {
                    count += 1
                    if result?.out != "200" { failures.append("\(result?.out ?? "no curl") at \(Date())") }
                }
                usleep(20_000)
            }
            done.signal()
        }
    }

    func stop() -> (requests: Int, failures: [String]) {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { (count, failures) }
    }
}
