import Foundation
import SlipwayCore
import SlipwayEngine
import Testing

/// Builds on push, end to end: real ssh, real git, the real engine.
@Suite("Builds on push end to end", .serialized)
struct BuildTests {
    let engine = DockerEngine.locate(configured: nil)

    func files(_ pairs: [String: String]) -> [String: Data] { pairs.mapValues { Data($0.utf8) } }

    func head(_ repo: String) throws -> String {
        try run("/usr/bin/git", ["-C", repo, "rev-parse", "HEAD"]).out.trimmingCharacters(in: .newlines)
    }

    func commit(_ repo: String, _ name: String, _ content: String) throws {
        try content.write(toFile: repo + "/" + name, atomically: true, encoding: .utf8)
        let env = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"]
        _ = try run("/usr/bin/git", ["-C", repo, "add", "."])
        _ = try run("/usr/bin/git", ["-C", repo, "commit", "-q", "-m", "change \(name)"], environment: env)
    }

    @Test func aDockerfileAppBuildsLiveAndAFailedBuildRejectsThePush() async throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        #expect(try server.ssh(alice.key, "config:set", "web", "GREETING=bonjour", "SECRET=do-not-leak").status == 0)
        let repo = try makeRepository(files([
            "Dockerfile": "FROM \(BuilderImage.reference)\nARG GREETING=none\nARG UNSET_ARG=default\nRUN echo \"greeting is $GREETING, secret is [$SECRET], unset is $UNSET_ARG\"\nCMD python3 -m http.server $PORT\n",
        ]))
        let push = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        #expect(push.err.contains("remote: -----> Building web from"))
        #expect(push.err.contains("remote: greeting is bonjour, secret is [], unset is default"))
        let first = try head(repo)
        let tag = "slipway/web:\(first.prefix(12))"
        let image = try await engine.inspectImage(tag)
        #expect(image != nil, "the tag names app and revision")
        #expect(image?.user == "", "a Dockerfile FROM the builder starts as root")

        // A Dockerfile that fails: the push is rejected and nothing moves.
        try commit(repo, "Dockerfile", "FROM \(BuilderImage.reference)\nRUN echo about to fail && exit 3\n")
        let failed = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(failed.status != 0)
        #expect(failed.err.contains("remote: about to fail"))
        #expect(failed.err.contains("remote: error: the build failed"))
        #expect(failed.err.contains("pre-receive hook declined"))
        #expect(try server.git(alice.key, ["ls-remote", server.url("web"), "main"]).out.hasPrefix(first))

        let report = try JSONSerialization.jsonObject(with: Data(try server.ssh(alice.key, "builds:report", "web", "--format", "json").out.utf8)) as? [String: Any]
        #expect((report?["latestSuccessful"] as? [String: Any])?["revision"] as? String == first)
        #expect((report?["latestAttempt"] as? [String: Any])?["status"] as? String == "failed")
        let list = try server.ssh(alice.key, "builds:list", "web")
        #expect(list.out.contains("succeeded") && list.out.contains("failed"))

        // One that builds but says nothing to run: refused with what to add.
        try commit(repo, "Dockerfile", "FROM \(BuilderImage.reference)\nRUN true\n")
        let commandless = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(commandless.status != 0)
        #expect(commandless.err.contains("web has no command: the image has no CMD or ENTRYPOINT"), "\(commandless.err)")
        #expect(try server.git(alice.key, ["ls-remote", server.url("web"), "main"]).out.hasPrefix(first))

        // The deploy branch cannot be deleted.
        let deletion = try server.git(alice.key, ["push", server.url("web"), ":main"], in: repo)
        #expect(deletion.status != 0 && deletion.err.contains("main is the deploy branch of web and cannot be deleted"))
        #expect(try server.git(alice.key, ["ls-remote", server.url("web"), "main"]).out.hasPrefix(first))

        // A locked app refuses pushes to its deploy branch.
        #expect(try server.ssh(alice.key, "apps:lock", "web").status == 0)
        try commit(repo, "Dockerfile", "FROM \(BuilderImage.reference)\n")
        let locked = try server.git(alice.key, ["push", server.url("web"), "main"], in: repo)
        #expect(locked.status != 0 && locked.err.contains("web is locked"))
    }

    /// From a tenant's side: builds that fail leave their steps' images behind, which
    /// nothing else removes, so pushing failing builds would fill the host's disk. Only
    /// the app's newest four such images stay (the next try of a Dockerfile being fixed
    /// starts from its cached steps, a multi-stage build's earlier stage stays cached),
    /// and none once the app is destroyed. A LABEL cannot take its steps out of the count.
    @Test func buildsLeaveAtMostFourUnusedStepImagesAndNoneAfterTheApp() async throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let bob = try TestUser.register("bob", admin: false, on: server.slipway)
        #expect(try server.ssh(bob.key, "apps:create", "fails").status == 0)
        let instance = try String(contentsOfFile: server.slipway.dataDir + "/instance-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        /// Images nothing names or builds on, left by this server's builds.
        func left() throws -> [String] {
            let listed = try run("/usr/bin/curl", ["-s", "--unix-socket", "/run/podman/podman.sock", "-G", "http://d/v1.41/images/json",
                                                   "--data-urlencode", "filters={\"dangling\":[\"true\"],\"label\":[\"org.slipway.build-of\"]}"])
            let images = try JSONSerialization.jsonObject(with: Data(listed.out.utf8)) as? [[String: Any]] ?? []
            return images.filter { (($0["Labels"] as? [String: String])?["org.slipway.build-of"] ?? "").hasPrefix(instance + ":") }.compactMap { $0["Id"] as? String }
        }
        let marker = UUID().uuidString
        let repo = try makeRepository(files(["Dockerfile": "FROM \(BuilderImage.reference)\n"]))
        defer { try? FileManager.default.removeItem(atPath: repo) }
        func push(_ dockerfile: String) throws -> Slipway.Result {
            try commit(repo, "Dockerfile", dockerfile)
            return try server.git(bob.key, ["push", "-f", server.url("fails"), "main"], in: repo)
        }

        var firstLeft: [String] = []
        for attempt in 1...5 {
            // The last one relabels its steps: podman's label of the build wins.
            let relabel = attempt == 5 ? "LABEL org.slipway.build-of=elsewhere:1\n" : ""
            let failed = try push("FROM \(BuilderImage.reference)\n\(relabel)RUN echo step-\(attempt)-\(marker) > /one\nRUN exit 3\n")
            #expect(failed.status != 0 && failed.err.contains("remote: error: the build failed"), "\(failed)")
            let now = try left()
            #expect(now.count == min(attempt, 4), "after failed build \(attempt): \(now)")
            if attempt == 1 { firstLeft = now }
            // The next try of the same steps starts from the cached one.
            if attempt == 1 {
                let again = try push("FROM \(BuilderImage.reference)\nRUN echo step-1-\(marker) > /one\nRUN exit 4\n")
                #expect(again.status != 0 && again.err.contains("Using cache"), "\(again)")
                #expect(try left() == firstLeft)
            }
            // A few seconds apart: the engine dates images to the second.
            sleep(1)
        }
        #expect(try await engine.inspectImage(firstLeft[0]) == nil, "the oldest went")

        // A two-stage build: its first stage's last step is used by nothing and stays cached.
        let twoStage = "FROM \(BuilderImage.reference) AS deps\nRUN echo deps-\(marker) > /deps\nFROM \(BuilderImage.reference)\nCOPY --from=deps /deps /deps\n"
        let built = try push(twoStage + "CMD python3 -m http.server $PORT\n")
        #expect(built.err.contains("=====> Built slipway/fails:"), "\(built)")
        let rebuilt = try push(twoStage + "ENV V=2\nCMD python3 -m http.server $PORT\n")
        #expect(rebuilt.err.contains("=====> Built slipway/fails:"), "\(rebuilt)")
        let depsStep = rebuilt.err.components(separatedBy: "RUN echo deps-\(marker)").last ?? ""
        #expect(depsStep.prefix(300).contains("Using cache"), "\(rebuilt.err)")
        #expect(try left().count <= 4)

        // None stays with the app.
        #expect(try server.ssh(bob.key, "--force", "apps:destroy", "fails").status == 0)
        #expect(try left() == [])
    }

    @Test func aProcfileAppIsBuiltOnTheBuilderAndRunsAsANonRootUser() async throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let repo = try makeRepository(files(["Procfile": "web: python3 -m http.server $PORT\n", "app.py": "print('hello')\n"]))
        let push = try server.git(alice.key, ["push", server.url("py"), "main"], in: repo)
        #expect(push.status == 0, "\(push.err)")
        #expect(push.err.contains("(Procfile app)"))
        let tag = "slipway/py:\(try head(repo).prefix(12))"
        let image = try await engine.inspectImage(tag)
        #expect(image?.user == "app")
        let spec = ContainerSpec(image: tag, command: ["/bin/sh", "-c", "id -un; pwd; cat Procfile; python3 app.py; ls /app"])
        let id = try await engine.createContainer(spec)
        try await engine.startContainer(id)
        let status = try await engine.waitContainer(id)
        #expect(status == 0)
        let output = Collected()
        try await engine.streamLogs(id, follow: false, tail: nil) { output.add($0) }
        #expect(output.text(.stdout) == "app\n/app\nweb: python3 -m http.server $PORT\nhello\nProcfile\napp.py\n")
        try await engine.removeContainer(id, force: true)
    }

    @Test func aFirstPushThatCannotBuildLeavesNoApp() async throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let repo = try makeRepository(files(["README.md": "no Dockerfile, no Procfile\n"]))
        let push = try server.git(alice.key, ["push", server.url("nothing"), "main"], in: repo)
        #expect(push.status != 0)
        #expect(push.err.contains("has neither a Dockerfile nor a Procfile"))
        #expect(!(try server.ssh(alice.key, "apps:list").out.contains("nothing")))
    }
}
