import Foundation
import Testing
@testable import SlipwayCommands
@testable import SlipwayCore

/// config:import, the export formats, config:show's columns and config:bundle as
/// Dokku users know them, on a temp store through the real command runner.
@Suite("Config as Dokku's users know it")
struct DokkuConfigTests {
    static let awkward: [String: String] = [
        "PLAIN": "hello world", "SINGLE": "it's", "DOUBLE": "say \"hi\"", "DOLLAR": "$HOME and $(id)",
        "NEWLINES": "one\ntwo\r\nthree", "BACKSLASH": "a\\b\\n", "EMPTY": "", "HASH": "a #b", "TICK": "`id`",
    ]

    func world(_ vars: [String: String] = awkward) throws -> TestWorld {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        let encoded = vars.map { "\($0.key)=\(Data($0.value.utf8).base64EncodedString())" }
        if !vars.isEmpty { #expect(w.run(["config:set", "--encoded", "web"] + encoded).status == 0) }
        return w
    }

    func json(_ w: TestWorld, _ app: String = "web") throws -> [String: String] {
        try JSONDecoder().decode([String: String].self, from: Data(w.run(["config:export", app, "--format", "json"]).out.utf8))
    }

    /// What one format writes, imported into another app, comes back exactly.
    @Test(arguments: ["envfile", "exports", "json"])
    func everyExportFormatImportsBackExactly(_ format: String) throws {
        let w = try world()
        #expect(w.run(["apps:create", "copy"]).status == 0)
        let exported = w.run(["config:export", "--format", format, "web"]).out
        let imported = w.run(["config:import", "copy"], stdin: exported)
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.out.contains("-----> Setting config vars") && imported.out.contains("       NEWLINES"))
        #expect(try json(w, "copy") == Self.awkward)
    }

    @Test func envfilesAsPeopleWriteThem() throws {
        let w = try world([:])
        let file = """
            # a comment
            export A=1
            B = two words  # trailing comment
            C='single $HOME'
            D="double\\tand \\"escaped\\""   # comment
            E="spans
            lines"
            F=x#not-a-comment
            G=
            A=again\r

            """
        let result = w.run(["config:import", "web", "-"], stdin: file)
        #expect(result.status == 0, "\(result.err)")
        #expect(try json(w) == ["A": "again", "B": "two words", "C": "single $HOME", "D": "double\tand \"escaped\"",
                                "E": "spans\nlines", "F": "x#not-a-comment", "G": ""])
    }

    @Test func replaceMakesTheInputTheWholeConfig() throws {
        let w = try world(["OLD": "1", "KEPT": "x"])
        #expect(w.run(["config:import", "--replace", "web"], stdin: #"{"KEPT": "y", "NEW": "2"}"#).status == 0)
        #expect(try json(w) == ["KEPT": "y", "NEW": "2"])
        let events = w.run(["events", "--format", "json"]).out
        #expect(events.contains("replaced all config with KEPT, NEW"))
    }

    /// Refused input changes nothing and says how to fix it.
    @Test(arguments: [
        (["config:import", "web"], "A=1\nnot a pair\n", "line 2: \"not\" is not KEY=VALUE"),
        (["config:import", "web"], "1BAD=x\n", "line 1: \"1BAD\" is not a valid key"),
        (["config:import", "web"], "A='unterminated\n", "line 1: the value of A has no closing '"),
        (["config:import", "web"], "A='x' y\n", "unexpected \"y\""),
        (["config:import", "web"], "# only a comment\n", "No config vars to set"),
        (["config:import", "web"], #"{"A": 1}"#, "the value of \"A\" is not a JSON string"),
        (["config:import", "--format", "json", "web"], "A=1\n", "is not a JSON object"),
        (["config:import", "web"], #"{"A": "x\u0000y"}"#, "NUL byte"),
        (["config:import", "web", "/etc/passwd"], "A=1\n", "reads standard input only, never a file on the server"),
        (["config:import", "--replace", "web"], "", "No config vars to set"),
    ])
    func badImportsChangeNothing(argv: [String], input: String, message: String) throws {
        let w = try world(["KEEP": "me"])
        let before = try w.dump()
        let result = w.run(argv, stdin: input)
        #expect(result.status != 0 && result.err.hasPrefix("error: ") && result.err.contains(message), "\(result.err)")
        #expect(try json(w) == ["KEEP": "me"])
        // Only the refusal's own audit event may differ.
        #expect(try w.dump().split(separator: "\n").filter { !$0.hasPrefix("audit") } == before.split(separator: "\n").filter { !$0.hasPrefix("audit") })
    }

    @Test func importFromATerminalExplainsHowToPipe() throws {
        let w = try world([:])
        let result = w.run(["config:import", "web"], stdin: nil)
        #expect(result.status == 1 && result.err.contains("config:import web < .env"))
    }

    @Test func theNewExportFormatsAsDokkuPrintsThem() throws {
        let w = try world(["A": "it's", "LONG_KEY": "x y"])
        func export(_ format: String) -> String { w.run(["config:export", "--format", format, "web"]).out }
        #expect(export("docker-args") == #"--env=A='it'\''s' --env=LONG_KEY='x y'"# + "\n")
        #expect(export("docker-args-keys") == "--env=A --env=LONG_KEY\n")
        #expect(export("pack-keys") == "--env A --env LONG_KEY\n")
        #expect(export("pretty") == "A:         it's\nLONG_KEY:  x y\n")
        let list = try JSONSerialization.jsonObject(with: Data(export("json-list").utf8)) as? [[String: String]]
        #expect(list == [["name": "A", "value": "it's"], ["name": "LONG_KEY", "value": "x y"]])
        let bad = w.run(["config:export", "--format", "yaml", "web"])
        #expect(bad.status == 2 && bad.err.hasPrefix("error: "))
        #expect(try #require(Config.Export.Format(rawValue: "docker-args-keys")) == .dockerArgsKeys)
    }

    /// Dokku's columns: the longest key and its colon, then two spaces.
    @Test func showAlignsValuesAsDokku() throws {
        let w = try world(["A": "1", "BBB": "2"])
        #expect(w.run(["config:show", "web"]).out == "=====> web env vars\nA:    1\nBBB:  2\n")
    }

    @Test func bundleIsATarOfOneFilePerKey() throws {
        let long = String(repeating: "K", count: 150)
        let w = try world(["A": "it's\nmulti", "EMPTY": "", long: "long name"])
        let out = BytesOutput()
        let status = w.runner.run(["config:bundle", "web"], as: .localAdmin, stdout: out, stderr: Buffer(), stdin: FixedInput(data: Data()))
        #expect(status == 0)
        let directory = scratchPath("bundle")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try out.bytes.write(to: URL(fileURLWithPath: directory + "/env.tar"))
        #expect(try runTool("/usr/bin/tar", ["-x", "-f", directory + "/env.tar", "-C", directory]).status == 0)
        #expect(try String(contentsOfFile: directory + "/A", encoding: .utf8) == "it's\nmulti")
        #expect(try String(contentsOfFile: directory + "/EMPTY", encoding: .utf8) == "")
        #expect(try String(contentsOfFile: directory + "/" + long, encoding: .utf8) == "long name")
        let listing = try runTool("/usr/bin/tar", ["-tvf", directory + "/env.tar"]).out
        #expect(listing.split(separator: "\n").count == 3 && listing.split(separator: "\n").allSatisfy { $0.hasPrefix("-rw-------") })
    }

    /// Dokku's words for a config:set without pairs, and a hint for a value split by ssh.
    @Test func setErrorsSayWhatDokkuSaysAndHowToQuote() throws {
        let w = try world([:])
        let none = w.run(["config:set", "web"])
        #expect(none.status == 2 && none.err.hasPrefix("error: At least one env pair must be given"))
        let split = w.run(["config:set", "web", "GREETING=hello", "world"])
        #expect(split.status == 1 && split.err.contains(#"config:set web 'GREETING="hello world"'"#) && split.err.contains("--encoded"), "\(split.err)")
        #expect(try json(w) == [:])
        let unset = w.run(["config:unset", "web"])
        #expect(unset.status == 2 && unset.err.hasPrefix("error: At least one key must be given"))
    }
}

/// Collects raw bytes (a tar), text included.
final class BytesOutput: TextOutput, @unchecked Sendable {
    private let lock = NSLock()
    private var storage = Data()
    func write(_ text: String) { _ = write(bytes: Data(text.utf8)) }
    func write(bytes: Data) -> Bool { lock.withLock { storage.append(bytes) }; return true }
    var bytes: Data { lock.withLock { storage } }
}
