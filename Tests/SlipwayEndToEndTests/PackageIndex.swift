import Foundation
import SlipwayCore

/// Hermetic package sources for builds that install dependencies: a PEP 503 index
/// (Flask and its dependencies, plus six) and an npm registry (express and its whole
/// closure, plus is-number), made once per test process by `Tests/Fixtures/package_index.py`
/// from files Debian installed on this host (`scripts/setup.sh`), and served over HTTP on
/// 0.0.0.0. Builds reach it at the host's own address, which answers from every podman
/// bridge network (an app's network included); no test reaches the internet.
///
/// Every request is appended to a log the tests read: `requests()` / `downloads(since:)`.
/// `acquire()`/`release()` share one server between the tests of a process; the last
/// release stops it and removes its files.
final class PackageIndex: @unchecked Sendable {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/package_index.py").path

    let directory: String
    let port: Int
    /// The host's address as containers see it (the first of `hostname -I`).
    let host: String
    let logPath: String
    private let process: ChildProcess
    /// With `token`, every request must carry it (as a private index does); the URLs below
    /// then carry it as their password (`ci:<token>@`).
    let token: String?
    /// With TLS: the throwaway CA (made by `init`) that signed the index's certificate, for
    /// the server's `build_ca_certificates`; nil over plain HTTP.
    let caCertificate: String?
    var scheme: String { caCertificate == nil ? "http" : "https" }
    private var userInfo: String { token.map { "ci:\($0)@" } ?? "" }

    /// For `config:set APP PIP_INDEX_URL=... PIP_TRUSTED_HOST=...`.
    var pipIndexURL: String { "\(scheme)://\(userInfo)\(host):\(port)/simple" }
    /// For `config:set APP NPM_CONFIG_REGISTRY=...` and the host's `npm install --registry`.
    var npmRegistry: String { "\(scheme)://\(userInfo)\(host):\(port)/npm/" }
    /// The config that points an app's installs at this index (pip refuses plain http to a
    /// non-localhost host unless it is trusted).
    var config: [String] {
        ["PIP_INDEX_URL=\(pipIndexURL)", "NPM_CONFIG_REGISTRY=\(npmRegistry)"] + (caCertificate == nil ? ["PIP_TRUSTED_HOST=\(host)"] : [])
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var shared: PackageIndex?
    nonisolated(unsafe) private static var users = 0

    static func acquire() throws -> PackageIndex {
        try lock.withLock {
            if shared == nil { shared = try PackageIndex() }
            users += 1
            return shared!
        }
    }

    static func release() {
        lock.withLock {
            users -= 1
            guard users == 0, let index = shared else { return }
            index.stop()
            shared = nil
        }
    }

    /// An index over plain HTTP open to all; with `token`, one that requires it; with `tls`,
    /// over HTTPS with a certificate for the host's address from a CA made here (openssl).
    /// Shared ones come from `acquire()`; others belong to their test, which calls `stop()`.
    init(token: String? = nil, tls: Bool = false) throws {
        directory = try temporaryDirectory("pkgindex")
        self.token = token
        let built = try run("/usr/bin/python3", [Self.script, "build", directory + "/root"])
        guard built.status == 0 else { throw HarnessError("package_index.py build failed (run scripts/setup.sh?): \(built.err)") }
        let addresses = try run("/bin/hostname", ["-I"]).out.split(separator: " ").map(String.init)
        guard let first = addresses.first(where: { !$0.contains(":") && !$0.hasPrefix("10.88.") }) ?? addresses.first else {
            throw HarnessError("hostname -I gave no address for containers to reach the package index")
        }
        host = first.trimmingCharacters(in: .whitespacesAndNewlines)
        logPath = directory + "/requests.log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        port = try freePort()
        var options: [String] = token.map { ["--token", $0] } ?? []
        if tls {
            let dir = directory
            let steps: [[String]] = [
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem", "-days", "2", "-subj", "/CN=slipway-test-index-ca"],
                ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/index.key", "-out", dir + "/index.csr", "-subj", "/CN=\(host)"],
                ["x509", "-req", "-in", dir + "/index.csr", "-CA", dir + "/ca.pem", "-CAkey", dir + "/ca.key", "-CAcreateserial",
                 "-out", dir + "/index.pem", "-days", "2", "-extfile", dir + "/san.cnf"],
            ]
            try "subjectAltName=IP:\(host),IP:127.0.0.1\n".write(toFile: dir + "/san.cnf", atomically: true, encoding: .utf8)
            for step in steps {
                let made = try run("/usr/bin/openssl", step)
                guard made.status == 0 else { throw HarnessError("openssl \(step[0]) failed: \(made.err)") }
            }
            caCertificate = dir + "/ca.pem"
            options += ["--tls", dir + "/index.pem", dir + "/index.key"]
        } else {
            caCertificate = nil
        }
        process = try ChildProcess("/usr/bin/python3", [Self.script, "serve", directory + "/root", String(port), logPath] + options)
        // Up when it answers its own root page.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let probe = ["-sf", "-m", "2", "-o", "/dev/null"] + (caCertificate.map { ["--cacert", $0] } ?? []) + (token.map { ["-u", "ci:\($0)"] } ?? [])
            if (try? run("/usr/bin/curl", probe + ["\(scheme)://127.0.0.1:\(port)/simple/"]).status) == 0 {
                try? Data().write(to: URL(fileURLWithPath: logPath))
                return
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        kill(process.processIdentifier, SIGKILL)
        throw HarnessError("the package index did not answer on port \(port)")
    }

    func stop() {
        if process.isRunning {
            // SIGKILL: it is gone at once, whatever it was doing.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Every request so far, one "GET <path> <status>" each, in order.
    func requests() -> [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// A mark to read requests after: `requests(since: index.mark())`.
    func mark() -> Int { requests().count }
    func requests(since mark: Int) -> [String] { Array(requests().dropFirst(mark)) }

    /// The package files (wheels, npm tarballs) served since `mark`, by file name; index pages
    /// and packuments left out (pip and npm may read those again).
    func downloads(since mark: Int) -> [String] {
        requests(since: mark).compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count >= 2 else { return nil }
            let path = parts[1]
            guard path.hasSuffix(".whl") || path.hasSuffix(".tgz") else { return nil }
            return String(path.split(separator: "/").last ?? "")
        }
    }

    /// A package-lock.json for `packageJSON`, written by the host's npm against this registry
    /// (its "resolved" addresses are the ones builds reach), without node_modules.
    func npmLock(for packageJSON: String) throws -> Data {
        let dir = try temporaryDirectory("npmlock")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(packageJSON.utf8).write(to: URL(fileURLWithPath: dir + "/package.json"))
        let result = try run("/usr/bin/env", ["npm", "install", "--package-lock-only", "--no-audit", "--no-fund", "--no-update-notifier",
                                              "--registry", npmRegistry, "--cache", dir + "/cache", "--prefix", dir])
        guard result.status == 0 else { throw HarnessError("npm could not write a lock against the test registry: \(result.err)") }
        return try Data(contentsOf: URL(fileURLWithPath: dir + "/package-lock.json"))
    }
}

/// Removes the `slipway/deps-<instance>-app-<id>:<key>` images of the installs a server's data dir
/// holds: they are not builds of the app, so `Leftovers` does not know them, and a test
/// that stops its server without destroying its apps would leave them behind.
func removeDependencyImages(dataDir: String) {
    let root = dataDir + "/build-cache"
    let instance = ((try? String(contentsOfFile: dataDir + "/instance-id", encoding: .utf8)) ?? "").prefix(12)
    for app in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
        for key in (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + app + "/installs")) ?? [] where !key.hasPrefix(".") {
            _ = try? run("/usr/bin/curl", ["-s", "--unix-socket", "/run/podman/podman.sock", "-X", "DELETE",
                                           "http://d/v1.41/images/slipway/deps-\(instance)-app-\(app):\(key)"])
        }
    }
}
