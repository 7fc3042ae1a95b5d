import Foundation
import Testing

/// Package sources that need a credential and a private CA (issue 16), over the real OpenSSH
/// client, git, podman, pip and npm: the index (`PackageIndex(token:tls:)`) serves HTTPS with a
/// certificate from a CA this test makes, and answers 401 to any request without the token.
/// The token reaches pip and npm only inside the apps' config (`PIP_INDEX_URL`,
/// `NPM_CONFIG_REGISTRY` with `ci:<token>@`), and must end up in neither the push's output,
/// `builds:output`, nor any file, history line or environment of the app's or dependency's image.
/// The index names npm tarballs with the credentials the client sent, so npm's lockfiles
/// record the token: the worst case for what an install leaves behind.
@Suite("Package-source secrets and build_ca_certificates end to end", .serialized)
struct PackageSourceSecretsEndToEndTests {
    let token = "b16c-" + UUID().uuidString.prefix(13).lowercased()

    static let flaskFiles = DependencyBuildEndToEndTests.flaskFiles("v1")
    static let expressFiles = DependencyBuildEndToEndTests.expressFiles(
        "v1", package: DependencyBuildEndToEndTests.expressPackage(["express": "^4.18.2"]), lock: nil)

    /// A server (with `extraConfig`), users bob and its apps; everything removed after `body`.
    func withServer(_ extraConfig: String, _ body: (TestServer, TestUser) throws -> Void) throws {
        _ = try BuilderImage.bootstrap.get()
        let server = try TestServer(slipway: try Slipway(extraConfig: extraConfig))
        let dataDir = server.slipway.dataDir
        defer {
            _ = server.stop()
            server.slipway.cleanUp()
            removeDependencyImages(dataDir: dataDir)
            try? FileManager.default.removeItem(atPath: dataDir)
        }
        try body(server, try TestUser.register("bob", on: server.slipway))
    }

    func push(_ server: TestServer, _ user: TestUser, _ app: String, _ files: [String: Data]) throws -> Slipway.Result {
        let repo = try makeRepository(files)
        defer { try? FileManager.default.removeItem(atPath: repo) }
        return try server.git(user.key, ["push", "-f", server.url(app), "main"], in: repo)
    }

    func create(_ server: TestServer, _ user: TestUser, _ app: String, _ index: PackageIndex) throws {
        #expect(try server.ssh(user.key, "apps:create", app).status == 0)
        let set = try server.ssh(user.key, ["config:set", "--no-restart", app] + index.config)
        #expect(set.status == 0, "\(set.err)")
    }

    /// Whether `needle` occurs in the image's exported filesystem (`GET /images/{name}/get`,
    /// the layers as tars), its history or its inspect (Config.Env among them).
    static func image(_ name: String, contains needle: String) throws -> Bool {
        let folder = try temporaryDirectory("b16c-image")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let api = "http://d/v1.41/images/\(name)"
        for (path, file) in [("/get", "image.tar"), ("/history", "history.json"), ("/json", "inspect.json")] {
            let got = try run("/usr/bin/curl", ["-sf", "--unix-socket", "/run/podman/podman.sock", "-o", folder + "/" + file, api + path])
            guard got.status == 0 else { throw HarnessError("the engine gave no \(path) of \(name): \(got.err)") }
        }
        // The archive's layers are tars in the tar; podman writes them uncompressed (checked by
        // the callers' positive controls, which find a known file's text this way).
        return try run("/bin/grep", ["-r", "-l", "-a", "-F", needle, folder]).status == 0
    }

    /// The app image a push built (its `=====> Built <tag>` line).
    static func builtImage(_ push: Slipway.Result) throws -> String {
        let line = try #require(push.err.split(separator: "\n").first { $0.contains("=====> Built ") })
        return String(line.split(separator: " ").last!)
    }

    /// The dependency image of the app's latest install.
    static func dependencyImage(_ server: TestServer, _ app: String) throws -> String {
        let dataDir = server.slipway.dataDir
        let id = try run("/usr/bin/sqlite3", [dataDir + "/slipway.db", "SELECT id FROM apps WHERE name = '\(app)'"]).out
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let installs = dataDir + "/build-cache/" + id + "/installs"
        let key = try #require(try FileManager.default.contentsOfDirectory(atPath: installs).first { !$0.hasPrefix(".") })
        let instance = try String(contentsOfFile: dataDir + "/instance-id", encoding: .utf8).prefix(12)
        return "slipway/deps-\(instance)-app-\(id):\(key)"
    }

    /// With the index's CA in `build_ca_certificates`, a Flask and an Express app install over
    /// HTTPS with the token in their config, answer through nginx, and the token is in no
    /// output nor image.
    @Test func tokensInPackageSourceURLsReachNoOutputNorImage() throws {
        let index = try PackageIndex(token: token, tls: true)
        defer { index.stop() }
        let ca = try #require(index.caCertificate)
        try withServer("build_ca_certificates = [\"\(ca)\"]") { server, bob in
            for (app, files, known) in [("sflask", Self.flaskFiles, "flask v1"), ("sexpress", Self.expressFiles, "express v1")] {
                try create(server, bob, app, index)
                defer { _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }
                let mark = index.mark()
                let pushed = try push(server, bob, app, files)
                #expect(pushed.status == 0, "\(pushed.err)")
                // The install used the token (the index refuses requests without it) ...
                #expect(!index.downloads(since: mark).isEmpty && !index.requests(since: mark).contains { $0.hasSuffix(" 401") },
                        "\(index.requests(since: mark))")
                #expect(try run("/usr/bin/curl", ["-s", "-m", "10", server.slipway.url(app)]).out == known + "\n")
                // ... and left it nowhere: the live output, the stored one, the images.
                #expect(!pushed.err.contains(token) && !pushed.out.contains(token))
                let stored = try server.ssh(bob.key, "builds:output", app)
                #expect(stored.status == 0 && stored.out.contains("=====> Built") && !stored.out.contains(token), "\(stored.out)")
                let appImage = try Self.builtImage(pushed), depsImage = try Self.dependencyImage(server, app)
                // Positive controls: the search finds what the images do hold.
                #expect(try Self.image(appImage, contains: known), "the search finds the app's own code")
                #expect(try Self.image(depsImage, contains: app == "sflask" ? "Werkzeug" : "\"name\": \"express\""), "the search finds an installed package")
                #expect(try !Self.image(appImage, contains: token), "\(appImage) holds the token")
                #expect(try !Self.image(depsImage, contains: token), "\(depsImage) holds the token")
            }
        }
    }

    /// Without `build_ca_certificates` the same pushes fail on the certificate (pip's and npm's
    /// own errors), showing no token; nothing was deployed.
    @Test func withoutTheCASettingTheSameInstallsFailOnTheCertificate() throws {
        let index = try PackageIndex(token: token, tls: true)
        defer { index.stop() }
        try withServer("") { server, bob in
            for (app, files, error) in [("sflask", Self.flaskFiles, "CERTIFICATE_VERIFY_FAILED"),
                                        ("sexpress", Self.expressFiles, "npm ERR! code UNABLE_TO_VERIFY_LEAF_SIGNATURE")] {
                try create(server, bob, app, index)
                defer { _ = try? server.ssh(bob.key, "--force", "apps:destroy", app) }
                let pushed = try push(server, bob, app, files)
                #expect(pushed.status != 0 && pushed.err.contains("[remote rejected]"), "\(pushed.err)")
                #expect(pushed.err.contains(error), "\(pushed.err)")
                #expect(!pushed.err.contains(token), "\(pushed.err)")
                #expect(try server.ssh(bob.key, "releases", app).out.contains("v1") == false)
            }
        }
    }
}
