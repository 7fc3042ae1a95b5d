import Foundation

/// The kinds of backing service (datastore) Slipway runs for apps: one command
/// namespace each (`postgres:`, `redis:`), as Dokku's datastore plugins.
public enum DatastoreKind: String, Sendable, Codable, CaseIterable {
    case postgres, redis

    /// What the command namespace and messages call it.
    public var namespace: String { rawValue }

    /// How messages and help name it.
    public var title: String {
        switch self {
        case .postgres: "Postgres"
        case .redis: "Redis"
        }
    }

    /// The Debian package Slipway's own image of this kind is built from.
    public var debianPackage: String {
        switch self {
        case .postgres: "postgresql-15"
        case .redis: "redis-server"
        }
    }

    /// What an image given with `--image` must keep of the official image's contract.
    public var imageContract: String {
        switch self {
        case .postgres: "POSTGRES_PASSWORD, POSTGRES_DB, /var/lib/postgresql/data"
        case .redis: "REDIS_PASSWORD, data in /data"
        }
    }

    /// What a backup is, for help texts.
    public var backupFormat: String {
        switch self {
        case .postgres: "pg_dump's custom format"
        case .redis: "An RDB snapshot (the server forks for it, as for BGSAVE)"
        }
    }

    /// What linked apps see while a backup is restored (`restore`'s help and the man page).
    public var restoreBehaviour: String {
        switch self {
        case .postgres:
            "pg_restore --clean --if-exists in one transaction: linked apps keep running, their writes to the restored tables wait for it, and a restore that fails changes nothing. Tables made since the backup stay."
        case .redis:
            "The service stops, its append-only data is replaced by the backup, and it starts again: linked apps keep running and reconnect after a few seconds; writes in between are refused, and everything written since the backup is gone."
        }
    }

    /// The client `connect` opens.
    public var client: String {
        switch self {
        case .postgres: "psql"
        case .redis: "redis-cli"
        }
    }

    /// A command for `connect`'s help, read from stdin.
    public var sampleCommand: String {
        switch self {
        case .postgres: "select 1"
        case .redis: "PING"
        }
    }

    /// What `export` writes and `import` reads.
    public var dumpFormat: String {
        switch self {
        case .postgres: "pg_dump's custom format"
        case .redis: "an RDB snapshot"
        }
    }

    /// A file name for help texts.
    public var dumpFile: String {
        switch self {
        case .postgres: "db.dump"
        case .redis: "cache.rdb"
        }
    }

    /// What `import` does to the data already there.
    public var importBehaviour: String {
        switch self {
        case .postgres:
            "Tables in the dump replace those of the same name; one transaction, so a dump that fails changes nothing."
        case .redis:
            "The RDB replaces all the data: the service stops, starts on it, and is put back as it was if it does not answer; linked apps reconnect after a few seconds."
        }
    }

    /// The config var `link` sets when no `--alias` is given.
    public var defaultAlias: EnvKey {
        switch self {
        case .postgres: EnvKey(uncheckedRawValue: "DATABASE_URL")
        case .redis: EnvKey(uncheckedRawValue: "REDIS_URL")
        }
    }

    /// The port the service listens on inside its networks (never published on the host).
    public var port: Int {
        switch self {
        case .postgres: 5432
        case .redis: 6379
        }
    }

    /// The URL scheme of the link's config var.
    var scheme: String {
        switch self {
        case .postgres: "postgres"
        case .redis: "redis"
        }
    }
}

/// A datastore's name: `^[a-z][a-z0-9-]{0,30}[a-z0-9]$` or one letter. It becomes
/// part of a container name, a DNS alias and (Postgres) the database's name.
public struct DatastoreName: ValidatedName {
    public static let kind = "service name"
    public static let rule = "use 1-32 lowercase letters, digits or '-', starting with a letter and ending with a letter or digit"
    public static func isValid(_ s: String) -> Bool {
        NameGrammar.matches(s, lengths: 1...32, first: NameGrammar.isLower,
                            rest: { NameGrammar.isLowerAlnum($0) || $0 == "-" },
                            last: NameGrammar.isLowerAlnum)
    }
    public let rawValue: String
    public init(uncheckedRawValue: String) { rawValue = uncheckedRawValue }
}

/// One backing service (`services` table): owned like storage is, by the user who
/// created it. Its data lives in `<data-dir>/services/<id>/data`, owned by the
/// service's own user-namespace range (`TenantSandbox(serviceID:)`).
public struct Datastore: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "services"
    public var id: Int64?
    public var kind: DatastoreKind
    public var name: DatastoreName
    /// nil: created by the local admin; only admins manage it.
    public var ownerId: Int64?
    public var image: String
    /// Generated at create; given to the container through the API's Env, never argv.
    public var password: String
    /// created, running, stopped, failed: what Slipway last did with its container.
    public var state: String
    public var createdAt: Date
}

/// An app linked to a service: `alias` is the config var that holds the service's URL.
public struct DatastoreLink: SlipwayRecord, Equatable {
    public static let databaseTableName = "service_links"
    public var serviceId: Int64
    public var appId: Int64
    public var alias: String
    public var createdAt: Date
}

/// What a command does with a service, checked by `Authorizer` (`Requirement.datastore`).
public enum DatastoreAccess: String, Sendable, Equatable {
    /// See it and keep it running (info, logs, restart): its owner, an admin, or a user
    /// with write access to an app linked to it (who can reach the data through that
    /// app's `run` and `DATABASE_URL` anyway).
    case use
    /// Change what reaches it (link, unlink, destroy, the password) or act in it as its
    /// superuser (connect, export, import): its owner or an admin.
    case manage
}
