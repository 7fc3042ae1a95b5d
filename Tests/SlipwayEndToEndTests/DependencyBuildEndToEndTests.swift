import Foundation
import SlipwayEngine
import Testing

/// Apps without a Dockerfile whose dependencies Slipway installs (issue 16), over the real
/// OpenSSH client, git, podman and nginx, on one server the tests share. Packages come from
/// `PackageIndex` on the host (no internet), reached through the app's config
/// (`PIP_INDEX_URL`, `PIP_TRUSTED_HOST`, `NPM_CONFIG_REGISTRY`); its request log shows what
/// each install downloaded. Serialized: the tests count the index's requests, so no other
/// test's install may reach it meanwhile.
@Suite("Dependency builds end to end", .serialized)
struct DependencyBuildEndToEndTests {
    /// One server and one package index for the suite; the last test to finish stops both.
    final class Shared: @unchecked Sendable {
        static let instance = Shared()
        private let lock = NSLock()
        private var world: World?
        private var users = 0

        struct World {
            let server: TestServer
            let index: PackageIndex
            let bob: TestUser
            let rita: TestUser
            let mallory: TestUser
        }

        func acquire() throws -> World {
            try lock.withLock {
                if world == nil {
                    _ = try BuilderImage.bootstrap.get()
                    let index = try PackageIndex.acquire()
                    let server = try TestServer()
                    world = World(server: server, index: index,
                                  bob: try TestUser.register("bob", on: server.slipway),
                                  rita: try TestUser.register("rita", on: server.slipway),
                                  mallory: try TestUser.register("mallory", on: server.slipway))
                }
                users += 1
                return world!
            }
        }

        func release() {
            lock.withLock {
                users -= 1
                guard users == 0, let world else { return }
                let dataDir = world.server.slipway.dataDir
                _ = world.server.stop()
                world.server.slipway.cleanUp()
                // Dependency images are not builds of the app (Leftovers removes those): remove them too.
                removeDependencyImages(dataDir: dataDir)
                try? FileManager.default.removeItem(atPath: dataDir)
                PackageIndex.release()
                self.world = nil
            }
        }
    }

    // MARK: Apps

    static func flaskFiles(_ version: String, requirements: String = "Flask>=2.2\n") -> [String: Data] {
        [
            "app.py": Data("""
                import os
                from flask import Flask

                app = Flask(__name__)

                @app.get("/")
                def index():
                    extra = ""
                    try:
                        import six
                        extra = " six " + six.__version__
                    except ImportError:
                        pass
                    return "flask \(version)" + extra + "\\n"

                if __name__ == "__main__":
                    app.run(host="0.0.0.0", port=int(os.environ["PORT"]))

                """.utf8),
            "requirements.txt": Data(requirements.utf8),
            "Procfile": Data("web: python app.py\n".utf8),
        ]
    }

    static func expressPackage(_ dependencies: [String: String]) -> String {
        let list = dependencies.keys.sorted().map { "\"\($0)\": \"\(dependencies[$0]!)\"" }.joined(separator: ", ")
        return #"{"name": "site", "version": "1.0.0", "private": true, "dependencies": {\#(list)}}"#
    }

    static func expressFiles(_ version: String, package: String, lock: Data?) -> [String: Data] {
        var files = [
            "server.js": Data("""
                const express = require("express");
                const app = express();
                app.get("/", (req, res) => {
                  let extra = "";
                  // The app's own copy only: the builder's Debian npm brings a global is-number too.
                  try { if (require.resolve("is-number").startsWith("/app/node_modules/")) extra = " is-number " + require("is-number")(5); } catch (e) {}
                  res.send("express \(version)" + extra + "\\n");
                });
                app.listen(Number(process.env.PORT), "0.0.0.0");

                """.utf8),
            "package.json": Data(package.utf8),
            "Procfile": Data("web: node server.js\n".utf8),
        ]
        if let lock { files["package-lock.json"] = lock }
        return files
    }

    // MARK: Helpers

    func push(_ world: Shared.World, _ user: TestUser, _ app: String, _ files: [String: Data]) throws -> Slipway.Result {
        let repo = try makeRepository(files)
        defer { try? FileManager.default.removeItem(atPath: repo) }
        return try world.server.git(user.key, ["push", "-f", world.server.url(app), "main"], in: repo)
    }

    /// The app's answer through nginx (its default domain as the Host).
    func body(_ world: Shared.World, _ app: String) -> String {
        (try? run("/usr/bin/curl", ["-s", "-m", "10", world.server.slipway.url(app)]).out) ?? "(curl did not run)"
    }

    /// The lines git shows from the server (`remote: ...`), trimmed.
    static func remoteLines(_ stderr: String) -> [String] {
        stderr.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("remote: ") else { return nil }
            let text = line.dropFirst("remote: ".count).trimmingCharacters(in: .whitespaces)
            return text.isEmpty ? nil : text
        }
    }

    func createWithIndex(_ world: Shared.World, _ user: TestUser, _ app: String) throws {
        #expect(try world.server.ssh(user.key, "apps:create", app).status == 0)
        let set = try world.server.ssh(user.key, ["config:set", "--no-restart", app] + world.index.config)
        #expect(set.status == 0, "\(set.err)")
    }

    static let flaskWheels: Set = ["Flask-2.2.2-py3-none-any.whl", "Werkzeug-2.2.2-py3-none-any.whl", "Jinja2-3.1.2-py3-none-any.whl",
                                   "MarkupSafe-2.1.2-py3-none-any.whl", "itsdangerous-2.1.2-py3-none-any.whl", "click-8.1.3-py3-none-any.whl"]

    func appID(_ world: Shared.World, _ app: String) throws -> String {
        try run("/usr/bin/sqlite3", [world.server.slipway.dataDir + "/slipway.db", "SELECT id FROM apps WHERE name = '\(app)'"])
            .out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Every file under the app's build cache with its size and modification time: what an
    /// attacker must not change.
    func cacheSnapshot(_ world: Shared.World, _ id: String) throws -> String {
        try run("/usr/bin/find", [world.server.slipway.dataDir + "/build-cache/" + id, "-printf", "%P %s %T@ %m\\n"]).out
            .split(separator: "\n").sorted().joined(separator: "\n")
    }

    // MARK: Tests

    /// A Flask app installs Flask and its dependencies from the index and answers through
    /// nginx; a code-only push reuses the dependency layer without one request to the index;
    /// adding six downloads six only; a missing package rejects the push with pip's own
    /// error and the previous release keeps serving.
    @Test func flaskInstallsOnceReusesItsLayerAndFetchesOnlyWhatIsNew() async throws {
        let world = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let app = "flasky"
        try createWithIndex(world, world.bob, app)
        defer { _ = try? world.server.ssh(world.bob.key, "--force", "apps:destroy", app) }

        var mark = world.index.mark()
        let first = try push(world, world.bob, app, Self.flaskFiles("v1"))
        #expect(first.status == 0, "\(first.err)")
        let lines = Self.remoteLines(first.err)
        #expect(lines.first { $0.hasPrefix("----->") } == "-----> Python app (requirements.txt)", "\(lines)")
        #expect(Set(world.index.downloads(since: mark)) == Self.flaskWheels, "\(world.index.requests(since: mark))")
        #expect(body(world, app) == "flask v1\n")

        // Code only: the layer is reused and the index sees nothing.
        mark = world.index.mark()
        let codeOnly = try push(world, world.bob, app, Self.flaskFiles("v2"))
        #expect(codeOnly.status == 0, "\(codeOnly.err)")
        #expect(Self.remoteLines(codeOnly.err).contains("-----> Dependencies unchanged (requirements.txt): reusing the installed layer"), "\(codeOnly.err)")
        #expect(world.index.requests(since: mark) == [])
        #expect(body(world, app) == "flask v2\n")

        // One dependency added: only its wheel is downloaded.
        mark = world.index.mark()
        let added = try push(world, world.bob, app, Self.flaskFiles("v3", requirements: "Flask>=2.2\nsix\n"))
        #expect(added.status == 0, "\(added.err)")
        #expect(world.index.downloads(since: mark) == ["six-1.16.0-py3-none-any.whl"], "\(world.index.requests(since: mark))")
        #expect(body(world, app) == "flask v3 six 1.16.0\n")

        // A package the index lacks: pip's own lines, the push rejected, v3 still serving.
        let missing = try push(world, world.bob, app, Self.flaskFiles("v4", requirements: "Flask>=2.2\nsix\nno-such-package-b16\n"))
        #expect(missing.status != 0)
        #expect(missing.err.contains("No matching distribution found for no-such-package-b16"), "\(missing.err)")
        #expect(missing.err.contains("[remote rejected]"), "\(missing.err)")
        #expect(body(world, app) == "flask v3 six 1.16.0\n")

        // six dropped from the list: gone from the app too (a new venv; pip never removes
        // a package), and nothing downloaded again (the wheels come from the app's cache).
        mark = world.index.mark()
        let dropped = try push(world, world.bob, app, Self.flaskFiles("v5", requirements: "Flask>=2.2\n# six is no longer needed\n"))
        #expect(dropped.status == 0, "\(dropped.err)")
        #expect(Self.remoteLines(dropped.err).contains("-----> Installing dependencies with pip into a new venv, from the app's download cache"), "\(dropped.err)")
        #expect(world.index.downloads(since: mark) == [], "\(world.index.requests(since: mark))")
        #expect(body(world, app) == "flask v5\n")
    }

    /// An Express app with a lock installs express's closure with npm ci and answers through
    /// nginx; a code-only push reuses the layer with no request; adding is-number downloads its
    /// tarball only; a package the registry lacks rejects the push with npm's own error.
    @Test func expressInstallsOnceReusesItsLayerAndFetchesOnlyWhatIsNew() async throws {
        let world = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let app = "expressy"
        try createWithIndex(world, world.bob, app)
        defer { _ = try? world.server.ssh(world.bob.key, "--force", "apps:destroy", app) }
        let package = Self.expressPackage(["express": "^4.18.2"])
        let lock = try world.index.npmLock(for: package)

        var mark = world.index.mark()
        let first = try push(world, world.bob, app, Self.expressFiles("v1", package: package, lock: lock))
        #expect(first.status == 0, "\(first.err)")
        let lines = Self.remoteLines(first.err)
        #expect(lines.first { $0.hasPrefix("----->") } == "-----> Node.js app (package.json, package-lock.json)", "\(lines)")
        let downloads = world.index.downloads(since: mark)
        #expect(downloads.contains("express-4.18.2.tgz") && downloads.count >= 50, "\(downloads)")
        #expect(body(world, app) == "express v1\n")

        mark = world.index.mark()
        let codeOnly = try push(world, world.bob, app, Self.expressFiles("v2", package: package, lock: lock))
        #expect(codeOnly.status == 0, "\(codeOnly.err)")
        #expect(Self.remoteLines(codeOnly.err).contains("-----> Dependencies unchanged (package.json, package-lock.json): reusing the installed layer"), "\(codeOnly.err)")
        #expect(world.index.requests(since: mark) == [])
        #expect(body(world, app) == "express v2\n")

        let grown = Self.expressPackage(["express": "^4.18.2", "is-number": "^7.0.0"])
        let grownLock = try world.index.npmLock(for: grown)
        mark = world.index.mark()
        let added = try push(world, world.bob, app, Self.expressFiles("v3", package: grown, lock: grownLock))
        #expect(added.status == 0, "\(added.err)")
        #expect(world.index.downloads(since: mark) == ["is-number-7.0.0.tgz"], "\(world.index.requests(since: mark))")
        #expect(body(world, app) == "express v3 is-number true\n")

        // No lock (npm install) and a package the registry lacks.
        let broken = Self.expressPackage(["express": "^4.18.2", "no-such-package-b16": "^1.0.0"])
        let missing = try push(world, world.bob, app, Self.expressFiles("v4", package: broken, lock: nil))
        #expect(missing.status != 0)
        #expect(missing.err.contains("npm ERR! 404") && missing.err.contains("no-such-package-b16"), "\(missing.err)")
        #expect(missing.err.contains("[remote rejected]"), "\(missing.err)")
        #expect(body(world, app) == "express v3 is-number true\n")
    }

    /// From another tenant's side: mallory's install (an npm lifecycle script she writes) and
    /// her Dockerfile builds try to read and write bob's build cache by its host path, by its
    /// image and by a shared cache mount; all fail and bob's cache is unchanged. A reader and a
    /// stranger cannot purge it; bob can, builds:report shows the drop, and the next push
    /// downloads everything again.
    @Test func anotherTenantCannotReachTheCacheAndOnlyAWriterPurgesIt() async throws {
        let world = try Shared.instance.acquire()
        defer { Shared.instance.release() }
        let (victim, attacker) = ("vault", "prowler")
        try createWithIndex(world, world.bob, victim)
        defer { _ = try? world.server.ssh(world.bob.key, "--force", "apps:destroy", victim) }
        let pushed = try push(world, world.bob, victim, Self.flaskFiles("v1"))
        #expect(pushed.status == 0, "\(pushed.err)")
        let id = try appID(world, victim)
        let cacheRoot = world.server.slipway.dataDir + "/build-cache/" + id
        let key = try #require(try FileManager.default.contentsOfDirectory(atPath: cacheRoot + "/installs").first { !$0.hasPrefix(".") })
        let before = try cacheSnapshot(world, id)
        #expect(before.contains("cache/pip") && before.contains("installs/\(key)/.venv"), "\(before)")

        try createWithIndex(world, world.mallory, attacker)
        defer { _ = try? world.server.ssh(world.mallory.key, "--force", "apps:destroy", attacker) }
        // 1. Her install's own script looks for bob's cache by its host path and writes there,
        //    and looks for his pip downloads in her own cache (a cache shared between apps).
        let probe = "for d in \(cacheRoot) \(cacheRoot)/cache \(cacheRoot)/installs/\(key); do if [ -e $d ]; then echo SEEN $d; ls $d; touch $d/pwned; else echo absent $d; fi; done; if [ -e /cache/pip ]; then echo SEEN /cache/pip; fi; touch /cache/pwned"
        let script = Self.expressPackage([:]).replacingOccurrences(of: #""private": true"#, with: #""private": true, "scripts": {"preinstall": "\#(probe)"}"#)
        let installProbe = try push(world, world.mallory, attacker, ["package.json": Data(script.utf8), "Procfile": Data("web: node server.js\n".utf8),
                                                                        "server.js": Data("require('http').createServer((q, s) => s.end('x')).listen(process.env.PORT)\n".utf8)])
        // The script's own lines (npm echoes the command first, SEEN included): what it found.
        let probeLines = Self.remoteLines(installProbe.err)
        #expect(!probeLines.contains { $0.hasPrefix("SEEN ") }, "\(installProbe.err)")
        #expect(probeLines.contains("absent \(cacheRoot)/installs/\(key)"), "the probe did not run: \(installProbe.err)")
        // 2. Her Dockerfile starts from bob's dependency image, or copies from it.
        let instance = try String(contentsOfFile: world.server.slipway.dataDir + "/instance-id", encoding: .utf8)
        let image = "slipway/deps-\(instance.prefix(12))-app-\(id):\(key)"
        for dockerfile in ["FROM \(image)\nCMD [\"true\"]\n",
                           "FROM slipway/builder:bookworm\nCOPY --from=\(image) /app/.venv /stolen\nCMD [\"true\"]\n"] {
            let result = try push(world, world.mallory, attacker, ["Dockerfile": Data(dockerfile.utf8)])
            #expect(result.status != 0)
            #expect(result.err.contains("is not an image this app may build from"), "\(result.err)")
        }
        // 3. A cache mount (BuildKit shares those between every build of the engine).
        let mount = "FROM slipway/builder:bookworm\nRUN --mount=type=cache,target=/root/.cache/pip,id=pip ls /root/.cache/pip\nCMD [\"true\"]\n"
        let mounted = try push(world, world.mallory, attacker, ["Dockerfile": Data(mount.utf8)])
        #expect(mounted.status != 0)
        #expect(mounted.err.contains("RUN --mount=type=cache is not allowed on this server"), "\(mounted.err)")
        #expect(try cacheSnapshot(world, id) == before)

        // Purging: a stranger is told the app does not exist, a reader is refused; nothing changes.
        let stranger = try world.server.ssh(world.mallory.key, "repo:purge-cache", victim)
        #expect(stranger.status == 1 && stranger.err.contains("app \"\(victim)\" not found"), "\(stranger.err)")
        #expect(try world.server.ssh(world.bob.key, "acl:add", victim, "rita", "read").status == 0)
        let reader = try world.server.ssh(world.rita.key, "repo:purge-cache", victim)
        #expect(reader.status == 1 && reader.err.hasPrefix("error: "), "\(reader.err)")
        #expect(try cacheSnapshot(world, id) == before)

        let sizeBefore = try cacheBytes(world, victim)
        let report = try world.server.ssh(world.bob.key, "builds:report", victim).out
        #expect(sizeBefore > 1_000_000, "builds:report: \(report)")
        let purged = try world.server.ssh(world.bob.key, "repo:purge-cache", victim)
        #expect(purged.status == 0, "\(purged.err)")
        #expect(try cacheBytes(world, victim) < sizeBefore / 10)
        let mark = world.index.mark()
        let again = try push(world, world.bob, victim, Self.flaskFiles("v2"))
        #expect(again.status == 0, "\(again.err)")
        #expect(Set(world.index.downloads(since: mark)) == Self.flaskWheels, "\(world.index.requests(since: mark))")
        #expect(body(world, victim) == "flask v2\n")
    }

    /// The cache size `builds:report APP --format json` shows, in bytes.
    func cacheBytes(_ world: Shared.World, _ app: String) throws -> Int64 {
        let report = try world.server.ssh(world.bob.key, "builds:report", app, "--format", "json")
        let object = try JSONSerialization.jsonObject(with: Data(report.out.utf8)) as? [String: Any] ?? [:]
        let value = object.first { $0.key.lowercased().contains("cache") }?.value
        return (value as? NSNumber)?.int64Value ?? Int64("\(value ?? "")") ?? -1
    }
}
