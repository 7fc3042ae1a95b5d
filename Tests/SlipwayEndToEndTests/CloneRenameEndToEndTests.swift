import Foundation
import Testing

/// apps:clone and apps:rename of a deployed app over the real OpenSSH client, with
/// real git, podman and nginx: what a user's curl answers, what `ps:report` shows,
/// and what the engine still holds under each name.
@Suite("apps:clone and apps:rename end to end", .serialized)
struct CloneRenameEndToEndTests {
    /// A server with a fresh data dir; `body` runs, then everything it made goes.
    func withServer(_ body: (TestServer) throws -> Void) throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        try body(server)
    }

    /// curl as a user would: `name` resolved to 127.0.0.1 on this instance's proxy port;
    /// the status and the body without its final newline.
    func curl(_ server: TestServer, _ name: String) throws -> (status: Int, body: String) {
        let port = server.slipway.proxyPort
        let result = try run("/usr/bin/curl", ["-s", "-m", "5", "--resolve", "\(name):\(port):127.0.0.1", "-o", "-", "-w", "\n%{http_code}",
                                               "http://\(name):\(port)/"])
        guard let split = result.out.lastIndex(of: "\n") else { return (0, result.out) }
        var body = String(result.out[..<split])
        if body.hasSuffix("\n") { body.removeLast() }
        return (Int(result.out[result.out.index(after: split)...]) ?? 0, body)
    }

    /// `curl`'s answer as one line, "200 hello v1", so a failed expectation shows it.
    func answer(_ server: TestServer, _ name: String) throws -> String {
        let (status, body) = try curl(server, name)
        return "\(status) \(body)"
    }

    /// A GET of the engine's API (`/v1.41/...`), decoded.
    func engine(_ path: String) throws -> [[String: Any]] {
        let result = try run("/usr/bin/curl", ["-s", "--unix-socket", "/run/podman/podman.sock", "http://d/v1.41" + path])
        return try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [[String: Any]] ?? []
    }

    /// This server's containers as the engine lists them: (name, the app label).
    func containers(_ server: TestServer) throws -> [(name: String, app: String)] {
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return try engine("/containers/json?all=1").compactMap { container in
            let labels = container["Labels"] as? [String: String] ?? [:]
            guard labels["org.slipway.instance"] == instance else { return nil }
            let name = (container["Names"] as? [String])?.first.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } ?? ""
            return (name, labels["org.slipway.app"] ?? "")
        }
    }

    /// Every name of every image on the engine (podman gives short names a registry: docker.io/slipway/web:…).
    func imageNames() throws -> [String] {
        try engine("/images/json").flatMap { $0["RepoTags"] as? [String] ?? [] }
    }

    func head(_ repo: String) throws -> String {
        try run("/usr/bin/git", ["-C", repo, "rev-parse", "HEAD"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: clone

    /// alice deploys `web` (its answer is its GREETING, a storage of hers mounted);
    /// a clone serves the same answer until its own config changes, and each then
    /// answers on its own; --skip-deploy copies without deploying; carol (no access)
    /// cannot clone; bob (a reader) gets his own copy without alice's storage.
    @Test func aCloneServesOnItsOwnAndCarriesOnlyWhatItsMakerMayHave() throws {
        try withServer { server in
            let alice = try TestUser.register("alice", on: server.slipway)
            let bob = try TestUser.register("bob", on: server.slipway)
            let carol = try TestUser.register("carol", on: server.slipway)
            #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
            #expect(try server.ssh(alice.key, "config:set", "web", "GREETING=alpha").status == 0)
            #expect(try server.ssh(alice.key, "storage:create", "media").status == 0)
            let mounted = try server.ssh(alice.key, "storage:mount", "web", "media", "--container-dir", "/data")
            #expect(mounted.status == 0, "\(mounted.err)")
            let repo = try makeRepository(DeployTests.appFiles("v1"))
            let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
            #expect(push.status == 0, "\(push.err)")
            #expect(try answer(server, "web.localhost") == "200 alpha v1")
            let wrote = try server.ssh(alice.key, ["run", "web", "sh", "-c", "'echo private > /data/note'"])
            #expect(wrote.status == 0, "\(wrote.out) \(wrote.err)")

            // The clone deploys the same revision with the same config, then goes its own way.
            let cloned = try server.ssh(alice.key, "apps:clone", "web", "web2")
            #expect(cloned.status == 0, "\(cloned.out) \(cloned.err)")
            #expect(cloned.out.contains("app web2 created as a clone of web"), "\(cloned.out)")
            #expect(try answer(server, "web2.localhost") == "200 alpha v1")
            #expect(try server.ssh(alice.key, "config:set", "web2", "GREETING=beta").status == 0)
            #expect(try answer(server, "web2.localhost") == "200 beta v1")
            #expect(try answer(server, "web.localhost") == "200 alpha v1")
            // Her own storage came along: the clone sees what web wrote.
            let shared = try server.ssh(alice.key, "run", "web2", "cat", "/data/note")
            #expect(shared.out == "private\n", "\(shared.out) \(shared.err)")
            let report = try server.ssh(alice.key, "ps:report", "web2")
            #expect(report.out.contains("web2.web.1") && report.out.contains("running"), "\(report.out)")
            let deployed = try server.ssh(alice.key, "apps:report", "web2", "--format", "json")
            #expect(deployed.out.contains(String(try head(repo).prefix(12))), "\(deployed.out)")

            // --skip-deploy: the copy exists, nothing of it runs.
            let skipped = try server.ssh(alice.key, "apps:clone", "--skip-deploy", "web", "web3")
            #expect(skipped.status == 0, "\(skipped.err)")
            #expect(try server.ssh(alice.key, "ps:report", "web3").out.contains("(not deployed yet)"))
            #expect(try containers(server).filter { $0.app == "web3" }.isEmpty)
            #expect(try curl(server, "web3.localhost").status != 200)
            #expect(try server.ssh(alice.key, "config:get", "web3", "GREETING").out == "alpha\n")
            // Then ps:rebuild deploys it from the repository it was given, as in Dokku
            // (and as a clone whose deploy failed is told to).
            let rebuilt = try server.ssh(alice.key, "ps:rebuild", "web3")
            #expect(rebuilt.status == 0, "\(rebuilt.out) \(rebuilt.err)")
            #expect(try answer(server, "web3.localhost") == "200 alpha v1")

            // carol cannot read web: it does not exist for her, and nothing is made.
            let stolen = try server.ssh(carol.key, "apps:clone", "web", "stolen")
            #expect(stolen.status == 1 && stolen.err.hasPrefix("error: ") && stolen.err.contains("not found"), "\(stolen.err)")
            #expect(try server.ssh(carol.key, "apps:clone", "--ignore-existing", "web", "stolen").status == 1)
            #expect(try server.slipway("apps:exists", "stolen").status != 0)
            #expect(try curl(server, "stolen.localhost").status == 404)

            // bob reads web: his clone is his, serves, and has no mount of alice's storage.
            #expect(try server.ssh(alice.key, "acl:add", "web", "bob", "read").status == 0)
            let bobs = try server.ssh(bob.key, "apps:clone", "web", "bobs")
            #expect(bobs.status == 0, "\(bobs.out) \(bobs.err)")
            #expect(bobs.err.contains("not copied: the mount media:/data (storage you do not own)"), "\(bobs.err)")
            #expect(try answer(server, "bobs.localhost") == "200 alpha v1")
            #expect(try server.ssh(bob.key, "apps:report", "bobs", "--app-your-access").out == "owner\n")
            let peek = try server.ssh(bob.key, "run", "bobs", "cat", "/data/note")
            #expect(peek.status != 0 && !peek.out.contains("private"), "\(peek.out) \(peek.err)")
            let storage = try server.ssh(bob.key, "storage:report", "bobs", "--format", "json")
            #expect(storage.status == 0 && !storage.out.contains("media"), "\(storage.out) \(storage.err)")
            // Nor did the clone give bob more on web, or alice anything on bobs.
            #expect(try server.ssh(bob.key, "config:set", "web", "GREETING=owned").status != 0)
            #expect(try server.ssh(alice.key, "config:get", "bobs", "GREETING").status != 0)
            #expect(try answer(server, "web.localhost") == "200 alpha v1")
        }
    }

    // MARK: rename

    /// alice's deployed `web`, with a custom domain, renamed to `site`: the new default
    /// domain and the custom one answer, the old default domain is not routed, the
    /// processes run under the new name and nothing is left under the old one; the new
    /// name deploys on push; the old name is free, so a push to it makes a fresh app.
    /// bob, a writer but not the owner, cannot rename.
    @Test func aDeployedAppRenamedServesUnderItsNewNameOnly() throws {
        try withServer { server in
            let alice = try TestUser.register("alice", on: server.slipway)
            let bob = try TestUser.register("bob", on: server.slipway)
            let repo = try makeRepository(DeployTests.appFiles("v1"))
            let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
            #expect(push.status == 0, "\(push.err)")
            let image = "slipway/web:" + (try head(repo).prefix(12))
            #expect(try server.ssh(alice.key, "domains:add", "web", "shop.example.test").status == 0)
            #expect(try answer(server, "shop.example.test") == "200 hello v1")
            #expect(try imageNames().contains { $0.hasSuffix(image) })

            // A writer is not the owner.
            #expect(try server.ssh(alice.key, "acl:add", "web", "bob", "write").status == 0)
            let refused = try server.ssh(bob.key, "apps:rename", "web", "bobsite")
            #expect(refused.status == 1 && refused.err.hasPrefix("error: "), "\(refused.err)")
            #expect(try answer(server, "web.localhost") == "200 hello v1")
            #expect(try curl(server, "bobsite.localhost").status == 404)

            let renamed = try server.ssh(alice.key, "apps:rename", "web", "site")
            #expect(renamed.status == 0, "\(renamed.out) \(renamed.err)")
            #expect(renamed.out.contains("Renaming web to site... done"), "\(renamed.out)")
            #expect(try answer(server, "site.localhost") == "200 hello v1")
            #expect(try answer(server, "shop.example.test") == "200 hello v1")
            // nginx's answer to a name no app has.
            #expect(try curl(server, "web.localhost").status == 404)
            #expect(try curl(server, "never-an-app.localhost").status == 404)
            let report = try server.ssh(alice.key, "ps:report", "site")
            #expect(report.status == 0 && report.out.contains("site.web.1") && report.out.contains("running"), "\(report.out)")
            #expect(try server.ssh(alice.key, "domains:report", "site").out.contains("shop.example.test"))
            #expect(try server.ssh(alice.key, "releases", "site").out.contains("v1 *"))
            // The engine holds nothing under the old name: containers, or the image's old name.
            let all = try containers(server)
            #expect(all.filter { $0.app == "web" || $0.name.hasPrefix("web.") }.isEmpty, "\(all)")
            #expect(all.contains { $0.app == "site" && $0.name == "site.web.1" }, "\(all)")
            let images = try imageNames()
            #expect(!images.contains { $0.hasSuffix(image) }, "\(images.filter { $0.contains("slipway/") })")
            #expect(images.contains { $0.hasSuffix("slipway/site:" + image.dropFirst("slipway/web:".count)) })
            // bob keeps his write access under the new name, and the old name answers nothing.
            #expect(try server.ssh(bob.key, "config:set", "site", "GREETING=hi").status == 0)
            #expect(try answer(server, "site.localhost") == "200 hi v1")
            #expect(try server.ssh(bob.key, "config:get", "web", "GREETING").status == 1)

            // A push to the new name deploys.
            try DeployTests().commit(repo, DeployTests.appFiles("v2"), message: "v2")
            let again = try server.git(alice.key, ["push", server.url("site"), "main"], in: repo)
            #expect(again.status == 0, "\(again.err)")
            #expect(try answer(server, "site.localhost") == "200 hi v2")
            #expect(try answer(server, "shop.example.test") == "200 hi v2")

            // The old name is free again: a push to it (a stale remote) makes a new app
            // of the pusher's, which has none of site's config, domains or access.
            let stale = try server.git(bob.key, ["push", server.url("web"), "main"], in: repo)
            #expect(stale.status == 0, "\(stale.err)")
            #expect(try answer(server, "web.localhost") == "200 hello v2")
            #expect(try server.ssh(bob.key, "apps:report", "web", "--app-your-access").out == "owner\n")
            #expect(try server.ssh(alice.key, "config:get", "web", "GREETING").status == 1)
            #expect(try answer(server, "shop.example.test") == "200 hi v2")
            #expect(try answer(server, "site.localhost") == "200 hi v2")
        }
    }
}
