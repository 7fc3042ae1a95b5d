import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// `ps:set APP restart-policy` and `checks:*` over the real OpenSSH client, git and podman.
@Suite("ps:set and checks end to end", .serialized)
struct ProcessChecksEndToEndTests {
    let engine = DockerEngine.locate(configured: nil)

    /// A tenant sets a restart policy and skips the checks of an app whose health
    /// check can never pass: the push deploys, the engine was given the policy with
    /// its retry count, and with the checks enabled again the same check rejects a push.
    @Test func restartPolicyReachesTheEngineAndSkippedChecksLetADeployThrough() async throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let bob = try TestUser.register("bob", on: server.slipway), carol = try TestUser.register("carol", on: server.slipway)
        let app = "checked"
        #expect(try server.ssh(bob.key, "apps:create", app).status == 0)
        #expect(try server.ssh(bob.key, "acl:add", app, "carol", "read").status == 0)
        defer { _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }

        // A reader changes nothing.
        let denied = try server.ssh(carol.key, "ps:set", app, "restart-policy", "always")
        #expect(denied.status == 1 && denied.err.hasPrefix("error: "), "\(denied.err)")
        #expect(try server.ssh(carol.key, "checks:skip", app).status == 1)

        let set = try server.ssh(bob.key, "ps:set", app, "restart-policy", "on-failure:7")
        #expect(set.status == 0, "\(set.err)")
        let skip = try server.ssh(bob.key, "checks:skip", app, "web")
        #expect(skip.status == 0, "\(skip.err)")
        #expect(try server.ssh(carol.key, "checks:report", app, "--checks-skipped-list").out == "web\n")

        // Its check wants text the app never says.
        let never = #"{"healthchecks": {"web": [{"path": "/", "content": "never said", "attempts": 1, "timeout": 2, "wait": 0}]}}"#
        let repo = try makeRepository(DeployTests.appFiles("v1", appJSON: never))
        let push = try server.git(bob.key, ["push", server.url(app), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        #expect(push.err.contains("Checks of \(app).web.1 are skipped"), "\(push.err)")
        let answer = try run("/usr/bin/curl", ["-s", "-m", "5", server.slipway.url(app)])
        #expect(answer.out == "hello v1\n")

        // What the engine holds for the container, read through its own API.
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8)
        let web = try #require(try await engine.listContainers(labels: ["org.slipway.app": app, "org.slipway.kind": "process", "org.slipway.instance": instance]).first)
        let inspect = try run("/usr/bin/curl", ["-s", "-m", "10", "--unix-socket", engine.endpoint, "http://d/v1.41/containers/\(web.id)/json"])
        let details = try #require(try JSONSerialization.jsonObject(with: Data(inspect.out.utf8)) as? [String: Any], "\(inspect.out)")
        let policy = try #require((details["HostConfig"] as? [String: Any])?["RestartPolicy"] as? [String: Any], "\(inspect.out)")
        #expect(policy["Name"] as? String == "on-failure")
        #expect(policy["MaximumRetryCount"] as? Int == 7)
        let report = try server.ssh(carol.key, "ps:report", app, "--format", "json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.out.utf8)) as? [String: Any], "\(report.out)")
        #expect(json["computed-restart-policy"] as? String == "on-failure:7")

        // Checked again, the same health check rejects the next push; v1 keeps serving.
        #expect(try server.ssh(bob.key, "checks:enable", app).status == 0)
        try Data("v2\n".utf8).write(to: URL(fileURLWithPath: repo + "/VERSION"))
        let env = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"]
        #expect(try run("/usr/bin/git", ["-C", repo, "add", "VERSION"]).status == 0)
        #expect(try run("/usr/bin/git", ["-C", repo, "commit", "-q", "-m", "checked v2 \(UUID().uuidString)"], environment: env).status == 0)
        let checked = try server.git(bob.key, ["push", server.url(app), "main"], in: repo)
        #expect(checked.status != 0)
        #expect(checked.err.contains("answered without \"never said\""), "\(checked.err)")
        #expect(try run("/usr/bin/curl", ["-s", "-m", "5", server.slipway.url(app)]).out == "hello v1\n")
    }
}
