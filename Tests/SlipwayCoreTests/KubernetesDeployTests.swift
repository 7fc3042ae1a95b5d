import Foundation
import GRDB
import KubernetesFakeAPI
import SlipwayHost
import SlipwayKubernetes
import Testing
@testable import SlipwayCore

/// Deploys of an app set to the kubernetes scheduler, through the core's one rollout
/// entry, against the in-process fake API server over TLS (the real client, the fake's throwaway CA and a token), with a
/// fake engine (no registry runs here: the push is recorded).
@Suite("Kubernetes deploys against the fake API server", .serialized)
final class KubernetesDeployTests {
    let api: FakeKubernetesAPI
    let engine = FakeEngine()
    let core: Core
    let caller = Caller(principal: .localAdmin, command: "test")
    let app = try! AppName("web")
    let lines = Lines()
    let deployments = "/apis/apps/v1/namespaces/slipway-web/deployments/"

    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var all: [String] = []
        func add(_ line: String) { lock.withLock { all.append(line) } }
        var text: String { lock.withLock { all.joined(separator: "\n") } }
    }

    let settings: Settings

    init() throws {
        api = try FakeKubernetesAPI.start(token: "s3cret")
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        let client = try KubernetesAPIClient(config: api.kubeconfig)
        let deployer = KubernetesDeployer(cluster: client, engine: engine, rolloutTimeout: 5, taskTimeout: 5, pollInterval: 0.01)
        core = try Core(settings: settings, engine: engine, probe: FakeProbe(), proxy: RecordingProxy(directory: settings.dataDir + "/proxy"),
                        processes: LocalProcesses(), cluster: deployer)
        self.settings = settings
        _ = try core.apps.create(app, by: caller)
        try core.scheduler.setRegistry(.server, to: "registry.test:5000", by: caller)
        try core.scheduler.set(app, .kubernetes, by: caller)
    }

    deinit { api.stop() }

    var output: DeployService.Output { { [lines] in lines.add($0) } }

    /// A new release of `processes` at `scale`, rolled out as a deploy rolls it out.
    @discardableResult
    func roll(_ version: Int, _ processes: [String: String], scale: [String: Int], predeploy: [String] = [],
              postdeploy: [String] = []) throws -> Release {
        let record = try #require(try core.apps.find(app))
        try core.store.write { db in
            for (type, quantity) in scale {
                var entry = FormationEntry(appId: record.id!, processType: type, quantity: quantity)
                try entry.save(db)
            }
        }
        var plan = DeployPlan(processes: processes)
        plan.predeploy = predeploy
        plan.postdeploy = postdeploy
        let snapshot = ReleaseSnapshot(plan: plan, environment: ["GREETING": "v\(version)"], mounts: [], formation: [:])
        let release = try core.store.write { db -> Release in
            var release = Release(appId: record.id!, version: version, image: "slipway/web:\(version)", revision: "r\(version)", reason: "test",
                                  snapshot: try DeployService.encode(snapshot), status: .deploying, startedBy: "test", startedAt: Date())
            try release.insert(db)
            return release
        }
        try core.deploys.rollout(app, record: try #require(try core.apps.find(app)), release: release, snapshot: snapshot, types: nil, output: output)
        return release
    }

    func currentVersion() throws -> Int? {
        try core.store.read { db in
            try Int.fetchOne(db, sql: "SELECT r.version FROM apps JOIN releases r ON r.id = apps.current_release_id WHERE apps.name = ?", arguments: [app])
        }
    }

    @Test func aDeployAppliesLabelledObjectsAsSlipwayAndWaitsForTheRollout() throws {
        try roll(1, ["web": "python3 server.py", "worker": "python3 worker.py"], scale: ["web": 2, "worker": 1])
        let web = try #require(api.object(at: deployments + "web"))
        #expect(web["spec"]?["replicas"] == 2)
        #expect(web["metadata"]?["labels"]?["slipway.dev/app"] == "web")
        #expect(web["metadata"]?["labels"]?["slipway.dev/release"] == "1")
        #expect(web["metadata"]?["managedFields"]?.json().contains("\"manager\":\"slipway\"") == true)
        #expect(api.object(at: deployments + "worker")?["spec"]?["replicas"] == 1)
        #expect(api.object(at: "/api/v1/namespaces/slipway-web/secrets/env-v1") != nil)
        // Pushed to the registry under its registry name, applied with SSA, polled until ready.
        #expect(engine.calls.contains("push registry.test:5000/slipway/web:1"))
        #expect(api.requests.contains { $0.hasPrefix("PATCH /apis/apps/v1/namespaces/slipway-web/deployments/web?fieldManager=slipway&force=true") })
        #expect(lines.text.contains("-----> Rolling out 2 web processes (Deployment web)"))
        #expect(lines.text.contains("       web is ready (2/2 available)"))
        #expect(lines.text.contains("-----> Switched web to v1 on the cluster"))
        #expect(try currentVersion() == 1)
    }

    @Test func psScaleChangesTheReplicasByApply() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1])
        try core.deploys.scale(app, ["web": 3], by: caller, output: output)
        let web = try #require(api.object(at: deployments + "web"))
        #expect(web["spec"]?["replicas"] == 3)
        #expect(web["metadata"]?["generation"] == 2)
        #expect(try currentVersion() == 1)
    }

    @Test func aRolloutThatNeverBecomesReadyIsRolledBackAndTheDeployFails() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1])
        api.setRollout { _ in .deadlineExceeded(afterReads: 1) }
        let error = try #require(throws: UserFacingError.self) {
            try core.deploys.deploy(app, trigger: .config, by: caller, output: output)
        }
        #expect(error.message.hasPrefix("deploy of v2 failed: web did not become ready: ProgressDeadlineExceeded"))
        #expect(error.message.contains("web still serves v1"))
        // v1's Deployment is back (its env Secret and release label), v2's Secret pruned.
        let web = try #require(api.object(at: deployments + "web"))
        #expect(web["metadata"]?["labels"]?["slipway.dev/release"] == "1")
        #expect(web.json().contains("\"name\":\"env-v1\""))
        #expect(api.object(at: "/api/v1/namespaces/slipway-web/secrets/env-v2") == nil)
        #expect(lines.text.contains("-----> Rolling back to v1 on the cluster"))
        #expect(try currentVersion() == 1)
        let failed = try core.store.read { db in try Release.filter(Column("version") == 2).fetchOne(db) }
        #expect(failed?.status == .failed)
    }

    @Test func aRemovedProcessTypeIsPrunedAndTheOthersKept() throws {
        try roll(1, ["web": "serve", "worker": "work"], scale: ["web": 1, "worker": 1])
        #expect(api.object(at: deployments + "worker") != nil)
        try roll(2, ["web": "serve"], scale: [:])
        #expect(api.object(at: deployments + "worker") == nil)
        #expect(api.object(at: deployments + "web")?["metadata"]?["labels"]?["slipway.dev/release"] == "2")
        #expect(lines.text.contains("-----> Removed Deployment worker (not in this release)"))
        #expect(try currentVersion() == 2)
    }

    @Test func aFailedPredeployJobFailsTheDeployWithItsOutputAndStatus() throws {
        api.setJobOutcome { job in
            job.json().contains("migrate") ? .init(exitCode: 3, log: ["migrating", "no database"]) : .init()
        }
        #expect(throws: UserFacingError.self) { try self.roll(1, ["web": "serve"], scale: ["web": 1], predeploy: ["./migrate"]) }
        #expect(lines.text.contains("-----> Running predeploy task: ./migrate (Job predeploy-1-v1)"))
        #expect(lines.text.contains("       no database"))
        #expect(api.object(at: deployments + "web") == nil)
    }

    var postdeployJobs: String { "/apis/batch/v1/namespaces/slipway-web/jobs/postdeploy-1-v" }

    /// A deploy's new release (a config change of v1, whose plan has the postdeploy task).
    func redeploy() throws -> Release {
        try #require(try core.deploys.deploy(app, trigger: .config, by: caller, output: output))
    }

    @Test func aPostdeployJobRunsAfterTheSwitchWithItsOutputShownAndStoredOnceARelease() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1], postdeploy: ["./notify --done"])
        api.setJobOutcome { _ in .init(exitCode: 0, log: ["notified", "all done"]) }
        #expect(try redeploy().version == 2)
        // Applied (which runs it) only once web's Deployment was read ready, and after the switch and its audit.
        let requests = api.requests
        let applied = try #require(requests.firstIndex { $0.hasPrefix("PATCH \(postdeployJobs)2?fieldManager=slipway") })
        let ready = try #require(requests.lastIndex { $0 == "GET \(deployments)web" })
        #expect(ready < applied)
        let text = lines.text
        let switched = try #require(text.range(of: "-----> Switched web to v2 on the cluster"))
        let running = try #require(text.range(of: "-----> Running postdeploy task: ./notify --done (Job postdeploy-1-v2)\n       notified\n       all done\n"))
        #expect(switched.upperBound < running.lowerBound)
        #expect(!text.contains("do not run") && !text.contains(" !     "))
        #expect(try core.store.read { db in try Event.fetchAll(db).map(\.detail) }.contains("deployed v2 (config change)"))
        let stored = try #require(try core.deploys.outputs.records(of: app, kind: .task, ref: "v2 postdeploy").first)
        let storedText = try core.deploys.outputs.text(of: stored)
        #expect(stored.status == .succeeded && storedText.contains("all done"))

        // ps:scale rolls v2 out again: no task runs again, its Job stays (prune keeps it).
        let patches = { self.api.requests.filter { $0.hasPrefix("PATCH /apis/batch/v1/namespaces/slipway-web/jobs/") }.count }
        let before = patches()
        try core.deploys.scale(app, ["web": 2], by: caller, output: output)
        #expect(patches() == before)
        #expect(api.object(at: postdeployJobs + "2") != nil)
        #expect(lines.text.components(separatedBy: "Running postdeploy task").count == 2)

        // The next release runs its own; v2's Job goes as an old release's predeploy Jobs do.
        #expect(try redeploy().version == 3)
        #expect(api.object(at: postdeployJobs + "2") == nil && api.object(at: postdeployJobs + "3") != nil)
        #expect(lines.text.contains("-----> Removed Job postdeploy-1-v2 (not in this release)"))
    }

    @Test func aFailingPostdeployJobIsReportedAndTheReleaseStaysCurrent() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1], postdeploy: ["./notify"])
        api.setJobOutcome { job in job.json().contains("postdeploy") ? .init(exitCode: 5, log: ["smtp down"]) : .init() }
        let release = try redeploy()
        #expect(lines.text.contains("       smtp down\n !     the postdeploy task \"./notify\" exited with status 5; v2 stays deployed"))
        #expect(try currentVersion() == 2)
        #expect(try core.store.read { db in try Release.fetchOne(db, key: release.id) }?.status == .succeeded)
        #expect(lines.text.split(separator: "\n").last?.hasPrefix("=====> Application deployed: ") == true, "\(lines.text)")
        let stored = try #require(try core.deploys.outputs.records(of: app, kind: .task, ref: "v2 postdeploy").first)
        let storedText = try core.deploys.outputs.text(of: stored)
        #expect(stored.status == .failed && storedText.contains(" !     the postdeploy task \"./notify\" exited with status 5"))
    }

    @Test func aPostdeployJobThatOutrunsTheTaskTimeoutIsDeletedAndTheReleaseStays() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1], postdeploy: ["sleep infinity"])
        api.setJobOutcome { job in .init(running: job.json().contains("postdeploy")) }
        let deployer = KubernetesDeployer(cluster: try KubernetesAPIClient(config: api.kubeconfig), engine: engine,
                                          rolloutTimeout: 5, taskTimeout: 1, pollInterval: 0.01)
        let core = try Core(settings: settings, engine: engine, probe: FakeProbe(), proxy: RecordingProxy(directory: settings.dataDir + "/proxy"),
                            processes: LocalProcesses(), cluster: deployer)
        _ = try core.deploys.deploy(app, trigger: .config, by: caller, output: output)
        #expect(lines.text.contains(#" !     the postdeploy task "sleep infinity" did not finish within 1 s (its Job postdeploy-1-v2 was deleted); v2 stays deployed"#))
        #expect(api.object(at: postdeployJobs + "2") == nil)
        #expect(!api.paths.contains { $0.contains("/pods/postdeploy-1-v2") })
        #expect(try currentVersion() == 2)
    }

    /// Applying a Job runs it: ps:scale (and ps:restart without config changes) roll the
    /// current release out again and must not run its migrations again, even once the
    /// Jobs' TTL removed them.
    @Test func aRolloutOfTheSameReleaseRunsNoTaskAgainEvenWhenItsJobsAreGone() async throws {
        try roll(1, ["web": "serve"], scale: ["web": 1], predeploy: ["./migrate"], postdeploy: ["./notify"])
        let client = try KubernetesAPIClient(config: api.kubeconfig)
        let job = try #require(KubeKind.rendered.first { $0.kind == "Job" })
        try await client.delete(KubeObjectReference(kind: job, namespace: "slipway-web", name: "predeploy-1-v1"))
        try core.deploys.scale(app, ["web": 2], by: caller, output: output)
        try core.deploys.scale(app, ["web": 1], by: caller, output: output)
        #expect(api.object(at: "/apis/batch/v1/namespaces/slipway-web/jobs/predeploy-1-v1") == nil)
        #expect(!api.requests.contains { $0.hasPrefix("PATCH /apis/batch/v1/namespaces/slipway-web/jobs/") && !$0.contains("predeploy-1-v1?") })
        #expect(api.requests.filter { $0.hasPrefix("PATCH /apis/batch/v1/namespaces/slipway-web/jobs/predeploy-1-v1?") }.count == 1)
        #expect(!lines.text.contains("Running postdeploy") && lines.text.components(separatedBy: "Running predeploy").count == 2)
    }

    @Test func runIsAJobWithItsOutputAndExitStatus() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1])
        api.setJobOutcome { _ in .init(exitCode: 7, log: ["hello from the cluster"]) }
        let state = try core.clusterState(of: app)
        let deployer = KubernetesDeployer(cluster: try KubernetesAPIClient(config: api.kubeconfig), engine: engine, pollInterval: 0.01)
        let status = try deployer.run(state, command: ["echo hello; exit 7"], output: output)
        #expect(status == 7)
        #expect(lines.text.contains("hello from the cluster"))
        #expect(api.paths.contains { $0.hasPrefix("/apis/batch/v1/namespaces/slipway-web/jobs/run-") })
    }

    /// The caller's side of `run`: what it printed.
    func io(terminal: Terminal? = nil, cancelled: @escaping @Sendable () -> Bool = { false }) -> RunService.IO {
        RunService.IO(readStdin: { _ in Data() }, stdout: { [lines] in lines.add(String(decoding: $0, as: UTF8.self)); return true },
                      stderr: { _ in true }, notice: { [lines] in lines.add($0) }, isCancelled: cancelled, terminal: terminal)
    }

    var runJobs: [String] { api.paths.filter { $0.hasPrefix("/apis/batch/v1/namespaces/slipway-web/jobs/run-") } }

    @Test func runOfAClusterAppIsAJobWithItsOutputAndStatusAndRefusesATerminal() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1])
        api.setJobOutcome { _ in .init(exitCode: 3, log: ["hi", "from the pod"]) }
        let status = try core.runs.run(app, command: ["echo", "hi"], by: caller, io: io())
        #expect(status == 3)
        #expect(lines.text.contains("hi\n") && lines.text.contains("from the pod"))
        #expect(engine.calls.allSatisfy { !$0.hasPrefix("create web.run") })
        let job = try #require(runJobs.first.flatMap { api.object(at: $0) })
        #expect(job["spec"]?["template"]?["spec"]?["containers"]?.json().contains(#""command":["echo","hi"]"#) == true)
        #expect(job["metadata"]?["managedFields"]?.json().contains(#""manager":"slipway""#) == true)

        let refused = try #require(throws: UserFacingError.self) {
            try self.core.runs.run(self.app, command: ["bash"], by: self.caller, io: self.io(terminal: Terminal(type: "xterm", columns: 80, rows: 24)))
        }
        #expect(refused.message.contains("interactive runs (ssh -t) are not supported on the kubernetes scheduler"))
        #expect(runJobs.count == 1)

        let name = try core.runs.runDetached(app, command: ["sleep 60"], by: caller)
        #expect(name.hasPrefix("run-") && runJobs.count == 2)
    }

    @Test func logsReadTheProcessPodsThroughTheAPIByLabel() throws {
        api.setPodLog { deployment, index in (1...3).map { "\(deployment)#\(index) line \($0)" } }
        try roll(1, ["web": "serve", "worker": "work"], scale: ["web": 2, "worker": 1])
        try core.deploys.logs(app, type: nil, tail: 1, follow: false, output: output, isCancelled: { false })
        let all = lines.text.split(separator: "\n").filter { $0.contains("line ") }
        #expect(all.count == 3 && all.allSatisfy { $0.hasSuffix("line 3") })
        #expect(all.contains { $0.hasPrefix("web[web.web-") && $0.hasSuffix("]: web#1 line 3") })
        #expect(all.contains { $0.hasPrefix("web[worker.worker-") })

        let workerOnly = Lines()
        try core.deploys.logs(app, type: "worker", tail: 10, follow: false, output: { workerOnly.add($0) }, isCancelled: { false })
        #expect(workerOnly.text.split(separator: "\n").count == 3 && !workerOnly.text.contains("web#"))
        #expect(throws: UserFacingError.self) { try self.core.deploys.logs(self.app, type: "cron", tail: 10, follow: false, output: self.output, isCancelled: { false }) }
    }

    @Test func psReportShowsEachDeploymentsReadyAndDesiredReplicas() throws {
        try roll(1, ["web": "serve", "worker": "work"], scale: ["web": 2, "worker": 1])
        let report = try core.deploys.report(app)
        #expect(report.processes.map(\.name) == ["web", "worker"])
        #expect(report.processes.first?.state == "2/2 ready (Deployment on kubernetes)" && report.processes.first?.release == "v1")
        #expect(report.processes.last?.state == "1/1 ready (Deployment on kubernetes)")
    }

    @Test func withoutARegistryNothingIsApplied() throws {
        try core.scheduler.setRegistry(.server, to: "", by: caller)
        let error = try #require(throws: UserFacingError.self) { try self.roll(1, ["web": "serve"], scale: ["web": 1]) }
        #expect(error.message.contains("registry:set server"))
        #expect(api.paths.isEmpty)
    }

    /// The same server's state with a cluster nothing answers on (a closed loopback port).
    func unreachable() throws -> Core {
        let client = try KubernetesAPIClient(config: Kubeconfig(server: "http://127.0.0.1:1", token: "s3cret"), requestTimeout: .seconds(5))
        let deployer = KubernetesDeployer(cluster: client, engine: engine, rolloutTimeout: 5, taskTimeout: 5, pollInterval: 0.01)
        return try Core(settings: settings, engine: engine, probe: FakeProbe(), proxy: RecordingProxy(directory: settings.dataDir + "/proxy"),
                        processes: LocalProcesses(), cluster: deployer)
    }

    /// What the fake holds of the app: its namespace and everything in it.
    var appObjects: [String] { api.paths.filter { $0.contains("/namespaces/slipway-web") } }

    @Test func switchingBackToLocalRemovesTheAppsNamespaceAndObjectsFromTheCluster() throws {
        try roll(1, ["web": "serve", "worker": "work"], scale: ["web": 1, "worker": 1])
        #expect(appObjects.count > 3)
        try core.deploys.setScheduler(app, .local, force: false, by: caller, output: output)
        #expect(appObjects.isEmpty)
        #expect(api.requests.contains("DELETE /api/v1/namespaces/slipway-web?propagationPolicy=Background"))
        #expect(lines.text.contains("-----> Removed web from the cluster: namespace slipway-web and its"))
        #expect(try core.scheduler.scheduler(of: app) == .local)
        // Config, releases and the rest stay; setting it local again finds nothing to remove.
        #expect(try currentVersion() == 1)
        let before = api.requests.count
        try core.deploys.setScheduler(app, .local, force: false, by: caller, output: output)
        #expect(api.requests.count == before)
    }

    @Test func anUnreachableClusterRefusesTheSwitchToLocalUnlessForced() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1])
        let held = appObjects
        let core = try unreachable()
        let refused = try #require(throws: UserFacingError.self) {
            try core.deploys.setScheduler(self.app, .local, force: false, by: self.caller, output: self.output)
        }
        #expect(refused.message.hasPrefix("cannot remove web's objects from the cluster, so it stays on the kubernetes scheduler"))
        #expect(refused.message.contains("scheduler:set --force web local"))
        #expect(try core.scheduler.scheduler(of: app) == .kubernetes)

        try core.deploys.setScheduler(app, .local, force: true, by: caller, output: output)
        #expect(try core.scheduler.scheduler(of: app) == .local)
        #expect(lines.text.contains("--force: they are left running there"))
        #expect(appObjects == held)
        let audited = try core.store.read { db in try Event.fetchAll(db).map(\.detail) }
        #expect(audited.contains("set the scheduler to local; --force: left its objects on the cluster"))
    }

    @Test func destroyingAClusterAppIsRefusedWhenTheClusterCannotBeReached() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1])
        let held = appObjects
        let refused = try #require(throws: UserFacingError.self) { _ = try self.unreachable().deploys.destroy(self.app, purgeStorage: false, by: self.caller) }
        #expect(refused.message.hasPrefix("cannot remove web's objects from the cluster, so it was not destroyed"))
        #expect(try core.apps.find(app) != nil)
        #expect(appObjects == held)
    }

    @Test func destroyingAClusterAppRemovesItsNamespace() throws {
        try roll(1, ["web": "serve"], scale: ["web": 1])
        #expect(!appObjects.isEmpty)
        _ = try core.deploys.destroy(app, purgeStorage: false, by: caller)
        #expect(appObjects.isEmpty)
        #expect(try core.apps.find(app) == nil)
    }
}
