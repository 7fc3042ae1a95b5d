import Crypto
import Foundation
import GRDB
import SwiftASN1
import X509

/// Where an app's certificate chain and key live: `<data>/certs/<app id>/` (by id,
/// so a rename never orphans them), the key 0600, the folder 0700.
struct CertificateFiles {
    let directory: String
    var certificate: String { directory + "/server.crt" }
    var key: String { directory + "/server.key" }

    init(paths: DataPaths, appID: Int64) {
        directory = paths.root + "/certs/\(appID)"
    }

    /// Drops an app's files (apps:destroy; its rows go with the app).
    static func remove(paths: DataPaths, appID: Int64) {
        try? FileManager.default.removeItem(atPath: CertificateFiles(paths: paths, appID: appID).directory)
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
    }

    public func report(_ app: AppName) throws -> Report {
        try store.read { db in
            guard let record = try App.filter(Column("name") == app.rawValue).fetchOne(db) else { throw UserFacingError.appNotFound(app.rawValue) }
            let site = try routing.site(of: record, endpoints: [], db)
            let certificate = try CertificateRecord.fetchOne(db, key: record.id)
            return Report(app: app.rawValue, enabled: certificate != nil, subject: certificate?.subject, issuer: certificate?.issuer,
                          names: certificate?.nameList ?? [], notBefore: certificate?.notBefore, notAfter: certificate?.notAfter,
                          fingerprint: certificate?.fingerprint, httpsDomains: site.tls?.names ?? [], httpDomains: site.plainNames)
        }
    }

    /// `certs:add`: `pem` holds the certificate (then any intermediates) and its
    /// private key. Checked: one unencrypted key, matching the first certificate
    /// whose key it is; valid now; covering the app's custom domains (or, without
    /// any, its default one). Then HTTPS is served and HTTP redirected.
    public func add(_ app: AppName, pem: String, by caller: Caller) throws -> Report {
        let parsed = try Self.parse(pem)
        try store.write { db in
            guard let record = try App.filter(Column("name") == app.rawValue).fetchOne(db) else { throw UserFacingError.appNotFound(app.rawValue) }
            let names = try routing.names(of: record, db)
            let required = names.count > 1 ? Array(names.dropFirst()) : names
            let uncovered = required.filter { !Self.covers(parsed.names, $0) }
            guard uncovered.isEmpty else {
                throw UserFacingError.invalid("the certificate does not cover \(uncovered.joined(separator: ", ")) (it covers \(parsed.names.joined(separator: ", "))); send one that does, or domains:remove \(app) what it should not serve")
            }
            let files = CertificateFiles(paths: paths, appID: record.id!)
            let previous = Self.read(files)
            try Self.write(chain: parsed.chainPEM, key: parsed.keyPEM, to: files)
            do {
                var row = CertificateRecord(appId: record.id!, subject: parsed.subject, issuer: parsed.issuer,
                                            names: String(decoding: try JSONEncoder().encode(parsed.names), as: UTF8.self),
                                            notBefore: parsed.notBefore, notAfter: parsed.notAfter, fingerprint: parsed.fingerprint,
                                            addedBy: caller.principal.name, addedAt: Date())
                try row.save(db)
                try routing.republish(record, db)
                try db.audit(caller, app: app.rawValue, detail: "added a certificate for \(parsed.names.joined(separator: " ")) (\(parsed.fingerprint.prefix(23))...)")
            } catch {
                // The transaction rolls back; the files go back to what nginx serves now.
                if let previous { try? Self.write(chain: previous.chain, key: previous.key, to: files) } else { try? FileManager.default.removeItem(atPath: files.directory) }
                throw error
            }
        }
        return try report(app)
    }

    /// `certs:remove`: back to plain HTTP.
    public func remove(_ app: AppName, by caller: Caller) throws {
        try store.write { db in
            guard let record = try App.filter(Column("name") == app.rawValue).fetchOne(db) else { throw UserFacingError.appNotFound(app.rawValue) }
            guard try CertificateRecord.deleteOne(db, key: record.id) else {
                throw UserFacingError.notFound("\(app) has no certificate; certs:add \(app) adds one")
            }
            try routing.republish(record, db)
            try db.audit(caller, app: app.rawValue, detail: "removed its certificate")
        }
        if let record = try store.read({ db in try App.filter(Column("name") == app.rawValue).fetchOne(db) }) {
            CertificateFiles.remove(paths: paths, appID: record.id!)
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
            if case .dnsName(let dns) = name { names.append(dns.lowercased()) }
        }
        guard !names.isEmpty else {
            throw UserFacingError.invalid("the certificate names no DNS names (subjectAltName); make one with -addext subjectAltName=DNS:<domain>")
        }
        let fingerprint = SHA256.hash(data: leaf.document.derBytes).map { String(format: "%02X", $0) }.joined(separator: ":")
        return Parsed(chainPEM: certificates.map { $0.document.pemString }.joined(separator: "\n") + "\n",
                      keyPEM: keys[0].pemString + "\n", names: names, subject: "\(cert.subject)", issuer: "\(cert.issuer)",
                      notBefore: cert.notValidBefore, notAfter: cert.notValidAfter, fingerprint: fingerprint)
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

    // MARK: Files

    private static func read(_ files: CertificateFiles) -> (chain: String, key: String)? {
        guard let chain = try? String(contentsOfFile: files.certificate, encoding: .utf8),
              let key = try? String(contentsOfFile: files.key, encoding: .utf8) else { return nil }
        return (chain, key)
    }

    /// Each file written whole under a temporary name, then renamed: nginx never reads half a file.
    private static func write(chain: String, key: String, to files: CertificateFiles) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: files.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (path, text, mode) in [(files.key, key, 0o600), (files.certificate, chain, 0o644)] {
            let temporary = path + ".tmp"
            guard fm.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: mode]),
                  rename(temporary, path) == 0 else {
                throw UserFacingError(.unavailable, "cannot write \(path)")
            }
        }
    }
}
