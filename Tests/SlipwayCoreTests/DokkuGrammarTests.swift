import Foundation
import Logging
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// Dokku's command-line grammar: global flags before the command, per-namespace
/// help, and the apps namespace's shapes (apps:exists, apps:list, apps:report).
@Suite("Dokku's command lines, through the runner")
struct DokkuGrammarTests {
    /// bob (a user) owns web; carol owns hidden, which bob cannot see.
    func world() throws -> TestWorld {
        let w = try TestWorld()
        for name in ["bob", "carol"] { #expect(w.run(["users:add", name]).status == 0) }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["apps:create", "hidden"], asUser: "carol").status == 0)
        return w
    }

    @Test func globalFlagsComeInAnyOrderBeforeTheCommand() throws {
        let plain = try Invocation(["apps:list"])
        #expect(plain.words == ["apps:list"] && plain.app == nil && !plain.force && !plain.quiet && !plain.trace && plain.asUser == nil)
        let all = try Invocation(["--trace", "--app=web", "--quiet", "--as", "bob", "--force", "config:set", "--force", "K=V"])
        #expect(all.asUser == "bob" && all.app == "web" && all.force && all.quiet && all.trace)
        // Flags after the command word are the command's own.
        #expect(all.words == ["config:set", "--force", "K=V"])
        #expect(try Invocation(["--as=bob", "--app", "web", "git", "receive-pack", "'/web'"]).words == ["git-receive-pack", "'/web'"])
        #expect(try Invocation(["--help"]).words == ["--help"])
        for (argv, message) in [(["--app"], "--app needs an app name"), (["--as"], "--as needs a user name"),
                                (["--app", "a", "--app", "b", "apps:list"], "--app is given twice"),
                                (["--quiet=yes", "apps:list"], "--quiet takes no value")] {
            #expect(throws: UserFacingError.self) { try Invocation(argv) }
            let w = try TestWorld()
            let result = w.run(argv)
            #expect(result.status == 2 && result.err.hasPrefix("error: \(message)") && result.out.isEmpty, "\(argv): \(result.err)")
        }
    }

    /// The table: a Dokku command line, its exit status, and what it prints.
    @Test func dokkuCommandLinesGiveDokkusShapes() throws {
        let w = try world()
        let rows: [(argv: [String], status: Int32, out: (String) -> Bool, err: (String) -> Bool)] = [
            (["apps:list"], 0, { $0 == "=====> My Apps\nweb\n" }, \.isEmpty),
            (["--quiet", "apps:list"], 0, { $0 == "web\n" }, \.isEmpty),
            (["apps:list", "--format", "json"], 0, { $0 == "[\"web\"]\n" }, \.isEmpty),
            (["--quiet", "apps:list", "--format", "json"], 0, { $0 == "[\"web\"]\n" }, \.isEmpty),
            (["apps:exists", "web"], 0, \.isEmpty, \.isEmpty),
            (["--app", "web", "apps:exists"], 0, \.isEmpty, \.isEmpty),
            (["apps:exists", "nope"], 1, \.isEmpty, { $0 == " !     App nope does not exist\n" }),
            // Hidden and missing answer alike.
            (["apps:exists", "hidden"], 1, \.isEmpty, { $0 == " !     App hidden does not exist\n" }),
            (["apps:exists", "Bad_Name"], 1, \.isEmpty, { $0.hasPrefix("error: ") }),
            (["apps:report", "web", "--app-locked"], 0, { $0 == "false\n" }, \.isEmpty),
            (["--app", "web", "apps:report", "--app-locked"], 0, { $0 == "false\n" }, \.isEmpty),
            (["apps:report", "web", "--app-created-at"], 0, { Int($0.dropLast()) != nil && $0.hasSuffix("\n") }, \.isEmpty),
            (["apps:report", "web", "--app-deploy-source"], 0, { $0 == "\n" }, \.isEmpty),
            (["apps:report", "web", "--app-your-access"], 0, { $0 == "owner\n" }, \.isEmpty),
            (["apps:report", "web", "--app-dir"], 2, \.isEmpty, { $0.hasPrefix("error: ") && $0.contains("apps:report --help") }),
            (["apps:report", "web"], 0, { $0.hasPrefix("=====> web app information\n       App collaborators:             bob (owner)\n")
                && $0.contains("\n       App locked:                    false\n") }, \.isEmpty),
            (["--quiet", "apps:report", "web"], 0, { !$0.contains("=====>") && $0.contains("App locked:") }, \.isEmpty),
            (["apps:report", "hidden", "--app-locked"], 1, \.isEmpty, { $0.contains("not found") }),
            (["--app", "web", "apps:lock"], 0, { $0 == "-----> Deploy lock created for web\n" }, \.isEmpty),
            (["--quiet", "--app", "web", "apps:unlock"], 0, \.isEmpty, \.isEmpty),
            (["--app", "web", "apps:list"], 2, \.isEmpty, { $0 == "error: apps:list takes no app; run it without --app\n" }),
            (["--trace", "apps:exists", "web"], 0, \.isEmpty, \.isEmpty),
            (["--force", "apps:list"], 0, { $0.hasSuffix("web\n") }, \.isEmpty),
            (["--app", "fresh", "apps:create"], 0, { $0.hasPrefix("-----> Creating fresh...\n") }, \.isEmpty),
            (["--quiet", "--force", "--app", "fresh", "apps:destroy"], 0, \.isEmpty, \.isEmpty),
        ]
        for row in rows {
            let result = try w.run(row.argv, asUser: "bob")
            #expect(result.status == row.status && row.out(result.out) && row.err(result.err),
                    "\(row.argv): status \(result.status), out \(result.out.debugDescription), err \(result.err.debugDescription)")
        }
        let json = try w.run(["apps:report", "web", "--format", "json"], asUser: "bob").out
        #expect(json.hasSuffix("}\n") && json.dropLast().contains("\n") == false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String])
        #expect(object["name"] == "web" && object["locked"] == "false" && object["app-locked"] == "false")
        #expect(object["your-access"] == "owner" && object["deploy-source"] == "" && Int(object["created-at"] ?? "") != nil)
    }

    @Test func anEmptyListSaysSoAsDokkuDoes() throws {
        let w = try TestWorld()
        #expect(w.run(["users:add", "dave"]).status == 0)
        let text = try w.run(["apps:list"], asUser: "dave")
        #expect(text.status == 0 && text.out == "=====> My Apps\n" && text.err == " !     You haven't deployed any applications yet\n")
        #expect(try w.run(["apps:list", "--format", "json"], asUser: "dave").out == "[]\n")
        #expect(try w.run(["--quiet", "apps:list"], asUser: "dave").out.isEmpty)
    }

    @Test func globalForceAnswersTheConfirmation() throws {
        let w = try world()
        let asked = try w.run(["apps:destroy", "web"], asUser: "bob", stdin: "")
        #expect(asked.status == 1 && asked.err.contains("confirmation did not match"))
        #expect(try w.run(["apps:exists", "web"], asUser: "bob").status == 0)
        let forced = try w.run(["--force", "apps:destroy", "web"], asUser: "bob", stdin: nil)
        #expect(forced.status == 0 && !forced.err.contains("WARNING"), "\(forced.err)")
        #expect(try w.run(["apps:exists", "web"], asUser: "bob").status == 1)
        // --app and --force together, in either order.
        #expect(try w.run(["apps:create", "api"], asUser: "bob").status == 0)
        #expect(try w.run(["--app", "api", "--force", "apps:destroy"], asUser: "bob", stdin: nil).status == 0)
        // --force never lends an app: carol's stays.
        let refused = try w.run(["--force", "apps:destroy", "hidden"], asUser: "bob", stdin: nil)
        #expect(refused.status == 1 && refused.err.contains("not found"))
        #expect(try w.run(["apps:exists", "hidden"], asUser: "carol").status == 0)
        // storage:destroy asks too, and the global --force answers it as its own does.
        #expect(try w.run(["storage:create", "junk"], asUser: "bob").status == 0)
        #expect(try w.run(["storage:destroy", "junk"], asUser: "bob", stdin: "").status == 1)
        let storageForced = try w.run(["--force", "storage:destroy", "junk"], asUser: "bob", stdin: nil)
        #expect(storageForced.status == 0 && !storageForced.err.contains("WARNING"), "\(storageForced.err)")
        #expect(!(try w.run(["storage:list"], asUser: "bob").out.contains("junk")))
    }

    @Test func namespaceHelpListsTheNamespacesCommandsWithUsage() throws {
        let w = try world()
        let help = try w.run(["help", "apps"], asUser: "bob")
        #expect(help.status == 0 && help.out.hasPrefix("Usage: apps[:COMMAND]\n"), "\(help.out)")
        #expect(help.out.contains("  apps:exists <app>") && help.out.contains("apps:destroy <app> [--force] [--purge-storage]"))
        #expect(!help.out.contains("config:") && !help.out.contains("acl:"))
        for argv in [["apps:help"], ["apps", "--help"], ["apps", "-h"], ["apps"], ["--quiet", "apps:help"]] {
            #expect(try w.run(argv, asUser: "bob").out == help.out, "\(argv)")
        }
        // Admin-only commands stay out of a user's listing.
        let users = try w.run(["users:help"], asUser: "bob")
        #expect(users.status == 0 && !users.out.contains("users:add"))
        #expect(w.run(["users:help"]).out.contains("users:add <name>"))
        // A command of the same name keeps its own --help.
        #expect(try w.run(["run", "--help"], asUser: "bob").out.contains("USAGE: run"))
        let unknown = try w.run(["nope:help"], asUser: "bob")
        #expect(unknown.status == 2 && unknown.err.hasPrefix("error: unknown command \"nope:help\""))
    }
}

/// `--trace` writes the command and who ran it to the server log, never its
/// arguments: a `config:set` value is a tenant's secret.
@Suite("Dokku grammar: --trace")
struct TraceTests {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var all: [String] = []
        func add(_ line: String) { lock.withLock { all.append(line) } }
        var text: String { lock.withLock { all.joined(separator: "\n") } }
    }

    struct Recording: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { metadata[key] } set { metadata[key] = newValue } }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            lines.add("\(message) \((metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        }
    }

    @Test func theLogNamesTheCommandAndNoValue() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        let lines = Lines()
        let runner = CommandRunner(core: w.core, logger: Logger(label: "trace") { _ in Recording(lines: lines) })
        let status = runner.run(["--trace", "config:set", "--no-restart", "web", "SECRET=hunter2"], as: .localAdmin,
                                stdout: Buffer(), stderr: Buffer(), stdin: FixedInput(data: Data()))
        #expect(status == 0)
        #expect(lines.text.contains("trace: command started") && lines.text.contains("command=config:set")
                && lines.text.contains("trace: command ended") && lines.text.contains("status=0"), "\(lines.text)")
        #expect(!lines.text.contains("hunter2") && !lines.text.contains("SECRET"), "\(lines.text)")
    }
}
