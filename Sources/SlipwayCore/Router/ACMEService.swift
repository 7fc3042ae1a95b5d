import Foundation
import GRDB
import SwiftASN1

/// `letsencrypt:*`: certificates obtained and renewed automatically over ACME
/// (HTTP-01), installed through the same path as `certs:add`.
///
/// An attempt reads the state, then runs the client holding only the server's ACME
/// lock (never SQLite's write lock), then installs the certificate (the app's
/// deploy lock, one transaction with its audit event, the proxy's graceful reload),
/// then records how it went in one more short transaction. A name whose validation
/// fails is left out and the others asked for again, so one bad DNS record does not
/// cost the app its certificate; it stays on HTTP and is reported.
public struct ACMEService: Sendable {
    let store: Store
    let paths: DataPaths
    let settings: Settings
    let authorizer: Authorizer
    let routing: RoutingService
    let certificates: CertificateService
    let client: any ACMEClient

    /// Let's Encrypt's directories (`letsencrypt:set --global server production|staging`).
    public static let productionServer = "https://acme-v02.api.letsencrypt.org/directory"
    public static let stagingServer = "https://acme-staging-v02.api.letsencrypt.org/directory"

    /// After a failed attempt the next automatic one waits 1 h, doubling to 24 h.
    static func backoff(afterFailures failures: Int) -> TimeInterval {
        min(3600 * pow(2, Double(max(0, failures - 1))), 86400)
    }

    /// The client's folder (accounts and their keys), 0700 inside the 0700 data dir.
    var directory: String { paths.root + "/acme" }

    // MARK: Global settings

    /// The server-wide values `letsencrypt:set --global` sets.
    public enum GlobalKey: String, CaseIterable, Sendable {
        case email, server
        case caBundle = "ca-bundle"

        var settingKey: String { "acme_" + rawValue.replacingOccurrences(of: "-", with: "_") }
    }

    /// The account email, the CA's directory and the roots it is trusted with.
    public struct Globals: Sendable, Codable, Equatable {
        public var email: String?
        public var server: String
        public var caBundle: String?
    }

    static func globals(_ db: Database) throws -> Globals {
        func value(_ key: GlobalKey) throws -> String? {
            try String.fetchOne(db, sql: "SELECT value FROM server_settings WHERE key = ?", arguments: [key.settingKey])
        }
        return Globals(email: try value(.email), server: try value(.server) ?? productionServer, caBundle: try value(.caBundle))
    }

    public func globals() throws -> Globals { try store.read { try Self.globals($0) } }

    /// `letsencrypt:set --global KEY [VALUE]`: without a value the key goes back to its default.
    public func setGlobal(_ key: GlobalKey, _ value: String?, by caller: Caller) throws -> Globals {
        let checked = try value.map { try Self.checked(key, $0) }
        return try store.write { db in
            if let checked {
                try db.execute(sql: "INSERT INTO server_settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                               arguments: [key.settingKey, checked])
                try db.audit(caller, app: nil, detail: "letsencrypt: set \(key.rawValue) to \(checked)")
            } else {
                try db.execute(sql: "DELETE FROM server_settings WHERE key = ?", arguments: [key.settingKey])
                try db.audit(caller, app: nil, detail: "letsencrypt: unset \(key.rawValue)")
            }
            return try Self.globals(db)
        }
    }

    static func checked(_ key: GlobalKey, _ value: String) throws -> String {
        let printable = !value.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7F }
        switch key {
        case .email:
            let parts = value.split(separator: "@", omittingEmptySubsequences: false)
            guard printable, value.count <= 254, parts.count == 2, !parts[0].isEmpty, !value.hasPrefix("-"),
                  DomainName.isValid(String(parts[1])), parts[1].contains(".") else {
                throw UserFacingError.invalid("\(quoted(value)) is not an email address; give the address the CA may write to about the account, such as ops@example.com")
            }
            return value
        case .server:
            switch value {
            case "production", "default": return productionServer
            case "staging": return stagingServer
            default:
                guard printable, value.count <= 2048, let url = URL(string: value), url.scheme == "https", url.host?.isEmpty == false else {
                    throw UserFacingError.invalid("\(quoted(value)) is not an ACME directory; give production, staging or an https URL such as https://acme.example.com/directory")
                }
                return value
            }
        case .caBundle:
            guard printable, value.hasPrefix("/") else {
                throw UserFacingError.invalid("\(quoted(value)) is not an absolute path; give the PEM file of the roots that sign the ACME server's HTTPS certificate")
            }
            guard let text = try? String(contentsOfFile: value, encoding: .utf8),
                  let documents = try? PEMDocument.parseMultiple(pemString: text),
                  documents.contains(where: { $0.discriminator == "CERTIFICATE" }) else {
                throw UserFacingError.invalid("\(value) is not a readable PEM file with a certificate; give the roots that sign the ACME server's HTTPS certificate")
            }
            return value
        }
    }

    // MARK: Listing

    /// One row of `letsencrypt:list`.
    public struct Entry: Sendable, Codable, Equatable {
        public let app: String
        /// The names the live certificate covers.
        public let names: [String]
        public let expires: Date?
        public let lastAttempt: Date?
        /// The last attempt's error (nil: it succeeded).
        public let lastError: String?
        /// Names the last attempt could not validate, with why.
        public let uncovered: [String: String]
        public let lastIssued: Date?
        /// When the server tries next on its own: after the backoff, or when a third of the lifetime is left.
        public let nextAttempt: Date?
    }

    /// The apps with ACME on that the principal can read.
    public func list(for principal: Principal) throws -> [Entry] {
        try store.read { db in
            try AppService.visible(to: principal, authorizer: authorizer, db).compactMap { visible -> Entry? in
                guard let row = try ACMEApp.fetchOne(db, key: visible.app.id) else { return nil }
                let certificate = try CertificateRecord.fetchOne(db, key: visible.app.id)
                return Entry(app: visible.app.name.rawValue, names: certificate?.nameList ?? [], expires: certificate?.notAfter,
                             lastAttempt: row.lastAttemptAt, lastError: row.lastError, uncovered: row.uncoveredNames,
                             lastIssued: row.lastIssuedAt, nextAttempt: Self.nextAttempt(row, certificate))
            }
        }
    }

    /// When an automatic attempt is due: at once without a certificate, else when a
    /// third of its lifetime (at most 30 days) is left or names went uncovered, never
    /// before the backoff ends.
    static func nextAttempt(_ row: ACMEApp, _ certificate: CertificateRecord?) -> Date {
        let backoff = row.nextAttemptAt ?? .distantPast
        guard let certificate else { return backoff }
        let lifetime = certificate.notAfter.timeIntervalSince(certificate.notBefore)
        var renewal = certificate.notAfter.addingTimeInterval(-min(lifetime / 3, 30 * 86400))
        if !row.uncoveredNames.isEmpty { renewal = min(renewal, row.lastAttemptAt ?? .distantPast) }
        return max(backoff, renewal)
    }

    // MARK: Turning it on and off

    /// What one attempt did.
    public struct Outcome: Sendable, Codable, Equatable {
        public let app: String
        /// The names the installed certificate covers (empty: none was issued).
        public let names: [String]
        public let expires: Date?
        /// Names left out because their validation failed, with why.
        public let uncovered: [String: String]
        /// Why no certificate was issued (nil: one was).
        public let error: String?
    }

    /// `letsencrypt:enable`: ACME on for the app, and a certificate for its names now.
    /// If that attempt fails ACME stays on (the server tries again after the backoff)
    /// and the outcome carries the error.
    public func enable(_ app: AppName, by caller: Caller) throws -> Outcome {
        try store.write { db in
            let record = try AppService.existing(app, db)
            guard try Self.globals(db).email != nil else {
                throw UserFacingError.invalid("no ACME account email is set; an admin sets one with letsencrypt:set --global email ops@example.com")
            }
            guard try ACMEApp.fetchOne(db, key: record.id) == nil else { return }
            var row = ACMEApp(appId: record.id!, enabledBy: caller.principal.name, enabledAt: Date(), uncovered: "{}", failures: 0)
            try row.insert(db)
            try db.audit(caller, app: app.rawValue, detail: "letsencrypt: enabled automatic certificates")
        }
        return try attempt(app, by: caller)
    }

    /// `letsencrypt:disable`: no more attempts; the certificate ACME installed is
    /// removed (back to plain HTTP), one added with certs:add stays. Returns whether
    /// a certificate was removed.
    public func disable(_ app: AppName, by caller: Caller) throws -> Bool {
        try routing.locked(app, by: caller) {
            // The routing change is recorded with the ACME row's removal, in one transaction.
            let (removed, appID) = try routing.changing(app, by: caller) { record, db -> (Bool, Int64) in
                guard let row = try ACMEApp.fetchOne(db, key: record.id) else {
                    throw UserFacingError.notFound("\(app) does not have automatic certificates on; letsencrypt:enable \(app) turns them on")
                }
                try row.delete(db)
                var removed = false
                if let fingerprint = row.issuedFingerprint, try CertificateRecord.fetchOne(db, key: record.id)?.fingerprint == fingerprint {
                    removed = try CertificateRecord.deleteOne(db, key: record.id)
                }
                try db.audit(caller, app: app.rawValue, detail: "letsencrypt: disabled automatic certificates" + (removed ? " and removed the certificate it issued" : ""))
                return (removed, record.id!)
            }
            if removed { CertificateFiles.remove(paths: paths, appID: appID) }
            return removed
        }
    }

    // MARK: Attempts

    /// `letsencrypt:renew [APP]`: a new certificate now, whatever the old one's age,
    /// for the app, or (nil) for every app with ACME on that the caller may write.
    public func renew(_ app: AppName?, by caller: Caller) throws -> [Outcome] {
        let apps: [AppName] = try store.read { db in
            if let app {
                let record = try AppService.existing(app, db)
                guard try ACMEApp.fetchOne(db, key: record.id) != nil else {
                    throw UserFacingError.notFound("\(app) does not have automatic certificates on; letsencrypt:enable \(app) turns them on")
                }
                return [app]
            }
            return try AppService.visible(to: caller.principal, authorizer: authorizer, db)
                .filter { $0.role >= .write }
                .filter { try ACMEApp.fetchOne(db, key: $0.app.id) != nil }
                .map(\.app.name)
        }
        if let app { return [try attempt(app, by: caller)] }
        return apps.map { (try? attempt($0, by: caller)) ?? Outcome(app: $0.rawValue, names: [], expires: nil, uncovered: [:], error: "the app is gone") }
    }

    /// The server's renewal (`slipway serve`, each minute): the apps whose attempt is due at `now`.
    public func renewDue(now: Date = Date()) throws -> [Outcome] {
        let due = try store.read { db in
            try ACMEApp.fetchAll(db).filter { row in
                Self.nextAttempt(row, try CertificateRecord.fetchOne(db, key: row.appId)) <= now
            }.compactMap { try AppService.find(id: $0.appId, db)?.name }
        }
        let caller = Caller(principal: .localAdmin, command: "letsencrypt:auto-renew")
        return due.compactMap { try? attempt($0, by: caller) }
    }

    /// `domains:add` or `domains:set` on an app with ACME on asks for a certificate covering the new names.
    public struct DomainChange: Sendable {
        /// The names the app did not have before.
        public let added: [String]
        /// The certificate attempt, when ACME is on and names were added.
        public let certificate: Outcome?
    }

    /// `domains:add`, then a certificate for the new names (`coveringNewNames`).
    public func addDomains(_ app: AppName, _ domains: [String], by caller: Caller) throws -> DomainChange {
        try coveringNewNames(of: app, try routing.add(app, domains, by: caller), by: caller)
    }

    /// `domains:set`, then a certificate for the names it added (`coveringNewNames`).
    public func setDomains(_ app: AppName, _ domains: [String], by caller: Caller) throws -> DomainChange {
        try coveringNewNames(of: app, try routing.set(app, domains, by: caller), by: caller)
    }

    /// The one place a domain change asks for a certificate: when names were added and
    /// ACME is on. (A change that only removes names keeps the live certificate: it
    /// still covers what is left, and the next renewal drops the rest.)
    private func coveringNewNames(of app: AppName, _ added: [String], by caller: Caller) throws -> DomainChange {
        guard !added.isEmpty, try isEnabled(app) else { return DomainChange(added: added, certificate: nil) }
        return DomainChange(added: added, certificate: try attempt(app, by: caller))
    }

    func isEnabled(_ app: AppName) throws -> Bool {
        try store.read { db in try ACMEApp.fetchOne(db, key: try AppService.existing(app, db).id) != nil }
    }

    /// One attempt for the app's names, recorded (and audited) whatever happens.
    func attempt(_ app: AppName, by caller: Caller) throws -> Outcome {
        let (appID, names, globals) = try store.read { db in
            let record = try AppService.existing(app, db)
            return (record.id!, try routing.names(of: record, db), try Self.globals(db))
        }
        var uncovered: [String: String] = [:]
        let result: Result<CertificateService.Parsed, Error> = Result {
            guard let email = globals.email else {
                throw ACMEFailure(message: "no ACME account email is set; an admin sets one with letsencrypt:set --global email ops@example.com")
            }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            // One client at a time per server: they share the account and the challenge port.
            let issued = try FileLock.holding(directory + "/lock") { () throws -> ACMECertificate in
                var request = ACMERequest(names: names, email: email, server: globals.server, caBundle: globals.caBundle,
                                          directory: directory + "/client", challengePort: settings.acmeChallengePort)
                do {
                    return try client.obtain(request)
                } catch let failure as ACMEFailure where !failure.failedNames.isEmpty {
                    // Once more without the names that failed, if any are left.
                    uncovered = failure.failedNames
                    request.names = names.filter { failure.failedNames[$0] == nil }
                    guard !request.names.isEmpty else { throw failure }
                    return try client.obtain(request)
                }
            }
            let parsed = try CertificateService.parse(issued.chainPEM + issued.keyPEM)
            try certificates.install(parsed, for: app, coverage: .any, by: caller, detail: "letsencrypt: issued a certificate")
            return parsed
        }
        let now = Date()
        let outcome: Outcome
        switch result {
        case .success(let parsed):
            outcome = Outcome(app: app.rawValue, names: parsed.names, expires: parsed.notAfter, uncovered: uncovered, error: nil)
        case .failure(let error):
            let message = (error as? ACMEFailure)?.message ?? (error as? UserFacingError)?.message ?? "\(error)"
            outcome = Outcome(app: app.rawValue, names: [], expires: nil, uncovered: uncovered, error: message)
        }
        try store.write { db in
            // The app may have been destroyed, renamed or had ACME turned off meanwhile.
            guard var row = try ACMEApp.fetchOne(db, key: appID) else { return }
            let current = try AppService.find(id: appID, db)?.name.rawValue ?? app.rawValue
            row.lastAttemptAt = now
            row.uncovered = String(decoding: try JSONEncoder().encode(outcome.uncovered), as: UTF8.self)
            if let error = outcome.error {
                row.failures += 1
                row.lastError = error
                row.nextAttemptAt = now.addingTimeInterval(Self.backoff(afterFailures: row.failures))
                try db.audit(caller, app: current, outcome: "failed",
                             detail: "letsencrypt: no certificate for \(names.joined(separator: " ")): \(error)")
            } else {
                row.failures = 0
                row.lastError = nil
                row.lastIssuedAt = now
                row.issuedFingerprint = try CertificateRecord.fetchOne(db, key: appID)?.fingerprint
                // Names left out are tried again a day later, not every minute.
                row.nextAttemptAt = outcome.uncovered.isEmpty ? nil : now.addingTimeInterval(86400)
                if !outcome.uncovered.isEmpty {
                    try db.audit(caller, app: current, outcome: "failed", detail: "letsencrypt: left out of the certificate: "
                                 + outcome.uncovered.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: "; "))
                }
            }
            try row.update(db)
        }
        return outcome
    }
}
