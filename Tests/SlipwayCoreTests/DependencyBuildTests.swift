import Foundation
import SlipwayHost
import Testing
@testable import SlipwayCore

/// Issue 16's build core on the fake engine: language detection from git's objects,
/// version checks, the install keyed on the dependency files (no container when
/// reused), config in the install container only, and repo:purge-cache's gate.
@Suite("Dependency installs of apps without a Dockerfile")
struct DependencyBuildTests {
    let engine = FakeEngine()
    let core: Core
    let caller = Caller(principal: .localAdmin, command: "test")
    let web = try! AppName("web")
    static let languages = [BuilderLanguages.label: "node=18.20.4,npm=9.2.0,python=3.11.2"]

    init() throws { try self.init(configure: { _ in }) }

    /// A world whose server settings `configure` changes (e.g. build_ca_certificates).
    init(configure: (inout Settings) -> Void) throws {
        var settings = Settings()
        settings.dataDir = scratchPath("slipway-test")
        configure(&settings)
        core = try Core(settings: settings, engine: engine, probe: FakeProbe(), proxy: RecordingProxy(directory: settings.dataDir + "/proxy"), processes: LocalProcesses())
        engine.imageLabels = Self.languages
        _ = try core.apps.create(web, by: caller)
    }

    /// Commits `files` (name → text; a value starting with "->" is a symbolic link to
    /// the rest) to the app's repository; returns the revision.
    func commit(_ files: [String: String]) throws -> String {
        let repo = core.paths.repository(web)
        let work = scratchPath("work")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        func git(_ args: [String], in dir: String? = nil) throws -> String {
            let result = try ProcessRunner.run("/usr/bin/git", args, environment: ["HOME": work, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                                                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"], currentDirectory: dir)
            guard result.status == 0 else { throw UserFacingError.invalid("git \(args): \(result.stderr)") }
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if !FileManager.default.fileExists(atPath: repo) { _ = try git(["init", "-q", "--bare", repo]) }
        _ = try git(["init", "-q", work])
        for (name, text) in files.merging(["Procfile": "web: python3 app.py\n"], uniquingKeysWith: { a, _ in a }) {
            if text.hasPrefix("->") {
                try FileManager.default.createSymbolicLink(atPath: work + "/" + name, withDestinationPath: String(text.dropFirst(2)))
            } else {
                try text.write(toFile: work + "/" + name, atomically: true, encoding: .utf8)
            }
        }
        _ = try git(["add", "-A"], in: work)
        _ = try git(["commit", "-q", "-m", "c"], in: work)
        let revision = try git(["rev-parse", "HEAD"], in: work)
        _ = try git(["push", "-q", "-f", repo, "HEAD:refs/heads/main"], in: work)
        return revision
    }

    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.withLock { lines.append(line) } }
        var all: [String] { lock.withLock { lines } }
    }

    /// Builds `files`; returns the lines printed and the error, if any.
    func build(_ files: [String: String]) throws -> (lines: [String], error: String?) {
        let revision = try commit(files)
        let lines = Lines()
        do {
            try core.builds.build(web, revision: revision, by: caller) { lines.append($0) }
            return (lines.all, nil)
        } catch let error as UserFacingError {
            return (lines.all, error.message)
        }
    }

    var installContainers: [ContainerSpec] { engine.specs.filter { $0.name?.hasPrefix("web.deps.") == true } }

    // MARK: Detection and reuse

    @Test func aPythonAppInstallsOnceAndReusesItsLayerWhenOnlyCodeChanges() throws {
        let first = try build(["requirements.txt": "flask==3.0.0\n", "app.py": "print(1)\n"])
        #expect(first.error == nil, "\(first)")
        #expect(first.lines.first == "-----> Python app (requirements.txt)")
        #expect(installContainers.count == 1)
        let install = try #require(installContainers.first)
        #expect(install.command == ["/bin/sh", "-c", DependencyPlan(language: .python, sources: [], files: [:], runsBuildScript: false, requestedVersion: nil).installScript])
        #expect(install.sandbox?.appID == 1 && install.user == "0" && install.workingDirectory == "/app")
        let cache = core.paths.buildCache(ofApp: 1)
        #expect(install.binds.contains("\(cache)/cache:/cache"))
        #expect(install.binds.contains { $0.hasPrefix(cache + "/installs/.tmp-") && $0.hasSuffix(":/app") })
        #expect(install.environment["PIP_CACHE_DIR"] == "/cache/pip")
        // The install became its own image, and the app's code is copied onto it.
        let key = try #require(try FileManager.default.contentsOfDirectory(atPath: cache + "/installs").first)
        let tag = "slipway/deps-\(try core.paths.instanceID().prefix(12))-app-1:\(key)"
        #expect(engine.builds.map(\.tag).first == tag)
        #expect(engine.contexts.last?.contains("FROM \(tag)\nCOPY --chown=1000:1000 . /app\n") == true)
        #expect(FileManager.default.contents(atPath: "\(cache)/installs/\(key)/requirements.txt") == Data("flask==3.0.0\n".utf8))

        let second = try build(["requirements.txt": "flask==3.0.0\n", "app.py": "print(2)\n"])
        #expect(second.error == nil, "\(second)")
        #expect(second.lines.prefix(2) == ["-----> Python app (requirements.txt)", "-----> Dependencies unchanged (requirements.txt): reusing the installed layer"])
        #expect(installContainers.count == 1, "no install container on the second build")
        #expect(engine.builds.count == 3, "only the app's own build: \(engine.builds.map(\.tag))")

        // A new dependency list: a new install in a new venv, never a copy of the previous
        // one, where pip would leave whatever the list dropped.
        #expect(FileManager.default.createFile(atPath: "\(cache)/installs/\(key)/.venv-leftover", contents: Data()))
        let third = try build(["requirements.txt": "flask==3.0.0\nrequests\n", "app.py": "print(2)\n"])
        #expect(third.error == nil, "\(third)")
        #expect(installContainers.count == 2)
        #expect(third.lines.contains("-----> Installing dependencies with pip into a new venv, from the app's download cache"), "\(third.lines)")
        let installs = try FileManager.default.contentsOfDirectory(atPath: cache + "/installs").filter { !$0.hasPrefix(".") }
        #expect(installs.count == 2)
        let newKey = try #require(installs.first { $0 != key })
        #expect(!FileManager.default.fileExists(atPath: "\(cache)/installs/\(newKey)/.venv-leftover"))
        #expect(FileManager.default.contents(atPath: "\(cache)/installs/\(newKey)/requirements.txt") == Data("flask==3.0.0\nrequests\n".utf8))
    }

    @Test func aNodeAppWithALockRunsNpmCiAndItsBuildScriptAfterTheCode() throws {
        let package = #"{"name":"a","engines":{"node":">=18 <21"},"scripts":{"build":"tsc"},"dependencies":{"express":"^4"}}"#
        let result = try build(["package.json": package, "package-lock.json": "{}", "index.js": ""])
        #expect(result.error == nil, "\(result)")
        #expect(result.lines.first == "-----> Node.js app (package.json, package-lock.json)")
        #expect(installContainers.first?.command?.last?.contains("npm ci") == true)
        #expect(installContainers.first?.environment["npm_config_cache"] == "/cache/npm")
        #expect(engine.contexts.last?.contains("COPY --chown=1000:1000 . /app\nRUN npm_config_cache=/tmp/.npm npm run build\n") == true)
        #expect(engine.contexts.first?.contains("ENV PATH=/app/node_modules/.bin:") == true)
    }

    /// npm removes what package.json no longer names, so a new list starts from a copy of
    /// the previous install (its node_modules) and fetches only what is new.
    @Test func aNodeAppsNewPackageListStartsFromACopyOfThePreviousInstall() throws {
        let first = try build(["package.json": #"{"name":"a","dependencies":{"express":"^4"}}"#, "index.js": ""])
        #expect(first.error == nil, "\(first)")
        let installs = core.paths.buildCache(ofApp: 1) + "/installs"
        let key = try #require(try FileManager.default.contentsOfDirectory(atPath: installs).first)
        #expect(FileManager.default.createFile(atPath: "\(installs)/\(key)/node_modules-marker", contents: Data()))
        let second = try build(["package.json": #"{"name":"a","dependencies":{"express":"^4","is-number":"^7"}}"#, "index.js": ""])
        #expect(second.error == nil, "\(second)")
        #expect(second.lines.contains("-----> Installing dependencies with npm, starting from the previous install"), "\(second.lines)")
        let newKey = try #require(try FileManager.default.contentsOfDirectory(atPath: installs).first { !$0.hasPrefix(".") && $0 != key })
        #expect(FileManager.default.fileExists(atPath: "\(installs)/\(newKey)/node_modules-marker"))
    }

    @Test func anAppWithoutDependencyFilesBuildsAsBefore() throws {
        let result = try build(["app.py": ""])
        #expect(result.error == nil && result.lines.first?.hasPrefix("-----> Building web from ") == true, "\(result)")
        #expect(installContainers.isEmpty && engine.builds.count == 1)
    }

    // MARK: Config reaches the install only

    @Test func configReachesTheInstallContainerButNoImageNorTheStoredOutput() throws {
        let secret = "https://bob:s3cr3t-t0ken@pypi.example.com/simple"
        try core.config.set([(try EnvKey("PIP_INDEX_URL"), secret)], in: .app(web), by: caller)
        engine.output = "Looking in indexes: \(secret)\n"
        let result = try build(["requirements.txt": "flask\n"])
        #expect(result.error == nil, "\(result)")
        #expect(installContainers.first?.environment["PIP_INDEX_URL"] == secret)
        #expect(engine.builds.allSatisfy { $0.buildArgs.isEmpty })
        #expect(!engine.contexts.contains { $0.contains("s3cr3t") })
        #expect(!result.lines.contains { $0.contains("s3cr3t") })
        let stored = try core.outputs.text(of: try #require(try core.outputs.records(of: web, kind: .build, ref: nil).first))
        #expect(!stored.contains("s3cr3t") && stored.contains("Looking in indexes: [config value]"), "\(stored)")
    }

    // MARK: Secrets stay out of the image (config as package-source credentials)

    /// The host folder an install container sees as /app.
    static func appFolder(_ spec: ContainerSpec) -> String? {
        spec.binds.first { $0.hasSuffix(":/app") }.map { String($0.dropLast(":/app".count)) }
    }

    @Test func npmsHiddenLockfileNamingTheTokenNeverReachesTheImage() throws {
        let registry = "https://bob:npm-t0ken-b16c@registry.example.com/npm/"
        try core.config.set([(try EnvKey("NPM_CONFIG_REGISTRY"), registry)], in: .app(web), by: caller)
        // What npm 9 writes when the registry's packuments name tarballs with the credentials.
        engine.onCreate = { spec in
            guard spec.name?.hasPrefix("web.deps.") == true, let app = Self.appFolder(spec) else { return }
            try? FileManager.default.createDirectory(atPath: app + "/node_modules/express", withIntermediateDirectories: true)
            try? Data(#"{"name":"express","version":"4.18.2"}"#.utf8).write(to: URL(fileURLWithPath: app + "/node_modules/express/package.json"))
            try? Data(#"{"packages":{"node_modules/express":{"resolved":"\#(registry)express/-/express-4.18.2.tgz"}}}"#.utf8)
                .write(to: URL(fileURLWithPath: app + "/node_modules/.package-lock.json"))
        }
        let result = try build(["package.json": #"{"name":"a","dependencies":{"express":"^4"}}"#, "index.js": ""])
        #expect(result.error == nil, "\(result)")
        let installs = core.paths.buildCache(ofApp: 1) + "/installs"
        let key = try #require(try FileManager.default.contentsOfDirectory(atPath: installs).first { !$0.hasPrefix(".") })
        #expect(FileManager.default.fileExists(atPath: "\(installs)/\(key)/node_modules/express/package.json"))
        #expect(!FileManager.default.fileExists(atPath: "\(installs)/\(key)/node_modules/.package-lock.json"))
        #expect(!result.lines.contains { $0.contains("npm-t0ken-b16c") })
    }

    @Test func anInstallThatWritesAConfigSecretIsRefusedAndNothingShips() throws {
        try core.config.set([(try EnvKey("PIP_INDEX_URL"), "https://ci:p%40ss-t0ken-b16c@pypi.example.com/simple"),
                             (try EnvKey("PIP_TRUSTED_HOST"), "pypi.example.com")], in: .app(web), by: caller)
        // A setup.py that writes its environment (the token decoded, as pip would use it) into the venv.
        engine.onCreate = { spec in
            guard spec.name?.hasPrefix("web.deps.") == true, let app = Self.appFolder(spec) else { return }
            try? FileManager.default.createDirectory(atPath: app + "/.venv/lib/evil", withIntermediateDirectories: true)
            try? Data("index=https://ci:p@ss-t0ken-b16c@pypi.example.com/simple\n".utf8).write(to: URL(fileURLWithPath: app + "/.venv/lib/evil/env.txt"))
            try? Data("pypi.example.com\n".utf8).write(to: URL(fileURLWithPath: app + "/.venv/lib/evil/host.txt"))
        }
        let result = try build(["requirements.txt": "evil\n"])
        let error = try #require(result.error, "\(result)")
        #expect(error.contains("config var PIP_INDEX_URL") && error.contains("/app/.venv/lib/evil/env.txt"), "\(error)")
        #expect(!error.contains("t0ken"))
        #expect(engine.builds.isEmpty, "no image built: \(engine.builds.map(\.tag))")
        let installs = core.paths.buildCache(ofApp: 1) + "/installs"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: installs)) ?? []).isEmpty, "the install is not kept")

        // Without the secret in its files, the same install passes: the index's host alone is no secret.
        engine.onCreate = { spec in
            guard spec.name?.hasPrefix("web.deps.") == true, let app = Self.appFolder(spec) else { return }
            try? FileManager.default.createDirectory(atPath: app + "/.venv/lib/evil", withIntermediateDirectories: true)
            try? Data("pypi.example.com\n".utf8).write(to: URL(fileURLWithPath: app + "/.venv/lib/evil/host.txt"))
        }
        let clean = try build(["requirements.txt": "evil\n"])
        #expect(clean.error == nil, "\(clean)")
    }

    @Test func theSecretsLookedForAreURLPasswordsAndCredentialNamedValues() {
        let found = DependencyInstaller.secrets(in: [
            "PIP_INDEX_URL": "https://user:abc%2Fdef123@pypi.example.com/simple",
            "PIP_EXTRA_INDEX_URL": "https://a.example.com/simple https://x:extra-t0ken@b.example.com/simple",
            "NPM_CONFIG_REGISTRY": "https://registry.example.com/npm/",
            "PIP_TRUSTED_HOST": "pypi.example.com",
            "GITHUB_TOKEN": "ghp_0123456789",
            "API_KEY": "short",
            "DATABASE_URL": "postgres://app:pw@db/app",
        ])
        #expect(Set(found.map { "\($0.name)=\($0.value)" }) == ["PIP_INDEX_URL=abc%2Fdef123", "PIP_INDEX_URL=abc/def123",
                                                                  "PIP_EXTRA_INDEX_URL=extra-t0ken", "GITHUB_TOKEN=ghp_0123456789"])
    }

    @Test func buildCACertificatesReachPipAndNpmAsOneBundle() throws {
        let ca = scratchPath("ca") + ".pem"
        try Data("-----BEGIN CERTIFICATE-----\nb16c-test-ca\n-----END CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: ca))
        defer { try? FileManager.default.removeItem(atPath: ca) }
        let world = try DependencyBuildTests(configure: { $0.buildCACertificates = [ca] })
        let result = try world.build(["package.json": #"{"name":"a"}"#])
        #expect(result.error == nil, "\(result)")
        let install = try #require(world.installContainers.first)
        let mount = DependencyInstaller.caBundleMount
        #expect(install.binds.contains { $0.hasSuffix(":\(mount):ro") })
        for name in ["PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "npm_config_cafile"] {
            #expect(install.environment[name] == mount, "\(name)")
        }
        // Without the setting, no bundle and none of these set.
        let plain = try build(["package.json": #"{"name":"a"}"#])
        #expect(plain.error == nil && installContainers.first?.environment["npm_config_cafile"] == nil)
    }

    // MARK: Versions

    @Test func versionsTheBuilderLacksAreRefusedNamingTheOnesItHas() throws {
        let python = try build(["requirements.txt": "flask\n", "runtime.txt": "python-3.12.1\n"])
        #expect(python.error == "runtime.txt asks for Python 3.12.1, but the builder carries Python 3.11.2 only; ask for 3.11.2 (or remove runtime.txt), or build with a Dockerfile")
        let short = try build(["requirements.txt": "flask\n", ".python-version": "3.11\n"])
        #expect(short.error == nil, "\(short)")
        let node = try build(["package.json": #"{"engines":{"node":"^20.1"}}"#])
        #expect(node.error?.hasPrefix("package.json engines.node asks for \"^20.1\", but the builder carries Node.js 18.20.4 only") == true, "\(node)")
        #expect(installContainers.count == 1, "refused before any install")
    }

    @Test func aBuilderFromBeforeLanguagesAsksForABootstrap() throws {
        engine.imageLabels = [:]
        let result = try build(["requirements.txt": "flask\n"])
        #expect(result.error == "the builder image slipway/builder:bookworm carries no Python (it was made before Slipway installed dependencies); an admin must run builder:bootstrap again")
    }

    // MARK: Hostile dependency files

    @Test func hostileDependencyFilesAreRefusedBeforeAnyInstall() throws {
        let link = try build(["requirements.txt": "->/etc/shadow"])
        #expect(link.error?.contains("requirements.txt of ") == true && link.error?.hasSuffix("is a symbolic link; commit the file itself") == true, "\(link)")
        let outside = try build(["package.json": "->../../../../etc/passwd"])
        #expect(outside.error?.hasSuffix("is a symbolic link; commit the file itself") == true, "\(outside)")
        let notJSON = try build(["package.json": "{ not json"])
        #expect(notJSON.error?.hasPrefix("package.json is not valid JSON") == true, "\(notJSON)")
        let array = try build(["package.json": "[1]"])
        #expect(array.error == "package.json must hold a JSON object; fix it and push again")
        let huge = try build(["requirements.txt": String(repeating: "a\n", count: DependencyPlan.maxFileBytes / 2 + 1)])
        #expect(huge.error?.hasSuffix("is larger than 8 MB; Slipway reads dependency files up to that size") == true, "\(huge)")
        let both = try build(["requirements.txt": "flask\n", "package.json": "{}"])
        #expect(both.error?.hasPrefix("the app has both requirements.txt and package.json") == true)
        #expect(installContainers.isEmpty)
    }

    @Test func pyprojectDependenciesAreInstalledWithoutTheProject() throws {
        let result = try build(["pyproject.toml": "[project]\nname = \"a\"\ndependencies = [\"flask>=3\", \"gunicorn\"]\n"])
        #expect(result.error == nil && result.lines.first == "-----> Python app (pyproject.toml)", "\(result)")
        let key = try #require(try FileManager.default.contentsOfDirectory(atPath: core.paths.buildCache(ofApp: 1) + "/installs").first)
        #expect(FileManager.default.contents(atPath: core.paths.buildCache(ofApp: 1) + "/installs/\(key)/requirements.txt") == Data("flask>=3\ngunicorn\n".utf8))
        let noTable = try build(["pyproject.toml": "[tool.black]\nline-length = 1\n"])
        #expect(noTable.error == nil && noTable.lines.first?.hasPrefix("-----> Building") == true, "\(noTable)")
    }

    // MARK: repo:purge-cache

    @Test func purgeCacheEmptiesTheCacheAndOnlyWritersMayAskForIt() throws {
        let world = try TestWorld()
        #expect(world.run(["users:add", "rita"]).status == 0)
        #expect(world.run(["users:add", "sam"]).status == 0)
        #expect(world.run(["apps:create", "shop"]).status == 0)
        #expect(world.run(["acl:add", "shop", "rita", "read"]).status == 0)
        let cache = world.core.paths.buildCache(ofApp: 1)
        try FileManager.default.createDirectory(atPath: cache + "/cache/pip", withIntermediateDirectories: true)
        try Data(count: 5000).write(to: URL(fileURLWithPath: cache + "/cache/pip/wheel"))
        let reader = try world.run(["repo:purge-cache", "shop"], asUser: "rita")
        #expect(reader.status != 0 && reader.err.contains("error:"), "\(reader)")
        let stranger = try world.run(["repo:purge-cache", "shop"], asUser: "sam")
        let missing = try world.run(["repo:purge-cache", "nosuch"], asUser: "sam")
        #expect(stranger.status != 0 && stranger.err == missing.err.replacingOccurrences(of: "nosuch", with: "shop"), "\(stranger)")
        #expect(FileManager.default.fileExists(atPath: cache + "/cache/pip/wheel"))
        #expect(world.run(["builds:report", "shop"]).out.contains("Build cache:       "))
        #expect(world.run(["builds:report", "shop", "--format", "json"]).out.contains("\"cacheBytes\":"))
        // Not while the app deploys: its build may be installing into the cache.
        let held = try world.core.deploys.locks.acquire(AppName("shop"), by: Caller(principal: .localAdmin, command: "test"))
        let busy = world.run(["repo:purge-cache", "shop"])
        world.core.deploys.locks.release(held)
        #expect(busy.status == 1 && busy.err.contains("shop is being deployed by"), "\(busy)")
        #expect(FileManager.default.fileExists(atPath: cache + "/cache/pip/wheel"))
        #expect(try !world.dump().contains("purged the build cache"))
        let owner = world.run(["repo:purge-cache", "shop"])
        #expect(owner.status == 0 && owner.out.contains("-----> Build cache of shop purged"), "\(owner)")
        #expect(!FileManager.default.fileExists(atPath: cache))
        #expect(try world.dump().contains("purged the build cache"))
    }

    @Test func destroyingTheAppRemovesItsCache() throws {
        _ = try build(["requirements.txt": "flask\n"])
        #expect(FileManager.default.fileExists(atPath: core.paths.buildCache(ofApp: 1)))
        _ = try core.deploys.destroy(web, purgeStorage: false, by: caller)
        #expect(!FileManager.default.fileExists(atPath: core.paths.buildCache(ofApp: 1)))
        #expect(engine.calls.contains { $0.hasPrefix("rmi slipway/deps-\(try! core.paths.instanceID().prefix(12))-app-1:") })
    }
}

/// npm's range forms `engines.node` uses, against concrete versions.
@Suite("Semver ranges of engines.node")
struct SemverRangeTests {
    @Test(arguments: [
        (">=18", "18.20.4", true), (">=18", "16.1.0", false), (">18", "18.20.4", false), (">18.2", "18.3.0", true),
        ("^18.2.0", "18.20.4", true), ("^18.2.0", "19.0.0", false), ("^0.2.3", "0.2.9", true), ("^0.2.3", "0.3.0", false), ("^0.0.3", "0.0.4", false),
        ("~18.19", "18.19.9", true), ("~18.19", "18.20.0", false), ("~18", "18.99.0", true),
        ("18.x", "18.20.4", true), ("18.x", "20.0.0", false), ("18", "18.0.1", true), ("*", "1.0.0", true), ("", "18.0.0", true),
        ("16 || 18", "18.1.0", true), ("16 || 20", "18.1.0", false), (">=14 <19", "18.20.4", true), (">=14 <18", "18.20.4", false),
        ("18.20.4", "18.20.4", true), ("=18.20.3", "18.20.4", false), ("v18.20.4", "18.20.4", true), ("16 - 18", "18.20.4", true),
        ("16 - 18.1", "18.20.4", false), (">= 18", "18.0.0", true), ("<=18", "18.99.1", true), ("<18", "18.0.0", false),
    ])
    func ranges(_ range: String, _ version: String, _ expected: Bool) throws {
        #expect(try SemverRange(range).contains(version) == expected, "\(range) vs \(version)")
    }

    @Test(arguments: ["latest", ">=abc", "18.x.2", "1.2.3.4", "^", "node 18"])
    func nonsenseIsRefused(_ range: String) {
        #expect(throws: UserFacingError.self) { try SemverRange(range) }
    }

    @Test func builderVersionsComeFromDpkgStatus() {
        let status = """
            Package: python3
            Status: install ok installed
            Version: 3.11.2-1+b1

            Package: nodejs
            Status: install ok installed
            Version: 18.20.4+dfsg-1~deb12u1

            Package: npm
            Status: deinstall ok config-files
            Version: 9.2.0~ds1-1
            """
        #expect(BuilderLanguages.fromDpkgStatus(status).versions == ["python": "3.11.2", "node": "18.20.4"])
        #expect(BuilderLanguages(labels: [BuilderLanguages.label: "node=18.20.4,python=3.11.2"]).versions["python"] == "3.11.2")
    }
}
