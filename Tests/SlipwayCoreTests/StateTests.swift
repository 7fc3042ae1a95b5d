import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

@Suite("State changes: transactions, events, round trips")
struct StateTests {
    @Test func everyMutatingCommandLeavesOneEvent() throws {
        let w = try TestWorld()
        let key = try makeKey("ed25519").line
        let steps: [([String], String?, Bool)] = [
            (["users:add", "alice", "--admin"], nil, true),
            (["ssh-keys:add", "alice", "laptop"], key, true),
            (["apps:create", "web"], nil, true),
            (["apps:create", "web"], nil, false),          // conflict: audited as failed
            (["config:set", "web", "A=1"], nil, true),
            (["config:unset", "web", "A"], nil, true),
            (["storage:mount", "web", "data:/app/data"], nil, true),
            (["apps:lock", "web"], nil, true),
            (["acl:remove", "web", "alice"], nil, false),  // alice has no entry: failed
            (["apps:destroy", "web", "--force"], nil, true),
        ]
        for (index, (argv, stdin, ok)) in steps.enumerated() {
            let result = w.run(argv, stdin: stdin ?? "")
            #expect((result.status == 0) == ok, "\(argv): \(result.err)")
            let events = w.run(["events", "--format", "json", "-n", "1000"])
            let decoded = try JSONDecoder().decode([[String: AnyJSON]].self, from: Data(events.out.utf8))
            #expect(decoded.count == index + 1, "\(argv) should leave exactly one event")
            let last = try #require(decoded.last)
            #expect(last["command"]?.string == argv[0])
            #expect(last["actor"]?.string == "root@host")
            #expect(last["outcome"]?.string == (ok ? "ok" : "failed"))
            #expect(last["at"]?.string != nil)
        }
        // Read-only commands leave none.
        let count = w.run(["events", "-n", "1000"]).out.split(separator: "\n").count
        w.run(["apps:list"]); w.run(["users:list"])
        #expect(w.run(["events", "-n", "1000"]).out.split(separator: "\n").count == count)
    }

    @Test func eventsAreAppendOnly() throws {
        let w = try TestWorld()
        w.run(["users:add", "alice"])
        #expect(throws: (any Error).self) { try w.core.store.write { db in try db.execute(sql: "DELETE FROM events") } }
        #expect(throws: (any Error).self) { try w.core.store.write { db in try db.execute(sql: "UPDATE events SET actor = 'x'") } }
    }

    @Test func usersSeeTheirOwnAppsEvents() throws {
        let w = try TestWorld()
        w.run(["users:add", "bob"]); w.run(["users:add", "carol"])
        try w.run(["apps:create", "bobs"], asUser: "bob")
        try w.run(["apps:create", "carols"], asUser: "carol")
        let bob = try w.run(["events"], asUser: "bob").out
        #expect(bob.contains("bobs") && !bob.contains("carols"))
    }

    @Test(arguments: [
        "plain", "with spaces", "single ' quote", "double \" quote", "a=b=c", "$HOME and ${X}", "back\\slash",
        "unicode ✓ – ünïcödé 🚀", "  leading and trailing  ", "", "tab\there", "semi;colon && | `tick`",
    ])
    func configValuesRoundTrip(_ value: String) throws {
        let w = try TestWorld()
        w.run(["apps:create", "web"])
        #expect(w.run(["config:set", "web", "V=\(value)"]).status == 0)
        #expect(w.run(["config:get", "web", "V"]).out == value + "\n")
        let json = w.run(["config:export", "web", "--format", "json"]).out
        #expect(try JSONDecoder().decode([String: String].self, from: Data(json.utf8)) == ["V": value])
    }

    @Test func encodedValuesCarryNewlines() throws {
        let w = try TestWorld()
        w.run(["apps:create", "web"])
        let value = "line one\nline two\r\n\tthree 'q' \"d\" $x\n"
        let encoded = Data(value.utf8).base64EncodedString()
        #expect(w.run(["config:set", "--encoded", "web", "CERT=\(encoded)", "OTHER=\(Data("x".utf8).base64EncodedString())"]).status == 0)
        #expect(w.run(["config:get", "web", "CERT"]).out == value + "\n")
        let json = w.run(["config:export", "web", "--format", "json"]).out
        #expect(try JSONDecoder().decode([String: String].self, from: Data(json.utf8))["CERT"] == value)
        let badBase64 = w.run(["config:set", "--encoded", "web", "X=@@@"])
        #expect(badBase64.status == 1 && badBase64.err.contains("not base64"))
    }

    @Test func globalsAreInheritedAndAppValuesWin() throws {
        let w = try TestWorld()
        w.run(["apps:create", "web"])
        w.run(["config:set", "--global", "A=global", "B=global"])
        w.run(["config:set", "web", "B=app"])
        let env = try w.core.config.environment(of: try AppName("web"))
        #expect(env.map { "\($0.key)=\($0.value)" } == ["A=global", "B=app"])
        #expect(w.run(["config:get", "--global", "A"]).out == "global\n")
        #expect(w.run(["config:keys", "web"]).out == "B\n")
        #expect(w.run(["config:clear", "web"]).status == 0)
        #expect(w.run(["config:keys", "web"]).out == "")
    }

    @Test func configGetOfAnUnsetKeyExitsOneQuietly() throws {
        let w = try TestWorld()
        w.run(["apps:create", "web"])
        let result = w.run(["config:get", "web", "MISSING"])
        #expect(result.status == 1 && result.out.isEmpty && result.err.isEmpty)
    }

    @Test(arguments: [
        ["apps:create", "Bad_Name"], ["apps:create", "../etc"], ["apps:create"], ["apps:create", "a", "b"],
        ["nope:command"], ["apps:list", "--bogus"], ["config:set", "web", "1BAD=x"], ["config:set", "web", "NOEQUALS"],
        ["storage:mount", "web", "data:/app/../etc"], ["storage:mount", "web", "data:relative"], ["storage:mount", "web", "../x:/a"],
        ["users:add", "Root"], ["users:set-admin", "x", "maybe"], ["ssh-keys:add", "bob", "bad/name"],
        ["acl:add", "web", "bob", "god"], ["storage:mount", "web", "data:/x", "--phase", "build"],
        ["events", "-n", "0"], ["--as"], ["config:set", "--global"],
    ])
    func badInputChangesNothing(_ argv: [String]) throws {
        let w = try TestWorld()
        w.run(["apps:create", "web"]); w.run(["users:add", "bob"])
        let before = try w.dump()
        let result = w.run(argv)
        #expect(result.status != 0)
        #expect(result.err.hasPrefix("error: "), "\(result.err)")
        #expect(!result.err.contains("internal error"))
        #expect(try w.dump() == before)
    }

    @Test func badKeysChangeNothing() throws {
        let w = try TestWorld()
        w.run(["users:add", "bob"])
        let before = try w.dump()
        let megabyte = "ssh-ed25519 " + String(repeating: "A", count: 1 << 20)
        for (stdin, expected) in [("", "no public key"), ("garbage", "malformed"), (megabyte, "larger than"),
                                  ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB", "malformed")] {
            let result = w.run(["ssh-keys:add", "bob", "k"], stdin: stdin)
            #expect(result.status == 1 && result.err.contains(expected), "\(result.err)")
        }
        let interactive = w.run(["ssh-keys:add", "bob", "k"], stdin: nil)
        #expect(interactive.err.contains("none was piped in"))
        #expect(try w.dump() == before)
    }

    @Test func keysAreAddedListedAndRemoved() throws {
        let w = try TestWorld()
        let key = try makeKey("ed25519", comment: "bob@laptop")
        let added = w.run(["ssh-keys:add", "bob"], stdin: key.line)  // creates bob, names the key after its comment
        #expect(added.status == 0 && added.out.contains("added user bob") && added.out.contains("added key bob@laptop"))
        let fingerprint = String(try runTool("/usr/bin/ssh-keygen", ["-lf", key.path]).out.split(separator: " ")[1])
        #expect(added.out.contains(fingerprint))
        let again = w.run(["ssh-keys:add", "carol", "k"], stdin: key.line)
        #expect(again.status == 1 && again.err.contains("already registered to bob"))
        #expect(w.run(["users:list"]).out.contains("carol") == false)
        let principal = try w.principal("bob")
        #expect(w.run(["ssh-keys:list"], as: principal).out.contains(fingerprint))
        #expect(w.run(["ssh-keys:list", "alice"], as: principal).err.contains("only server admins"))
        #expect(w.run(["ssh-keys:remove", "bob", "--fingerprint", fingerprint]).status == 0)
        #expect(try w.core.users.owner(ofKey: try PublicKey(line: key.line)) == nil)
    }

    @Test func destroyAsksForTheNameAgain() throws {
        let w = try TestWorld()
        w.run(["apps:create", "web"])
        #expect(w.run(["apps:destroy", "web"], stdin: "wrong\n").status == 1)
        #expect(w.run(["apps:destroy", "web"], stdin: nil).status == 1)
        #expect(w.run(["apps:list"]).out.contains("web"))
        #expect(w.run(["apps:destroy", "web"], stdin: "web\n").status == 0)
        #expect(!w.run(["apps:list"]).out.contains("web"))
    }

    @Test func renameMovesConfigAndAccess() throws {
        let w = try TestWorld()
        w.run(["users:add", "bob"])
        try w.run(["apps:create", "web"], asUser: "bob")
        w.run(["config:set", "web", "A=1"])
        #expect(try w.run(["apps:rename", "web", "www"], asUser: "bob").status == 0)
        #expect(try w.run(["config:get", "www", "A"], asUser: "bob").out == "1\n")
        #expect(w.run(["apps:rename", "www", "www"]).err.contains("already taken"))
        #expect(try w.run(["apps:report", "web"], asUser: "bob").err.contains("not found"))
    }

    @Test func appCreationCanBeLimitedToAdmins() throws {
        let w = try TestWorld { $0.usersCanCreateApps = false }
        w.run(["users:add", "bob"])
        #expect(try w.run(["apps:create", "web"], asUser: "bob").err.contains("only admins may create apps"))
        #expect(w.run(["apps:create", "web"]).status == 0)
    }

    @Test func lockedReportsExitStatus() throws {
        let w = try TestWorld()
        w.run(["apps:create", "web"])
        #expect(w.run(["apps:locked", "web"]).status == 1)
        w.run(["apps:lock", "web"])
        #expect(w.run(["apps:locked", "web"]).status == 0)
    }

    @Test func settingsFileIsStrict() throws {
        let settings = try Settings.parse("data_dir = \"/srv/slipway\"\nusers_can_create_apps = false\n", source: "t")
        #expect(settings.dataDir == "/srv/slipway" && !settings.usersCanCreateApps)
        #expect(throws: UserFacingError.self) { try Settings.parse("data_dirr = \"/x\"", source: "t") }
        #expect(throws: UserFacingError.self) { try Settings.parse("listen = 5", source: "t") }
        #expect(throws: UserFacingError.self) { try Settings.parse("= broken", source: "t") }
        // The documented copy shipped in etc/ is valid and says the defaults.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let shipped = try Settings.load(path: root.appendingPathComponent("etc/slipway.toml").path, required: true)
        #expect(shipped == Settings())
    }
}
