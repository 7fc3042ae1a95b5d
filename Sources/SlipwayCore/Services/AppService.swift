import Foundation
import GRDB

/// Apps and their collaborators.
public struct AppService: Sendable {
    let store: Store
    let authorizer: Authorizer
    let settings: Settings
    let paths: DataPaths

    /// An app with the caller's role on it and its collaborators, for lists and reports.
    public struct Summary: Sendable {
        public let app: App
        public let role: AppRole
        public let members: [(user: UserName, role: AppRole)]
    }

    /// Creates an app; a user caller becomes its owner.
    public func create(_ name: AppName, by caller: Caller) throws -> App {
        try store.write { db in try create(name, by: caller, in: db) }
    }

    /// The same, inside a caller's transaction (git push creates apps too).
    public func create(_ name: AppName, by caller: Caller, in db: Database) throws -> App {
        guard caller.principal.isAdmin || settings.usersCanCreateApps else {
            throw UserFacingError.denied("only admins may create apps on this server; ask an admin to create \(name) and add you with acl:add")
        }
        try ensureFree(name, db)
        var app = App(id: try db.freshID("apps"), name: name, createdAt: Date(), createdBy: caller.principal.name, locked: false)
        try app.insert(db)
        if let userID = caller.principal.userID {
            var member = AppMember(appId: app.id!, userId: userID, role: .owner, addedAt: Date())
            try member.insert(db)
        }
        try db.audit(caller, app: name.rawValue, detail: "created app \(name)")
        return app
    }

    /// Apps the principal can read, by name.
    public func list(for principal: Principal) throws -> [Summary] {
        try store.read { db in
            try Self.visible(to: principal, authorizer: authorizer, db).map { Summary(app: $0.app, role: $0.role, members: try members(of: $0.app, db)) }
        }
    }

    /// The apps the principal can read and their role on each, by name.
    static func visible(to principal: Principal, authorizer: Authorizer, _ db: Database) throws -> [(app: App, role: AppRole)] {
        try App.order(Column("name")).fetchAll(db).compactMap { app in try authorizer.role(of: principal, on: app, in: db).map { (app: app, role: $0) } }
    }

    /// Every app, in the order they were made.
    static func all(_ db: Database) throws -> [App] {
        try App.fetchAll(db)
    }

    /// Every app's name by its row id, for rows of other tables that point at apps.
    static func names(_ db: Database) throws -> [Int64: AppName] {
        Dictionary(uniqueKeysWithValues: try all(db).map { ($0.id!, $0.name) })
    }

    /// `apps:exists`: whether an app of this name exists that the principal can
    /// read. One the principal cannot read answers as a missing one.
    public func exists(_ name: AppName, for principal: Principal) throws -> Bool {
        try store.read { db in
            guard let app = try Self.find(name, db) else { return false }
            return try authorizer.role(of: principal, on: app, in: db) != nil
        }
    }

    /// One app the principal has already been authorized to read.
    public func report(_ name: AppName, for principal: Principal) throws -> Summary {
        try store.read { db in
            let app = try Self.existing(name, db)
            guard let role = try authorizer.role(of: principal, on: app, in: db) else { throw UserFacingError.appNotFound(name.rawValue) }
            return Summary(app: app, role: role, members: try members(of: app, db))
        }
    }

    /// `apps:report`: the one app named (already authorized), or every app the principal can read.
    public func reports(_ name: AppName?, for principal: Principal) throws -> [Summary] {
        try name.map { [try report($0, for: principal)] } ?? list(for: principal)
    }

    /// Destroys the app: its config, mounts, ACL and repo. Managed storage is kept
    /// unless `purgeStorage`, and then only storage no other app mounts.
    public func destroy(_ name: AppName, purgeStorage: Bool, by caller: Caller) throws -> [StorageName] {
        let (appID, purged): (Int64?, [StorageName]) = try store.write { db in
            let app = try Self.existing(name, db)
            var purged: [StorageName] = []
            if purgeStorage {
                purged = try StorageName.fetchAll(db, sql: """
                    SELECT DISTINCT s.name FROM storages s JOIN mounts m ON m.storage_id = s.id
                    WHERE m.app_id = ? AND NOT EXISTS (SELECT 1 FROM mounts o WHERE o.storage_id = s.id AND o.app_id <> ?)
                    ORDER BY s.name
                    """, arguments: [app.id, app.id])
            }
            // Its service links go too (the services' containers left its network first).
            let links = try String.fetchAll(db, sql: """
                SELECT s.kind || ' ' || s.name FROM service_links l JOIN services s ON s.id = l.service_id WHERE l.app_id = ? ORDER BY s.kind, s.name
                """, arguments: [app.id])
            try db.execute(sql: "DELETE FROM service_links WHERE app_id = ?", arguments: [app.id])
            _ = try app.delete(db)
            for storage in purged {
                try db.execute(sql: "DELETE FROM storages WHERE name = ?", arguments: [storage.rawValue])
            }
            let purgedNote = purged.isEmpty ? "" : "; purged storage \(purged.map(\.rawValue).joined(separator: ", "))"
            let linkNote = links.isEmpty ? "" : "; unlinked \(links.joined(separator: ", "))"
            try db.audit(caller, app: name.rawValue, detail: "destroyed app \(name)\(purgedNote)\(linkNote)")
            return (app.id, purged)
        }
        // Files go after the commit: a crash in between leaves only unreferenced files.
        try? FileManager.default.removeItem(atPath: paths.repository(name))
        if let appID { try? FileManager.default.removeItem(atPath: paths.outputs(ofApp: appID)) }
        for storage in purged { try? FileManager.default.removeItem(atPath: paths.storage(storage)) }
        return purged
    }

    /// An app's default domain (`<app>.<global>`) must not be another app's custom one
    /// (possible after the global domain changed in the config file).
    private func ensureDefaultDomainIsFree(_ name: AppName, _ db: Database) throws {
        let domain = "\(name).\(try RoutingService.globalDomain(db, settings: settings))"
        if try String.fetchOne(db, sql: "SELECT name FROM domains WHERE name = ?", arguments: [domain]) != nil {
            throw UserFacingError.conflict("\(domain), the default domain an app named \(name) would have, is a custom domain of another app; choose another name")
        }
    }

    /// A new app's name must be no app's, nor one a rename in progress holds, and its
    /// default domain no other app's custom domain.
    private func ensureFree(_ name: AppName, _ db: Database) throws {
        guard try Self.find(name, db) == nil else {
            // A hidden app and a visible one answer alike, but the name is still taken.
            throw UserFacingError.conflict("name is already taken: an app named \(quoted(name.rawValue)) exists; choose another name")
        }
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM app_renames WHERE old_name = ? OR new_name = ?", arguments: [name.rawValue, name.rawValue]) == true {
            throw UserFacingError.conflict("name is taken for now: an app is being renamed from or to \(quoted(name.rawValue)); try again in a minute, or choose another name")
        }
        try ensureDefaultDomainIsFree(name, db)
    }

    // MARK: Clones

    /// What `apps:clone` copied and left out.
    public struct CloneCopy: Sendable {
        public let app: App
        /// Mounts not copied, each with why: managed storage the caller does not own,
        /// host paths for a caller who is not an admin (the rules of `storage:mount`).
        public let skippedMounts: [String]
        /// The source's service links, not copied (nor their config vars), each with how to link.
        public var skippedLinks: [String] = []
    }

    /// `apps:clone`'s rows: a new app the caller owns (`create`'s rules) with `source`'s
    /// config, the mounts the caller could make with storage:mount, its resource limits
    /// and reservations, its scale and deploy branch; not its custom domains (a domain
    /// belongs to one app), certificates, collaborators or releases. `repository` (a
    /// staged copy) is moved into place inside the transaction. Audited on both apps.
    func clone(_ source: AppName, to name: AppName, repository: String, by caller: Caller) throws -> CloneCopy {
        try store.write { db in
            let original = try Self.existing(source, db)
            var app = try create(name, by: caller, in: db)
            let (from, to) = (original.id!, app.id!)
            // A link is not copied (the clone is on a network of its own): nor is its URL.
            let links = try Row.fetchAll(db, sql: """
                SELECT s.kind, s.name, l.alias FROM service_links l JOIN services s ON s.id = l.service_id WHERE l.app_id = ? ORDER BY l.alias
                """, arguments: [from])
            let skippedLinks = links.map { "\($0["alias"] as String) (\($0["kind"] as String):link \($0["name"] as String) \(name) links it)" }
            try db.execute(sql: """
                INSERT INTO config_vars (app_id, key, value) SELECT ?, key, value FROM config_vars
                WHERE app_id = ? AND key NOT IN (SELECT alias FROM service_links WHERE app_id = ?)
                """, arguments: [to, from, from])
            try db.execute(sql: "INSERT INTO formations (app_id, process_type, quantity) SELECT ?, process_type, quantity FROM formations WHERE app_id = ?",
                           arguments: [to, from])
            try db.execute(sql: """
                INSERT INTO resource_settings (app_id, process_type, memory, memory_reservation, nano_cpus, pids)
                SELECT ?, process_type, memory, memory_reservation, nano_cpus, pids FROM resource_settings WHERE app_id = ?
                """, arguments: [to, from])
            var skipped: [String] = []
            for row in try Row.fetchAll(db, sql: """
                SELECT m.id, m.host_path, m.container_path, s.name AS storage, s.owner_id FROM mounts m LEFT JOIN storages s ON s.id = m.storage_id
                WHERE m.app_id = ? ORDER BY m.container_path
                """, arguments: [from]) {
                let path: String = row["container_path"]
                if let host: String = row["host_path"], !caller.principal.isAdmin {
                    skipped.append("\(host):\(path) (host paths are for admins)")
                    continue
                }
                if let storage: String = row["storage"], !caller.principal.isAdmin, row["owner_id"] as Int64? != caller.principal.userID {
                    skipped.append("\(storage):\(path) (storage you do not own)")
                    continue
                }
                try db.execute(sql: """
                    INSERT INTO mounts (app_id, storage_id, host_path, container_path, phases, readonly, created_at)
                    SELECT ?, storage_id, host_path, container_path, phases, readonly, ? FROM mounts WHERE id = ?
                    """, arguments: [to, Date(), row["id"] as Int64])
            }
            app.deployBranch = original.deployBranch
            try app.update(db)
            try FileManager.default.moveItem(atPath: repository, toPath: paths.repository(name))
            var note = skipped.isEmpty ? "" : "; mounts not copied: \(skipped.joined(separator: ", "))"
            if !skippedLinks.isEmpty { note += "; service links not copied: \(skippedLinks.joined(separator: ", "))" }
            try db.audit(caller, app: name.rawValue, detail: "cloned app \(source) to \(name)\(note)")
            try db.audit(caller, app: source.rawValue, detail: "cloned \(source) (its repo and config) to \(name)")
            return CloneCopy(app: app, skippedMounts: skipped, skippedLinks: skippedLinks)
        }
    }

    // MARK: Renames

    /// A rename in progress: the app, the names it has and will have.
    struct PendingRename: Sendable {
        let appID: Int64
        let old: AppName
        let new: AppName
    }

    /// Starts `apps:rename`: checks the new name is free and reserves both names until
    /// `endRename` (the caller holds the app's deploy lock). Returns the app as it is.
    func beginRename(_ old: AppName, to new: AppName, by caller: Caller) throws -> App {
        try store.write { db in
            let app = try Self.existing(old, db)
            try ensureFree(new, db)
            try db.execute(sql: "INSERT INTO app_renames (app_id, old_name, new_name, started_at) VALUES (?, ?, ?, ?)",
                           arguments: [app.id, old.rawValue, new.rawValue, Date()])
            return app
        }
    }

    /// The app's rename in progress (one cut short by a crash, for recovery), if any.
    func pendingRename(of appID: Int64) throws -> PendingRename? {
        try store.read { db in
            try Row.fetchOne(db, sql: "SELECT old_name, new_name FROM app_renames WHERE app_id = ?", arguments: [appID]).map {
                PendingRename(appID: appID, old: AppName(uncheckedRawValue: $0["old_name"]), new: AppName(uncheckedRawValue: $0["new_name"]))
            }
        }
    }

    /// Frees the names a rename reserved.
    func endRename(_ appID: Int64) throws {
        try store.write { db in try db.execute(sql: "DELETE FROM app_renames WHERE app_id = ?", arguments: [appID]) }
    }

    /// The rename itself, inside the caller's transaction (a deploy's switch, or on its
    /// own): the row's name, the repository (moved here, so a failed move rolls the
    /// rename back), the images its builds and releases name (already tagged anew),
    /// and custom domains under the old default domain, which stay the old name's
    /// (names under `<app>.<global>` belong to the app of that name).
    func commitRename(_ appID: Int64, from old: AppName, to new: AppName, images: [String: String], by caller: Caller, _ db: Database) throws {
        guard var app = try Self.find(id: appID, db), app.name == old else { throw UserFacingError.appNotFound(old.rawValue) }
        let global = try RoutingService.globalDomain(db, settings: settings)
        let dropped = try String.fetchAll(db, sql: "SELECT name FROM domains WHERE app_id = ? ORDER BY name", arguments: [appID])
            .filter { RoutingService.reservation(of: $0, global: global) == .app(old.rawValue) }
        for name in dropped { try db.execute(sql: "DELETE FROM domains WHERE name = ?", arguments: [name]) }
        for (before, after) in images {
            try db.execute(sql: "UPDATE builds SET image = ? WHERE app_id = ? AND image = ?", arguments: [after, appID, before])
            try db.execute(sql: "UPDATE releases SET image = ? WHERE app_id = ? AND image = ?", arguments: [after, appID, before])
        }
        let oldRepo = paths.repository(old), newRepo = paths.repository(new)
        if FileManager.default.fileExists(atPath: oldRepo) {
            try FileManager.default.moveItem(atPath: oldRepo, toPath: newRepo)
        }
        app.name = new
        try app.update(db)
        let note = dropped.isEmpty ? "" : "; dropped the custom domains under its old default domain: \(dropped.joined(separator: " "))"
        try db.audit(caller, app: new.rawValue, detail: "renamed app \(old) to \(new)\(note)")
    }

    public func setLocked(_ name: AppName, _ locked: Bool, by caller: Caller) throws {
        try store.write { db in
            var app = try Self.existing(name, db)
            app.locked = locked
            try app.update(db)
            try db.audit(caller, app: name.rawValue, detail: locked ? "locked deploys" : "unlocked deploys")
        }
    }

    /// The one way to look an app up by name (nil: no such app).
    public func find(_ name: AppName) throws -> App? {
        try store.read { db in try Self.find(name, db) }
    }

    /// The same, inside a caller's transaction.
    public static func find(_ name: AppName, _ db: Database) throws -> App? {
        try App.filter(Column("name") == name.rawValue).fetchOne(db)
    }

    /// The app, or the not-found error every command gives.
    public func existing(_ name: AppName) throws -> App {
        try store.read { db in try Self.existing(name, db) }
    }

    /// The app's row id, or the not-found error every command gives.
    public static func id(of name: AppName, _ db: Database) throws -> Int64 {
        try existing(name, db).id!
    }

    /// The app with this row id, as it is inside the caller's transaction (nil: gone).
    static func find(id: Int64?, _ db: Database) throws -> App? {
        try App.fetchOne(db, key: id)
    }

    /// Makes `release` the one serving (and the app's processes running), inside the deploy's transaction.
    func setCurrentRelease(_ release: Int64?, of appID: Int64, _ db: Database) throws {
        try db.execute(sql: "UPDATE apps SET current_release_id = ?, processes_stopped = 0 WHERE id = ?", arguments: [release, appID])
    }

    /// A push's deploy branch and revision, inside the transaction of the release it made.
    func recordPush(branch: String, revision: String, of name: AppName, _ db: Database) throws {
        var app = try Self.existing(name, db)
        app.deployBranch = branch
        app.deployedRevision = revision
        try app.update(db)
    }

    /// `ps:stop` of every process: nothing runs until ps:start (inside its transaction).
    func setProcessesStopped(of appID: Int64, _ db: Database) throws {
        try db.execute(sql: "UPDATE apps SET processes_stopped = 1 WHERE id = ?", arguments: [appID])
    }

    // MARK: Collaborators

    /// Grants `role` on the app to `user` (replacing any earlier role).
    public func grant(_ role: AppRole, on name: AppName, to userName: UserName, by caller: Caller) throws {
        try store.write { db in
            let app = try Self.existing(name, db)
            let user = try existingUser(userName, db)
            let previous = try member(app, user, db)
            if previous?.role == .owner, role != .owner { try ensureAnotherOwner(app, besides: user, db) }
            var entry = AppMember(appId: app.id!, userId: user.id!, role: role, addedAt: previous?.addedAt ?? Date())
            try entry.save(db)
            try db.audit(caller, app: name.rawValue, detail: "gave \(userName) \(role.rawValue) access")
        }
    }

    public func revoke(on name: AppName, from userName: UserName, by caller: Caller) throws {
        try store.write { db in
            let app = try Self.existing(name, db)
            let user = try existingUser(userName, db)
            guard let entry = try member(app, user, db) else {
                throw UserFacingError.notFound("\(userName) has no access to \(name); acl:list \(name) shows who has")
            }
            if entry.role == .owner { try ensureAnotherOwner(app, besides: user, db) }
            _ = try entry.delete(db)
            try db.audit(caller, app: name.rawValue, detail: "removed \(userName)'s access")
        }
    }

    public func members(of name: AppName) throws -> [(user: UserName, role: AppRole)] {
        try store.read { db in try members(of: try Self.existing(name, db), db) }
    }

    // MARK: Helpers

    /// The app, or the not-found error every command gives, inside a caller's transaction.
    static func existing(_ name: AppName, _ db: Database) throws -> App {
        guard let app = try Self.find(name, db) else {
            throw UserFacingError.appNotFound(name.rawValue)
        }
        return app
    }

    private func existingUser(_ name: UserName, _ db: Database) throws -> User {
        guard let user = try User.filter(Column("name") == name.rawValue).fetchOne(db) else {
            throw UserFacingError.notFound("user \(quoted(name.rawValue)) not found; ask an admin to add them (users:add)")
        }
        return user
    }

    private func member(_ app: App, _ user: User, _ db: Database) throws -> AppMember? {
        try AppMember.filter(Column("app_id") == app.id && Column("user_id") == user.id).fetchOne(db)
    }

    private func members(of app: App, _ db: Database) throws -> [(user: UserName, role: AppRole)] {
        try Row.fetchAll(db, sql: """
            SELECT users.name, m.role FROM app_members m JOIN users ON users.id = m.user_id
            WHERE m.app_id = ? ORDER BY users.name
            """, arguments: [app.id]).map { (UserName(uncheckedRawValue: $0["name"]), AppRole(rawValue: $0["role"]) ?? .read) }
    }

    /// An app keeps at least one owner, so someone can always manage it.
    private func ensureAnotherOwner(_ app: App, besides user: User, _ db: Database) throws {
        let others = try AppMember.filter(Column("app_id") == app.id && Column("role") == AppRole.owner.rawValue && Column("user_id") != user.id).fetchCount(db)
        guard others > 0 else {
            throw UserFacingError.conflict("\(user.name) is the last owner of \(app.name); add another owner first (acl:add \(app.name) <user> owner)")
        }
    }
}
