import Foundation
import GRDB
import Testing
@testable import SlipwayCore
@testable import SlipwayHost

/// An ACME CA in memory: issues self-signed certificates (openssl) for what it is
/// asked, or refuses some names, or everything, as a CA can.
final class FakeACME: ACMEClient, @unchecked Sendable {
    private let lock = NSLock()
    private var asked: [ACMERequest] = []
    private var failing: [String: String] = [:]
    private var refusal: String?
    var days = 90

    /// Every order, in order.
    var requests: [ACMERequest] { lock.withLock { asked } }
    /// Validation of `name` fails with `reason` from now on.
    func fail(_ name: String, _ reason: String) { lock.withLock { failing[name] = reason } }
    /// Every order fails (nil: none does).
    func refuse(_ message: String?) { lock.withLock { refusal = message } }

    func obtain(_ request: ACMERequest) throws -> ACMECertificate {
        let (failing, refusal) = lock.withLock { () -> ([String: String], String?) in
            asked.append(request)
            return (self.failing, self.refusal)
        }
        if let refusal { throw ACMEFailure(message: refusal) }
        let failed = failing.filter { request.names.contains($0.key) }
        if !failed.isEmpty { throw ACMEFailure(message: "one or more domains had a problem", failedNames: failed) }
        let dir = scratchPath("fake-acme")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try ProcessRunner.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                                "-keyout", dir + "/k.pem", "-out", dir + "/c.pem", "-days", "\(days)", "-subj", "/CN=\(request.names[0])",
                                                                "-addext", "subjectAltName=" + request.names.map { "DNS:\($0)" }.joined(separator: ",")])
        guard result.status == 0 else { throw ACMEFailure(message: result.stderr) }
        return ACMECertificate(chainPEM: try String(contentsOfFile: dir + "/c.pem", encoding: .utf8),
                               keyPEM: try String(contentsOfFile: dir + "/k.pem", encoding: .utf8))
    }
}

/// letsencrypt:*: state, attempts and their records, renewal and backoff, and the
/// gate, from a tenant's side too (bob owns web, carol reads it, eve has nothing).
@Suite("letsencrypt: automatic certificates")
struct ACMETests {
    let w: TestWorld
    let ca = FakeACME()
    let web = try! AppName("web")

    init() throws {
        w = try TestWorld(acme: ca)
        for name in ["bob", "carol", "eve"] { #expect(w.run(["users:add", name]).status == 0) }
        #expect(try w.run(["apps:create", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["acl:add", "web", "carol", "read"], asUser: "bob").status == 0)
        #expect(try w.run(["domains:add", "web", "www.example.com"], asUser: "bob").status == 0)
    }

    func setEmail() {
        #expect(w.run(["letsencrypt:set", "--global", "email", "ops@example.com"]).status == 0)
    }

    func events(_ outcome: String) throws -> [String] {
        try w.core.store.read { db in
            try String.fetchAll(db, sql: "SELECT detail FROM events WHERE detail LIKE 'letsencrypt:%' AND outcome = ? ORDER BY id", arguments: [outcome])
        }
    }

    /// A dump without the audit log (refused commands are recorded there).
    func withoutEvents(_ dump: String) -> String {
        dump.split(separator: "\n").filter { !$0.hasPrefix("events: ") }.joined(separator: "\n")
    }

    func entry() throws -> ACMEService.Entry {
        try #require(try w.core.acme.list(for: .localAdmin).first { $0.app == "web" })
    }

    @Test func enableIssuesACertificateServedLikeCertsAdd() throws {
        setEmail()
        let enabled = try w.run(["letsencrypt:enable", "web"], asUser: "bob")
        #expect(enabled.status == 0, "\(enabled.err)")
        #expect(enabled.out.contains("Issued a certificate for web.localhost www.example.com to web"))
        let request = try #require(ca.requests.first)
        #expect(request.names == ["web.localhost", "www.example.com"])
        #expect(request.email == "ops@example.com" && request.server == ACMEService.productionServer && request.caBundle == nil)
        #expect(request.challengePort == w.core.settings.acmeChallengePort)
        // The account's folder is the server's own, 0700.
        #expect(request.directory.hasPrefix(w.core.paths.root + "/acme/"))
        // The same path as certs:add: the row, the files, the proxy, certs:report.
        let site = try #require(w.proxy.live(web))
        #expect(site.tls?.names == ["web.localhost", "www.example.com"])
        #expect(FileManager.default.fileExists(atPath: try #require(site.tls?.keyPath)))
        let report = try w.core.certificates.report(web)
        #expect(report.enabled && report.acme && !report.expired && !report.expiresSoon)
        #expect(try w.run(["certs:report", "web"], asUser: "carol").out.contains("Renewal:      automatic"))
        #expect(try events("ok").contains { $0.hasPrefix("letsencrypt: issued a certificate for web.localhost www.example.com") })
        let listed = try entry()
        #expect(listed.names == ["web.localhost", "www.example.com"] && listed.lastError == nil && listed.lastAttempt != nil)
        // Renewal is due when a third of the lifetime is left.
        let expires = try #require(listed.expires)
        #expect(abs(try #require(listed.nextAttempt).timeIntervalSince(expires.addingTimeInterval(-30 * 86400))) < 5)
        // Enabling again is another attempt, not a second row.
        #expect(try w.run(["letsencrypt:enable", "web"], asUser: "bob").status == 0)
        #expect(try w.core.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM acme_apps") } == 1)
    }

    @Test func aNameThatFailsValidationIsLeftOutAndReported() throws {
        setEmail()
        #expect(try w.run(["domains:add", "web", "bad.example.com"], asUser: "bob").status == 0)
        ca.fail("bad.example.com", "lookup bad.example.com: no such host")
        let enabled = try w.run(["letsencrypt:enable", "web"], asUser: "bob")
        #expect(enabled.status == 0, "\(enabled.err)")
        #expect(enabled.err.contains("bad.example.com was left out (still served over HTTP): lookup bad.example.com: no such host"))
        #expect(ca.requests.map(\.names) == [["web.localhost", "bad.example.com", "www.example.com"], ["web.localhost", "www.example.com"]])
        let site = try #require(w.proxy.live(web))
        #expect(site.tls?.names == ["web.localhost", "www.example.com"] && site.plainNames == ["bad.example.com"])
        #expect(try entry().uncovered == ["bad.example.com": "lookup bad.example.com: no such host"])
        #expect(try events("failed").contains { $0.contains("left out of the certificate: bad.example.com (lookup") })
        #expect(try w.run(["letsencrypt:list"], asUser: "carol").out.contains("left out: bad.example.com"))
    }

    @Test func aRefusalIsRecordedBacksOffAndKeepsTheLiveCertificate() throws {
        setEmail()
        #expect(try w.run(["letsencrypt:enable", "web"], asUser: "bob").status == 0)
        let live = try #require(try w.core.certificates.report(web).fingerprint)
        ca.refuse("urn:ietf:params:acme:error:serverInternal :: the CA is down")
        let renewed = try w.run(["letsencrypt:renew", "web"], asUser: "bob")
        #expect(renewed.status == 1)
        #expect(renewed.err.contains("error: letsencrypt: no certificate for web: urn:ietf:params:acme:error:serverInternal :: the CA is down"))
        #expect(try w.core.certificates.report(web).fingerprint == live)
        #expect(w.proxy.live(web)?.tls != nil)
        let failed = try entry()
        #expect(failed.lastError == "urn:ietf:params:acme:error:serverInternal :: the CA is down")
        // The live certificate is good: the next automatic attempt is its renewal, not sooner.
        #expect(abs(try #require(failed.nextAttempt).timeIntervalSince(try #require(failed.expires).addingTimeInterval(-30 * 86400))) < 5)
        #expect(try events("failed").contains { $0.hasPrefix("letsencrypt: no certificate for web.localhost www.example.com: urn:") })
        #expect(try w.run(["letsencrypt:list", "--format", "json"], asUser: "carol").out.contains("\"lastError\":\"urn:ietf:params:acme:error:serverInternal"))
        // Once the CA answers, the next attempt issues and the error is gone.
        ca.refuse(nil)
        #expect(try w.run(["letsencrypt:renew"], asUser: "bob").status == 0)
        #expect(try entry().lastError == nil)
        #expect(try w.core.certificates.report(web).fingerprint != live)
    }

    @Test func failedAttemptsBackOffFromAnHourDoublingToADay() throws {
        setEmail()
        ca.refuse("connection refused")
        let enabled = try w.run(["letsencrypt:enable", "web"], asUser: "bob")
        #expect(enabled.status == 1 && enabled.err.contains("ACME stays on for web"))
        #expect(abs(try #require(try entry().nextAttempt).timeIntervalSinceNow - 3600) < 60)
        // The server's loop waits for the backoff: 1 h, then 2 h, ... at most 24 h.
        #expect(try w.core.acme.renewDue(now: Date().addingTimeInterval(1800)).isEmpty)
        let retried = try w.core.acme.renewDue(now: Date().addingTimeInterval(3700))
        #expect(retried.map(\.error) == ["connection refused"])
        #expect(abs(try #require(try entry().nextAttempt).timeIntervalSinceNow - 7200) < 60)
        #expect([1, 2, 3, 5, 6, 9].map { ACMEService.backoff(afterFailures: $0) / 3600 } == [1, 2, 4, 16, 24, 24])
        ca.refuse(nil)
        #expect(try w.core.acme.renewDue(now: Date().addingTimeInterval(7300)).map(\.error) == [nil])
        #expect(try w.core.certificates.report(web).acme)
    }

    @Test func theServerRenewsWhenAThirdOfTheLifetimeIsLeft() throws {
        setEmail()
        ca.days = 9
        #expect(try w.run(["letsencrypt:enable", "web"], asUser: "bob").status == 0)
        let first = try #require(try w.core.certificates.report(web).notAfter)
        #expect(try w.core.acme.renewDue(now: first.addingTimeInterval(-3.1 * 86400)).isEmpty)
        #expect(ca.requests.count == 1)
        let renewed = try w.core.acme.renewDue(now: first.addingTimeInterval(-2.9 * 86400))
        #expect(renewed.count == 1 && renewed[0].error == nil)
        #expect(ca.requests.count == 2)
        #expect(try events("ok").last?.hasPrefix("letsencrypt: issued a certificate") == true)
        // certs:report says when a certificate is close to its end, or past it.
        #expect(CertificateService.isExpiringSoon(notBefore: Date(), notAfter: Date().addingTimeInterval(9 * 86400), now: Date().addingTimeInterval(6.1 * 86400)))
        #expect(!CertificateService.isExpiringSoon(notBefore: Date(), notAfter: Date().addingTimeInterval(9 * 86400), now: Date().addingTimeInterval(5.9 * 86400)))
    }

    @Test func addingADomainAsksForACertificateCoveringIt() throws {
        setEmail()
        #expect(try w.run(["letsencrypt:enable", "web"], asUser: "bob").status == 0)
        let added = try w.run(["domains:add", "web", "api.example.com"], asUser: "bob")
        #expect(added.status == 0, "\(added.err)")
        #expect(added.out.contains("Issued a certificate for web.localhost api.example.com www.example.com"))
        #expect(w.proxy.live(web)?.tls?.names.contains("api.example.com") == true)
    }

    @Test func settingDomainsAsksForACertificateCoveringTheNamesItAdds() throws {
        setEmail()
        #expect(try w.run(["letsencrypt:enable", "web"], asUser: "bob").status == 0)
        let set = try w.run(["domains:set", "web", "www.example.com", "shop.example.com"], asUser: "bob")
        #expect(set.status == 0, "\(set.err)")
        #expect(set.out.contains("Issued a certificate for web.localhost shop.example.com www.example.com"), "\(set.out)")
        #expect(w.proxy.live(web)?.tls?.names.contains("shop.example.com") == true)
        // Only removing a name asks for nothing: the live certificate still covers the rest.
        let orders = ca.requests.count
        #expect(try w.run(["domains:set", "web", "www.example.com"], asUser: "bob").status == 0)
        #expect(ca.requests.count == orders)
        // A reader cannot set the domains, so cannot make the server order either.
        #expect(try w.run(["domains:set", "web", "evil.example.com"], asUser: "carol").status != 0)
        #expect(ca.requests.count == orders)
    }

    @Test func disableRemovesOnlyTheCertificateItIssued() throws {
        setEmail()
        #expect(try w.run(["letsencrypt:enable", "web"], asUser: "bob").status == 0)
        #expect(try w.run(["letsencrypt:disable", "web"], asUser: "bob").status == 0)
        #expect(!(try w.core.certificates.report(web).enabled))
        #expect(w.proxy.live(web)?.tls == nil)
        #expect(try w.core.acme.list(for: .localAdmin).isEmpty)
        #expect(try w.run(["letsencrypt:disable", "web"], asUser: "bob").err.contains("does not have automatic certificates on"))
    }

    @Test func withoutAnAccountEmailNothingIsTurnedOn() throws {
        let before = try w.dump()
        let refused = try w.run(["letsencrypt:enable", "web"], asUser: "bob")
        #expect(refused.status != 0 && refused.err.contains("letsencrypt:set --global email"))
        #expect(try w.dump() == before)
        #expect(ca.requests.isEmpty)
    }

    // MARK: From the attacker's side

    @Test func anotherTenantCannotEnableDisableRenewOrReadAnApp() throws {
        setEmail()
        #expect(try w.run(["letsencrypt:enable", "web"], asUser: "bob").status == 0)
        let before = try w.dump()
        let missing = try w.run(["letsencrypt:enable", "no-such-app"], asUser: "eve")
        for argv in [["letsencrypt:enable", "web"], ["letsencrypt:disable", "web"], ["letsencrypt:renew", "web"]] {
            let stranger = try w.run(argv, asUser: "eve")
            // The same answer as for an app that does not exist: eve learns nothing.
            #expect(stranger.status == missing.status && stranger.err == missing.err.replacingOccurrences(of: "no-such-app", with: "web"), "\(argv)")
            let reader = try w.run(argv, asUser: "carol")
            #expect(reader.status != 0 && reader.err.contains("this needs write access"), "\(argv)")
        }
        // Without an app, renew touches only the apps the caller may write.
        #expect(try w.run(["letsencrypt:renew"], asUser: "eve").status == 0)
        #expect(try w.run(["letsencrypt:renew"], asUser: "carol").status == 0)
        #expect(ca.requests.count == 1)
        // The list shows only the apps the caller reads.
        #expect(try w.run(["letsencrypt:list", "--format", "json"], asUser: "eve").out == "[]\n")
        #expect(try w.run(["letsencrypt:list"], asUser: "eve").out.isEmpty)
        #expect(try w.run(["letsencrypt:list", "--format", "json"], asUser: "carol").out.contains("\"app\":\"web\""))
        // The global settings are the admins'.
        for argv in [["letsencrypt:set", "--global", "email", "eve@evil.example"], ["letsencrypt:set", "--global", "server", "https://evil.example/dir"],
                     ["letsencrypt:set", "--global", "ca-bundle", "/etc/ssl/certs/ca-certificates.crt"], ["letsencrypt:set", "--global", "email"]] {
            let refused = try w.run(argv, asUser: "bob")
            // Admin commands are not even shown to others: the answer of an unknown command.
            #expect(refused.status != 0 && refused.err.hasPrefix("error: "), "\(argv)")
            #expect(try w.core.acme.globals().email == "ops@example.com")
        }
        // Events written by the refused calls aside, nothing changed.
        #expect(try withoutEvents(w.dump()) == withoutEvents(before))
    }

    @Test(arguments: [
        ["email", "not-an-address"], ["email", "-x@example.com"], ["email", "a@b"], ["email", "a b@example.com"], ["email", "a@example.com\n--server=x"],
        ["server", "http://acme.example.com/dir"], ["server", "file:///etc/passwd"], ["server", "--server=x"], ["server", "https://"],
        ["ca-bundle", "relative.pem"], ["ca-bundle", "/etc/hostname"], ["ca-bundle", "/no/such/file.pem"], ["colour", "blue"],
    ])
    func hostileGlobalValuesAreRefusedAndChangeNothing(_ pair: [String]) throws {
        let before = try w.dump()
        let refused = w.run(["letsencrypt:set", "--global"] + pair)
        #expect(refused.status != 0 && refused.err.hasPrefix("error: "), "\(pair): \(refused.err)")
        #expect(try withoutEvents(w.dump()) == withoutEvents(before))
        #expect(try w.core.acme.globals() == ACMEService.Globals(email: nil, server: ACMEService.productionServer, caBundle: nil))
    }

    @Test func theChallengePortIsReadFromTheConfigFile() throws {
        #expect(try Settings.parse("acme_challenge_port = 9402", source: "t").acmeChallengePort == 9402)
        for bad in ["acme_challenge_port = 70000", "acme_challenge_port = 0", "acme_challenge_port = \"80\""] {
            #expect(throws: UserFacingError.self) { try Settings.parse(bad, source: "t") }
        }
    }

    @Test func globalValuesAreSetShownAndUnset() throws {
        let pem = scratchPath("ca") + ".pem"
        try FileManager.default.createDirectory(atPath: (pem as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/etc/ssl/certs/ca-certificates.crt", toPath: pem)
        setEmail()
        #expect(w.run(["letsencrypt:set", "--global", "server", "staging"]).out.contains(ACMEService.stagingServer))
        #expect(w.run(["letsencrypt:set", "--global", "ca-bundle", pem]).status == 0)
        #expect(try w.core.acme.globals() == ACMEService.Globals(email: "ops@example.com", server: ACMEService.stagingServer, caBundle: pem))
        #expect(w.run(["letsencrypt:set", "email", "x@example.com"]).err.contains("server-wide: letsencrypt:set --global"))
        #expect(w.run(["letsencrypt:set", "--global", "server"]).status == 0)
        #expect(try w.core.acme.globals().server == ACMEService.productionServer)
        setEmail()
        #expect(try w.run(["letsencrypt:enable", "web"], asUser: "bob").status == 0)
        #expect(ca.requests.first?.caBundle == pem)
    }
}

/// lego's output as it is (Debian's lego 4.9 against pebble), read for the names that failed.
@Suite("letsencrypt: reading lego's errors")
struct LegoOutputTests {
    @Test func theNamesThatFailedAreFoundWithWhy() {
        let output = """
            2026/11/29 20:09:24 [INFO] [web.localhost, shop.example.test] acme: Obtaining bundled SAN certificate
            2026/11/29 20:09:24 [INFO] [web.localhost] acme: error: this INFO line is not an error
            2026/11/29 20:09:24 Could not obtain certificates:
            \terror: one or more domains had a problem:
            [web.localhost] acme: error: 400 :: urn:ietf:params:acme:error:connection :: Get "http://web.localhost:18402/.well-known/acme-challenge/m2N4": error occurred while resolving URL "http://web.localhost:18402/.well-known/acme-challenge/m2N4": "lookup web.localhost on 10.255.255.53:53: no such host"
            """
        let failure = LegoClient.failure(from: output, names: ["web.localhost", "shop.example.test"])
        #expect(failure.failedNames == ["web.localhost": "connection: lookup web.localhost on 10.255.255.53:53: no such host"])
        #expect(failure.message == "web.localhost: connection: lookup web.localhost on 10.255.255.53:53: no such host")
        // A failure of the whole order names none, and says what lego said last.
        let whole = LegoClient.failure(from: "2026/11/29 [INFO] x\nCould not create client: get directory at 'https://127.0.0.1:1/dir': connection refused\n", names: ["a.example"])
        #expect(whole.failedNames.isEmpty)
        #expect(whole.message == "the ACME server did not issue: Could not create client: get directory at 'https://127.0.0.1:1/dir': connection refused")
    }
}
