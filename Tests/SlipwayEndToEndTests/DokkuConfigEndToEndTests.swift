import Foundation
import Testing

/// Dokku users' config command lines over the real OpenSSH client: the README's and
/// the man page's quoting run verbatim, config:import from a file, config:bundle,
/// and the new export formats read from a hostile writer's side.
@Suite("Dokku config end to end", .serialized)
struct DokkuConfigEndToEndTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs `script` in bash with `ssh` standing for this server's client (the
    /// documented `-p 2222` replaced by the test server's port).
    func bash(_ server: TestServer, key: String, _ script: String, in directory: String) throws -> Slipway.Result {
        let options = server.sshOptions(key: key).map { "'\($0)'" }.joined(separator: " ")
        let prelude = #"ssh() { local a=(); while (($#)); do if [ "$1" = -p ]; then shift 2; continue; fi; a+=("$1"); shift; done; /usr/bin/ssh "# + options + #" "${a[@]}"; }; host=127.0.0.1; "#
        return try run("/bin/bash", ["-c", "cd \"$0\" && " + prelude + script, directory])
    }

    /// The documented lines that set a value with a space, run as written.
    @Test func theDocumentedQuotingWorksOverSSH() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        let work = try temporaryDirectory("slipway-quoting")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let readme = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8)
        let man = try String(contentsOfFile: Self.root + "/man/slipway-commands.7", encoding: .utf8)
        let lines = (readme + "\n" + man).split(separator: "\n").map(String.init).filter { $0.hasPrefix("ssh -p 2222 ") && $0.contains("config:set web 'GREETING") }
        #expect(lines.count == 2, "\(lines)")
        for line in lines {
            #expect(try server.ssh(alice.key, "config:unset", "--no-restart", "web", "GREETING").status == 0)
            let result = try bash(server, key: alice.key, line.replacingOccurrences(of: " host ", with: " $host "), in: work)
            #expect(result.status == 0, "\(line): \(result.err)")
            #expect(try server.ssh(alice.key, "config:get", "web", "GREETING").out == "hello world\n", "\(line)")
        }
        // The old form fails, changes nothing and says how to quote.
        let old = try bash(server, key: alice.key, #"ssh -p 2222 $host config:set web "GREETING=bye now""#, in: work)
        #expect(old.status == 1 && old.err.contains(#"config:set web 'GREETING="bye now"'"#), "\(old.err)")
        #expect(try server.ssh(alice.key, "config:get", "web", "GREETING").out == "hello world\n")
        let none = try server.ssh(alice.key, "config:set", "web")
        #expect(none.status == 2 && none.err.hasPrefix("error: At least one env pair must be given"))
    }

    /// A Dokku backup habit: export, import elsewhere, bundle; values survive exactly.
    @Test func importAndBundleOverSSH() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        for app in ["web", "copy"] { #expect(try server.ssh(alice.key, "apps:create", app).status == 0) }
        let work = try temporaryDirectory("slipway-import")
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "# production\nexport DATABASE_URL='postgres://u:p@db/x'\nGREETING=\"hello world\"\nEMPTY=\n".write(toFile: work + "/.env", atomically: true, encoding: .utf8)
        let imported = try bash(server, key: alice.key, "ssh -p 2222 $host config:import web < .env", in: work)
        #expect(imported.status == 0, "\(imported.err)")
        #expect(try server.ssh(alice.key, "config:export", "--format", "shell", "web").out == "DATABASE_URL='postgres://u:p@db/x' EMPTY='' GREETING='hello world'\n")
        let copied = try bash(server, key: alice.key, "ssh $host config:export --format json web | ssh $host config:import --replace copy", in: work)
        #expect(copied.status == 0, "\(copied.err)")
        #expect(try server.ssh(alice.key, "config:show", "copy").out == "=====> copy env vars\nDATABASE_URL:  postgres://u:p@db/x\nEMPTY:         \nGREETING:      hello world\n")
        let bundle = try bash(server, key: alice.key, "mkdir env.d && ssh $host config:bundle web | tar -x -C env.d && cat env.d/GREETING", in: work)
        #expect(bundle.status == 0 && bundle.out == "hello world", "\(bundle.err)")
        let file = try server.ssh(alice.key, "config:import", "web", "/etc/passwd")
        #expect(file.status == 2 && file.err.contains("never a file on the server"))
    }

    /// ATTACK: a writer stores values built to run a command where a reader evals
    /// `config:export --format docker-args` (as `eval docker run $(...)` does), or to
    /// add an argument. EXPECTED: nothing runs; each value is one argument, exactly.
    @Test func dockerArgsNeverRunAValue() throws {
        let server = try TestServer()
        defer { server.slipway.cleanUp(); try? FileManager.default.removeItem(atPath: server.slipway.dataDir) }
        let alice = try TestUser.register("alice", admin: true, on: server.slipway)
        let eve = try TestUser.register("eve", on: server.slipway)
        let work = try temporaryDirectory("slipway-docker-args")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let marker = work + "/pwned"
        let values = ["A": "x' --privileged '$(touch \(marker)-a)", "B": "'\u{301};touch \(marker)-b;'\u{301}", "C": "line\n$(touch \(marker)-c)\r\n", "D": "`touch \(marker)-d`"]
        #expect(try server.ssh(alice.key, "apps:create", "web").status == 0)
        #expect(try server.ssh(alice.key, "acl:add", "web", eve.name, "write").status == 0)
        let encoded = values.sorted { $0.key < $1.key }.map { "\($0.key)=\(Data($0.value.utf8).base64EncodedString())" }
        #expect(try server.ssh(eve.key, ["config:set", "--no-restart", "--encoded", "web"] + encoded).status == 0)
        let dump = #"for a in "$@"; do printf '%s' "$a" | base64 -w0; echo; done"#
        let result = try bash(server, key: alice.key, "eval \"set -- $(ssh $host config:export --format docker-args web)\"; " + dump, in: work)
        let args = result.out.split(separator: "\n").map { String(decoding: Data(base64Encoded: String($0)) ?? Data(), as: UTF8.self) }
        #expect(args == values.keys.sorted().map { "--env=\($0)=\(values[$0]!)" }, "\(result.err)")
        for format in ["docker-args-keys", "pack-keys"] {
            let keys = try bash(server, key: alice.key, "eval \"set -- $(ssh $host config:export --format \(format) web)\"; " + dump, in: work)
            let words = keys.out.split(separator: "\n").map { String(decoding: Data(base64Encoded: String($0)) ?? Data(), as: UTF8.self) }
            #expect(words == (format == "pack-keys" ? ["A", "B", "C", "D"].flatMap { ["--env", $0] } : ["--env=A", "--env=B", "--env=C", "--env=D"]))
        }
        let list = try JSONSerialization.jsonObject(with: Data(try server.ssh(alice.key, "config:export", "--format", "json-list", "web").out.utf8)) as? [[String: String]]
        #expect(list == values.keys.sorted().map { ["name": $0, "value": values[$0]!] })
        let ran = try FileManager.default.contentsOfDirectory(atPath: work).filter { $0.hasPrefix("pwned") }
        #expect(ran.isEmpty, "commands ran: \(ran)")
    }
}
