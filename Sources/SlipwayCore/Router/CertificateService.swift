import Crypto
import Foundation
import GRDB
import SwiftASN1
import X509

/// Where an app's certificate chain and key live: `<data>/certs/<app id>/` (by id,
/// so a rename never orphans them), named by the certificate's fingerprint, so a new
/// pair is written beside the live one and nginx never sees half a change. The key
/// is 0600, the folder 0700.
struct CertificateFiles {
    let directory: String
    let certificate: String
    let key: String

    init(paths: DataPaths, appID: Int64, fingerprint: String) {
        directory = Self.directory(paths: paths, appID: appID)
        let stem = fingerprint.replacingOccurrences(of: ":", with: "").prefix(16).lowercased()
        certificate = directory + "/\(stem).crt"
        key = directory + "/\(stem).key"
    }

    static func directory(paths: DataPaths, appID: Int64) -> String { paths.root + "/certs/\(appID)" }

    /// Drops an app's files (apps:destroy, certs:remove; its rows go first).
    static func remove(paths: DataPaths, appID: Int64) {
        try? FileManager.default.removeItem(atPath: directory(paths: paths, appID: appID))
    }

    /// Drops the app's files other than these (the pair nginx no longer uses).
    func removeOthers() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where directory + "/" + name != certificate && directory + "/" + name != key {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// Each file written whole under a temporary name, then renamed.
    func write(chain: String, key keyText: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (path, text, mode) in [(key, keyText, 0o600), (certificate, chain, 0o644)] {
            let temporary = path + ".tmp"
            guard fm.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: mode]),
                  rename(temporary, path) == 0 else {
                throw UserFacingError(.unavailable, "cannot write \(path)")
            }
        }
    }
}

/// `certs:*`: an app's TLS certificate, given as PEM on stdin. Automatic
/// certificates (ACME) need the internet; `add` is the extension point an ACME
/// client would call with what it obtained.
public struct CertificateService: Sendable {
    let store: Store
    let paths: DataPaths
    let routing: RoutingService

    /// What `certs:report` shows.
    public struct Report: Sendable, Codable {
        public let app: String
        public let enabled: Bool
        public let subject: String?
        public let issuer: String?
        public let names: [String]
        public let notBefore: Date?
        public let notAfter: Date?
        public let fingerprint: String?
        /// The app's domains served over HTTPS.
        public let httpsDomains: [String]
        /// The app's domains the certificate does not cover (plain HTTP).
        public let httpDomains: [String]
        /// Past its end date: clients refuse it.
        public let expired: Bool
        /// Less than a third of its lifetime (or 30 days) left: renew it.
        public let expiresSoon: Bool
        /// Obtained and renewed automatically (letsencrypt:enable).
        public let acme: Bool
    }

    /// Whether a certificate valid from `notBefore` to `notAfter` is, at `now`, close
    /// enough to its end to be renewed: less than a third of its lifetime or 30 days left.
    static func isExpiringSoon(notBefore: Date, notAfter: Date, now: Date = Date()) -> Bool {
        let left = notAfter.timeIntervalSince(now)
        return left < min(notAfter.timeIntervalSince(notBefore) / 3, 30 * 86400)
    }

    public func report(_ app: AppName) throws -> Report {
        try store.read { db in
            let record = try AppService.existing(app, db)
            let site = try routing.site(of: record, endpoints: [], db)
            let certificate = try CertificateRecord.fetchOne(db, key: record.id)
            let now = Date()
            return Report(app: app.rawValue, enabled: certificate != nil, subject: certificate?.subject, issuer: certificate?.issuer,
                          names: certificate?.nameList ?? [], notBefore: certificate?.notBefore, notAfter: certificate?.notAfter,
                          fingerprint: certificate?.fingerprint, httpsDomains: site.tls?.names ?? [], httpDomains: site.plainNames,
                          expired: certificate.map { $0.notAfter <= now } ?? false,
                          expiresSoon: certificate.map { Self.isExpiringSoon(notBefore: $0.notBefore, notAfter: $0.notAfter, now: now) } ?? false,
                          acme: try ACMEApp.fetchOne(db, key: record.id) != nil)
        }
    }

    /// `certs:add`: `pem` holds the certificate (then any intermediates) and its
    /// private key. Checked: one unencrypted key, matching the first certificate
    /// whose key it is; valid now; covering the app's custom domains (or, without
    /// any, its default one). Then HTTPS is served and HTTP redirected.
    public func add(_ app: AppName, pem: String, by caller: Caller) throws -> Report {
        let parsed = try Self.parse(pem)
        try install(parsed, for: app, coverage: .custom, by: caller, detail: "added a certificate")
        return try report(app)
    }

    /// Which of the app's names a certificate must cover to be installed.
    enum Coverage {
        /// Its custom domains (or, without any, its default one): `certs:add`.
        case custom
        /// At least one of its names; the others stay on HTTP (ACME, when some names
        /// could not be validated).
        case any
    }

    /// Makes `parsed` the app's certificate: the files are written beside the live
    /// pair, the row and its audit event (`detail`, then the names) in one transaction
    /// under the app's deploy lock, then the proxy reloads; the old pair goes after.
    func install(_ parsed: Parsed, for app: AppName, coverage: Coverage, by caller: Caller, detail: String) throws {
        try routing.locked(app, by: caller) {
            let (appID, live) = try store.read { db in
                let record = try AppService.existing(app, db)
                return (record.id!, try CertificateRecord.fetchOne(db, key: record.id)?.fingerprint)
            }
            let files = CertificateFiles(paths: paths, appID: appID, fingerprint: parsed.fingerprint)
            try files.write(chain: parsed.chainPEM, key: parsed.keyPEM)
            do {
                try routing.changing(app, by: caller) { record, db in
                    guard record.id == appID else { throw UserFacingError.appNotFound(app.rawValue) }
                    let names = try routing.names(of: record, db)
                    switch coverage {
                    case .custom:
                        let required = names.count > 1 ? Array(names.dropFirst()) : names
                        let uncovered = required.filter { !Self.covers(parsed.names, $0) }
                        guard uncovered.isEmpty else {
                            throw UserFacingError.invalid("the certificate does not cover \(uncovered.joined(separator: ", ")) (it covers \(parsed.names.joined(separator: ", "))); send one that does, or domains:remove \(app) what it should not serve")
                        }
                    case .any:
                        guard names.contains(where: { Self.covers(parsed.names, $0) }) else {
                            throw UserFacingError.conflict("the certificate covers none of \(app)'s domains any more (it covers \(parsed.names.joined(separator: ", ")))")
                        }
                    }
                    var row = CertificateRecord(appId: appID, subject: parsed.subject, issuer: parsed.issuer,
                                                names: String(decoding: try JSONEncoder().encode(parsed.names), as: UTF8.self),
                                                notBefore: parsed.notBefore, notAfter: parsed.notAfter, fingerprint: parsed.fingerprint,
                                                addedBy: caller.principal.name, addedAt: Date())
                    try row.save(db)
                    try db.audit(caller, app: app.rawValue, detail: "\(detail) for \(parsed.names.joined(separator: " ")) (\(parsed.fingerprint.prefix(23))...)")
                }
            } catch {
                // Nothing points at the new pair (unless it is the live one, sent again).
                if live != parsed.fingerprint { try? FileManager.default.removeItem(atPath: files.certificate); try? FileManager.default.removeItem(atPath: files.key) }
                throw error
            }
            files.removeOthers()
        }
    }

    /// `certs:remove`: back to plain HTTP.
    public func remove(_ app: AppName, by caller: Caller) throws {
        try routing.locked(app, by: caller) {
            let appID = try routing.changing(app, by: caller) { record, db -> Int64 in
                guard try CertificateRecord.deleteOne(db, key: record.id) else {
                    throw UserFacingError.notFound("\(app) has no certificate; certs:add \(app) adds one")
                }
                try db.audit(caller, app: app.rawValue, detail: "removed its certificate")
                return record.id!
            }
            CertificateFiles.remove(paths: paths, appID: appID)
        }
    }

    // MARK: Checking

    struct Parsed {
        var chainPEM: String
        var keyPEM: String
        var names: [String]
        var subject: String
        var issuer: String
        var notBefore: Date
        var notAfter: Date
        var fingerprint: String
    }

    static func parse(_ pem: String, now: Date = Date()) throws -> Parsed {
        let howTo = "send the certificate and its key as PEM, e.g. cat cert.pem key.pem | ssh host certs:add <app>"
        let documents: [PEMDocument]
        do { documents = try PEMDocument.parseMultiple(pemString: pem) } catch {
            throw UserFacingError.invalid("stdin is not PEM text; \(howTo)")
        }
        if documents.contains(where: { $0.discriminator == "ENCRYPTED PRIVATE KEY" }) {
            throw UserFacingError.invalid("the private key is encrypted; decrypt it first (openssl pkey -in key.pem -out plain-key.pem)")
        }
        let keys = documents.filter { $0.discriminator.hasSuffix("PRIVATE KEY") }
        let certificateDocuments = documents.filter { $0.discriminator == "CERTIFICATE" }
        guard !certificateDocuments.isEmpty else { throw UserFacingError.invalid("no certificate found; \(howTo)") }
        guard keys.count == 1 else {
            throw UserFacingError.invalid(keys.isEmpty ? "no private key found; \(howTo)" : "found \(keys.count) private keys; send only the certificate's own")
        }
        let key: Certificate.PrivateKey
        do { key = try Certificate.PrivateKey(pemDocument: keys[0]) } catch {
            throw UserFacingError.invalid("the private key cannot be read (RSA, ECDSA P-256/384/521 and Ed25519 keys work): \(error)")
        }
        var certificates: [(certificate: Certificate, document: PEMDocument)] = []
        for document in certificateDocuments {
            do { certificates.append((try Certificate(pemDocument: document), document)) } catch {
                throw UserFacingError.invalid("a certificate cannot be read: \(error)")
            }
        }
        // The leaf is the one the key belongs to; it goes first in the chain nginx sends.
        guard let leafIndex = certificates.firstIndex(where: { $0.certificate.publicKey == key.publicKey }) else {
            throw UserFacingError.invalid("the private key does not match the certificate (\(certificates[0].certificate.subject)); send the key the certificate was issued for")
        }
        let leaf = certificates.remove(at: leafIndex)
        certificates.insert(leaf, at: 0)
        let cert = leaf.certificate
        guard cert.notValidAfter > now else {
            throw UserFacingError.invalid("the certificate expired on \(cert.notValidAfter.formatted(.iso8601)); renew it")
        }
        guard cert.notValidBefore <= now.addingTimeInterval(300) else {
            throw UserFacingError.invalid("the certificate is not valid before \(cert.notValidBefore.formatted(.iso8601)); check the server's clock or the certificate")
        }
        var names: [String] = []
        for name in (try? cert.extensions.subjectAlternativeNames) ?? nil ?? SubjectAlternativeNames() {
            guard case .dnsName(let dns) = name else { continue }
            // Shown in reports and the audit log: DNS names only (a wildcard's "*." aside).
            guard DomainName.isValid(dns.hasPrefix("*.") ? String(dns.dropFirst(2)) : dns) else {
                throw UserFacingError.invalid("the certificate names \(quoted(dns)), which is not a DNS name")
            }
            names.append(dns.lowercased())
        }
        guard !names.isEmpty else {
            throw UserFacingError.invalid("the certificate names no DNS names (subjectAltName); make one with -addext subjectAltName=DNS:<domain>")
        }
        let fingerprint = SHA256.hash(data: leaf.document.derBytes).map { String(format: "%02X", $0) }.joined(separator: ":")
        return Parsed(chainPEM: certificates.map { $0.document.pemString }.joined(separator: "\n") + "\n",
                      keyPEM: keys[0].pemString + "\n", names: names, subject: printable("\(cert.subject)"), issuer: printable("\(cert.issuer)"),
                      notBefore: cert.notValidBefore, notAfter: cert.notValidAfter, fingerprint: fingerprint)
    }

    /// Control characters out: subjects and issuers are shown in reports and logs.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.filter { !$0.properties.isDefaultIgnorableCodePoint && !(0..<0x20).contains($0.value) && $0.value != 0x7F }.map(Character.init))
    }

    /// Whether a certificate name (`www.example.com`, `*.example.com`) covers `domain`.
    static func covers(_ names: [String], _ domain: String) -> Bool {
        names.contains { name in
            if name == domain { return true }
            guard name.hasPrefix("*.") else { return false }
            // A wildcard covers exactly one label.
            guard let dot = domain.firstIndex(of: ".") else { return false }
            return domain[domain.index(after: dot)...] == name.dropFirst(2)
        }
    }
}
