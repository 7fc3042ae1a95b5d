import Foundation
import Testing

/// README.md's command lines, run verbatim in bash, in order, against a test server,
/// each checked for its exit status and what a reader would expect to see.
@Suite("Documentation examples", .serialized)
struct DocumentationExamplesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Lines that cannot run in a test, each with its reason.
    static let excluded: [String: String] = [
        // Installs packages and serves on the real port 2222 until stopped.
        "./scripts/run.sh     # set up everything, build, install and start Slipway on 127.0.0.1:2222": "starts a long-running server of its own",
        // Would run this very suite inside itself.
        "./scripts/test.sh    # set up everything and run the whole test suite": "runs the whole suite, this test included",
        // debootstrap from the network (minutes), and it replaces the builder image every
        // other test builds on; the suite makes it once (BuilderImage) and EngineTests checks that output.
        "slipway builder:bootstrap                     # once, on hosts without a registry: the Procfile builder image": "rebuilds the shared builder image",
    ]

    /// What a reader expects of each line: exit status 0 and this text in its output
    /// (stdout and stderr). `follow` lines stream until stopped; `stdin` is typed in.
    struct Expectation {
        let prefix: String
        let shows: String
        var follow = false
        var stdin: String? = nil
    }

    /// Every README line, in order, by its start (a new example fails until it is listed).
    static let expectations: [Expectation] = [
        .init(prefix: "ssh -p 2222 127.0.0.1      ", shows: "apps:create"),
        .init(prefix: "ssh -p 2222 127.0.0.1 apps:create web", shows: "web"),
        .init(prefix: "ssh -p 2222 127.0.0.1 config:set web 'GREETING=\"hello world\"'", shows: "GREETING"),
        .init(prefix: "git push ssh://127.0.0.1:2222/web main        # an unknown", shows: "Application deployed"),
        .init(prefix: "ssh -p 2222 127.0.0.1 ssh-keys:add bob laptop < bob.pub", shows: "SHA256:"),
        .init(prefix: "slipway host-key", shows: "ssh-ed25519 "),
        .init(prefix: "printf 'web: python3 -m http.server $PORT\\n' > Procfile", shows: "] web"),
        .init(prefix: "git push ssh://127.0.0.1:2222/web main        # ...", shows: "Application deployed"),
        .init(prefix: "curl http://web.localhost:8080/", shows: "hello from the docs"),
        .init(prefix: "ssh -p 2222 127.0.0.1 releases web", shows: "v2"),
        .init(prefix: "ssh -p 2222 127.0.0.1 releases:rollback web v1", shows: "v1"),
        .init(prefix: "ssh -p 2222 127.0.0.1 ps:scale web web=2", shows: "web"),
        .init(prefix: "ssh -p 2222 127.0.0.1 logs web -t", shows: "web[web.", follow: true),
        .init(prefix: "echo hi | ssh -p 2222 127.0.0.1 run web cat", shows: "hi\n"),
        .init(prefix: "ssh -t -p 2222 127.0.0.1 run web bash", shows: "hello world\n", stdin: "echo \"$GREETING\"\n"),
        .init(prefix: "ssh -p 2222 127.0.0.1 domains:add web www.example.com", shows: "www.example.com"),
        .init(prefix: "curl --resolve www.example.com:8080:127.0.0.1", shows: "hello from the docs"),
        .init(prefix: "cat cert.pem key.pem | ssh -p 2222 127.0.0.1 certs:add web", shows: "www.example.com"),
        .init(prefix: "ssh -p 2222 127.0.0.1 proxy:report web", shows: "www.example.com"),
        .init(prefix: "ssh -p 2222 127.0.0.1 proxy:logs web -t", shows: "\"GET / HTTP/1.1\" 200 ", follow: true),
        .init(prefix: "ssh -p 2222 127.0.0.1 domains:set-global apps.example.com", shows: "apps.example.com"),
        .init(prefix: "slipway users:add alice --admin", shows: "alice"),
        .init(prefix: "slipway ssh-keys:add alice laptop < ~/.ssh/id_ed25519.pub", shows: "SHA256:"),
        .init(prefix: "slipway --as alice apps:create api", shows: "api"),
        .init(prefix: "slipway config:set api \"GREETING=hello world\"", shows: "GREETING"),
        .init(prefix: "slipway storage:mount api uploads:/app/uploads", shows: "uploads"),
        .init(prefix: "slipway --as bob apps:list", shows: "=====> My Apps\n"),
        .init(prefix: "slipway events", shows: "alice"),
    ]

    /// The lines of the ```sh blocks of a Markdown text.
    static func shellLines(_ markdown: String) -> [String] {
        var lines: [String] = [], inside = false
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("```") { inside = !inside && line == "```sh"; continue }
            if inside && !line.trimmingCharacters(in: .whitespaces).isEmpty { lines.append(line) }
        }
        return lines
    }

    @Test func theReadmeRunsAsWritten() throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer()
        let work = try temporaryDirectory("slipway-docs")
        defer {
            server.slipway.cleanUp()
            try? FileManager.default.removeItem(atPath: server.slipway.dataDir)
            try? FileManager.default.removeItem(atPath: server.slipway.configPath)
            try? FileManager.default.removeItem(atPath: work)
        }
        // The reader: run.sh's first admin (as root), a home with a key and a git identity.
        let admin = try TestUser.register("root", admin: true, on: server.slipway)
        let home = work + "/home", bin = work + "/bin"
        for dir in [home + "/.ssh", bin] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        #expect(try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", home + "/.ssh/id_ed25519"]).status == 0)
        try "[user]\n\tname = Reader\n\temail = reader@example.com\n".write(toFile: home + "/.gitconfig", atomically: true, encoding: .utf8)

        // The substitutions, all here: `ssh` (also git's) drops the documented `-p 2222` and
        // reaches this server as `admin`; `slipway` is the binary under test on its data
        // dir; `:8080` becomes this server's proxy port (in `substitute` below).
        let options = server.sshOptions(key: admin.key).map { "'\($0)'" }.joined(separator: " ")
        try """
            #!/bin/bash
            a=()
            while (($#)); do
              case $1 in -p) shift 2 ;; -o) a+=("$1" "$2"); shift 2 ;; -*) a+=("$1"); shift ;; *) break ;; esac
            done
            exec /usr/bin/ssh \(options) -o HostName=127.0.0.1 "${a[@]}" "$@"

            """.write(toFile: bin + "/ssh", atomically: true, encoding: .utf8)
        try "#!/bin/sh\nexec '\(Slipway.binary)' --data-dir '\(server.slipway.dataDir)' --config '\(server.slipway.configPath)' \"$@\"\n"
            .write(toFile: bin + "/slipway", atomically: true, encoding: .utf8)
        for tool in ["ssh", "slipway"] { try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/" + tool) }
        func substitute(_ line: String) -> String { line.replacingOccurrences(of: ":8080", with: ":\(server.slipway.proxyPort)") }
        let environment = ["HOME": home, "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                           "GIT_SSH_COMMAND": "ssh", "GIT_SSH_VARIANT": "ssh"]

        // The files the README only mentions: the reader's app checkout (its first push is
        // v1), bob's key, and a certificate for the domain.
        let app = try makeRepository(["Procfile": Data("web: python3 -m http.server --bind 0.0.0.0 $PORT\n".utf8),
                                      "index.html": Data("hello from the docs\n".utf8), ".gitignore": Data("*.pem\n*.pub\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: app) }
        #expect(try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "bob@laptop", "-f", work + "/bob"]).status == 0)
        try FileManager.default.copyItem(atPath: work + "/bob.pub", toPath: app + "/bob.pub")
        let made = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                "-keyout", app + "/key.pem", "-out", app + "/cert.pem", "-days", "2", "-subj", "/CN=www.example.com",
                                                "-addext", "subjectAltName=DNS:www.example.com"])
        #expect(made.status == 0, "\(made.err)")

        let readme = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8)
        let lines = Self.shellLines(readme).filter { Self.excluded[$0] == nil }
        #expect(Set(Self.excluded.keys).isSubset(of: Set(Self.shellLines(readme))), "an excluded line is gone from README.md")
        #expect(lines.count == Self.expectations.count, "README.md's examples and this test's expectations differ: \(lines)")
        for (line, expected) in zip(lines, Self.expectations) {
            try #require(line.hasPrefix(expected.prefix), "README.md's next example is \(line), expected \(expected.prefix)")
            let script = "cd -- \"$0\" || exit 99\n" + substitute(line)
            let stdin = expected.stdin.map { Data($0.utf8) }
            let result = expected.follow
                ? try run("/usr/bin/timeout", ["-s", "KILL", "8", "/bin/bash", "-c", script, app], environment: environment)
                : try run("/bin/bash", ["-c", script, app], stdin: stdin, environment: environment)
            let shown = result.out + result.err
            if !expected.follow { #expect(result.status == 0, "\(line)\nexit \(result.status): \(shown)") }
            #expect(shown.contains(expected.shows), "\(line)\nshows: \(shown)")
            #expect(!shown.contains("error:"), "\(line)\nshows: \(shown)")
        }
    }
}
