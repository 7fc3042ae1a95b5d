import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// A push through the one command tree, and git's pre-receive hook from the attacker's side.
@Suite("Pushes: the git commands and the pre-receive hook")
struct PushTests {
    /// alice (admin), bob (owner of bobs-app), carol (reader of bobs-app).
    func world() throws -> TestWorld {
        let w = try TestWorld()
        for (name, admin) in [("alice", true), ("bob", false), ("carol", false)] {
            #expect(w.run(["users:add", name] + (admin ? ["--admin"] : [])).status == 0)
        }
        #expect(try w.run(["apps:create", "bobs-app"], asUser: "bob").status == 0)
        #expect(w.run(["acl:add", "bobs-app", "carol", "read"]).status == 0)
        return w
    }

    /// Runs the hook as git would, with `environment` and one update of `main`.
    func hook(_ w: TestWorld, _ environment: [String: String], ref: String = "refs/heads/main") -> Outcome {
        let out = Buffer(), err = Buffer()
        let input = "\(String(repeating: "0", count: 40)) \(String(repeating: "a", count: 40)) \(ref)\n"
        let status = PreReceiveHook.run(core: w.core, environment: environment, stdin: FixedInput(data: Data(input.utf8)), stdout: out, stderr: err)
        return Outcome(status: status, out: out.text, err: err.text)
    }

    /// The environment `receive` gives git for `principal` pushing `app`.
    func pusherEnvironment(_ w: TestWorld, _ principal: Principal, app: String = "bobs-app") throws -> [String: String] {
        try #require(PushService.Pusher(app: try AppName(app), principal: principal)).environment
    }

    func cleanUp(_ w: TestWorld) { try? FileManager.default.removeItem(atPath: w.core.paths.root) }

    @Test func theHookRefusesToRunWithoutThePushersIdentity() throws {
        let w = try world()
        defer { cleanUp(w) }
        let before = try w.dump()
        for environment in [[:], ["SLIPWAY_APP": "bobs-app"], ["SLIPWAY_APP": "bobs-app", "SLIPWAY_PUSHER": "bob"],
                            ["SLIPWAY_APP": "bobs-app", "SLIPWAY_PUSHER": "bob", "SLIPWAY_PUSHER_ID": "not-a-number"]] {
            let result = hook(w, environment)
            #expect(result.status == 1, "\(environment)")
            #expect(result.err.hasPrefix("error: the pre-receive hook was run without the pusher's identity"), "\(result.err)")
        }
        #expect(try w.dump() == before)
    }

    @Test func aRemovedUsersIdentityDeploysNothing() throws {
        let w = try world()
        defer { cleanUp(w) }
        let key = try makeKey("ed25519", comment: "carol@laptop")
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: key.path).deletingLastPathComponent().path) }
        #expect(w.run(["ssh-keys:add", "carol", "laptop"], stdin: key.line).status == 0)
        let fingerprint = String(try runTool("/usr/bin/ssh-keygen", ["-lf", key.path]).out.split(separator: " ")[1])
        #expect(w.run(["acl:add", "bobs-app", "carol", "write"]).status == 0)
        let carol = try w.principal("carol")
        let environment = try pusherEnvironment(w, Principal(identity: carol.identity, channel: "ssh", keyFingerprint: fingerprint))
        #expect(w.run(["users:remove", "carol"]).status == 0)
        let result = hook(w, environment)
        #expect(result.status == 1 && result.err.hasPrefix("error: the pusher carol is no longer a user"), "\(result.err)")
        // A new user under the removed one's name (SQLite may even give her the same id) is someone else.
        #expect(w.run(["users:add", "carol"]).status == 0)
        #expect(w.run(["acl:add", "bobs-app", "carol", "write"]).status == 0)
        let reused = hook(w, environment)
        #expect(reused.status == 1 && reused.err.hasPrefix("error: the pusher carol is no longer a user"), "\(reused.err)")
        #expect(try w.core.store.read { db in try Release.fetchCount(db) } == 0)
    }

    @Test func theHookChecksTheKeyAndTheAccessAgain() throws {
        let w = try world()
        defer { cleanUp(w) }
        #expect(w.run(["users:add", "dave"]).status == 0)
        let before = try w.dump()
        // A key that is not (or no longer) the pusher's.
        let bob = try w.principal("bob")
        let stolen = Principal(identity: bob.identity, channel: "ssh", keyFingerprint: "SHA256:not-bobs-key")
        let keyGone = hook(w, try pusherEnvironment(w, stolen))
        #expect(keyGone.status == 1 && keyGone.err.hasPrefix("error: the pusher bob is no longer a user with this key"))
        // Another user's name with bob's id.
        var forged = try pusherEnvironment(w, bob)
        forged["SLIPWAY_PUSHER"] = "alice"
        #expect(hook(w, forged).err.hasPrefix("error: the pusher alice is no longer a user"))
        // A reader, and someone with no access at all (the app looks missing).
        let reader = hook(w, try pusherEnvironment(w, try w.principal("carol")))
        #expect(reader.status == 1 && reader.err.hasPrefix("error: you have read access to app \"bobs-app\""), "\(reader.err)")
        let stranger = hook(w, try pusherEnvironment(w, try w.principal("dave")))
        #expect(stranger.status == 1 && stranger.err == "error: app \"bobs-app\" not found; apps:list shows the apps you can use\n")
        #expect(try w.dump() == before)
    }

    @Test func aPushOfAnotherBranchIsStoredWithoutADeploy() throws {
        let w = try world()
        defer { cleanUp(w) }
        let result = hook(w, try pusherEnvironment(w, try w.principal("bob")), ref: "refs/heads/feature")
        #expect(result.status == 0 && result.err.isEmpty, "\(result.err)")
        #expect(try w.core.store.read { db in try Release.fetchCount(db) } == 0)
    }

    @Test func gitCommandsAreGatedAndHandOffToGit() throws {
        let w = try world()
        defer { cleanUp(w) }
        let carol = try w.principal("carol")
        // A reader may fetch; git gets the client's protocol and nothing of ours.
        guard case .spawn(let fetch) = w.runner.job(for: ["git-upload-pack", "/bobs-app.git"],
                                                    as: carol, environment: ["GIT_PROTOCOL": "version=2"]) else {
            Issue.record("a reader's fetch was not handed to git")
            return
        }
        #expect(fetch.argv.suffix(2) == ["upload-pack", w.core.paths.repository(try AppName("bobs-app"))])
        #expect(fetch.environment["GIT_PROTOCOL"] == "version=2" && fetch.environment["SLIPWAY_PUSHER_ID"] == nil)
        // ... but not push; and a stranger's push to it answers as if it did not exist.
        #expect(w.run(["users:add", "dave"]).status == 0)
        for (who, expected) in [(carol, "error: you have read access to app \"bobs-app\""), (try w.principal("dave"), "error: app \"bobs-app\" not found")] {
            guard case .inProcess(let wantsTerminal, let run) = w.runner.job(for: ["git", "receive-pack", "bobs-app"], as: who, environment: [:]) else {
                Issue.record("a push without write access was handed to git")
                continue
            }
            let out = Buffer(), err = Buffer()
            #expect(run(FixedInput(data: Data()), out, err, Cancellation(), nil) == 1 && !wantsTerminal)
            #expect(err.text.hasPrefix(expected), "\(err.text)")
        }
        let events = w.run(["events", "--format", "json"]).out
        #expect(events.contains("\"command\":\"git push\"") && events.contains("\"outcome\":\"failed\""))
        // The local CLI never runs them.
        let local = w.run(["git-upload-pack", "bobs-app"])
        #expect(local.status == 2 && local.err.hasPrefix("error: git-upload-pack is what git runs over SSH"))
        // They are not in help.
        #expect(!w.run(["help"]).out.contains("git-"))
    }

    @Test func aFirstPushCreatesTheAppAndAnEmptyOneRemovesItAgain() throws {
        let w = try world()
        defer { cleanUp(w) }
        let bob = try w.principal("bob")
        guard case .spawn(let push) = w.runner.job(for: ["git-receive-pack", "~/fresh.git"], as: bob, environment: [:]) else {
            Issue.record("a first push was not handed to git")
            return
        }
        #expect(push.environment["SLIPWAY_PUSHER_ID"] == bob.userID.map(String.init) && push.environment["SLIPWAY_APP"] == "fresh")
        let report = try w.run(["apps:report", "fresh", "--format", "json"], asUser: "bob")
        #expect(report.status == 0 && report.out.contains("\"your-access\":\"owner\""), "\(report.out)")
        // git ended without a branch (killed, rejected): the app it created goes again.
        try push.finished?(nil)
        #expect(try w.core.apps.find(try AppName("fresh")) == nil)
        // A push to an existing app never removes it.
        guard case .spawn(let again) = w.runner.job(for: ["git-receive-pack", "bobs-app"], as: bob, environment: [:]) else {
            Issue.record("the owner's push was not handed to git")
            return
        }
        try again.finished?(1)
        #expect(try w.core.apps.find(try AppName("bobs-app")) != nil)
    }

    /// Two first pushes of one new app: the one that ends empty must not take away the
    /// app the other is deploying (it holds the deploy lock) or has just deployed (its
    /// release is recorded before git writes its branch).
    @Test func anEmptyFirstPushLeavesTheAppAConcurrentPushIsDeploying() throws {
        let w = try world()
        defer { cleanUp(w) }
        let bob = try w.principal("bob")
        guard case .spawn(let first) = w.runner.job(for: ["git-receive-pack", "fresh"], as: bob, environment: [:]) else {
            Issue.record("a first push was not handed to git")
            return
        }
        let app = try AppName("fresh")
        let caller = Caller(principal: bob, command: "git push")
        // The other push is deploying: it holds the lock.
        let lock = try w.core.deploys.locks.acquire(app, by: caller)
        try first.finished?(1)
        #expect(try w.core.apps.find(app) != nil, "removed while another push was deploying it")
        // The other push's deploy ended and let the lock go; git has not written its branch yet.
        try w.core.store.write { db in
            var release = Release(appId: try AppService.id(of: app, db), version: 1, image: "slipway/fresh:1", revision: "r1", reason: "test",
                                  snapshot: "{}", status: .failed, startedBy: "bob", startedAt: Date())
            try release.insert(db)
        }
        w.core.deploys.locks.release(lock)
        try first.finished?(1)
        #expect(try w.core.apps.find(app) != nil, "removed after another push deployed it")
    }

    @Test func aCommandThatWantsTheTerminalSaysSo() throws {
        let w = try world()
        defer { cleanUp(w) }
        let alice = try w.principal("alice")
        for (argv, wanted) in [(["run", "bobs-app", "bash"], true), (["--as", "bob", "run", "bobs-app"], true), (["--as=bob", "run", "x"], true),
                               (["apps:list"], false), (["runs"], false), ([], false)] {
            guard case .inProcess(let wantsTerminal, _) = w.runner.job(for: argv, as: alice, environment: [:]) else {
                Issue.record("\(argv) was not run in-process")
                continue
            }
            #expect(wantsTerminal == wanted, "\(argv)")
        }
    }
}
