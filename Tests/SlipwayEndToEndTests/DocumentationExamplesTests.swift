import Foundation
import Testing

/// README.md's and the man pages' command lines, run verbatim in bash, in order,
/// against a test server, each checked for its exit status and what a reader would
/// expect to see.
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
        .init(prefix: "printf 'Flask\\n' > requirements.txt", shows: ""),
        .init(prefix: "printf 'from flask import Flask", shows: ""),
        .init(prefix: "git add . && git commit -qm flask && git push ssh://127.0.0.1:2222/hello main", shows: "-----> Python app (requirements.txt)"),
        .init(prefix: "curl http://hello.localhost:8080/", shows: "hello from Flask\n"),
        .init(prefix: "git rm -q requirements.txt hello.py", shows: ""),
        .init(prefix: "printf 'require(\"express\")()", shows: ""),
        .init(prefix: "printf 'web: node server.js\\n' > Procfile", shows: "-----> Node.js app (package.json)"),
        .init(prefix: "curl http://shop.localhost:8080/", shows: "hello from Express\n"),
        .init(prefix: "ssh -p 2222 127.0.0.1 domains:add web www.example.com", shows: "www.example.com"),
        .init(prefix: "curl --resolve www.example.com:8080:127.0.0.1", shows: "hello from the docs"),
        .init(prefix: "cat cert.pem key.pem | ssh -p 2222 127.0.0.1 certs:add web", shows: "www.example.com"),
        .init(prefix: "ssh -p 2222 127.0.0.1 proxy:report web", shows: "www.example.com"),
        .init(prefix: "ssh -p 2222 127.0.0.1 proxy:logs web -t", shows: "\"GET / HTTP/1.1\" 200 ", follow: true),
        .init(prefix: "ssh -p 2222 127.0.0.1 domains:set-global apps.example.com", shows: "apps.example.com"),
        .init(prefix: "ssh -p 2222 127.0.0.1 postgres:create db && ssh -p 2222 127.0.0.1 postgres:link db web", shows: "-----> Linked db to web as DATABASE_URL"),
        .init(prefix: "echo 'select 1 as ready' | ssh -p 2222 127.0.0.1 postgres:connect db", shows: "(1 row)"),
        .init(prefix: "ssh -p 2222 127.0.0.1 postgres:export db > db.dump", shows: ""),
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

    /// The lines of the `.nf` ... `.fi` (no-fill) blocks of a man page: its examples.
    static func manLines(_ page: String) -> [String] {
        var lines: [String] = [], inside = false
        for line in page.split(separator: "\n").map(String.init) {
            if line == ".nf" { inside = true } else if line == ".fi" { inside = false } else if inside { lines.append(line) }
        }
        return lines
    }

    @Test func theReadmeRunsAsWritten() throws {
        _ = try BuilderImage.bootstrap.get()
        // The reader: run.sh's first admin (as root).
        let reader = try ReaderShell(admin: "root")
        defer { reader.remove() }
        // The files the README only mentions: the reader's app checkout (its first push is
        // v1), bob's key, and a certificate for the domain.
        let app = try makeRepository(["Procfile": Data("web: python3 -m http.server --bind 0.0.0.0 $PORT\n".utf8),
                                      "index.html": Data("hello from the docs\n".utf8), ".gitignore": Data("*.pem\n*.pub\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: app) }
        try reader.makeKey(app + "/bob.pub", comment: "bob@laptop")
        try reader.makeCertificate(in: app)
        // The Flask and Express examples install from PyPI and npm's registry; here the apps
        // get the test's local index instead (no test reaches the internet): one of its
        // own, since the dependency suite counts the requests its shared index sees (ci19
        // counted these apps' downloads as its own).
        let index = try PackageIndex()
        defer { index.stop() }
        for name in ["hello", "shop"] {
            #expect(try reader.server.slipway("--as", "root", "apps:create", name).status == 0)
            #expect(try reader.server.slipway(["--as", "root", "config:set", "--no-restart", name] + index.config).status == 0)
        }

        let readme = try String(contentsOfFile: Self.root + "/README.md", encoding: .utf8)
        let lines = Self.shellLines(readme).filter { Self.excluded[$0] == nil }
        #expect(Set(Self.excluded.keys).isSubset(of: Set(Self.shellLines(readme))), "an excluded line is gone from README.md")
        #expect(lines.count == Self.expectations.count, "README.md's examples and this test's expectations differ: \(lines)")
        for (line, expected) in zip(lines, Self.expectations) {
            try #require(line.hasPrefix(expected.prefix), "README.md's next example is \(line), expected \(expected.prefix)")
            reader.check(line, in: app, expected)
        }
    }

    /// What the man pages' examples show (a line not listed here must exit 0 and print
    /// no error); and the lines that cannot run, each with its reason.
    static let manExpectations: [String: Expectation] = [
        "ssh -p 2222 host -- --quiet apps:list": .init(prefix: "", shows: "web\n"),
        "ssh -p 2222 host -- --app web --quiet apps:report --app-locked": .init(prefix: "", shows: "false\n"),
        "echo hi | ssh -p 2222 host run web cat": .init(prefix: "", shows: "hi\n"),
        "ssh -t -p 2222 host run web bash": .init(prefix: "", shows: "hello world\n", stdin: "echo \"$GREETING\"\n"),
        "ssh -p 2222 host run web python3 manage.py migrate": .init(prefix: "", shows: "migrated\n"),
        "eval \"$(ssh -p 2222 host config:export web)\"": .init(prefix: "", shows: ""),
        "docker run $(ssh -p 2222 host config:export --format docker-args-keys web) image": .init(prefix: "", shows: "--env=GREETING image"),
        "mkdir -p env.d && ssh -p 2222 host config:bundle web | tar -x -C env.d": .init(prefix: "", shows: ""),
        "ssh -p 2222 host apps:clone web web-preview": .init(prefix: "", shows: "web-preview"),
        "ssh -p 2222 host apps:rename web-preview preview": .init(prefix: "", shows: "preview"),
        "ssh -p 2222 host enter web web.1 ls /app": .init(prefix: "", shows: "Procfile\n"),
        "ssh -t -p 2222 host enter web": .init(prefix: "", shows: "enter-ok\n", stdin: "echo enter-ok\nexit\n"),
        "ssh -p 2222 host ps:set web restart-policy on-failure:5": .init(prefix: "", shows: "on-failure:5"),
    ]

    @Test func theManPagesRunAsWritten() throws {
        _ = try BuilderImage.bootstrap.get()
        let reader = try ReaderShell(admin: "root")
        defer { reader.remove() }
        // What the pages assume: a deployed app `web` (a Procfile app with a manage.py),
        // apps `staging` and `scratch`, and the files their lines read.
        let app = try makeRepository(["Procfile": Data("web: python3 -m http.server --bind 0.0.0.0 $PORT\n".utf8),
                                      "manage.py": Data("import sys\nprint(sys.argv[1] + 'd')\n".utf8),
                                      ".gitignore": Data("*.pem\n*.pub\n.env\nenv.d/\n".utf8)])
        defer { try? FileManager.default.removeItem(atPath: app) }
        for line in ["ssh -p 2222 host apps:create web", "git push ssh://host:2222/web main", "ssh -p 2222 host apps:create staging",
                     "ssh -p 2222 host apps:create scratch"] {
            reader.check(line, in: app, .init(prefix: "", shows: ""))
        }
        for name in ["bob", "alice", "carol"] { try reader.makeKey(app + "/\(name).pub", comment: "\(name)@laptop") }
        try reader.makeKey(reader.home + "/alice/.ssh/id_ed25519.pub", comment: "alice@desktop")
        try reader.makeCertificate(in: app)
        try "FROM_ENV=1\nOTHER=two words\n".write(toFile: app + "/.env", atomically: true, encoding: .utf8)

        var ran = 0
        // slipway(8) first: it makes the first admin, as a reader would.
        for page in ["slipway.8", "slipway-commands.7"] {
            let text = try String(contentsOfFile: Self.root + "/man/" + page, encoding: .utf8)
            for line in Self.manLines(text) {
                reader.check(line, in: app, Self.manExpectations[line] ?? .init(prefix: "", shows: ""))
                ran += 1
            }
        }
        #expect(ran >= 20, "the man pages' examples were not found")
        #expect(Set(Self.manExpectations.keys).isSubset(of: Set(try ["slipway.8", "slipway-commands.7"].flatMap {
            Self.manLines(try String(contentsOfFile: Self.root + "/man/" + $0, encoding: .utf8))
        })), "a line this test expects is gone from the man pages")
    }
}

/// A reader's shell on a fresh test server, set up as the docs assume: `ssh` (git's
/// too) drops the documented `-p 2222` and reaches this server as the admin whatever
/// host is named; `slipway` is the binary under test on the server's data dir; `:8080`
/// becomes the server's proxy port; `/home/alice` is a folder of the test's; `docker`
/// prints its arguments.
struct ReaderShell {
    let server: TestServer
    let work: String
    let home: String
    let environment: [String: String]

    init(admin name: String) throws {
        server = try TestServer()
        work = try temporaryDirectory("slipway-docs")
        home = work + "/home"
        let admin = try TestUser.register(name, admin: true, on: server.slipway)
        let bin = work + "/bin"
        for dir in [home + "/.ssh", home + "/alice/.ssh", bin] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        #expect(try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", home + "/.ssh/id_ed25519"]).status == 0)
        try "[user]\n\tname = Reader\n\temail = reader@example.com\n".write(toFile: home + "/.gitconfig", atomically: true, encoding: .utf8)
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
        try "#!/bin/sh\necho docker \"$@\"\n".write(toFile: bin + "/docker", atomically: true, encoding: .utf8)
        for tool in ["ssh", "slipway", "docker"] { try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/" + tool) }
        environment = ["HOME": home, "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                       "GIT_SSH_COMMAND": "ssh", "GIT_SSH_VARIANT": "ssh"]
    }

    func remove() {
        _ = server.stop()  // and its nginx with it
        server.slipway.cleanUp()
        removeDependencyImages(dataDir: server.slipway.dataDir)
        try? FileManager.default.removeItem(atPath: server.slipway.dataDir)
        try? FileManager.default.removeItem(atPath: server.slipway.configPath)
        try? FileManager.default.removeItem(atPath: work)
    }

    func substitute(_ line: String) -> String {
        line.replacingOccurrences(of: ":8080", with: ":\(server.slipway.proxyPort)").replacingOccurrences(of: "/home/alice", with: home + "/alice")
    }

    /// Runs `line` in bash in `directory` and checks it as a reader would: exit 0 (a
    /// streaming line is stopped after 8 s), the expected text shown, no error.
    func check(_ line: String, in directory: String, _ expected: DocumentationExamplesTests.Expectation) {
        do {
            let script = "cd -- \"$0\" || exit 99\n" + substitute(line)
            let result = expected.follow
                ? try run("/usr/bin/timeout", ["-s", "KILL", "8", "/bin/bash", "-c", script, directory], environment: environment)
                : try run("/bin/bash", ["-c", script, directory], stdin: expected.stdin.map { Data($0.utf8) }, environment: environment)
            let shown = result.out + result.err
            if !expected.follow { #expect(result.status == 0, "\(line)\nexit \(result.status): \(shown)") }
            // ("".contains("") is false: an empty expectation asks for nothing but the rest.)
            #expect(expected.shows.isEmpty || shown.contains(expected.shows), "\(line)\nshows: \(shown)")
            #expect(!shown.contains("error:"), "\(line)\nshows: \(shown)")
        } catch {
            Issue.record("\(line): \(error)")
        }
    }

    /// A fresh public key at `path` (its private half stays in the test's own folder).
    func makeKey(_ path: String, comment: String) throws {
        let key = work + "/key-\(UUID().uuidString)"
        #expect(try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key]).status == 0)
        try FileManager.default.moveItem(atPath: key + ".pub", toPath: path)
    }

    /// cert.pem and key.pem for www.example.com in `directory`.
    func makeCertificate(in directory: String) throws {
        let made = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem", "-days", "2", "-subj", "/CN=www.example.com",
                                                "-addext", "subjectAltName=DNS:www.example.com"])
        #expect(made.status == 0, "\(made.err)")
    }
}
