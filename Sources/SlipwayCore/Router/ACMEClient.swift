import Foundation

/// The ACME client as the core needs it: obtain one certificate for some names over
/// HTTP-01. The product runs Debian's `lego` (Sources/SlipwayHost/LegoClient.swift);
/// core tests use a fake. Calls block for as long as the CA takes (seconds) and are
/// never made inside a SQLite transaction.
public protocol ACMEClient: Sendable {
    /// A certificate covering every one of `request.names`, or `ACMEFailure`.
    func obtain(_ request: ACMERequest) throws -> ACMECertificate
}

/// One order: names, the account, the CA and where the challenge is answered.
public struct ACMERequest: Sendable, Equatable {
    /// Validated DNS names, the first one the certificate's subject.
    public var names: [String]
    /// The account's contact; the account (and its key, 0600) is kept per server and email.
    public var email: String
    /// The CA's directory URL.
    public var server: String
    /// A PEM file of roots to trust for the CA's own HTTPS (a test or private CA), if any.
    public var caBundle: String?
    /// The client's own folder (accounts, keys), mode 0700.
    public var directory: String
    /// The loopback port the client answers HTTP-01 on; nginx passes each site's
    /// `/.well-known/acme-challenge/` there.
    public var challengePort: Int
}

/// What the CA issued: the chain (leaf first) and its private key, as PEM.
public struct ACMECertificate: Sendable {
    public var chainPEM: String
    public var keyPEM: String
    public init(chainPEM: String, keyPEM: String) {
        self.chainPEM = chainPEM
        self.keyPEM = keyPEM
    }
}

/// The CA did not issue. `failedNames` are the names whose validation failed (the
/// others may be asked for again without them); empty when the order failed as a whole.
public struct ACMEFailure: Error, Sendable, Equatable {
    public var message: String
    public var failedNames: [String: String]
    public init(message: String, failedNames: [String: String] = [:]) {
        self.message = message
        self.failedNames = failedNames
    }
}

/// Where nothing can obtain certificates (a core built without a client).
public struct NoACMEClient: ACMEClient {
    public init() {}
    public func obtain(_ request: ACMERequest) throws -> ACMECertificate {
        throw ACMEFailure(message: "this server has no ACME client; install lego (scripts/setup.sh)")
    }
}
