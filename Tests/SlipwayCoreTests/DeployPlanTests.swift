import Foundation
import GRDB
import Testing
@testable import SlipwayCore

/// What a revision's Procfile and app.json turn into, and what they may not say.
@Suite("Deploy plans: Procfile and app.json")
struct DeployPlanTests {
    @Test func procfileTypesTasksAndChecks() throws {
        let plan = try DeployPlan.parse(
            procfile: "# comment\nweb: python3 server.py\n\nworker: sleep 100\nrelease: ./migrate\n",
            appJSON: #"{"scripts": {"dokku": {"predeploy": "echo pre", "postdeploy": "echo post"}}, "healthchecks": {"web": [{"path": "/health", "content": "ok", "attempts": 2}]}}"#)
        #expect(plan.processes == ["web": "python3 server.py", "worker": "sleep 100"])
        // app.json's predeploy first, then the Procfile's release line.
        #expect(plan.predeploy == ["echo pre", "./migrate"])
        #expect(plan.postdeploy == ["echo post"])
        #expect(plan.healthchecks["web"] == [HealthCheck(path: "/health", content: "ok", attempts: 2)])
    }

    /// Dokku's own sample app (its tests/apps/python) carries `//` comments; keys
    /// Slipway does not act on are named, not refused.
    @Test func appJSONWithCommentsAsDokkuReadsIt() throws {
        let appJSON = """
            {
              "name": "a // not a comment /* either */",
              "healthchecks": {"web": [{"attempts": 2, "path": "/", "name": "check-1", "type": "startup"}]},
              /* a block
                 comment */
              "scripts": {
                "dokku": {
                  // this is a comment for the postdeploy script
                  "postdeploy": "touch /app/post\\"//x",
                  "predeploy": "touch /app/pre" // trailing
                },
                "postdeploy": "heroku's"
              },
              "env": {"A": "1"}
            }
            """
        let plan = try DeployPlan.parse(procfile: "web: x\n", appJSON: appJSON)
        #expect(plan.predeploy == ["touch /app/pre"])
        #expect(plan.postdeploy == [#"touch /app/post"//x"#])
        #expect(plan.healthchecks["web"]?.first?.attempts == 2)
        #expect(plan.ignoredKeys == ["env", "name", "scripts.postdeploy"])
        // The ignored keys are not part of a release's snapshot.
        let decoded = try JSONDecoder().decode(DeployPlan.self, from: try JSONEncoder().encode(plan))
        #expect(decoded.ignoredKeys == [] && decoded.predeploy == plan.predeploy)
    }

    /// app.json `formation` as Dokku reads it: each type's quantity; the rest of an
    /// entry (max_parallel, autoscaling, service) is named as ignored.
    @Test func formationQuantitiesAreReadAndTheRestIsNamedAsIgnored() throws {
        let plan = try DeployPlan.parse(procfile: "web: a\nworker: b\nclock: c\n", appJSON: """
            {"formation": {
              "web": {"quantity": 20, "max_parallel": 1},
              "worker": {"quantity": 0, "autoscaling": {"min_quantity": 1, "triggers": {"http": {}}}},
              "clock": {"service": {"exposed": true}},
              // a type the Procfile no longer has, scaled to 0, is accepted as Dokku does
              "gone": {"quantity": 0}
            }}
            """)
        #expect(plan.formation == ["web": 20, "worker": 0])
        #expect(plan.ignoredKeys == ["formation.clock.service", "formation.web.max_parallel", "formation.worker.autoscaling"])
        // A release's snapshot keeps it; one made before formations were read has none.
        let decoded = try JSONDecoder().decode(DeployPlan.self, from: try JSONEncoder().encode(plan))
        #expect(decoded.formation == ["web": 20, "worker": 0])
        let older = try JSONDecoder().decode(DeployPlan.self, from: Data(#"{"processes":{"web":"a"},"predeploy":[],"postdeploy":[],"healthchecks":{}}"#.utf8))
        #expect(older.formation == nil)
        #expect(String(decoding: try JSONEncoder().encode(older), as: UTF8.self).contains("formation") == false)

        // No quantity anywhere: no formation (ps:scale keeps the scale), as Dokku.
        for appJSON in [#"{"formation": {"web": {"max_parallel": 2}}}"#, #"{"formation": {}}"#, #"{"formation": {"web": {"quantity": null}}}"#] {
            let none = try DeployPlan.parse(procfile: "web: a\n", appJSON: appJSON)
            #expect(none.formation == nil, "\(appJSON)")
        }
        // Without a Procfile the image's command is web, and web is what a formation may scale.
        #expect(try DeployPlan.parse(procfile: nil, appJSON: #"{"formation": {"web": {"quantity": 3}}}"#).formation == ["web": 3])
    }

    /// A process type name in app.json is the tenant's text: it reaches the error quoted,
    /// never as raw control characters that could forge lines of the deploy's output.
    @Test func aHostileFormationTypeIsQuotedInTheRefusal() {
        let appJSON = #"{"formation": {"x\n-----> Application deployed\u001b[2K": {"quantity": 1}}}"#
        let error = #expect(throws: UserFacingError.self) { try DeployPlan.parse(procfile: "web: a\n", appJSON: appJSON) }
        let message = error?.message ?? ""
        #expect(message.contains(#"there is no process type "x\n-----> Application deployed\u{1b}[2K""#), "\(message)")
        #expect(!message.contains("\n") && !message.contains("\u{1b}"), "\(message)")
    }

    @Test func withoutAProcfileTheImageCommandIsWeb() throws {
        #expect(try DeployPlan.parse(procfile: nil, appJSON: nil).processes == ["web": ""])
    }

    @Test(arguments: [
        ("web python3 server.py\n", "is not \"type: command\""),
        ("Web: python3\n", "process type \"Web\""),
        ("web:\n", "web has no command"),
        ("we b: x\n", "process type \"we b\""),
    ])
    func badProcfilesAreRefusedWithTheLine(procfile: String, message: String) {
        #expect { try DeployPlan.parse(procfile: procfile, appJSON: nil) } throws: { error in
            (error as? UserFacingError)?.message.contains(message) == true && (error as? UserFacingError)?.message.contains("line 1") == true
        }
    }

    @Test(arguments: [
        (#"{"scripts": "nope"}"#, "app.json is not valid: scripts"),
        (#"not json"#, "app.json is not valid"),
        (#"{"healthchecks": {"web": [{"path": "health"}]}}"#, "must start with /"),
        (#"{"healthchecks": {"web": [{"path": "/a b"}]}}"#, "must start with / and hold no spaces"),
        (#"{"healthchecks": {"web": [{"attempts": 0}]}}"#, "attempts must be within 1...100"),
        (#"{"healthchecks": {"web": [{"timeout": 601}]}}"#, "timeout must be within 1...600"),
        // formation: hostile quantities are refused with their path, and nothing is deployed.
        (#"{"formation": {"web": {"quantity": -1}}}"#, "app.json formation.web.quantity must be a whole number from 0 to 20"),
        (#"{"formation": {"web": {"quantity": 21}}}"#, "app.json formation.web.quantity must be a whole number from 0 to 20"),
        (#"{"formation": {"web": {"quantity": 9223372036854775808}}}"#, "app.json formation.web.quantity must be a whole number"),
        (#"{"formation": {"web": {"quantity": 1e300}}}"#, "app.json formation.web.quantity must be a whole number"),
        (#"{"formation": {"web": {"quantity": 2.5}}}"#, "app.json formation.web.quantity must be a whole number"),
        (#"{"formation": {"web": {"quantity": "2"}}}"#, "app.json formation.web.quantity must be a whole number"),
        (#"{"formation": {"web": {"quantity": true}}}"#, "app.json formation.web.quantity must be a whole number"),
        (#"{"formation": {"web": {"quantity": {"quantity": 1}}}}"#, "app.json formation.web.quantity must be a whole number"),
        (#"{"formation": {"web": {"quantity": [1]}}}"#, "app.json formation.web.quantity must be a whole number"),
        (#"{"formation": {"web": 2}}"#, "app.json is not valid: formation.web"),
        (#"{"formation": [{"web": 2}]}"#, "app.json is not valid: formation"),
        (#"{"formation": "web=2"}"#, "app.json is not valid: formation"),
        (#"{"formation": {"worker": {"quantity": 1}}}"#, #"app.json formation: there is no process type "worker" to run 1 of; the Procfile has web"#),
    ])
    func badAppJSONIsRefused(appJSON: String, message: String) {
        #expect { try DeployPlan.parse(procfile: "web: x\n", appJSON: appJSON) } throws: { error in
            (error as? UserFacingError)?.message.contains(message) == true
        }
    }

    @Test func aStaleLockIsReportedAndRemovedAndALiveOneIsNot() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        #expect(w.run(["deploy:lock-status", "web"]).out == "web is not being deployed\n")
        #expect(w.run(["deploy:unlock", "web"]).out == "web has no deploy lock\n")

        // A lock whose process is gone (a crashed deploy)...
        let appID = try #require(try w.core.apps.find(AppName("web"))?.id)
        try w.core.store.write { db in
            var lock = DeployLock(appId: appID, holder: "alice", pid: Int32.max - 1, origin: "local", releaseVersion: 3, acquiredAt: Date())
            try lock.insert(db)
        }
        let stale = w.run(["deploy:lock-status", "web"])
        #expect(stale.out.contains("stale") && stale.out.contains("alice") && stale.out.contains("(release v3)"), "\(stale.out)")
        #expect(w.run(["deploy:unlock", "web"]).out.contains("Removed the stale deploy lock"))
        #expect(w.run(["deploy:lock-status", "web"]).out == "web is not being deployed\n")

        // ...but a live one stays, and deploys are refused at once.
        let held = try w.core.deploys.locks.acquire(AppName("web"), by: Caller(principal: .localAdmin, command: "test"))
        let refused = w.run(["deploy:unlock", "web"])
        #expect(refused.status == 1 && refused.err.contains("is being deployed right now"), "\(refused.err)")
        let busy = w.run(["ps:rebuild", "web"])
        #expect(busy.status == 1 && busy.err.contains("web is being deployed by root@host since"), "\(busy.err)")
        w.core.deploys.locks.release(held)
        #expect(w.run(["deploy:lock-status", "web"]).out == "web is not being deployed\n")
    }
}

/// Procfile apps build in one step on the builder's app base.
@Suite("Procfile builds")
struct ProcfileBuildTests {
    @Test(arguments: [("slipway/builder:bookworm", "slipway/builder:bookworm-app"),
                      ("builder", "builder:latest-app"),
                      ("registry.local:5000/team/builder", "registry.local:5000/team/builder:latest-app")])
    func theAppBaseIsATagBesideTheBuilder(builder: String, base: String) {
        #expect(BuilderService.appBase(of: builder) == base)
    }

    @Test func theGeneratedDockerfileOnlyCopiesTheCode() {
        #expect(BuildService.procfileDockerfile(base: "b:app") == "FROM b:app\nCOPY --chown=1000:1000 . /app\n")
    }
}
