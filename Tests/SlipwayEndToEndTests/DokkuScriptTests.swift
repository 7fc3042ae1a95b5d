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
            // config (docs/configuration/environment-variables.md)
            (["config:set", "--no-restart", "node-js-app", "KEY=VALUE", "OTHER=two"], 0, { $0.hasPrefix("-----> Setting config vars\n       KEY\n       OTHER\n") }),
            (["config:get", "node-js-app", "KEY"], 0, { $0 == "VALUE\n" }),
            (["config:get", "node-js-app", "MISSING"], 1, \.isEmpty),
            (["config:show", "node-js-app"], 0, { $0 == "=====> node-js-app env vars\nKEY:    VALUE\nOTHER:  two\n" }),
            (["config:keys", "node-js-app"], 0, { $0 == "KEY\nOTHER\n" }),
            (["config:export", "node-js-app"], 0, { $0 == "export KEY='VALUE'\nexport OTHER='two'\n" }),
            (["config:export", "--format", "envfile", "node-js-app"], 0, { $0 == "KEY=\"VALUE\"\nOTHER=\"two\"\n" }),
            (["config:export", "--format", "json", "node-js-app"], 0, { $0 == "{\"KEY\":\"VALUE\",\"OTHER\":\"two\"}\n" }),
            (["config:unset", "--no-restart", "node-js-app", "OTHER"], 0, { $0.hasPrefix("-----> Unsetting config vars\n       OTHER\n") }),
            (["--", "--app", "node-js-app", "config:set", "--no-restart", "FROM_FLAG=1"], 0, { $0.contains("FROM_FLAG") }),
            (["config:set", "node-js-app"], 2, \.isEmpty),
            (["config:clear", "--no-restart", "node-js-app"], 0, { $0.hasPrefix("-----> Clearing config vars\n") }),
            // storage (docs/advanced-usage/persistent-storage.md, 0.38's named entries)
            (["storage:create", "node-js-app-data"], 0, { $0.hasPrefix("-----> Storage entry node-js-app-data created\n") }),
            (["storage:mount", "node-js-app", "node-js-app-data", "--container-dir", "/app/storage"], 0, { $0.hasPrefix("-----> Mounted node-js-app-data at /app/storage") }),
            (["storage:list", "node-js-app"], 0, { $0 == "=====> node-js-app volume bind-mounts\n     node-js-app-data:/app/storage\n" }),
            (["storage:list", "node-js-app", "--format", "json"], 0, { $0.hasPrefix("[{\"container_path\":\"/app/storage\",\"entry_name\":\"node-js-app-data\",") }),
            (["storage:list-entries"], 0, { $0.hasPrefix("-----> Storage entries:\n       node-js-app-data\tdocker-local\t") }),
            (["storage:info", "node-js-app-data"], 0, { $0.hasPrefix("-----> Storage entry node-js-app-data\n") && $0.contains("Mounted by:       node-js-app") }),
            (["storage:report", "node-js-app", "--format", "json"], 0, { $0.contains("\"attachment.1.container-path\":\"/app/storage\"") }),
            (["storage:mount", "node-js-app", "other-data", "--container-dir", "/app/storage"], 1, \.isEmpty),
            (["storage:unmount", "node-js-app", "node-js-app-data", "--container-dir", "/app/storage"], 0, { $0.hasPrefix("-----> Unmounted node-js-app-data from /app/storage") }),
            (["--", "--force", "storage:destroy", "node-js-app-data"], 0, { _ in true }),
            (["storage:mount", "node-js-app", "/etc:/app/etc"], 1, \.isEmpty),
            // ssh-keys (docs/deployment/user-management.md)
            (["ssh-keys:list", "--format", "json"], 0, { $0.hasPrefix("[{") && $0.contains("\"user\":\"alice\"") }),
            (["ssh-keys:add", "alice", "/etc/passwd"], 1, \.isEmpty),
            // ps and checks (docs/processes/process-management.md, docs/deployment/zero-downtime-deploys.md)
            (["ps:report", "node-js-app"], 0, { $0.hasPrefix("=====> node-js-app process information\n") }),
            (["ps:set", "node-js-app", "restart-policy", "on-failure:5"], 0, { $0.hasPrefix("-----> Set restart-policy of node-js-app to on-failure:5") }),
            (["ps:report", "node-js-app", "--ps-restart-policy"], 0, { $0 == "on-failure:5\n" }),
            (["ps:set", "node-js-app", "restart-policy", "sometimes"], 1, \.isEmpty),
            (["checks:report", "node-js-app"], 0, { $0.hasPrefix("=====> node-js-app checks information\n") }),
            (["checks:skip", "node-js-app"], 0, { $0.hasPrefix("-----> Checks skipped for every process type of node-js-app") }),
            (["checks:report", "node-js-app", "--checks-skipped-list"], 0, { $0 == "_all_\n" }),
            (["checks:enable", "node-js-app"], 0, { $0.hasPrefix("-----> Checks enabled") }),
            (["checks:set", "node-js-app", "wait-to-retire", "30"], 0, { $0.hasPrefix("-----> Set wait-to-retire of node-js-app to 30") }),
            (["checks:report", "node-js-app", "--format", "json"], 0, { $0.hasPrefix("{") && $0.contains("\"wait-to-retire\":\"30\"") }),
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
