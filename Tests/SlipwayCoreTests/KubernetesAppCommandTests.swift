import Foundation
import GRDB
import KubernetesFakeAPI
import Logging
import SlipwayHost
import SlipwayKubernetes
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// The app commands of apps set to the kubernetes scheduler (issue 20): `run:list`,
/// `run:stop`, `cron:run`, the cron scheduler, and the commands refused there, through
/// the real command runner (the one gate) against the fake API server.
/// bob owns `web`, carol owns `other` (both on the cluster), dave reads `web`.
@Suite("App commands of an app on the kubernetes scheduler", .serialized)
final class KubernetesAppCommandTests {
    let api: FakeKubernetesAPI
    let engine = FakeEngine()
    let core: Core
    let runner: CommandRunner
    let admin = Caller(principal: .localAdmin, command: "test")
    let report = CronEntry(command: "bin/report --daily", schedule: "* * * * *")

    init() throws {
        api = try FakeKubernetesAPI.start(token: "s3cret")
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        let deployer = KubernetesDeployer(cluster: try KubernetesAPIClient(config: api.kubeconfig), engine: engine,
                                          rolloutTimeout: 5, taskTimeout: 5, pollInterval: 0.01)
        core = try Core(settings: settings, engine: engine, probe: FakeProbe(), proxy: RecordingProxy(directory: settings.dataDir + "/proxy"),
                        processes: LocalProcesses(), cluster: deployer)
        runner = CommandRunner(core: core, logger: Logger(label: "test"))
        for name in ["bob", "carol", "dave"] { #expect(try run(["users:add", name]).status == 0) }
        #expect(try run(["apps:create", "web"], as: "bob").status == 0)
        #expect(try run(["apps:create", "other"], as: "carol").status == 0)
        #expect(try run(["apps:create", "plain"], as: "bob").status == 0)
        #expect(try run(["acl:add", "web", "dave", "read"], as: "bob").status == 0)
        try core.scheduler.setRegistry(.server, to: "registry.test:5000", by: admin)
        for app in ["web", "other"] {
            try core.scheduler.set(try AppName(app), .kubernetes, by: admin)
            try roll(try AppName(app))
        }
    }

    deinit { api.stop() }

    @discardableResult
    func run(_ argv: [String], as user: String? = nil, stdin: String = "", on runner: CommandRunner? = nil) throws -> Outcome {
        let principal = try user.map { Principal(identity: .user(try #require(try core.users.find(UserName($0)))), channel: "ssh") } ?? .localAdmin
        let out = Buffer(), err = Buffer()
        let status = (runner ?? self.runner).run(argv, as: principal, stdout: out, stderr: err, stdin: FixedInput(data: Data(stdin.utf8)))
        return Outcome(status: status, out: out.text, err: err.text)
    }

    /// v`version` of `app` (web=1, a predeploy task, the `report` cron entry) rolled out on the cluster.
    func roll(_ app: AppName, version: Int = 1) throws {
        let record = try #require(try core.apps.find(app))
        var plan = DeployPlan(processes: ["web": "serve"])
        plan.predeploy = ["./migrate"]
        plan.cron = [report]
        let snapshot = ReleaseSnapshot(plan: plan, environment: ["GREETING": "hi"], mounts: [], formation: [:])
        let release = try core.store.write { db -> Release in
            var release = Release(appId: record.id!, version: version, image: "slipway/\(app):\(version)", revision: "r\(version)", reason: "test",
                                  snapshot: try DeployService.encode(snapshot), status: .deploying, startedBy: "test", startedAt: Date())
            try release.insert(db)
            return release
        }
        try core.deploys.rollout(app, record: try #require(try core.apps.find(app)), release: release, snapshot: snapshot, types: nil, output: { _ in })
    }

    func jobs(_ app: String) -> [String] { api.paths.filter { $0.hasPrefix("/apis/batch/v1/namespaces/slipway-\(app)/jobs/") } }
    func pods(of job: String, in app: String) -> [String] { api.paths.filter { $0.hasPrefix("/api/v1/namespaces/slipway-\(app)/pods/\(job)-") } }

    /// Runs that go on until deleted (the fake's pod keeps running).
    func keepRunsRunning() { api.setJobOutcome { job in .init(log: ["started"], running: job.json().contains("sleep")) } }

    @Test func runListShowsTheAppsRunJobsAndRunStopDeletesOneWithItsPod() throws {
        keepRunsRunning()
        let started = try run(["run:detached", "web", "sleep 600"], as: "bob")
        #expect(started.status == 0)
        let name = started.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(name.hasPrefix("run-") && pods(of: name, in: "web").count == 1)
        #expect(jobs("web").contains { $0.hasSuffix("/predeploy-1-v1") })

        let listed = try run(["run:list", "web"], as: "bob")
        #expect(listed.status == 0)
        let row = try #require(listed.out.split(separator: "\n").first { $0.hasPrefix(name) })
        #expect(row.contains("running") && row.hasSuffix("sleep 600"))
        #expect(!listed.out.contains("predeploy") && !listed.out.contains("cron-"))

        let json = try run(["run:list", "web", "--format", "json"], as: "bob")
        #expect(json.out.split(separator: "\n").count == 1)
        let runs = try JSONDecoder.iso8601.decode([RunListing].self, from: Data(json.out.utf8))
        #expect(runs.map(\.name) == [name] && runs.first?.state == "running" && runs.first?.command == "sleep 600")

        let stopped = try run(["run:stop", "web", name], as: "bob")
        #expect(stopped.status == 0, "\(stopped.err)")
        #expect(!jobs("web").contains { $0.hasSuffix("/\(name)") })
        // Deleted with its pod: a Job deleted without a propagation policy orphans it.
        #expect(api.requests.contains("DELETE /apis/batch/v1/namespaces/slipway-web/jobs/\(name)?propagationPolicy=Background"))
        #expect(pods(of: name, in: "web").isEmpty)
        #expect(try run(["run:list", "web", "--format", "json"], as: "bob").out == "[]\n")
        let audited = try core.store.read { db in try Event.fetchAll(db).map(\.detail) }
        #expect(audited.contains("stopped Job \(name) on the kubernetes scheduler"))
    }

    @Test func runListShowsEndedRunsWithTheirStatus() throws {
        api.setJobOutcome { job in .init(exitCode: job.json().contains("exit 1") ? 1 : 0) }
        let good = try run(["run:detached", "web", "exit 0"], as: "bob").out.trimmingCharacters(in: .whitespacesAndNewlines)
        let bad = try run(["run:detached", "web", "exit 1"], as: "bob").out.trimmingCharacters(in: .whitespacesAndNewlines)
        let runs = try JSONDecoder.iso8601.decode([RunListing].self, from: Data(try run(["run:list", "web", "--format", "json"], as: "bob").out.utf8))
        #expect(Dictionary(uniqueKeysWithValues: runs.map { ($0.name, $0.state) }) == [good: "succeeded", bad: "failed"])
    }

    @Test func runStopAnswersAnotherAppsJobAPredeployJobOrAMadeUpNameAsLocally() throws {
        keepRunsRunning()
        let theirs = try run(["run:detached", "other", "sleep 600"], as: "carol").out.trimmingCharacters(in: .whitespacesAndNewlines)
        let mine = try run(["run:detached", "web", "sleep 600"], as: "bob").out.trimmingCharacters(in: .whitespacesAndNewlines)
        let before = api.paths
        let local = try run(["run:stop", "plain", "run-made0up0"], as: "bob")
        #expect(local.status == 1 && local.err.hasPrefix("error: plain has no running container"))
        func likeLocal(_ name: String) throws {
            let answer = try run(["run:stop", "web", name], as: "bob")
            #expect(answer.status == local.status, "\(name)")
            #expect(answer.err.replacingOccurrences(of: name, with: "NAME") == local.err.replacingOccurrences(of: "run-made0up0", with: "NAME")
                .replacingOccurrences(of: "plain", with: "web"), "\(name)")
        }
        for name in [theirs, "predeploy-1-v1", "run-made0up0", "../../other/jobs/\(theirs)", "run-%2e%2e"] { try likeLocal(name) }
        // Another tenant's app is missing to bob, as any app he cannot see; a reader cannot list or stop.
        let hidden = try run(["run:stop", "other", theirs], as: "bob")
        #expect(hidden.status == 1 && hidden.err.hasPrefix("error: app \"other\" not found"))
        #expect(try run(["run:list", "other"], as: "bob").err.hasPrefix("error: app \"other\" not found"))
        for argv in [["run:list", "web"], ["run:stop", "web", mine]] {
            let denied = try run(argv, as: "dave")
            #expect(denied.status == 1 && denied.err.contains("you have read access"), "\(argv)")
        }
        #expect(api.paths == before)
        #expect(!api.requests.contains { $0.hasPrefix("DELETE") })
    }

    /// The caller's side of a run: what it printed.
    final class Printed: @unchecked Sendable {
        private let lock = NSLock()
        private var all = ""
        func add(_ text: String) { lock.withLock { all += text } }
        var text: String { lock.withLock { all } }
    }

    @Test func cronRunOfAClusterAppIsAJobOfItsCronJobTemplateWithItsOutputStatusAndHistory() throws {
        api.setJobOutcome { _ in .init(exitCode: 4, log: ["reporting", "no data"]) }
        let printed = Printed()
        let io = RunService.IO(readStdin: { _ in Data() }, stdout: { printed.add(String(decoding: $0, as: UTF8.self)); return true },
                               stderr: { _ in true }, notice: { printed.add($0) }, isCancelled: { false })
        let web = try AppName("web")
        let ended = try core.cron.runNow(web, id: report.id, by: admin, io: io)
        #expect(ended.status == .failed && ended.exitCode == 4)
        #expect(printed.text == "reporting\nno data\n")
        let name = try #require(ended.container)
        #expect(name.hasPrefix("cron-\(report.id)-m") && name.count <= 63)
        // Nothing ran on this host.
        #expect(engine.calls.allSatisfy { !$0.hasPrefix("create") })

        let job = try #require(api.object(at: "/apis/batch/v1/namespaces/slipway-web/jobs/\(name)"))
        let cronJob = try #require(api.object(at: "/apis/batch/v1/namespaces/slipway-web/cronjobs/cron-\(report.id)"))
        #expect(job["spec"]?["template"] == cronJob["spec"]?["jobTemplate"]?["spec"]?["template"])
        #expect(job["spec"]?["activeDeadlineSeconds"] == cronJob["spec"]?["jobTemplate"]?["spec"]?["activeDeadlineSeconds"])
        #expect(job["metadata"]?["annotations"]?["cronjob.kubernetes.io/instantiate"] == "manual")
        #expect(job["metadata"]?["labels"]?["slipway.dev/app"] == "web")
        #expect(job["spec"]?["template"]?["spec"]?["containers"]?.json().contains(#""command":["bin/report","--daily"]"#) == true)

        // In the entry's history as a local cron:run is, with its output stored.
        let history = try core.cron.runs(of: web, id: report.id)
        #expect(history.count == 1 && history.first?.trigger == "manual" && history.first?.container == name)
        #expect(try core.cron.list(web).first?.lastStatus == "failed")
        let stored = Printed()
        try core.cron.logs(web, id: report.id, lines: 10, follow: false, output: { stored.add($0 + "\n") }, isCancelled: { false })
        #expect(stored.text == "reporting\nno data\n")

        // Through the gate: the exit status is the command's; a reader may not run it.
        #expect(try run(["cron:run", "web", report.id], as: "bob").status == 4)
        #expect(try run(["cron:run", "web", report.id], as: "dave").err.contains("you have read access"))
        #expect(try run(["cron:run", "other", report.id], as: "bob").err.hasPrefix("error: app \"other\" not found"))
        #expect(try run(["cron:run", "web", "nosuchentry"], as: "bob").err.hasPrefix("error: web has no cron entry \"nosuchentry\""))
    }

    @Test func theLocalCronSchedulerLeavesAClusterAppsEntriesToItsCronJobs() throws {
        let minute = Date(timeIntervalSince1970: 1_800_000_000 - 1_800_000_000.truncatingRemainder(dividingBy: 60))
        #expect(try core.cron.due(at: minute).isEmpty)
        // The same app back on this host: its entry is this host's to run.
        try core.scheduler.set(try AppName("web"), .local, by: admin)
        #expect(try core.cron.due(at: minute).map(\.app.rawValue) == ["web"])
    }

    @Test func psStopAndEnterOfAClusterAppAreRefusedAndChangeNothing() throws {
        let web = "/apis/apps/v1/namespaces/slipway-web/deployments/web"
        let before = try core.store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM apps ORDER BY id").description }
        let stop = try run(["ps:stop", "web"], as: "bob")
        #expect(stop.status == 1)
        #expect(stop.err.hasPrefix("error: ps:stop is not supported on the kubernetes scheduler yet"))
        #expect(stop.err.contains("ps:scale web web=0"))
        #expect(try core.store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM apps ORDER BY id").description } == before)
        #expect(api.object(at: web)?["spec"]?["replicas"] == 1)

        let enter = try run(["enter", "web", "web"], as: "bob")
        #expect(enter.status != 0 && enter.err.hasPrefix("error: enter is not supported on the kubernetes scheduler yet"))
        #expect(enter.err.contains("run web COMMAND"))
    }

    @Test func aHostPathMountOfAClusterAppIsRefusedAndARenameTooWithNothingChanged() throws {
        let before = try core.store.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM mounts").description + Row.fetchAll(db, sql: "SELECT * FROM apps ORDER BY id").description
        }
        // An admin's host path: a pod on another machine has no such directory.
        let mount = try run(["storage:mount", "web", "/srv/shared:/shared"])
        #expect(mount.status == 1)
        #expect(mount.err.hasPrefix("error: web runs on the kubernetes scheduler, which cannot mount host directories"), "\(mount.err)")
        // Its namespace is named after it: a rename would leave its claims behind.
        let rename = try run(["apps:rename", "web", "web2"], as: "bob")
        #expect(rename.status == 1 && rename.err.contains("web runs on the kubernetes scheduler, where apps:rename is not supported yet; nothing was changed"), "\(rename.err)")
        #expect(rename.err.contains("holds its PersistentVolumeClaims") && !rename.err.contains("rename, then set it back"))
        #expect(try core.store.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM mounts").description + Row.fetchAll(db, sql: "SELECT * FROM apps ORDER BY id").description
        } == before)
        #expect(try run(["storage:mount", "plain", "/srv/shared:/shared"]).status == 0)
    }

    @Test func psRestartReplacesTheClusterPodsAndTheRestartOutlivesAScale() throws {
        let web = "/apis/apps/v1/namespaces/slipway-web/deployments/web"
        func restartedAt() -> KubeValue? { api.object(at: web)?["spec"]?["template"]?["metadata"]?["annotations"]?["slipway.dev/restarted-at"] }
        // The release's config as it is now: a restart, not a new release.
        #expect(try run(["config:set", "--no-restart", "web", "GREETING=hi"], as: "bob").status == 0)
        #expect(restartedAt() == nil)
        let generation = try #require(api.object(at: web)?["metadata"]?["generation"])

        // A reader, another tenant: refused, nothing applied.
        #expect(try run(["ps:restart", "web"], as: "dave").err.contains("you have read access"))
        #expect(try run(["ps:restart", "web"], as: "carol").status != 0)
        #expect(restartedAt() == nil && api.object(at: web)?["metadata"]?["generation"] == generation)

        let restart = try run(["ps:restart", "web"], as: "bob")
        #expect(restart.status == 0, "\(restart.err)")
        #expect(restart.out.contains("Restarting web (v1)") && restart.out.contains("Switched web to v1 on the cluster"), "\(restart.out)")
        let first = try #require(restartedAt())
        #expect(api.object(at: web)?["metadata"]?["generation"] != generation)

        // A later ps:scale renders the same time: the scale alone does not replace the pods again.
        #expect(try run(["ps:scale", "web", "web=2"], as: "bob").status == 0)
        #expect(api.object(at: web)?["spec"]?["replicas"] == 2)
        #expect(restartedAt() == first)

        // The one type given: a new time.
        #expect(try run(["ps:restart", "web", "web"], as: "bob").status == 0)
        #expect(try #require(restartedAt()) != first)
        // Not on the other app.
        #expect(api.object(at: "/apis/apps/v1/namespaces/slipway-other/deployments/web")?["spec"]?["template"]?["metadata"]?["annotations"] == nil)
    }

    @Test func domainsAndCertificatesOfAClusterAppReachItsIngressAtOnce() throws {
        let ingress = "/apis/networking.k8s.io/v1/namespaces/slipway-web/ingresses/web"
        let tls = "/api/v1/namespaces/slipway-web/secrets/tls"
        func hosts(_ path: String = ingress) -> String { api.object(at: path)?["spec"]?["rules"]?.json() ?? "" }
        let added = try run(["domains:add", "web", "www.example.com"], as: "bob")
        #expect(added.status == 0, "\(added.err)")
        #expect(hosts().contains(#""host":"www.example.com""#))

        // A reader may not; a name another tenant's app holds stays refused for a cluster app.
        #expect(try run(["domains:add", "web", "read.example.com"], as: "dave").err.contains("you have read access"))
        #expect(try run(["domains:add", "other", "shop.example.com"], as: "carol").status == 0)
        let taken = try run(["domains:add", "web", "shop.example.com"], as: "bob")
        #expect(taken.status != 0 && taken.err.hasPrefix("error: "), "\(taken.err)")
        #expect(!hosts().contains("shop.example.com") && !hosts().contains("read.example.com"))
        #expect(hosts("/apis/networking.k8s.io/v1/namespaces/slipway-other/ingresses/web").contains("shop.example.com"))

        // certs:add: the TLS Secret and the Ingress's tls at once; certs:remove takes both back.
        let (cert, key) = try RoutingUnitTests().makeCertificate(["www.example.com"])
        let certified = try run(["certs:add", "web"], as: "bob", stdin: cert + key)
        #expect(certified.status == 0, "\(certified.err)")
        #expect(api.object(at: tls)?["type"] == "kubernetes.io/tls")
        #expect(api.object(at: ingress)?["spec"]?["tls"]?.json().contains("www.example.com") == true)
        #expect(try run(["certs:remove", "web"], as: "bob").status == 0)
        #expect(api.object(at: tls) == nil && api.object(at: ingress)?["spec"]?["tls"] == nil)
        #expect(try run(["domains:remove", "web", "www.example.com"], as: "bob").status == 0)
        #expect(!hosts().contains("www.example.com"))

        // The cluster does not answer: an error, and the domain is not recorded either.
        let nowhere = try KubernetesAPIClient(config: Kubeconfig(server: "http://127.0.0.1:1", token: "s3cret"), requestTimeout: .seconds(5))
        let unreachable = try Core(settings: core.settings, engine: engine, probe: FakeProbe(),
                                   proxy: RecordingProxy(directory: core.settings.dataDir + "/proxy"), processes: LocalProcesses(),
                                   cluster: KubernetesDeployer(cluster: nowhere, engine: engine, rolloutTimeout: 5, taskTimeout: 5, pollInterval: 0.01))
        let down = try run(["domains:add", "web", "down.example.com"], as: "bob", on: CommandRunner(core: unreachable, logger: Logger(label: "test")))
        #expect(down.status != 0 && down.err.hasPrefix("error: cannot update web's Ingress on the cluster, so the change was undone"), "\(down.err)")
        #expect(try !run(["domains:report", "web"], as: "bob").out.contains("down.example.com"))
    }

    @Test func taskRunAndCronJobsOfAClusterAppGetItsResourceLimits() throws {
        #expect(try run(["resource:limit", "--memory", "300m", "web"], as: "dave").err.contains("you have read access"))
        #expect(try run(["resource:limit", "--memory", "300m", "web"], as: "bob").status == 0)
        try roll(try AppName("web"), version: 2)
        let predeploy = try #require(api.object(at: "/apis/batch/v1/namespaces/slipway-web/jobs/predeploy-1-v2"))
        #expect(predeploy["spec"]?["template"]?["spec"]?["containers"]?.json().contains(#""memory":"314572800""#) == true)
        let cronJob = try #require(api.object(at: "/apis/batch/v1/namespaces/slipway-web/cronjobs/cron-\(report.id)"))
        #expect(cronJob["spec"]?["jobTemplate"]?["spec"]?["template"]?["spec"]?["containers"]?.json().contains(#""memory":"314572800""#) == true)
        // The other tenant's app is not limited by it.
        let other = try #require(api.object(at: "/apis/batch/v1/namespaces/slipway-other/jobs/predeploy-1-v1"))
        #expect(other["spec"]?["template"]?["spec"]?["containers"]?.json().contains("314572800") == false)
    }

    @Test func aDeployKeepsCronAndRunJobsAndPrunesOldReleasesTaskJobs() throws {
        let jobs = "/apis/batch/v1/namespaces/slipway-web/jobs/"
        // The CronJob's own run and a detached run go on; cron:run's ends (both are cron runs).
        api.setJobOutcome { job in .init(log: ["working"], running: job["metadata"]?["ownerReferences"] != nil || job.json().contains("sleep")) }
        let detached = try run(["run:detached", "web", "sleep 600"], as: "bob")
        let runJob = detached.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(detached.status == 0 && api.object(at: jobs + runJob) != nil, "\(detached)")
        let scheduled = try #require(api.scheduleCronJob(at: "/apis/batch/v1/namespaces/slipway-web/cronjobs/cron-\(report.id)"))
        #expect(api.object(at: scheduled)?["status"]?["active"] == 1)
        let io = RunService.IO(readStdin: { _ in Data() }, stdout: { _ in true }, stderr: { _ in true }, notice: { _ in }, isCancelled: { false })
        let manual = try #require(try core.cron.runNow(try AppName("web"), id: report.id, by: admin, io: io).container)

        try roll(try AppName("web"), version: 2)
        #expect(api.object(at: scheduled) != nil, "a deploy deleted the running cron Job")
        #expect(!api.paths.filter { $0.hasPrefix("/api/v1/namespaces/slipway-web/pods/\(scheduled.split(separator: "/").last!)-") }.isEmpty)
        #expect(api.object(at: jobs + manual) != nil, "a deploy deleted the cron:run Job")
        #expect(api.object(at: jobs + runJob) != nil, "a deploy deleted the running run Job")
        // The old release's predeploy Job goes, as before; the new one's stays.
        #expect(api.object(at: jobs + "predeploy-1-v1") == nil)
        #expect(api.object(at: jobs + "predeploy-1-v2") != nil)
    }
}

extension JSONDecoder {
    /// Reads `--format json` (dates as ISO 8601).
    static var iso8601: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
