import Foundation
import Testing

/// Scripts and command lines written for Dokku, over the real OpenSSH client.
@Suite("Dokku's scripts and command lines over SSH", .serialized)
struct DokkuScriptTests {
    /// A CI job as Dokku users write it, run unchanged but for the host.
    @Test func aDokkuScriptRunsUnchanged() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", on: server.slipway)
        let bob = try TestUser.register("bob", on: server.slipway)
        // bob's app is hidden from alice: her script must see it as missing, and then
        // fail to take the name, never learn more.
        #expect(try server.ssh(bob.key, "apps:create", "bobs").status == 0)
        let directory = try temporaryDirectory("dokku-script")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = directory + "/deploy.sh"
        try """
            set -eu
            dokku() { ssh $SSH_OPTIONS 127.0.0.1 "$@"; }
            dokku apps:exists review-1 || dokku apps:create review-1
            dokku apps:exists review-1 || dokku apps:create review-1
            dokku apps:exists bobs || echo "bobs: missing"
            dokku -- --quiet apps:list | while read app; do
              echo "app=$app locked=$(dokku -- --app "$app" apps:report --app-locked)"
            done
            dokku apps:list --format json
            dokku -- --force apps:destroy review-1
            dokku apps:exists review-1 || echo "review-1: gone"
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let options = server.sshOptions(key: alice.key).joined(separator: " ")
        let result = try run("/bin/bash", [script], environment: ["SSH_OPTIONS": options])
        #expect(result.status == 0, "\(result.err)")
        #expect(result.out == """
            -----> Creating review-1...
            app review-1 created; push to it with: git remote add slipway ssh://<host>:2222/review-1
            bobs: missing
            app=review-1 locked=false
            ["review-1"]
            -----> Destroying review-1 (including all add-ons)
            review-1: gone

            """, "\(result.out)")
        #expect(result.err == " !     App review-1 does not exist\n !     App bobs does not exist\n !     App review-1 does not exist\n")
        #expect(try server.ssh(bob.key, "apps:exists", "bobs").status == 0)
    }

    /// Dokku's documented command lines for the apps namespace and the global flags:
    /// exit status and the shape of what they print.
    @Test func dokkuCommandLinesOverSSH() throws {
        let server = try TestServer()
        let alice = try TestUser.register("alice", on: server.slipway)
        let empty = try server.ssh(alice.key, "apps:list")
        #expect(empty.status == 0 && empty.out == "=====> My Apps\n" && empty.err == " !     You haven't deployed any applications yet\n")
        #expect(try server.ssh(alice.key, "apps:create", "node-js-app").status == 0)
        let rows: [(argv: [String], status: Int32, out: (String) -> Bool)] = [
            (["apps:list"], 0, { $0 == "=====> My Apps\nnode-js-app\n" }),
            (["--", "--quiet", "apps:list"], 0, { $0 == "node-js-app\n" }),
            (["apps:list", "--format", "json"], 0, { $0 == "[\"node-js-app\"]\n" }),
            (["apps:exists", "node-js-app"], 0, \.isEmpty),
            (["apps:exists", "python-app"], 1, \.isEmpty),
            (["apps:report", "node-js-app", "--app-locked"], 0, { $0 == "false\n" }),
            (["apps:report", "node-js-app", "--app-deploy-source"], 0, { $0 == "\n" }),
            (["--", "--app", "node-js-app", "apps:report", "--app-created-at"], 0, { Int($0.dropLast()) != nil }),
            (["apps:report", "node-js-app"], 0, { $0.hasPrefix("=====> node-js-app app information\n       App collaborators:") }),
            (["--", "--quiet", "--app", "node-js-app", "apps:lock"], 0, \.isEmpty),
            (["apps:locked", "node-js-app"], 0, { $0 == "Deploy lock exists\n" }),
            (["--", "--app", "node-js-app", "apps:unlock"], 0, { $0 == "-----> Deploy lock removed for node-js-app\n" }),
            (["--", "--trace", "apps:exists", "node-js-app"], 0, \.isEmpty),
            (["apps:help"], 0, { $0.hasPrefix("Usage: apps[:COMMAND]\n") && $0.contains("apps:exists <app>") }),
            (["help", "apps"], 0, { $0.contains("apps:report [<app>]") }),
            (["apps", "--help"], 0, { $0.contains("apps:list [--format <format>]") }),
            (["--", "--app", "node-js-app", "apps:list"], 2, \.isEmpty),
            (["--", "--app"], 2, \.isEmpty),
        ]
        for row in rows {
            let result = try server.ssh(alice.key, row.argv)
            #expect(result.status == row.status && row.out(result.out), "\(row.argv): \(result.status) \(result.out.debugDescription) \(result.err)")
        }
        // Every --format json of this namespace is one line of JSON.
        for argv in [["apps:list", "--format", "json"], ["apps:report", "--format", "json"], ["apps:report", "node-js-app", "--format", "json"]] {
            let out = try server.ssh(alice.key, argv).out
            #expect(out.filter { $0 == "\n" }.count == 1 && (try? JSONSerialization.jsonObject(with: Data(out.utf8))) != nil, "\(argv): \(out)")
        }
        #expect(try server.ssh(alice.key, "--", "--force", "apps:destroy", "node-js-app").status == 0)
    }
}
