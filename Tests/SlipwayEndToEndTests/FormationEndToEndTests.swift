import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// app.json `formation` over the real OpenSSH client, git and podman: the push runs
/// the scale it declares, ps:report says where the scale comes from, and ps:scale is
/// refused as Dokku documents.
@Suite("app.json formation end to end", .serialized)
struct FormationEndToEndTests {
    let engine = DockerEngine.locate(configured: nil)

    @Test func aPushedFormationSetsTheScaleAndPsScaleIsRefused() async throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let bob = try TestUser.register("bob", on: server.slipway), carol = try TestUser.register("carol", on: server.slipway)
        let app = "formed"
        #expect(try server.ssh(bob.key, "apps:create", app).status == 0)
        #expect(try server.ssh(bob.key, "acl:add", app, "carol", "read").status == 0)
        defer { _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }

        // A hostile quantity rejects the push with the key's path; nothing is deployed.
        let procfile = "web: python3 server.py\nworker: sleep 100000\n"
        let huge = try makeRepository(DeployTests.appFiles("v0", procfile: procfile, appJSON: #"{"formation": {"worker": {"quantity": 100000}}}"#))
        let refusedPush = try server.git(bob.key, ["push", server.url(app), "main"], in: huge)
        #expect(refusedPush.status != 0)
        #expect(refusedPush.err.contains("app.json formation.worker.quantity must be a whole number from 0 to 20"), "\(refusedPush.err)")
        #expect(try await processes(server, app).isEmpty)

        let formation = """
            {
              // as Dokku's docs write it; max_parallel is Dokku's, not Slipway's
              "formation": {"web": {"quantity": 2, "max_parallel": 1}, "worker": {"quantity": 1}}
            }
            """
        let repo = try makeRepository(DeployTests.appFiles("v1", procfile: procfile, appJSON: formation))
        let push = try server.git(bob.key, ["push", "-f", server.url(app), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        #expect(push.err.contains("app.json: ignoring formation.web.max_parallel"), "\(push.err)")
        #expect(push.err.contains("app.json formation sets the scale: web=2 worker=1 (ps:scale is off while it does)"), "\(push.err)")
        let running = try await processes(server, app).filter { $0.state == "running" }.map(baseName).sorted()
        #expect(running == ["\(app).web.1", "\(app).web.2", "\(app).worker.1"], "\(running)")
        #expect(try run("/usr/bin/curl", ["-s", "-m", "5", server.slipway.url(app)]).out == "hello v1\n")

        // ps:report, for a reader too: the scale and where it comes from.
        let report = try server.ssh(carol.key, "ps:report", app)
        #expect(report.status == 0, "\(report.err)")
        #expect(report.out.contains("Scale:           web=2 worker=1\n"), "\(report.out)")
        #expect(report.out.contains("Scale from:      app.json formation of v1 (ps:scale is off; change app.json and push)\n"), "\(report.out)")
        #expect(try server.ssh(carol.key, "ps:report", app, "--ps-can-scale").out == "false\n")
        let json = try server.ssh(carol.key, "ps:report", app, "--format", "json").out
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(json)")
        #expect(object["can-scale"] as? String == "false" && object["scale-source"] as? String == "app.json", "\(json)")
        #expect(object["formation"] as? [String: Int] == ["web": 2, "worker": 1], "\(json)")

        // ps:scale: refused for the owner with Dokku's words and the fix; a reader is refused by the gate.
        let scale = try server.ssh(bob.key, "ps:scale", app, "worker=3")
        #expect(scale.status == 1, "\(scale.out)")
        #expect(scale.err.hasPrefix("error: App \(app) contains an app.json file with a formations key and cannot be manually scaled;"), "\(scale.err)")
        #expect(scale.err.contains("change formation.<type>.quantity there and git push"), "\(scale.err)")
        let reader = try server.ssh(carol.key, "ps:scale", app, "worker=3")
        #expect(reader.status == 1 && reader.err.hasPrefix("error: "), "\(reader.err)")
        #expect(try await processes(server, app).filter { $0.state == "running" }.count == 3)
    }

    func processes(_ server: TestServer, _ app: String) async throws -> [ContainerSummary] {
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8)
        return try await engine.listContainers(labels: ["org.slipway.app": app, "org.slipway.kind": "process", "org.slipway.instance": instance])
    }
}
