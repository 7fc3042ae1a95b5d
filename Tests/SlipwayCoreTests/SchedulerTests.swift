import Foundation
import GRDB
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// scheduler:*, registry:* and k8s:render from an attacker's side first, then the
/// switch that keeps an app's state and the deploy gate that refuses a kubernetes app.
@Suite struct SchedulerTests {
    let w: TestWorld
    let app = try! AppName("shop")

    init() throws {
        w = try TestWorld()
        for (name, admin) in [("alice", true), ("bob", false), ("carol", false), ("eve", false)] {
            #expect(w.run(["users:add", name] + (admin ? ["--admin"] : [])).status == 0)
        }
        #expect(try w.run(["apps:create", "shop"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "shop", "carol", "write"], asUser: "bob").status == 0)
    }

    /// Makes a release current, as a rollout's switch does.
    func goLive(_ version: Int = 1) throws {
        let plan = DeployPlan(processes: ["web": "python3 app.py", "worker": "python3 worker.py"], predeploy: ["python3 migrate.py"])
        let snapshot = ReleaseSnapshot(plan: plan, environment: ["GREETING": "hi"], mounts: [], formation: ["web": 2, "worker": 1])
        let record = try #require(try w.core.apps.find(app))
        try w.core.store.write { db in
            var release = Release(appId: record.id!, version: version, image: "slipway/shop:\(version)", revision: "r\(version)", reason: "test",
                                  snapshot: try DeployService.encode(snapshot), status: .succeeded, startedBy: "test", startedAt: Date())
            try release.insert(db)
            try w.core.apps.setCurrentRelease(release.id, of: record.id!, db)
        }
    }

    @Test func othersCannotSetAnAppsSchedulerNorTheDefault() throws {
        let before = try w.dump()
        for (user, argv) in [("eve", ["scheduler:set", "shop", "kubernetes"]), ("carol", ["scheduler:set", "shop", "kubernetes"]),
                             ("bob", ["scheduler:set", "--global", "kubernetes"]), ("eve", ["scheduler:report", "shop"]),
                             ("bob", ["k8s:render", "shop"]), ("bob", ["registry:set", "server", "evil.example.com"]),
                             ("carol", ["registry:login", "evil.example.com", "x"])] {
            let outcome = try w.run(argv, asUser: user, stdin: "hunter2\n")
            #expect(outcome.status != 0, "\(user) \(argv)")
            #expect(outcome.err.hasPrefix("error: "), "\(user) \(argv): \(outcome.err)")
        }
        // eve learns nothing about bob's app: the answer of a missing one.
        #expect(try w.run(["scheduler:set", "shop", "kubernetes"], asUser: "eve").err
            == w.run(["scheduler:set", "nope", "kubernetes"], asUser: "eve").err.replacingOccurrences(of: "nope", with: "shop"))
        #expect(try w.dump().replacingOccurrences(of: #"events: .*"#, with: "", options: .regularExpression)
            == before.replacingOccurrences(of: #"events: .*"#, with: "", options: .regularExpression))
        #expect(try w.core.scheduler.scheduler(of: app) == .local)
        #expect(!FileManager.default.fileExists(atPath: w.core.settings.dataDir + "/registry/auth.json"))
    }

    @Test func hostileValuesAreRefusedAndChangeNothing() throws {
        let before = try w.dump().replacingOccurrences(of: #"events: .*"#, with: "", options: .regularExpression)
        for argv in [["scheduler:set", "shop", "k3s"], ["scheduler:set", "shop", "Kubernetes"], ["scheduler:set", "shop"],
                     ["scheduler:set", "--global", "docker"], ["scheduler:set", "../shop", "local"],
                     ["registry:set", "server", "https://registry.example.com"], ["registry:set", "server", "reg istry"],
                     ["registry:set", "server", "registry.example.com/path"], ["registry:set", "server", "REGISTRY.example.com"],
                     ["registry:set", "server", "host:99999"], ["registry:set", "image-repo", "Team/Apps"],
                     ["registry:set", "image-repo", "../etc"], ["registry:set", "image-repo", "a b"], ["registry:set", "tls-verify", "false"],
                     ["registry:login", "https://x", "ci"], ["registry:login", "registry.example.com", "c:i"],
                     ["registry:login", "registry.example.com", "ci", "hunter2"]] {
            let outcome = w.run(argv, stdin: "hunter2\n")
            #expect(outcome.status != 0 && outcome.err.hasPrefix("error: "), "\(argv): \(outcome.err)")
            #expect(!outcome.err.contains("hunter2") || argv.count == 4, "\(argv)")
        }
        #expect(w.run(["registry:login", "registry.example.com", "ci"], stdin: "").status != 0)
        #expect(w.run(["registry:login", "registry.example.com", "ci"], stdin: "two\nlines\n").status != 0)
        #expect(try w.dump().replacingOccurrences(of: #"events: .*"#, with: "", options: .regularExpression) == before)
        #expect(!FileManager.default.fileExists(atPath: w.core.settings.dataDir + "/registry/auth.json"))
    }

    @Test func aHostPathMountKeepsAnAppOffKubernetes() throws {
        #expect(w.run(["storage:mount", "shop", "/srv/shop:/app/data"]).status == 0)
        let outcome = try w.run(["scheduler:set", "shop", "kubernetes"], asUser: "bob")
        #expect(outcome.status != 0 && outcome.err.contains("host directory /srv/shop") && outcome.err.contains("storage:unmount shop /srv/shop:/app/data"))
        #expect(try w.core.scheduler.scheduler(of: app) == .local)
    }

    @Test func registryCredentialsAreStored0600AndNeverPrinted() throws {
        #expect(w.run(["registry:set", "server", "registry.example.com:5000"]).status == 0)
        let login = w.run(["registry:login", "registry.example.com:5000", "ci"], stdin: "s3cret-token\n")
        #expect(login.status == 0, "\(login.err)")
        #expect(!login.out.contains("s3cret") && !login.err.contains("s3cret"))
        let file = w.core.settings.dataDir + "/registry/auth.json"
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        let directoryMode = try #require(try FileManager.default.attributesOfItem(atPath: w.core.settings.dataDir + "/registry")[.posixPermissions] as? Int)
        #expect(directoryMode == 0o700)
        let stored = try String(contentsOfFile: file, encoding: .utf8)
        #expect(stored.contains(Data("ci:s3cret-token".utf8).base64EncodedString()))
        let events = w.run(["events", "-n", "100"])
        #expect(!events.out.contains("s3cret") && events.out.contains("stored registry credentials for ci"))
        let report = try w.run(["scheduler:report", "shop", "--format", "json"], asUser: "bob")
        #expect(report.out.contains(#""registryLoggedIn":true"#) && !report.out.contains("s3cret") && !report.out.contains("kubeconfig\":\"/"))
        // Rendered for review: redacted unless asked.
        try goLive()
        let render = w.run(["k8s:render", "shop"])
        #expect(render.status == 0, "\(render.err)")
        #expect(render.out.contains("registry.example.com:5000/slipway/shop:1") && render.out.contains("<redacted>"))
        #expect(!render.out.contains(Data("ci:s3cret-token".utf8).base64EncodedString()))
    }

    @Test func switchingToKubernetesAndBackKeepsTheAppsState() throws {
        #expect(try w.run(["config:set", "--no-restart", "shop", "GREETING=hi"], asUser: "bob").status == 0)
        #expect(try w.run(["storage:create", "uploads"], asUser: "bob").status == 0)
        #expect(try w.run(["storage:mount", "shop", "uploads:/app/uploads"], asUser: "bob").status == 0)
        #expect(try w.run(["domains:add", "shop", "shop.example.com"], asUser: "bob").status == 0)
        try goLive(1)
        try goLive(2)
        let before = try w.dump()
        let set = try w.run(["scheduler:set", "shop", "kubernetes"], asUser: "bob")
        #expect(set.status == 0 && set.out.contains("kubernetes"), "\(set.err)")
        #expect(try w.core.scheduler.scheduler(of: app) == .kubernetes)
        let report = try w.run(["scheduler:report", "shop"], asUser: "carol")
        #expect(report.out.contains("kubernetes") && report.out.contains("slipway-shop") && !report.out.contains("Kubeconfig"))
        #expect(try w.run(["scheduler:set", "shop", "selected", "local"], asUser: "bob").status == 0)
        #expect(try w.core.scheduler.scheduler(of: app) == .local)
        // Only the scheduler row and the audit events differ.
        func state(_ dump: String) -> String {
            dump.split(separator: "\n").filter { !$0.hasPrefix("events:") && !$0.hasPrefix("app_schedulers:") }.joined(separator: "\n")
        }
        #expect(state(try w.dump()) == state(before))
        #expect(try w.core.config.get(EnvKey("GREETING"), in: .app(app)) == "hi")
        #expect(try w.core.storage.mounts(of: app).map(\.containerPath) == ["/app/uploads"])
        #expect(try w.core.routing.report(app).customDomains == ["shop.example.com"])
        let events = w.run(["events", "-n", "10"]).out
        #expect(events.contains("set the scheduler to kubernetes") && events.contains("set the scheduler to local"))
    }

    @Test func theDefaultIsLocalAndAnAdminChangesIt() throws {
        #expect(try w.core.scheduler.scheduler(of: app) == .local)
        #expect(w.run(["scheduler:set", "--global", "kubernetes"]).status == 0)
        #expect(try w.core.scheduler.scheduler(of: app) == .kubernetes)
        #expect(try w.run(["scheduler:set", "shop", "local"], asUser: "bob").status == 0)
        #expect(try w.core.scheduler.scheduler(of: app) == .local)
        #expect(try w.core.scheduler.report(app).defaultScheduler == .kubernetes)
    }

    @Test func aKubernetesAppIsNeverDeployedLocally() throws {
        try goLive()
        #expect(try w.run(["scheduler:set", "shop", "kubernetes"], asUser: "bob").status == 0)
        func withoutEvents(_ dump: String) -> String { dump.split(separator: "\n").filter { !$0.hasPrefix("events:") }.joined(separator: "\n") }
        let before = withoutEvents(try w.dump())
        for trigger: DeployService.Trigger in [.push(revision: "abc", branch: "main"), .config, .rebuild, .rollback(version: 1)] {
            #expect {
                try w.core.deploys.deploy(app, trigger: trigger, by: Caller(principal: .localAdmin, command: "git push"), output: { _ in })
            } throws: { error in
                let message = (error as? UserFacingError)?.message ?? ""
                return message.contains("kubernetes scheduler") && message.contains("no cluster configured") && message.contains("nothing was deployed")
            }
        }
        let restart = try w.run(["ps:restart", "shop"], asUser: "bob")
        #expect(restart.status != 0 && restart.err.hasPrefix("error: ") && restart.err.contains("no cluster configured"))
        let scale = try w.run(["ps:scale", "shop", "web=3"], asUser: "bob")
        #expect(scale.status != 0 && scale.err.contains("no cluster configured"))
        #expect(withoutEvents(try w.dump()) == before)
    }

    @Test func clusterSettingsAreReadAndNonsenseRefused() throws {
        let settings = try Settings.parse("kubeconfig = \"/etc/slipway/kubeconfig\"\nkube_context = \"prod\"\nkube_storage_class = \"fast-ssd\"\n", source: "test")
        #expect(settings.kubeconfig == "/etc/slipway/kubeconfig" && settings.kubeContext == "prod" && settings.kubeStorageClass == "fast-ssd")
        for line in ["kubeconfig = \"relative/kubeconfig\"", "kube_storage_class = \"Fast SSD\"", "kube_ingress_class = \"\"", "kube_context = 3"] {
            #expect(throws: UserFacingError.self, "\(line)") { try Settings.parse(line + "\n", source: "test") }
        }
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("etc/slipway.toml")
        let uncommented = try String(contentsOf: shipped, encoding: .utf8).split(separator: "\n")
            .map { $0.hasPrefix("# kube") ? String($0.dropFirst(2)) : String($0) }.joined(separator: "\n")
        #expect(try Settings.parse(uncommented, source: "etc/slipway.toml").kubeIngressClass == "nginx")
    }

    @Test func renderPrintsTheCurrentReleaseDeterministically() throws {
        #expect(w.run(["k8s:render", "shop"]).err.contains("no release yet"))
        try goLive()
        let first = w.run(["k8s:render", "shop"])
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out == w.run(["k8s:render", "shop"]).out)
        #expect(first.out.hasPrefix("---\napiVersion: \"v1\"\nkind: \"Namespace\""))
        for kind in ["Deployment", "Service", "Ingress", "Job", "Secret"] { #expect(first.out.contains("kind: \"\(kind)\""), "\(kind)") }
        #expect(!first.out.contains(Data("hi".utf8).base64EncodedString()))
        let json = w.run(["k8s:render", "shop", "--format", "json", "--show-secrets"])
        #expect(json.status == 0 && json.out.split(separator: "\n").count == 1 && json.out.contains(#""kind":"List""#))
        #expect(json.out.contains(Data("hi".utf8).base64EncodedString()))
    }
}
