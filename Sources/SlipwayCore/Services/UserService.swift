import Foundation
import GRDB

/// Users and their SSH keys.
public struct UserService: Sendable {
    let store: Store

    /// A user with their keys, for lists and reports.
    public struct Summary: Sendable {
        public let user: User
        public let keys: [SSHKeyRecord]
    }

    public func add(_ name: UserName, admin: Bool, by caller: Caller) throws -> User {
        try store.write { db in
            guard try fetch(name, db) == nil else {
                throw UserFacingError.conflict("user \(quoted(name.rawValue)) already exists; users:report \(name) shows it")
            }
            var user = User(name: name, isAdmin: admin)
            try user.insert(db)
            try db.audit(caller, app: nil, detail: "added user \(name)\(admin ? " (admin)" : "")")
            return user
        }
    }

    /// Removes the user, their keys and ACL entries. Refuses to remove the last admin,
    /// the only owner of an app, or the owner of storage, naming what to do first.
    public func remove(_ name: UserName, by caller: Caller) throws {
        try store.write { db in
            let user = try existing(name, db)
            if user.isAdmin { try ensureAnotherAdmin(besides: user, db) }
            let apps = try AppService.names(db)
            let soleOwned = try Int64.fetchAll(db, sql: """
                SELECT m.app_id FROM app_members m
                WHERE m.user_id = ? AND m.role = 'owner'
                  AND NOT EXISTS (SELECT 1 FROM app_members o WHERE o.app_id = m.app_id AND o.role = 'owner' AND o.user_id <> ?)
                """, arguments: [user.id, user.id]).compactMap { apps[$0]?.rawValue }.sorted()
            guard soleOwned.isEmpty else {
                throw UserFacingError.conflict("\(name) is the only owner of \(soleOwned.joined(separator: ", ")); give each another owner (acl:add <app> <user> owner) or destroy it first")
            }
            let storages = try String.fetchAll(db, sql: "SELECT name FROM storages WHERE owner_id = ? ORDER BY name", arguments: [user.id])
            guard storages.isEmpty else {
                throw UserFacingError.conflict("\(name) owns storage \(storages.joined(separator: ", ")); destroy it first (storage:destroy)")
            }
            _ = try user.delete(db)
            try db.audit(caller, app: nil, detail: "removed user \(name)")
        }
    }

    public func setAdmin(_ name: UserName, _ admin: Bool, by caller: Caller) throws {
        try store.write { db in
            var user = try existing(name, db)
            if user.isAdmin && !admin { try ensureAnotherAdmin(besides: user, db) }
            user.isAdmin = admin
            try user.update(db)
            try db.audit(caller, app: nil, detail: "\(name) admin: \(admin)")
        }
    }

    public func list() throws -> [Summary] {
        try store.read { db in
            let keys = Dictionary(grouping: try SSHKeyRecord.order(Column("name")).fetchAll(db), by: \.userId)
            return try User.order(Column("name")).fetchAll(db).map { Summary(user: $0, keys: keys[$0.id!] ?? []) }
        }
    }

    public func report(_ name: UserName) throws -> Summary {
        try store.read { db in
            let user = try existing(name, db)
            return Summary(user: user, keys: try keys(of: user, db))
        }
    }

    /// The user a public key belongs to (SSH authentication).
    public func owner(ofKey key: PublicKey) throws -> User? {
        try owner(ofKeyBase64: key.base64)
    }

    /// The user whose key has this canonical base64 blob (as libssh exports it).
    public func owner(ofKeyBase64 base64: String) throws -> User? {
        try store.read { db in try holder(ofKeyBase64: base64, db) }
    }

    /// Whether any user exists (the first start registers `initial_admin_keys` when none does).
    public func isEmpty() throws -> Bool {
        try store.read { db in try User.fetchCount(db) == 0 }
    }

    public func find(_ name: UserName) throws -> User? {
        try store.read { db in try fetch(name, db) }
    }

    /// The principal as the state says it is now (admin flag included), or nil once
    /// the user is gone, or the key an SSH session signed in with is no longer theirs.
    /// Long-running commands ask this again, so removing a user or a key ends them.
    public func refreshed(_ principal: Principal) throws -> Principal? {
        guard case .user(let user) = principal.identity else { return principal }
        return try store.read { db in
            guard let now = try User.fetchOne(db, key: user.id), now.name == user.name else { return nil }
            if let fingerprint = principal.keyFingerprint,
               try SSHKeyRecord.filter(Column("user_id") == now.id && Column("fingerprint") == fingerprint).fetchCount(db) == 0 {
                return nil
            }
            return Principal(identity: .user(now), channel: principal.channel, keyFingerprint: principal.keyFingerprint,
                             impersonatedBy: principal.impersonatedBy)
        }
    }

    // MARK: Keys

    /// Adds `key` to `userName`, creating the user (non-admin) when missing, as
    /// Dokku's `ssh-keys:add` does. Without a key name, the key's comment is used
    /// when it is a valid name, else `key-N`.
    public func addKey(_ key: PublicKey, to userName: UserName, named keyName: KeyName?,
                       by caller: Caller) throws -> (user: User, key: SSHKeyRecord, createdUser: Bool) {
        try store.write { db in
            if let holder = try holder(ofKeyBase64: key.base64, db) {
                throw UserFacingError.conflict("this key (\(key.fingerprint)) is already registered to \(holder.name); a key belongs to one user")
            }
            var user = try fetch(userName, db)
            let createdUser = user == nil
            if user == nil {
                var new = User(name: userName, isAdmin: false)
                try new.insert(db)
                user = new
            }
            let owner = user!
            let existingNames = Set(try keys(of: owner, db).map(\.name.rawValue))
            let name: KeyName
            if let keyName {
                guard !existingNames.contains(keyName.rawValue) else {
                    throw UserFacingError.conflict("\(userName) already has a key named \(quoted(keyName.rawValue)); pick another name or ssh-keys:remove \(userName) \(keyName) first")
                }
                name = keyName
            } else if let comment = key.comment, KeyName.isValid(comment), !existingNames.contains(comment) {
                name = KeyName(uncheckedRawValue: comment)
            } else {
                let n = (1...).first { !existingNames.contains("key-\($0)") }!
                name = KeyName(uncheckedRawValue: "key-\(n)")
            }
            var record = SSHKeyRecord(userId: owner.id!, name: name, type: key.type, base64: key.base64,
                                      fingerprint: key.fingerprint, bits: key.bits, comment: key.comment, createdAt: Date())
            try record.insert(db)
            try db.audit(caller, app: nil, detail: "\(createdUser ? "added user \(userName) and " : "")added key \(name) \(key.fingerprint) to \(userName)")
            return (owner, record, createdUser)
        }
    }

    /// How `ssh-keys:remove` names a key.
    public enum KeySelector: Sendable {
        case name(KeyName)
        case fingerprint(String)
    }

    /// Removes the key and returns whose it was. Without a user, a fingerprint names
    /// the key among everybody's (Dokku's `ssh-keys:remove --fingerprint`).
    @discardableResult
    public func removeKey(of userName: UserName?, _ selector: KeySelector, by caller: Caller) throws -> UserName {
        try store.write { db in
            let user = try userName.map { try existing($0, db) }
            let candidates = try user.map { try keys(of: $0, db) } ?? SSHKeyRecord.fetchAll(db)
            let match: SSHKeyRecord?
            switch selector {
            case .name(let name):
                match = candidates.first { $0.name == name }
            case .fingerprint(let fingerprint):
                match = candidates.first { $0.fingerprint == fingerprint }
            }
            guard let key = match, let owner = try user ?? User.fetchOne(db, key: key.userId) else {
                throw UserFacingError.notFound(userName.map { "\($0) has no such key; ssh-keys:list \($0) shows their keys" }
                                               ?? "no user has a key with this fingerprint; ssh-keys:list shows the keys")
            }
            _ = try key.delete(db)
            try db.audit(caller, app: nil, detail: "removed key \(key.name) \(key.fingerprint) from \(owner.name)")
            return owner.name
        }
    }

    /// Keys of one user, or of everybody (with their owners' names).
    public func keys(of userName: UserName?) throws -> [(user: UserName, key: SSHKeyRecord)] {
        try store.read { db in
            if let userName {
                let user = try existing(userName, db)
                return try keys(of: user, db).map { (user.name, $0) }
            }
            let names = Dictionary(uniqueKeysWithValues: try User.fetchAll(db).map { ($0.id!, $0.name) })
            return try SSHKeyRecord.order(Column("user_id"), Column("name")).fetchAll(db)
                .compactMap { key in names[key.userId].map { ($0, key) } }
                .sorted { ($0.user, $0.key.name) < ($1.user, $1.key.name) }
        }
    }

    // MARK: Helpers

    private func fetch(_ name: UserName, _ db: Database) throws -> User? {
        try User.filter(Column("name") == name.rawValue).fetchOne(db)
    }

    private func holder(ofKeyBase64 base64: String, _ db: Database) throws -> User? {
        try User.fetchOne(db, sql: "SELECT users.* FROM users JOIN ssh_keys k ON k.user_id = users.id WHERE k.base64 = ?", arguments: [base64])
    }

    private func existing(_ name: UserName, _ db: Database) throws -> User {
        guard let user = try fetch(name, db) else {
            throw UserFacingError.notFound("user \(quoted(name.rawValue)) not found; users:list shows the users")
        }
        return user
    }

    private func keys(of user: User, _ db: Database) throws -> [SSHKeyRecord] {
        try SSHKeyRecord.filter(Column("user_id") == user.id).order(Column("name")).fetchAll(db)
    }

    private func ensureAnotherAdmin(besides user: User, _ db: Database) throws {
        let others = try User.filter(Column("is_admin") == true && Column("id") != user.id).fetchCount(db)
        guard others > 0 else {
            throw UserFacingError.conflict("\(user.name) is the last admin; make another user admin first (users:set-admin <user> true)")
        }
    }
}
