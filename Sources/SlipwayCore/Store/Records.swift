import Foundation
import GRDB

/// Column names in the database are snake_case; Swift properties are camelCase.
public protocol SlipwayRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {}

extension SlipwayRecord {
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }
}

/// Inserted records learn their row id.
extension SlipwayRecord where Self: HasRowID {
    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

public protocol HasRowID { var id: Int64? { get set } }

/// A registered user. Identity over SSH comes from their keys.
public struct User: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "users"
    public var id: Int64?
    public var name: UserName
    public var isAdmin: Bool
    public var createdAt: Date

    public init(name: UserName, isAdmin: Bool, createdAt: Date = Date()) {
        self.name = name
        self.isAdmin = isAdmin
        self.createdAt = createdAt
    }
}

/// One public key of a user; the key blob is unique across all users.
public struct SSHKeyRecord: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "ssh_keys"
    public var id: Int64?
    public var userId: Int64
    public var name: KeyName
    public var type: String
    public var base64: String
    public var fingerprint: String
    public var bits: Int
    public var comment: String?
    public var createdAt: Date
}

/// An app: a git repo, its config, mounts and releases. `AppService` owns these rows.
public struct App: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "apps"
    public var id: Int64?
    public var name: AppName
    public var createdAt: Date
    /// The user who created it (nil if that user was removed).
    public var createdBy: String?
    /// A locked app refuses deploys (`apps:lock`).
    public var locked: Bool
    /// The branch whose pushes deploy; chosen on first push.
    public var deployBranch: String?
    /// The last revision pushed to the deploy branch.
    public var deployedRevision: String?
    /// The release now serving (nil before the first deploy).
    public var currentReleaseId: Int64?
    /// Set by `ps:stop`: nothing of the app runs until `ps:start`.
    public var processesStopped: Bool = false
}

/// One deploy attempt: image + config + mounts + formation, numbered per app.
public struct Release: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "releases"
    public var id: Int64?
    public var appId: Int64
    public var version: Int
    public var image: String
    public var revision: String
    /// Why it was made: "push", "config", "rollback to v2", "rebuild".
    public var reason: String
    /// JSON of `ReleaseSnapshot`.
    public var snapshot: String
    public var status: ReleaseStatus
    public var error: String?
    public var startedBy: String
    public var startedAt: Date
    public var finishedAt: Date?

    public var label: String { "v\(version)" }
}

/// Where a release is (stored as its raw value, as the `releases` table's CHECK lists them).
public enum ReleaseStatus: String, Codable, Sendable {
    case deploying, succeeded, failed
}

/// Where a build is (stored as its raw value, as the `builds` table's CHECK lists them).
public enum BuildStatus: String, Codable, Sendable {
    case building, succeeded, failed
}

/// How many containers of one process type an app runs.
public struct FormationEntry: SlipwayRecord, Equatable {
    public static let databaseTableName = "formations"
    public var appId: Int64
    public var processType: String
    public var quantity: Int
}

/// A web container the router sends the app's traffic to.
public struct Endpoint: SlipwayRecord, Equatable {
    public static let databaseTableName = "endpoints"
    public var appId: Int64
    public var containerName: String
    /// `127.0.0.1:41234`.
    public var address: String
}

/// A custom domain of an app.
public struct Domain: SlipwayRecord, Equatable {
    public static let databaseTableName = "domains"
    public var name: String
    public var appId: Int64
    public var addedBy: String
    public var addedAt: Date
}

/// What Slipway keeps of an app's TLS certificate (the PEM files are on disk).
public struct CertificateRecord: SlipwayRecord, Equatable {
    public static let databaseTableName = "certificates"
    public var appId: Int64
    public var subject: String
    public var issuer: String
    /// JSON array of DNS names.
    public var names: String
    public var notBefore: Date
    public var notAfter: Date
    /// SHA-256 of the leaf certificate's DER, hex with colons.
    public var fingerprint: String
    public var addedBy: String
    public var addedAt: Date

    public var nameList: [String] { (try? JSONDecoder().decode([String].self, from: Data(names.utf8))) ?? [] }
}

/// An app with automatic certificates on (letsencrypt:enable) and its last attempt.
public struct ACMEApp: SlipwayRecord, Equatable {
    public static let databaseTableName = "acme_apps"
    public var appId: Int64
    public var enabledBy: String
    public var enabledAt: Date
    public var lastAttemptAt: Date?
    /// The last attempt's error; nil after a success.
    public var lastError: String?
    public var lastIssuedAt: Date?
    /// The certificate ACME installed (disable removes it only if it is still the app's).
    public var issuedFingerprint: String?
    /// JSON object: name → why its validation failed at the last attempt.
    public var uncovered: String
    /// Failed attempts in a row (the backoff doubles with each).
    public var failures: Int
    /// No automatic attempt before this (backoff after a failure).
    public var nextAttemptAt: Date?

    public var uncoveredNames: [String: String] { (try? JSONDecoder().decode([String: String].self, from: Data(uncovered.utf8))) ?? [:] }
}

/// Who is deploying an app right now.
public struct DeployLock: SlipwayRecord, Equatable {
    public static let databaseTableName = "deploy_locks"
    public var appId: Int64
    public var holder: String
    /// The process deploying (the server, a push's hook, or a local CLI).
    public var pid: Int32
    /// "ssh" (the server or its hooks) or "local".
    public var origin: String
    public var releaseVersion: Int?
    public var acquiredAt: Date
}

/// A user's role on an app. The creator is an owner.
public struct AppMember: SlipwayRecord, Equatable {
    public static let databaseTableName = "app_members"
    public var appId: Int64
    public var userId: Int64
    public var role: AppRole
    public var addedAt: Date
}

/// One environment variable; `appId == nil` is a global default.
public struct ConfigVar: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "config_vars"
    public var id: Int64?
    public var appId: Int64?
    public var key: EnvKey
    public var value: String
}

/// A managed storage directory under `<data-dir>/storage/<name>`, owned by a user.
public struct Storage: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "storages"
    public var id: Int64?
    public var name: StorageName
    /// nil: created by the local admin; only admins manage it.
    public var ownerId: Int64?
    public var createdAt: Date
    /// `StorageChown.rawValue`; nil: the image's user of each app that mounts it.
    public var chown: String? = nil
    /// `DirectoryMode.rawValue`; nil: the permissions are left as they are.
    public var mode: String? = nil
}

/// A mount of a storage (or, admins only, a host path) into an app's containers.
public struct Mount: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "mounts"
    public var id: Int64?
    public var appId: Int64
    public var storageId: Int64?
    public var hostPath: String?
    public var containerPath: String
    /// Comma-separated `MountPhase`s.
    public var phases: String
    public var readonly: Bool
    public var createdAt: Date
}

/// One line of the append-only audit log.
public struct Event: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "events"
    public var id: Int64?
    public var at: Date
    public var actor: String
    public var via: String
    public var command: String
    public var app: String?
    /// The app's row id when the event was written (nil: none, or already destroyed);
    /// users see events by this, so a reused name does not show another app's history.
    public var appId: Int64?
    /// "ok", or "failed".
    public var outcome: String
    /// What changed (never secret values), or the error message.
    public var detail: String
}

/// One image build of an app's revision.
public struct Build: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "builds"
    public var id: Int64?
    public var appId: Int64
    public var revision: String
    /// The image tag, `slipway/<app>:<revision-prefix>`.
    public var image: String
    /// "dockerfile" or "procfile".
    public var kind: String
    public var status: BuildStatus
    public var startedBy: String
    public var startedAt: Date
    public var finishedAt: Date?
    public var error: String?
}
