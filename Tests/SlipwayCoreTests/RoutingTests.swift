import Foundation
import Testing
@testable import SlipwayCore

/// Domain names as the proxy may see them, and certificates as users bring them.
@Suite("Routing: domain names, certificates, rendered config")
struct RoutingUnitTests {
    @Test(arguments: ["example.com", "www.example.com", "a-b.c0.example", "x", String(repeating: "a", count: 63) + ".com"])
    func dnsNamesAreAccepted(_ name: String) {
        #expect(DomainName.isValid(name))
    }

    @Test(arguments: ["a.com;", "a.com{", "a.com}", "a b.com", "a.com\nb", "a.com\r", "*", "*.a.com", "wéb.com", "xn--wb-bja.com\u{0}",
                      "$host", "127.0.0.1", "10.0.0.7", "a..com", ".a.com", "a.com.", "-a.com", "a-.com", "a_b.com", "a.com#", "a.com'", "a.com\"", "",
                      String(repeating: "a", count: 64) + ".com", Array(repeating: "abcdefghi", count: 30).joined(separator: ".")])
    func hostileNamesAreRefused(_ name: String) {
        #expect(!DomainName.isValid(name))
    }

    @Test func certificateNamesCoverDomainsAsBrowsersDo() {
        #expect(CertificateService.covers(["www.example.com"], "www.example.com"))
        #expect(CertificateService.covers(["*.example.com"], "www.example.com"))
        #expect(!CertificateService.covers(["*.example.com"], "example.com"))
        #expect(!CertificateService.covers(["*.example.com"], "a.b.example.com"))
        #expect(!CertificateService.covers(["example.com"], "www.example.com"))
    }

    /// openssl makes what users bring: a self-signed certificate and its key.
    func makeCertificate(_ names: [String], days: Int = 2) throws -> (cert: String, key: String) {
        let dir = scratchPath("slipway-cert")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try ProcessRunner.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                                "-keyout", dir + "/k.pem", "-out", dir + "/c.pem", "-days", "\(days)", "-subj", "/CN=\(names[0])",
                                                                "-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ",")])
        #expect(result.status == 0, "\(result.stderr)")
        return (try String(contentsOfFile: dir + "/c.pem", encoding: .utf8), try String(contentsOfFile: dir + "/k.pem", encoding: .utf8))
    }

    @Test func aCertificateIsReadWithItsKeyInEitherOrder() throws {
        let (cert, key) = try makeCertificate(["www.example.com", "*.api.example.com"])
        for pem in [cert + key, key + cert] {
            let parsed = try CertificateService.parse(pem)
            #expect(parsed.names == ["www.example.com", "*.api.example.com"])
            #expect(parsed.chainPEM.hasPrefix("-----BEGIN CERTIFICATE-----"))
            #expect(parsed.keyPEM.contains("PRIVATE KEY-----"))
            #expect(parsed.fingerprint.count == 95)
        }
    }

    @Test func expiredMismatchedAndIncompleteInputIsRefused() throws {
        let (cert, key) = try makeCertificate(["www.example.com"])
        let (_, otherKey) = try makeCertificate(["www.example.com"])
        func message(_ pem: String, now: Date = Date()) -> String {
            do { _ = try CertificateService.parse(pem, now: now); return "accepted" } catch { return (error as? UserFacingError)?.message ?? "\(error)" }
        }
        #expect(message(cert + key, now: Date().addingTimeInterval(3 * 86400)).hasPrefix("the certificate expired on"))
        #expect(message(cert + otherKey).hasPrefix("the private key does not match the certificate"))
        #expect(message(cert).hasPrefix("no private key found"))
        #expect(message(key).hasPrefix("no certificate found"))
        #expect(message(cert + key + otherKey).hasPrefix("found 2 private keys"))
        #expect(message("not pem").hasPrefix("no certificate found") || message("not pem").hasPrefix("stdin is not PEM"))
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        #expect(message(cert + encrypted).hasPrefix("the private key is encrypted"))
    }
}

/// Routing changes that must be refused, changing nothing, on a temp store and a
/// recording proxy.
@Suite("Routing: refused changes")
struct RoutingRefusalTests {
    func domains(_ w: TestWorld, _ app: String) -> String { w.run(["domains:report", app, "--format", "json"]).out }

    @Test func aRoutingChangeWaitsForNoDeploy() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        let held = try w.core.deploys.locks.acquire(AppName("web"), by: Caller(principal: .localAdmin, command: "test"))
        let busy = w.run(["domains:add", "web", "www.example.com"])
        #expect(busy.status == 1 && busy.err.contains("web is being deployed by"), "\(busy.err)")
        #expect(w.run(["certs:remove", "web"]).err.contains("web is being deployed by"))
        w.core.deploys.locks.release(held)
        #expect(!domains(w, "web").contains("www.example.com"))
        #expect(w.run(["domains:add", "web", "www.example.com"]).status == 0)
        #expect(domains(w, "web").contains("www.example.com"))
    }

    @Test func aDefaultDomainIsNeverAnotherAppsCustomOne() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        #expect(w.run(["domains:add", "web", "api.example.com", "web.example.com"]).status == 0)
        // Moving the global domain would make api.example.com the default of an app "api".
        let refused = w.run(["domains:set-global", "example.com"])
        #expect(refused.status == 1 && refused.err.contains("web has the custom domain api.example.com"), "\(refused.err)")
        #expect(w.run(["domains:report", "web"]).out.contains("Global domain:   localhost"))
        #expect(w.run(["domains:remove", "web", "api.example.com"]).status == 0)
        #expect(w.run(["domains:set-global", "example.com"]).status == 0)
        // web.example.com is web's default now, no longer a custom domain of it.
        let report = try JSONSerialization.jsonObject(with: Data(domains(w, "web").utf8)) as? [String: Any]
        #expect(report?["defaultDomain"] as? String == "web.example.com")
        #expect(report?["customDomains"] as? [String] == [])

        // A global domain changed behind Slipway's back (the config file): create and rename check too.
        #expect(w.run(["domains:add", "web", "api.example.org"]).status == 0)
        try w.core.store.write { db in try db.execute(sql: "UPDATE server_settings SET value = 'example.org'") }
        let create = w.run(["apps:create", "api"])
        #expect(create.status == 1 && create.err.contains("api.example.org, the default domain an app named api would have"), "\(create.err)")
        #expect(w.run(["apps:create", "tmp"]).status == 0)
        #expect(w.run(["apps:rename", "tmp", "api"]).status == 1)
        #expect(w.run(["apps:report", "tmp"]).status == 0)
    }

    @Test func limitsAndMissingThingsAreRefused() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        let many = (1...RoutingService.maxDomainsPerApp + 1).map { "d\($0).example.com" }
        let tooMany = w.run(["domains:add", "web"] + many)
        #expect(tooMany.status == 1 && tooMany.err.contains("at most \(RoutingService.maxDomainsPerApp) custom domains"), "\(tooMany.err)")
        #expect(!domains(w, "web").contains("d1.example.com"))
        let defaultName = w.run(["domains:remove", "web", "web.localhost"])
        #expect(defaultName.status == 1 && defaultName.err.contains("is web's default domain"), "\(defaultName.err)")
        #expect(w.run(["domains:add", "web"]).status != 0)
        let noCertificate = w.run(["certs:remove", "web"])
        #expect(noCertificate.status == 1 && noCertificate.err.contains("web has no certificate"), "\(noCertificate.err)")
        #expect(w.run(["domains:add", "nope", "a.example.com"]).status == 1)
    }
}

/// `proxy:logs -t` on a temp store: the follower reads what nginx appends, and stops
/// once the caller's access is gone (a destroyed app's name may be another tenant's next).
@Suite("Routing: following an access log")
struct AccessLogFollowTests {
    final class Flags: @unchecked Sendable {
        private let lock = NSLock()
        private var allowedValue = true, lines: [String] = []
        var allowed: Bool { get { lock.withLock { allowedValue } } set { lock.withLock { allowedValue = newValue } } }
        func add(_ line: String) { lock.withLock { lines.append(line) } }
        var seen: [String] { lock.withLock { lines } }
    }

    @Test func aFollowerReadsNewLinesAndStopsWhenAccessEnds() throws {
        let w = try TestWorld()
        #expect(w.run(["apps:create", "web"]).status == 0)
        let app = try AppName("web")
        let path = w.core.routing.proxy.accessLogPath(for: app)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "old request\n".write(toFile: path, atomically: false, encoding: .utf8)
        let flags = Flags(), done = DispatchSemaphore(value: 0)
        let routing = w.core.routing
        Thread.detachNewThread {
            try? routing.accessLog(app, lines: 0, follow: true, output: { flags.add($0) },
                                   isCancelled: { false }, isAllowed: { flags.allowed })
            done.signal()
        }
        usleep(300_000)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("new request\n".utf8))
        try handle.close()
        for _ in 0..<30 where flags.seen.isEmpty { usleep(100_000) }
        #expect(flags.seen == ["new request"])
        flags.allowed = false
        #expect(done.wait(timeout: .now() + 5) == .success, "the follower went on after access ended")
    }
}
