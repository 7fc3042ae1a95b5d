/// A collaborator's level on one app, as soft-serve's collaborators: owner > write > read.
public enum AppRole: String, Sendable, Codable, CaseIterable, Comparable {
    case read, write, owner

    private var rank: Int { switch self { case .read: 0; case .write: 1; case .owner: 2 } }
    public static func < (a: AppRole, b: AppRole) -> Bool { a.rank < b.rank }
}

/// The documented access rule of a command (the role in parentheses in
/// man/slipway-commands.7).
/// It decides who sees the command in `help`; the exact check for one invocation
/// is its `Requirement`.
public enum AccessRule: Sendable, Equatable, CustomStringConvertible {
    /// Server admins only.
    case admin
    /// Any authenticated user; the command itself limits what they see or touch.
    case user
    /// The caller's role on the app the command names.
    case app(AppRole)

    public var description: String {
        switch self {
        case .admin: "admin"
        case .user: "user"
        case .app(let role): role.rawValue
        }
    }
}

/// What one invocation needs, checked by `Authorizer.require` before the command runs.
public indirect enum Requirement: Sendable, Equatable {
    case admin
    case user
    /// At least `role` on the app named by the (not yet validated) string.
    case app(String, AppRole)
    /// The same when the app exists; a name no app has passes, for a command that
    /// creates the app (a first push). A hidden app's name does not pass.
    case appOrMissing(String, AppRole)
    /// The caller owns the storage (or is an admin); `allowMissing` lets a storage
    /// that does not exist yet pass, for commands that create it.
    case storageOwner(String, allowMissing: Bool)
    /// The caller may `access` the backing service of `kind` named by the string
    /// (see `DatastoreAccess`); `allowMissing` lets a free name pass, for `create`.
    case datastore(DatastoreKind, String, DatastoreAccess, allowMissing: Bool = false)
    /// The named user is the caller, or the caller is an admin.
    case selfOrAdmin(String)
    /// Every one of these.
    case all([Requirement])

    /// The app this requirement names, if any (used for the audit log).
    public var appName: String? {
        switch self {
        case .app(let name, _), .appOrMissing(let name, _): name
        case .all(let parts): parts.lazy.compactMap(\.appName).first
        default: nil
        }
    }
}

/// Who is calling: the built-in local admin (root on the host) or a registered user.
public struct Principal: Sendable {
    public enum Identity: Sendable {
        case localAdmin
        case user(User)
    }

    public let identity: Identity
    /// How the call arrived: "local" or "ssh".
    public let channel: String
    /// The SHA256 fingerprint of the key that authenticated an SSH session.
    public let keyFingerprint: String?
    /// Set when an admin runs a command `--as` this principal: the admin's name.
    public let impersonatedBy: String?

    public init(identity: Identity, channel: String, keyFingerprint: String? = nil, impersonatedBy: String? = nil) {
        self.identity = identity
        self.channel = channel
        self.keyFingerprint = keyFingerprint
        self.impersonatedBy = impersonatedBy
    }

    public static let localAdmin = Principal(identity: .localAdmin, channel: "local")

    public var isAdmin: Bool {
        switch identity {
        case .localAdmin: true
        case .user(let user): user.isAdmin
        }
    }

    /// The user's row id; nil for the local admin, who owns nothing.
    public var userID: Int64? {
        if case .user(let user) = identity { return user.id }
        return nil
    }

    /// The name shown in the audit log and `whoami`.
    public var name: String {
        switch identity {
        case .localAdmin: "root@host"
        case .user(let user): user.name.rawValue
        }
    }

    /// "local", "ssh", or "ssh, as bob by alice".
    public var via: String {
        impersonatedBy.map { "\(channel), as \(name) by \($0)" } ?? channel
    }
}
