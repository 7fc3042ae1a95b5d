import Foundation
import SlipwayCore
import KubernetesFakeAPI
import SlipwayKubernetes
import Testing

/// The kubernetes scheduler (issue 20) through the real binary, the OpenSSH client,
/// git and podman, on one server the tests share. The cluster is `FakeKubernetesAPI`
/// hosted by this test process on a loopback port (HTTPS with a throwaway CA
/// from `FakeCertificates`; token auth from a kubeconfig file the server reads); the registry is a real one, Debian's
/// `docker-registry` (the Distribution registry), on another loopback port. Images
/// reach it through the engine's push (`tlsVerify=false` for a loopback registry).
@Suite("Kubernetes scheduler end to end", .serialized)
struct KubernetesEndToEndTests {
    /// The cluster, the registry and the server, for the whole suite; the last test to
    /// finish stops all three and removes what they made.
    final class Shared: @unchecked Sendable {
        static let instance = Shared()
        private let lock = NSLock()
        private var world: World?
        private var count = 0

        struct World {
            let server: TestServer
            let api: FakeKubernetesAPI
            let registry: ChildProcess
            let registryPort: Int
            let directory: String
            let bob: TestUser
            let eve: TestUser
        }

        func acquire() throws -> World {
            try lock.withLock {
                if world == nil {
                    _ = try BuilderImage.bootstrap.get()
                    let directory = try temporaryDirectory("slipway-k8s")
                    let api = try FakeKubernetesAPI.start(token: "e2e-token")
                    let kubeconfig = directory + "/kubeconfig"
                    // HTTPS with the fake's throwaway CA inline (certificate-authority-data) and a token.
                    try api.kubeconfigYAML.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
                    let (registry, port) = try Self.startRegistry(in: directory)
                    let slipway = try Slipway(extraConfig: "kubeconfig = \"\(kubeconfig)\"")
                    let server = try TestServer(slipway: slipway)
                    let set = try slipway("registry:set", "server", "127.0.0.1:\(port)")
                    precondition(set.status == 0, set.err)
                    world = World(server: server, api: api, registry: registry, registryPort: port, directory: directory,
                                  bob: try TestUser.register("bob", on: slipway), eve: try TestUser.register("eve", on: slipway))
                }
                count += 1
                return world!
            }
        }

        /// `docker-registry serve` with its storage and config in `directory`, once `/v2/` answers.
        static func startRegistry(in directory: String) throws -> (ChildProcess, Int) {
            let port = try freePort()
            try """
                version: 0.1
                log: {level: warn}
                storage: {filesystem: {rootdirectory: \(directory)/registry}, delete: {enabled: true}}
                http: {addr: "127.0.0.1:\(port)"}
                """.write(toFile: directory + "/registry.yml", atomically: true, encoding: .utf8)
            let process = try ChildProcess("/usr/bin/docker-registry", ["serve", directory + "/registry.yml"])
            for _ in 0..<100 {
                if (try? httpGet("http://127.0.0.1:\(port)/v2/"))?.status == 200 { return (process, port) }
                Thread.sleep(forTimeInterval: 0.1)
            }
            process.terminate()
            throw HarnessError("docker-registry did not answer on 127.0.0.1:\(port) (scripts/setup.sh installs it)")
        }

        func release() {
            lock.withLock {
                count -= 1
                guard count == 0, let world else { return }
                _ = world.server.stop()
                world.server.slipway.cleanUp()
                world.api.stop()
                world.registry.terminate()
                world.registry.waitUntilExit()
                // The pushed images' registry-named tags on the shared engine.
                let tags = (try? run("/usr/bin/curl", ["-s", "--unix-socket", "/run/podman/podman.sock", "http://d/v1.41/images/json"]).out) ?? ""
                for tag in tags.components(separatedBy: "\"").filter({ $0.hasPrefix("127.0.0.1:\(world.registryPort)/") }) {
                    _ = try? run("/usr/bin/curl", ["-s", "-X", "DELETE", "--unix-socket", "/run/podman/podman.sock",
                                                  "http://d/v1.41/images/" + (tag.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? tag)])
                }
                try? FileManager.default.removeItem(atPath: world.server.slipway.dataDir)
                try? FileManager.default.removeItem(atPath: world.directory)
                self.world = nil
            }
        }
    }

    func push(_ world: Shared.World, _ app: String, _ files: [String: Data]) throws -> Slipway.Result {
        try world.server.git(world.bob.key, ["push", "-f", world.server.url(app), "main"], in: try makeRepository(files))
    }

    static func files(_ version: String, worker: Bool = true) -> [String: Data] {
        DeployTests.appFiles(version, procfile: "web: python3 server.py\n" + (worker ? "worker: python3 -c 'import time; time.sleep(1e9)'\n" : ""))
    }

    func randomApp() -> String { "k" + UUID().uuidString.prefix(8).lowercased() }

    /// Creates bob's `app` and sets it to the kubernetes scheduler (the test destroys it).
    func createOnCluster(_ world: Shared.World, _ app: String) throws {
        #expect(try world.server.ssh(world.bob.key, "apps:create", app).status == 0)
        #expect(try world.server.ssh(world.bob.key, "scheduler:set", app, "kubernetes").status == 0)
    }

    /// `/apis/apps/v1/namespaces/slipway-APP/deployments/TYPE` and its kin.
    func path(_ app: String, _ group: String, _ resource: String, _ name: String) -> String {
        "\(group)/namespaces/slipway-\(app)/\(resource)/\(name)"
    }

    func replicas(_ world: Shared.World, _ app: String, _ type: String) -> KubeValue? {
        world.api.object(at: path(app, "/apis/apps/v1", "deployments", type))?["spec"]?["replicas"]
    }

    @Test func pushScaleFailedRolloutPruneRunAndLogsOnTheCluster() throws {
        let world = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let (server, api, bob) = (world.server, world.api, world.bob)
        let app = randomApp()
        defer { _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }
        try createOnCluster(world, app)

        let first = try push(world, app, Self.files("v1"))
        #expect(first.status == 0, "\(first.err)")
        let pushed = first.out + first.err
        #expect(pushed.contains("-----> Pushing 127.0.0.1:\(world.registryPort)/slipway/\(app):1"))
        #expect(pushed.contains("-----> Applying") && pushed.contains("namespace slipway-\(app) (server-side apply as slipway)"))
        #expect(pushed.contains("-----> Rolling out 1 web process (Deployment web)") && pushed.contains("web is ready"))
        #expect(pushed.contains("-----> Switched \(app) to v1 on the cluster"))
        for (group, resource, name) in [("/apis/apps/v1", "deployments", "web"), ("/apis/apps/v1", "deployments", "worker"),
                                        ("/api/v1", "services", "web"), ("/apis/networking.k8s.io/v1", "ingresses", "web"),
                                        ("/api/v1", "secrets", "env-v1")] {
            let object = api.object(at: path(app, group, resource, name))
            #expect(object?["metadata"]?["labels"]?["slipway.dev/app"]?.stringValue == app, "\(resource)/\(name)")
            #expect(object?["metadata"]?["managedFields"]?.json().contains(#""manager":"slipway""#) == true, "\(resource)/\(name)")
        }
        // The image is in the real registry, under the release's tag.
        let tags = try httpGet("http://127.0.0.1:\(world.registryPort)/v2/slipway/\(app)/tags/list")
        #expect(tags.status == 200 && tags.body.contains(#""tags":["1"]"#), "\(tags.body)")

        // ps:scale changes the Deployment's replicas by apply.
        #expect(try server.ssh(bob.key, "ps:scale", app, "worker=2").status == 0)
        #expect(replicas(world, app, "worker") == .int(2))
        let report = try server.ssh(bob.key, "ps:report", app)
        #expect(report.out.contains("2/2 ready (Deployment on kubernetes)"), "\(report.out)")

        // run is a Job: its output and exit status are the command's.
        api.setJobOutcome { _ in .init(exitCode: 0, log: ["hi"]) }
        let ran = try server.ssh(bob.key, "run", app, "echo", "hi")
        #expect(ran.status == 0 && ran.out == "hi\n", "\(ran.err)")
        api.setJobOutcome { _ in .init(exitCode: 4, log: ["failing"]) }
        let failed = try server.ssh(bob.key, "run", app, "false")
        #expect(failed.status == 4 && failed.out == "failing\n")
        api.setJobOutcome { _ in .init() }
        #expect(api.paths.filter { $0.contains("/namespaces/slipway-\(app)/jobs/run-") }.count == 2)
        let terminal = try server.ssh(bob.key, ["run", app, "bash"], options: ["-tt"])
        #expect(terminal.status != 0 && (terminal.out + terminal.err).contains("not supported on the kubernetes scheduler"))

        // logs reads the process pods through the API.
        let logs = try server.ssh(bob.key, "logs", app, "-p", "worker")
        #expect(logs.status == 0 && logs.out.contains("\(app)[worker.worker-") && logs.out.contains("worker replica 1 listening"), "\(logs.out)\(logs.err)")
        #expect(!logs.out.contains("[web."))

        // A rollout that never becomes ready: push rejected, the previous spec back, v1 current.
        api.setRollout { _ in .deadlineExceeded(afterReads: 1) }
        let bad = try push(world, app, Self.files("v2"))
        api.setRollout { _ in .ready(afterReads: 1) }
        #expect(bad.status != 0)
        #expect((bad.out + bad.err).contains("ProgressDeadlineExceeded") && (bad.out + bad.err).contains("Rolling back to v1 on the cluster"))
        let web = api.object(at: path(app, "/apis/apps/v1", "deployments", "web"))
        #expect(web?.json().contains("env-v1") == true && web?.json().contains("env-v2") == false)
        let releases = try server.ssh(bob.key, "releases", app)
        let lines = releases.out.split(separator: "\n")
        #expect(lines.contains { $0.contains("v1 *") && $0.contains("succeeded") } && lines.contains { $0.contains("v2 ") && $0.contains("failed") },
                "\(releases.out)")

        // A push without the worker prunes its Deployment.
        let third = try push(world, app, Self.files("v3", worker: false))
        #expect(third.status == 0, "\(third.err)")
        #expect((third.out + third.err).contains("-----> Removed Deployment worker (not in this release)"))
        #expect(api.object(at: path(app, "/apis/apps/v1", "deployments", "worker")) == nil)
        #expect(api.object(at: path(app, "/apis/apps/v1", "deployments", "web")) != nil)
    }

    @Test func postdeployRunsAsAJobAfterTheSwitchAndAFailureKeepsTheRelease() throws {
        let world = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let (server, api, bob) = (world.server, world.api, world.bob)
        let app = randomApp()
        defer { _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }
        try createOnCluster(world, app)
        // The fake's pods do not run the image: each Job's outcome is set here, by its task label.
        api.setJobOutcome { job in
            job.json().contains(#""slipway.dev/task":"postdeploy""#) ? .init(exitCode: 3, log: ["warming the cache", "cache server down"])
                : .init(exitCode: 0, log: ["migrated"])
        }
        defer { api.setJobOutcome { _ in .init() } }
        let tasks = #"{"scripts": {"dokku": {"predeploy": "./migrate", "postdeploy": "./warm-cache"}}}"#
        let pushed = try push(world, app, DeployTests.appFiles("v1", appJSON: tasks))
        let text = pushed.out + pushed.err
        #expect(pushed.status == 0, "\(text)")
        #expect(text.contains("-----> Running predeploy task: ./migrate (Job predeploy-1-v1)") && text.contains("       migrated"), "\(text)")
        let switched = try #require(text.range(of: "-----> Switched \(app) to v1 on the cluster"), "\(text)")
        let ran = try #require(text.range(of: "-----> Running postdeploy task: ./warm-cache (Job postdeploy-1-v1)"), "\(text)")
        #expect(switched.upperBound < ran.lowerBound)
        let failed = try #require(text.range(of: #" !     the postdeploy task "./warm-cache" exited with status 3; v1 stays deployed"#), "\(text)")
        let output = try #require(text.range(of: "       cache server down"), "\(text)")
        #expect(ran.upperBound < output.lowerBound && output.upperBound < failed.lowerBound)
        #expect(!text.contains("do not run on the kubernetes scheduler"))
        #expect(api.object(at: path(app, "/apis/batch/v1", "jobs", "postdeploy-1-v1")) != nil)
        let releases = try server.ssh(bob.key, "releases", app)
        #expect(releases.out.split(separator: "\n").contains { $0.contains("v1 *") && $0.contains("succeeded") }, "\(releases.out)")
    }

    @Test func backToLocalKeepsConfigDomainsAndReleasesAndServesThroughTheProxy() async throws {
        let world = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let (server, bob) = (world.server, world.bob)
        let app = randomApp()
        // After the app (defers run last first): the entry outlives its mounts' app.
        defer { _ = try? server.ssh(bob.key, ["storage:destroy", app + "-data"], stdin: app + "-data\n") }
        defer { _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }
        try createOnCluster(world, app)
        #expect(try push(world, app, Self.files("v1", worker: false)).status == 0)
        #expect(try server.ssh(bob.key, "config:set", app, "GREETING=howdy").status == 0)
        #expect(try server.ssh(bob.key, "domains:add", app, "\(app).example.test").status == 0)
        #expect(try server.ssh(bob.key, "storage:create", app + "-data").status == 0)
        #expect(try server.ssh(bob.key, "storage:mount", app, app + "-data", "--container-dir", "/app/data").status == 0)

        let held = { world.api.paths.filter { $0.contains("/namespaces/slipway-\(app)") } }
        #expect(!held().isEmpty)
        let switched = try server.ssh(bob.key, "scheduler:set", app, "local")
        #expect(switched.status == 0, "\(switched.err)")
        #expect(switched.out.contains("-----> Removed \(app) from the cluster: namespace slipway-\(app) and its"), "\(switched.out)")
        #expect(switched.out.contains("now uses the local scheduler from its next deploy (git push, or ps:rebuild \(app), serves it from this host)"))
        // No second copy on the cluster: the fake holds nothing of the app.
        #expect(held().isEmpty, "\(held())")
        let local = try push(world, app, Self.files("v2", worker: false))
        #expect(local.status == 0, "\(local.err)")
        #expect(try await httpGetWhenReady(server.slipway.url(app)).body == "howdy v2\n")
        #expect(try server.ssh(bob.key, "config:get", app, "GREETING").out == "howdy\n")
        #expect(try server.ssh(bob.key, "domains:report", app).out.contains("\(app).example.test"))
        #expect(try server.ssh(bob.key, "storage:list", app).out.contains("/app/data"))
        let releases = try server.ssh(bob.key, "releases", app).out
        #expect(releases.contains("v1") && releases.contains("v2"), "\(releases)")
        #expect(try server.ssh(bob.key, "scheduler:report", app).out.contains("Scheduler selected:       local"))
    }

    @Test func othersCannotSteerRunOrReadAClusterAppNorTheClusterSettingsAndRunsAreListedAndStopped() throws {
        let world = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let (server, api, bob, eve) = (world.server, world.api, world.bob, world.eve)
        let app = randomApp()
        defer { _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }
        try createOnCluster(world, app)
        #expect(try push(world, app, Self.files("v1", worker: false)).status == 0)
        let before = api.paths

        for command in [["scheduler:set", app, "local"], ["scheduler:set", "--force", app, "local"], ["--force", "apps:destroy", app], ["run", app, "echo", "pwned"], ["run:detached", app, "sleep", "1"],
                        ["logs", app], ["ps:report", app], ["scheduler:report", app], ["k8s:render", app],
                        ["registry:set", "server", "evil.example:5000"], ["registry:set", "image-repo", "evil"]] {
            let answer = try server.ssh(eve.key, command)
            #expect(answer.status != 0 && answer.err.hasPrefix("error:"), "\(command): \(answer.out)\(answer.err)")
            #expect(!answer.out.contains("pwned"))
        }
        let login = try server.ssh(eve.key, ["registry:login", "evil.example:5000", "eve"], stdin: "secret\n")
        #expect(login.status != 0 && login.err.hasPrefix("error:"))
        // bob owns the app but is no admin: the cluster and the registry are not his.
        #expect(try server.ssh(bob.key, "k8s:render", app).status != 0)
        #expect(try server.ssh(bob.key, "registry:set", "server", "evil.example:5000").status != 0)

        #expect(api.paths == before)
        #expect(try server.slipway("scheduler:report", app).out.contains("127.0.0.1:\(world.registryPort)"))
        #expect(try server.ssh(bob.key, "scheduler:report", app).out.contains("Scheduler selected:       kubernetes"))

        // run:detached, run:list, run:stop: the run is a Job on the cluster, which its
        // owner lists and stops (its pod with it); eve can do neither.
        api.setJobOutcome { job in .init(log: ["working"], running: job.json().contains("sleep")) }
        defer { api.setJobOutcome { _ in .init() } }
        let started = try server.ssh(bob.key, "run:detached", app, "sleep", "600")
        let name = started.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(started.status == 0 && name.hasPrefix("run-"), "\(started.err)")
        let job = "/apis/batch/v1/namespaces/slipway-\(app)/jobs/\(name)"
        let pods = { api.paths.filter { $0.hasPrefix("/api/v1/namespaces/slipway-\(app)/pods/\(name)-") } }
        #expect(api.object(at: job) != nil && pods().count == 1)
        let listed = try server.ssh(bob.key, "run:list", app)
        #expect(listed.out.split(separator: "\n").contains { $0.hasPrefix(name) && $0.contains("running") && $0.hasSuffix("sleep 600") }, "\(listed.out)\(listed.err)")
        let json = try server.ssh(bob.key, "run:list", app, "--format", "json")
        #expect(json.out.split(separator: "\n").count == 1 && json.out.contains(#""name":"\#(name)""#) && json.out.contains(#""state":"running""#), "\(json.out)")
        for command in [["run:list", app], ["run:stop", app, name]] {
            let answer = try server.ssh(eve.key, command)
            #expect(answer.status != 0 && answer.err.hasPrefix("error: app \"\(app)\" not found"), "\(command): \(answer.err)")
        }
        let madeUp = try server.ssh(bob.key, "run:stop", app, "predeploy-1-v1")
        #expect(madeUp.status != 0 && madeUp.err.hasPrefix("error: \(app) has no running container \"predeploy-1-v1\""), "\(madeUp.err)")
        #expect(api.object(at: job) != nil && pods().count == 1)
        let stopped = try server.ssh(bob.key, "run:stop", app, name)
        #expect(stopped.status == 0 && stopped.err.contains("-----> Stopped \(name)"), "\(stopped.err)")
        #expect(api.object(at: job) == nil && pods().isEmpty, "\(api.paths)")
        #expect(try server.ssh(bob.key, "run:list", app, "--format", "json").out == "[]\n")

        // The owner's apps:destroy takes the app's namespace off the cluster.
        #expect(try server.ssh(bob.key, "--force", "apps:destroy", app).status == 0)
        #expect(!api.paths.contains { $0.contains("/namespaces/slipway-\(app)") }, "\(api.paths)")
    }
}
