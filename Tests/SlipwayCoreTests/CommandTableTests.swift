import ArgumentParser
import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// Walks the whole command tree: every command's rule must be the one
/// man/slipway-commands.7 documents, and every sample invocation must produce the
/// requirement the rule implies. A command added without a row here fails.
@Suite("The command tree and its access rules")
struct CommandTableTests {
    /// name → (documented rule, sample argv, expected requirement for the sample)
    static let table: [String: (AccessRule, [String], Requirement)] = [
        "users:add": (.admin, ["users:add", "bob"], .admin),
        "users:remove": (.admin, ["users:remove", "bob"], .admin),
        "users:list": (.admin, ["users:list"], .admin),
        "users:report": (.admin, ["users:report", "bob"], .admin),
        "users:set-admin": (.admin, ["users:set-admin", "bob", "true"], .admin),
        "ssh-keys:add": (.admin, ["ssh-keys:add", "bob", "laptop"], .admin),
        "ssh-keys:remove": (.admin, ["ssh-keys:remove", "bob", "laptop"], .admin),
        "ssh-keys:list": (.user, ["ssh-keys:list", "bob"], .selfOrAdmin("bob")),
        "whoami": (.user, ["whoami"], .user),
        "apps:create": (.user, ["apps:create", "web"], .user),
        "apps:exists": (.user, ["apps:exists", "web"], .user),
        "apps:list": (.user, ["apps:list"], .user),
        "apps:report": (.app(.read), ["apps:report", "web"], .app("web", .read)),
        "apps:rename": (.app(.owner), ["apps:rename", "web", "www"], .app("web", .owner)),
        "apps:clone": (.app(.read), ["apps:clone", "--skip-deploy", "web", "www"], .app("web", .read)),
        "apps:destroy": (.app(.owner), ["apps:destroy", "web", "--force"], .app("web", .owner)),
        "apps:lock": (.app(.write), ["apps:lock", "web"], .app("web", .write)),
        "apps:unlock": (.app(.write), ["apps:unlock", "web"], .app("web", .write)),
        "apps:locked": (.app(.write), ["apps:locked", "web"], .app("web", .write)),
        "acl:add": (.app(.owner), ["acl:add", "web", "bob", "read"], .app("web", .owner)),
        "acl:remove": (.app(.owner), ["acl:remove", "web", "bob"], .app("web", .owner)),
        "acl:list": (.app(.read), ["acl:list", "web"], .app("web", .read)),
        "config:set": (.app(.write), ["config:set", "web", "A=1"], .app("web", .write)),
        "config:unset": (.app(.write), ["config:unset", "web", "A"], .app("web", .write)),
        "config:clear": (.app(.write), ["config:clear", "web"], .app("web", .write)),
        "config:get": (.app(.read), ["config:get", "web", "A"], .app("web", .read)),
        "config:show": (.app(.read), ["config:show", "web"], .app("web", .read)),
        "config:keys": (.app(.read), ["config:keys", "web"], .app("web", .read)),
        "config:export": (.app(.read), ["config:export", "web"], .app("web", .read)),
        "config:import": (.app(.write), ["config:import", "--replace", "web"], .app("web", .write)),
        "config:bundle": (.app(.read), ["config:bundle", "web"], .app("web", .read)),
        "storage:create": (.user, ["storage:create", "data"], .user),
        "storage:mount": (.app(.owner), ["storage:mount", "web", "data:/app/data"], .all([.app("web", .owner), .storageOwner("data", allowMissing: true)])),
        "storage:unmount": (.app(.write), ["storage:unmount", "web", "data:/app/data"], .app("web", .write)),
        "storage:list": (.app(.read), ["storage:list", "web"], .app("web", .read)),
        "storage:report": (.app(.read), ["storage:report", "web"], .app("web", .read)),
        "storage:destroy": (.user, ["storage:destroy", "data"], .storageOwner("data", allowMissing: false)),
        "storage:list-entries": (.user, ["storage:list-entries", "--format", "json"], .user),
        "storage:info": (.user, ["storage:info", "data"], .storageOwner("data", allowMissing: false)),
        "storage:set": (.user, ["storage:set", "data", "mode", "0770"], .storageOwner("data", allowMissing: false)),
        "postgres:create": (.user, ["postgres:create", "db"], .datastore(.postgres, "db", .manage, allowMissing: true)),
        "postgres:list": (.user, ["postgres:list", "--format", "json"], .user),
        "postgres:info": (.user, ["postgres:info", "db"], .datastore(.postgres, "db", .use)),
        "postgres:link": (.user, ["postgres:link", "db", "web", "--alias", "DB_URL"], .all([.datastore(.postgres, "db", .manage), .app("web", .write)])),
        "postgres:unlink": (.user, ["postgres:unlink", "db", "web"], .all([.datastore(.postgres, "db", .manage), .app("web", .write)])),
        "postgres:restart": (.user, ["postgres:restart", "db"], .datastore(.postgres, "db", .use)),
        "postgres:logs": (.user, ["postgres:logs", "db", "-t"], .datastore(.postgres, "db", .use)),
        "postgres:destroy": (.user, ["postgres:destroy", "db", "--force"], .datastore(.postgres, "db", .manage)),
        "postgres:connect": (.user, ["postgres:connect", "db"], .datastore(.postgres, "db", .manage)),
        "postgres:export": (.user, ["postgres:export", "db"], .datastore(.postgres, "db", .manage)),
        "postgres:import": (.user, ["postgres:import", "db"], .datastore(.postgres, "db", .manage)),
        "postgres:upgrade": (.user, ["postgres:upgrade", "db", "--image", "postgres:16"], .datastore(.postgres, "db", .manage)),
        "redis:connect": (.user, ["redis:connect", "cache"], .datastore(.redis, "cache", .manage)),
        "redis:export": (.user, ["redis:export", "cache"], .datastore(.redis, "cache", .manage)),
        "redis:import": (.user, ["redis:import", "cache"], .datastore(.redis, "cache", .manage)),
        "redis:upgrade": (.user, ["redis:upgrade", "cache", "--image", "redis:7.2"], .datastore(.redis, "cache", .manage)),
        "redis:create": (.user, ["redis:create", "cache", "--image", "slipway/redis:7"], .datastore(.redis, "cache", .manage, allowMissing: true)),
        "redis:list": (.user, ["redis:list", "--format", "json"], .user),
        "redis:info": (.user, ["redis:info", "cache"], .datastore(.redis, "cache", .use)),
        "redis:link": (.user, ["redis:link", "cache", "web", "--no-restart"], .all([.datastore(.redis, "cache", .manage), .app("web", .write)])),
        "redis:unlink": (.user, ["redis:unlink", "cache", "web"], .all([.datastore(.redis, "cache", .manage), .app("web", .write)])),
        "redis:restart": (.user, ["redis:restart", "cache"], .datastore(.redis, "cache", .use)),
        "redis:logs": (.user, ["redis:logs", "cache", "-n", "5"], .datastore(.redis, "cache", .use)),
        "redis:destroy": (.user, ["redis:destroy", "cache", "--force"], .datastore(.redis, "cache", .manage)),
        "postgres:backup": (.user, ["postgres:backup", "db"], .datastore(.postgres, "db", .manage)),
        "postgres:backups": (.user, ["postgres:backups", "db", "--format", "json"], .datastore(.postgres, "db", .manage)),
        "postgres:restore": (.user, ["postgres:restore", "db", "20261129-201500"], .datastore(.postgres, "db", .manage)),
        "postgres:backup-schedule": (.user, ["postgres:backup-schedule", "db", "0 3 * * *", "--keep", "3"], .datastore(.postgres, "db", .manage)),
        "postgres:backup-unschedule": (.user, ["postgres:backup-unschedule", "db"], .datastore(.postgres, "db", .manage)),
        "redis:backup": (.user, ["redis:backup", "cache"], .datastore(.redis, "cache", .manage)),
        "redis:backups": (.user, ["redis:backups", "cache", "--format", "json"], .datastore(.redis, "cache", .manage)),
        "redis:restore": (.user, ["redis:restore", "cache", "20261129-201500"], .datastore(.redis, "cache", .manage)),
        "redis:backup-schedule": (.user, ["redis:backup-schedule", "cache", "0 3 * * *", "--keep", "3"], .datastore(.redis, "cache", .manage)),
        "redis:backup-unschedule": (.user, ["redis:backup-unschedule", "cache"], .datastore(.redis, "cache", .manage)),
        "services:bootstrap": (.admin, ["services:bootstrap", "postgres"], .admin),
        "resource:limit": (.app(.write), ["resource:limit", "--memory", "256m", "--cpu", "0.5", "--pids", "100", "--process-type", "worker", "web"], .app("web", .write)),
        "resource:limit-clear": (.app(.write), ["resource:limit-clear", "web"], .app("web", .write)),
        "resource:reserve": (.app(.write), ["resource:reserve", "--memory", "128m", "web"], .app("web", .write)),
        "resource:reserve-clear": (.app(.write), ["resource:reserve-clear", "--process-type", "web", "web"], .app("web", .write)),
        "resource:report": (.app(.read), ["resource:report", "web", "--format", "json"], .app("web", .read)),
        "run": (.app(.write), ["run", "web", "sh", "-c", "exit 7"], .app("web", .write)),
        "run:detached": (.app(.write), ["run:detached", "web", "sleep", "60"], .app("web", .write)),
        "run:list": (.app(.write), ["run:list", "web"], .app("web", .write)),
        "run:stop": (.app(.write), ["run:stop", "web", "web.detached.1234abcd"], .app("web", .write)),
        "run:logs": (.app(.read), ["run:logs", "web", "web.detached.1234abcd", "-t"], .app("web", .read)),
        "enter": (.app(.write), ["enter", "web", "web.1", "sh", "-c", "exit 7"], .app("web", .write)),
        "cron:list": (.app(.read), ["cron:list", "web", "--format", "json"], .app("web", .read)),
        "cron:run": (.app(.write), ["cron:run", "web", "0123456789", "--detach"], .app("web", .write)),
        "cron:suspend": (.app(.write), ["cron:suspend", "web", "0123456789"], .app("web", .write)),
        "cron:resume": (.app(.write), ["cron:resume", "web"], .app("web", .write)),
        "cron:logs": (.app(.read), ["cron:logs", "web", "0123456789", "-n", "5", "-t"], .app("web", .read)),
        "ps:report": (.app(.read), ["ps:report", "web"], .app("web", .read)),
        "ps:set": (.app(.write), ["ps:set", "web", "restart-policy", "on-failure:20"], .app("web", .write)),
        "checks:report": (.app(.read), ["checks:report", "web", "--format", "json"], .app("web", .read)),
        "checks:disable": (.app(.write), ["checks:disable", "web", "worker,web"], .app("web", .write)),
        "checks:enable": (.app(.write), ["checks:enable", "web"], .app("web", .write)),
        "checks:skip": (.app(.write), ["checks:skip", "web", "web"], .app("web", .write)),
        "checks:set": (.app(.write), ["checks:set", "web", "wait-to-retire", "30"], .app("web", .write)),
        "ps:scale": (.app(.write), ["ps:scale", "web", "web=2", "worker=1"], .app("web", .write)),
        "ps:restart": (.app(.write), ["ps:restart", "web", "worker"], .app("web", .write)),
        "ps:start": (.app(.write), ["ps:start", "web"], .app("web", .write)),
        "ps:stop": (.app(.write), ["ps:stop", "web"], .app("web", .write)),
        "ps:rebuild": (.app(.write), ["ps:rebuild", "web"], .app("web", .write)),
        "releases": (.app(.read), ["releases", "web"], .app("web", .read)),
        "releases:rollback": (.app(.write), ["releases:rollback", "web", "v1"], .app("web", .write)),
        "releases:output": (.app(.read), ["releases:output", "web", "v2", "--format", "json"], .app("web", .read)),
        "domains:report": (.app(.read), ["domains:report", "web"], .app("web", .read)),
        "domains:add": (.app(.write), ["domains:add", "web", "www.example.com"], .app("web", .write)),
        "domains:set": (.app(.write), ["domains:set", "web", "www.example.com"], .app("web", .write)),
        "domains:remove": (.app(.write), ["domains:remove", "web", "www.example.com"], .app("web", .write)),
        "domains:clear": (.app(.write), ["domains:clear", "web"], .app("web", .write)),
        "domains:set-global": (.admin, ["domains:set-global", "example.com"], .admin),
        "certs:add": (.app(.owner), ["certs:add", "web"], .app("web", .owner)),
        "letsencrypt:enable": (.app(.write), ["letsencrypt:enable", "web"], .app("web", .write)),
        "letsencrypt:disable": (.app(.write), ["letsencrypt:disable", "web"], .app("web", .write)),
        "letsencrypt:set": (.admin, ["letsencrypt:set", "--global", "email", "ops@example.com"], .admin),
        "letsencrypt:list": (.user, ["letsencrypt:list", "--format", "json"], .user),
        "letsencrypt:renew": (.app(.write), ["letsencrypt:renew", "web"], .app("web", .write)),
        "certs:remove": (.app(.owner), ["certs:remove", "web"], .app("web", .owner)),
        "certs:report": (.app(.read), ["certs:report", "web"], .app("web", .read)),
        "proxy:report": (.app(.read), ["proxy:report", "web"], .app("web", .read)),
        "proxy:logs": (.app(.read), ["proxy:logs", "web", "-t"], .app("web", .read)),
        "logs": (.app(.read), ["logs", "web", "-t", "-n", "5", "-p", "worker"], .app("web", .read)),
        "deploy:lock-status": (.app(.write), ["deploy:lock-status", "web"], .app("web", .write)),
        "deploy:unlock": (.app(.write), ["deploy:unlock", "web"], .app("web", .write)),
        "builds:list": (.app(.read), ["builds:list", "web"], .app("web", .read)),
        "builds:report": (.app(.read), ["builds:report", "web"], .app("web", .read)),
        "repo:purge-cache": (.app(.write), ["repo:purge-cache", "web"], .app("web", .write)),
        "builds:output": (.app(.read), ["builds:output", "web", "7", "-t"], .app("web", .read)),
        "builder:bootstrap": (.admin, ["builder:bootstrap"], .admin),
        "builder:report": (.user, ["builder:report"], .user),
        "events": (.user, ["events"], .user),
        "help": (.user, ["help"], .user),
        "version": (.user, ["version"], .user),
        "scheduler:set": (.app(.owner), ["scheduler:set", "web", "kubernetes"], .app("web", .owner)),
        "scheduler:report": (.app(.read), ["scheduler:report", "web"], .app("web", .read)),
        "k8s:render": (.admin, ["k8s:render", "web"], .admin),
        "registry:set": (.admin, ["registry:set", "server", "registry.example.com"], .admin),
        "registry:login": (.admin, ["registry:login", "registry.example.com", "ci"], .admin),
        "git-receive-pack": (.app(.write), ["git-receive-pack", "/web.git"], .appOrMissing("web", .write)),
        "git-upload-pack": (.app(.read), ["git-upload-pack", "~/web"], .app("web", .read)),
    ]

    @Test func everyCommandIsInTheTable() {
        let names = Set(CommandTree.commands.map { $0.name })
        #expect(names == Set(Self.table.keys))
        #expect(names.count == CommandTree.commands.count, "duplicate command names")
    }

    @Test(arguments: CommandTree.commands.map { $0.name })
    func ruleAndRequirementMatchTheDocs(_ name: String) throws {
        let type = try #require(CommandTree.byName[name])
        let (rule, sample, requirement) = try #require(Self.table[name])
        #expect(type.rule == rule)
        let parsed = try #require(try SlipwayRoot.parseAsRoot(sample) as? any GatedCommand)
        #expect(parsed.requirement == requirement)
        // Exactly one of mutating or query, so failures of mutating commands are audited.
        #expect((type is any MutatingCommand.Type) != (type is any QueryCommand.Type))
    }

    @Test func escalationsNeedAdmin() throws {
        func requirement(_ argv: [String]) throws -> Requirement {
            try #require(try SlipwayRoot.parseAsRoot(argv) as? any GatedCommand).requirement
        }
        #expect(try requirement(["config:set", "--global", "A=1"]) == .admin)
        #expect(try requirement(["config:get", "--global", "A"]) == .admin)
        #expect(try requirement(["config:export", "--global"]) == .admin)
        #expect(try requirement(["storage:mount", "web", "/etc:/x"]) == .all([.app("web", .write), .admin]))
        #expect(try requirement(["storage:create", "data", "/srv/data"]) == .admin)
        #expect(try requirement(["postgres:info", "db", "--show-password"]) == .datastore(.postgres, "db", .manage))
        #expect(try requirement(["ssh-keys:list"]) == .user)
        #expect(try requirement(["apps:report"]) == .user)
        #expect(try requirement(["resource:report"]) == .user)
        #expect(try requirement(["checks:report"]) == .user)
        // Without an app: each app with ACME on that the caller may write (ACMEService.renew).
        #expect(try requirement(["letsencrypt:renew"]) == .user)
        #expect(try requirement(["letsencrypt:set", "email", "ops@example.com"]) == .admin)
        #expect(try requirement(["scheduler:set", "--global", "kubernetes"]) == .admin)
    }

    @Test func everyCommandIsInTheManPage() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let page = try String(contentsOf: root.appendingPathComponent("man/slipway-commands.7"), encoding: .utf8)
        // troff writes '-' as '\\-'; a name must stand whole (apps:lock is not apps:locked).
        let text = page.replacingOccurrences(of: "\\-", with: "-")
        for command in CommandTree.commands {
            let documented = [".B ", "\\fB"].contains { prefix in
                text.ranges(of: prefix + command.name).contains { range in
                    range.upperBound == text.endIndex || !(text[range.upperBound].isLetter || text[range.upperBound] == "-")
                }
            }
            #expect(documented, "\(command.name) is not documented in man/slipway-commands.7")
        }
    }
}
