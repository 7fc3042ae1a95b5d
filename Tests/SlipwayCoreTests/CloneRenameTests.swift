import Foundation
import GRDB
import SlipwayHost
import Testing
@testable import SlipwayCore

/// apps:rename of a deployed app and apps:clone, on the fake engine and proxy:
/// what moves, what stays, what a failure leaves, and who may do it.
@Suite("apps:rename of a deployed app, and apps:clone")
struct CloneRenameTests {
    let engine = FakeEngine()
    let probe = FakeProbe()
    let proxy: RecordingProxy
    let core: Core
    let caller = Caller(principal: .localAdmin, command: "test")
    let web = try! AppName("web"), www = try! AppName("www")

    init() throws {
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        settings.waitToRetire = 0
        proxy = RecordingProxy(directory: settings.dataDir + "/proxy")
        core = try Core(settings: settings, engine: engine, probe: probe, proxy: proxy, processes: LocalProcesses())
    }

    var deploys: DeployService {
        var deploys = core.deploys
        deploys.runningCheckDelay = 0.01
        return deploys
    }

    /// `web` deployed as v1 (one web process) from a build of revision r1, with a custom domain.
    func deployWeb() throws {
        let record = try core.apps.create(web, by: caller)
        let plan = DeployPlan(processes: ["web": "serve"], healthchecks: ["web": [HealthCheck(attempts: 1, wait: 0)]])
        let snapshot = ReleaseSnapshot(plan: plan, environment: [:], mounts: [], formation: [:])
        let release = try core.store.write { db -> Release in
            var build = Build(appId: record.id!, revision: "r1", image: "slipway/web:r1", kind: "procfile", status: .succeeded,
                              startedBy: "test", startedAt: Date())
            try build.insert(db)
            var domain = Domain(name: "shop.example.com", appId: record.id!, addedBy: "test", addedAt: Date())
            try domain.insert(db)
            var release = Release(appId: record.id!, version: 1, image: "slipway/web:r1", revision: "r1", reason: "test",
                                  snapshot: try DeployService.encode(snapshot), status: .deploying, startedBy: "test", startedAt: Date())
            try release.insert(db)
            return release
        }
        try deploys.rollout(web, record: try #require(try core.apps.find(web)), release: release, snapshot: snapshot, types: nil) { _ in }
        #expect(engine.names == ["web.web.1"])
    }

    func images(of app: AppName) throws -> [String] {
        try core.store.read { db in
            try String.fetchAll(db, sql: "SELECT image FROM releases WHERE app_id = ? UNION SELECT image FROM builds WHERE app_id = ?",
                                arguments: [AppService.id(of: app, db), AppService.id(of: app, db)])
        }
    }

    func pendingRenames() throws -> Int {
        try core.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM app_renames") ?? 0 }
    }

    @Test func aDeployedAppIsRenamedWithItsProcessesImagesAndRouting() throws {
        try deployWeb()
        try deploys.rename(web, to: www, by: caller)
        #expect(engine.names == ["www.web.1"])
        #expect(engine.container(named: "www.web.1")?.labels[ContainerLabel.app] == "www")
        #expect(proxy.live(web) == nil)
        let site = try #require(proxy.live(www))
        #expect(site.names == ["www.\(core.settings.globalDomain)", "shop.example.com"])
        #expect(site.endpoints.count == 1)
        #expect(try images(of: www) == ["slipway/www:r1"])
        #expect(engine.calls.contains("tag slipway/web:r1 slipway/www:r1") && engine.calls.contains("rmi slipway/web:r1"))
        #expect(try core.apps.find(web) == nil)
        #expect(try pendingRenames() == 0)
        // The old name is free again; the app runs as it did (a restart finds its image name).
        _ = try core.apps.create(web, by: caller)
        try deploys.restart(www, type: nil, by: caller) { _ in }
        #expect(engine.names.sorted() == ["www.web.1"])
    }

    @Test func aRenameWhoseNewProcessesFailLeavesTheAppServingUnderItsOldName() throws {
        try deployWeb()
        probe.status = 500
        let error = try #require(throws: UserFacingError.self) { try deploys.rename(web, to: www, by: caller) }
        #expect(error.message.hasPrefix("renaming web to www failed, so the app keeps the name web and serves as before: www.web.1 failed its check"))
        #expect(engine.names == ["web.web.1"])
        #expect(proxy.live(www) == nil)
        #expect(try #require(proxy.live(web)).names.contains("shop.example.com"))
        #expect(try images(of: web) == ["slipway/web:r1"])
        #expect(engine.calls.contains("rmi slipway/www:r1"))
        #expect(try pendingRenames() == 0)
        #expect(FileManager.default.fileExists(atPath: core.paths.repository(web)) || !FileManager.default.fileExists(atPath: core.paths.repository(www)))
        _ = try core.apps.create(www, by: caller)  // the name it reserved is free
    }

    @Test func aRenameTheProxyRefusesChangesNothingEvenForANeverDeployedApp() throws {
        _ = try core.apps.create(web, by: caller)
        try core.routing.add(web, ["shop.example.com"], by: caller)
        let before = try #require(proxy.live(web))
        proxy.fail(www, .refused)
        #expect(throws: UserFacingError.self) { try deploys.rename(web, to: www, by: caller) }
        #expect(try core.apps.find(web) != nil && core.apps.find(www) == nil)
        #expect(proxy.live(web) == before && proxy.live(www) == nil)
        #expect(try pendingRenames() == 0)
        try deploys.rename(web, to: www, by: caller)
        #expect(proxy.live(web) == nil && proxy.live(www) != nil)
    }

    @Test func aRenameInProgressHoldsBothNamesAndRecoveryFinishesIt() throws {
        try deployWeb()
        // A rename cut short after it started processes under the new name.
        _ = try core.apps.beginRename(web, to: www, by: caller)
        var labels = core.deploys.containers.labels(app: www, kind: .process)
        (labels.type, labels.index, labels.release) = ("web", "1", "1")
        var spec = ContainerSpec(image: "slipway/www:r1", command: ["serve"])
        spec.name = "www.web.1.new-abc"
        _ = try core.deploys.containers.start(spec, labels: labels)
        let taken = try #require(throws: UserFacingError.self) { try core.apps.create(www, by: caller) }
        #expect(taken.message.contains("being renamed"))
        #expect(throws: UserFacingError.self) { try core.apps.create(web, by: caller) }
        var lines: [String] = []
        try deploys.reconcile { lines.append($0) }
        #expect(lines.contains { $0.contains("finished a rename cut short") })
        #expect(engine.names == ["web.web.1"])
        #expect(proxy.live(web) != nil && proxy.live(www) == nil)
        #expect(try pendingRenames() == 0)
        _ = try core.apps.create(www, by: caller)
    }
}

/// apps:clone and apps:rename through the command runner, from each side.
@Suite("apps:clone and apps:rename access")
struct CloneAccessTests {
    /// alice owns `web` (config, a domain, her storage, an admin's host path, limits);
    /// bob reads it; carol has no access.
    func world() throws -> TestWorld {
        let w = try TestWorld()
        for user in ["alice", "bob", "carol"] { w.run(["users:add", user]) }
        try w.run(["apps:create", "web"], asUser: "alice")
        try w.run(["config:set", "web", "SECRET=s3"], asUser: "alice")
        try w.run(["storage:mount", "web", "alices:/data"], asUser: "alice")
        w.run(["storage:mount", "web", "/srv/shared:/shared"])
        try w.run(["domains:add", "web", "shop.example.com"], asUser: "alice")
        try w.run(["resource:limit", "--memory", "256m", "web"], asUser: "alice")
        try w.run(["acl:add", "web", "bob", "read"], asUser: "alice")
        return w
    }

    @Test func aCloneHasTheConfigLimitsAndTheMountsItsMakerMayMakeButNoDomains() throws {
        let w = try world()
        let cloned = try w.run(["apps:clone", "--skip-deploy", "web", "copy"], asUser: "alice")
        #expect(cloned.status == 0, "\(cloned.err)")
        #expect(cloned.err.contains("not copied: the mount /srv/shared:/shared (host paths are for admins)"))
        #expect(try w.run(["config:get", "copy", "SECRET"], asUser: "alice").out == "s3\n")
        let mounts = try w.run(["storage:list", "copy"], asUser: "alice").out
        #expect(mounts.contains("/data") && !mounts.contains("/shared"))
        #expect(try w.run(["resource:report", "copy"], asUser: "alice").out.contains("256"))
        #expect(try w.run(["domains:report", "copy"], asUser: "alice").out.contains("shop.example.com") == false)
        #expect(try w.run(["apps:report", "copy", "--app-your-access"], asUser: "alice").out == "owner\n")
        // The source is unchanged, and its log says who copied it.
        #expect(try w.run(["domains:report", "web"], asUser: "alice").out.contains("shop.example.com"))
        // An admin's clone carries the host path too.
        #expect(w.run(["apps:clone", "--skip-deploy", "web", "admins"]).status == 0)
        #expect(w.run(["storage:list", "admins"]).out.contains("/shared"))
    }

    @Test func aReaderClonesIntoAnAppOfTheirOwnWithoutStorageTheyDoNotOwn() throws {
        let w = try world()
        let cloned = try w.run(["apps:clone", "--skip-deploy", "web", "bobs"], asUser: "bob")
        #expect(cloned.status == 0, "\(cloned.err)")
        #expect(cloned.err.contains("alices:/data (storage you do not own)"))
        #expect(try w.run(["storage:list", "bobs"], asUser: "bob").out.contains("/data") == false)
        #expect(try w.run(["apps:report", "bobs", "--app-your-access"], asUser: "bob").out == "owner\n")
        // alice got nothing on bob's copy, and bob nothing more on web.
        #expect(try w.run(["config:get", "bobs", "SECRET"], asUser: "alice").status != 0)
        #expect(try w.run(["config:set", "web", "X=1"], asUser: "bob").status != 0)
    }

    @Test func aUserWithoutAccessCannotCloneOrRenameAndAReaderOrWriterCannotRename() throws {
        let w = try world()
        let denied = try w.run(["apps:clone", "--skip-deploy", "web", "stolen"], asUser: "carol")
        #expect(denied.status == 1 && denied.err.contains("not found"))
        #expect(try w.core.apps.find(AppName("stolen")) == nil)
        // --ignore-existing does not make a hidden source answer differently.
        #expect(try w.run(["apps:clone", "--ignore-existing", "web", "stolen"], asUser: "carol").status == 1)
        #expect(try w.run(["apps:rename", "web", "mine"], asUser: "carol").status == 1)
        #expect(try w.run(["apps:rename", "web", "mine"], asUser: "bob").status == 1)
        try w.run(["acl:add", "web", "bob", "write"], asUser: "alice")
        #expect(try w.run(["apps:rename", "web", "mine"], asUser: "bob").status == 1)
        #expect(try w.core.apps.find(AppName("web")) != nil)
        // Cloning onto a name another tenant has is refused, or with --ignore-existing skipped.
        try w.run(["apps:create", "carols"], asUser: "carol")
        #expect(try w.run(["apps:clone", "--skip-deploy", "web", "carols"], asUser: "bob").err.contains("already taken"))
        let ignored = try w.run(["apps:clone", "--ignore-existing", "web", "carols"], asUser: "bob")
        #expect(ignored.status == 0 && ignored.err.contains("Name is already taken"))
        #expect(try w.run(["config:get", "carols", "SECRET"], asUser: "carol").status != 0)
    }

    @Test func aCloneCarriesEveryBranchOfTheRepository() throws {
        let w = try world()
        let repo = try w.core.git.ensureRepository(AppName("web"))
        let work = scratchPath("clone-work")
        let git = GitService.gitExecutable
        for args in [["init", "-q", "-b", "main", work], ["-C", work, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "one"],
                     ["-C", work, "push", "-q", repo, "main", "main:feature"]] {
            #expect(try runTool(git, args).status == 0)
        }
        #expect(try w.run(["apps:clone", "--skip-deploy", "web", "copy"], asUser: "bob").status == 0)
        let heads = try runTool(git, ["--git-dir", w.core.paths.repository(AppName("copy")), "for-each-ref", "--format=%(refname)", "refs/heads/"])
        #expect(heads.out == "refs/heads/feature\nrefs/heads/main\n")
        let remotes = try runTool(git, ["--git-dir", w.core.paths.repository(AppName("copy")), "remote"])
        #expect(remotes.out.isEmpty)
    }
}
