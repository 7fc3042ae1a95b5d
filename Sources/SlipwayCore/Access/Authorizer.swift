import GRDB

/// The one gate. Every command's `Requirement` is checked here, for every path
/// (local CLI, SSH command, git push/fetch), before the command touches anything.
public struct Authorizer: Sendable {
    let store: Store

    public init(store: Store) { self.store = store }

    /// Throws a `UserFacingError` unless `principal` meets `requirement`.
    public func require(_ requirement: Requirement, for principal: Principal) throws {
        try store.read { db in try check(requirement, for: principal, in: db) }
    }

    /// The same check inside a caller's transaction.
    public func check(_ requirement: Requirement, for principal: Principal, in db: Database) throws {
        switch requirement {
        case .user:
            return
        case .admin:
            guard principal.isAdmin else {
                throw UserFacingError.denied("only server admins may do this; ask an admin")
            }
        case .selfOrAdmin(let name):
            guard principal.isAdmin || principal.name == name else {
                throw UserFacingError.denied("only server admins may look at other users; leave the user name out to see your own")
            }
        case .app(let rawName, let needed):
            let name = try AppName(rawName)
            guard let app = try AppService.find(name, db),
                  let held = try role(of: principal, on: app, in: db) else {
                // Missing and hidden answer alike: a tenant learns nothing about other apps.
                throw UserFacingError.appNotFound(rawName)
            }
            guard held >= needed else {
                throw UserFacingError.denied("you have \(held.rawValue) access to app \(quoted(rawName)); this needs \(needed.rawValue) access, which an owner can grant with acl:add")
            }
        case .appOrMissing(let rawName, let needed):
            guard try AppService.find(AppName(rawName), db) == nil else {
                return try check(.app(rawName, needed), for: principal, in: db)
            }
        case .storageOwner(let rawName, let allowMissing):
            let name = try StorageName(rawName)
            guard let storage = try Storage.filter(Column("name") == name.rawValue).fetchOne(db) else {
                if allowMissing { return }
                throw UserFacingError.notFound("storage \(quoted(rawName)) not found; storage:create \(name) makes it")
            }
            guard principal.isAdmin || (storage.ownerId != nil && storage.ownerId == principal.userID) else {
                if allowMissing {
                    throw UserFacingError.denied("storage \(quoted(rawName)) belongs to another user; choose another name")
                }
                throw UserFacingError.notFound("storage \(quoted(rawName)) not found; storage:create \(name) makes it")
            }
        case .datastore(let kind, let rawName, let needed, let allowMissing):
            let name = try DatastoreName(rawName)
            let missing = UserFacingError.notFound(DatastoreService.notFoundMessage(kind, rawName))
            guard let service = try DatastoreService.find(kind, name, db) else {
                if allowMissing { return }
                throw missing
            }
            guard let held = try access(of: principal, to: service, in: db) else {
                // Hidden and missing answer alike (but a name cannot be taken twice).
                if allowMissing {
                    throw UserFacingError.conflict("\(kind.namespace) service \(quoted(rawName)) already exists; choose another name")
                }
                throw missing
            }
            guard held == .manage || needed == .use else {
                throw UserFacingError.denied("you may use \(kind.namespace) service \(quoted(rawName)) through an app linked to it; this needs its owner (or an admin)")
            }
        case .all(let parts):
            for part in parts { try check(part, for: principal, in: db) }
        }
    }

    /// What the principal may do with a backing service: `.manage` for its owner and
    /// admins, `.use` for writers of an app linked to it, nil otherwise (it is hidden).
    public func access(of principal: Principal, to service: Datastore, in db: Database) throws -> DatastoreAccess? {
        if principal.isAdmin { return .manage }
        guard let userID = principal.userID else { return nil }
        if service.ownerId == userID { return .manage }
        let writes = try Bool.fetchOne(db, sql: """
            SELECT EXISTS (SELECT 1 FROM service_links l JOIN app_members m ON m.app_id = l.app_id
                           WHERE l.service_id = ? AND m.user_id = ? AND m.role IN ('write', 'owner'))
            """, arguments: [service.id, userID]) ?? false
        return writes ? .use : nil
    }

    /// The principal's role on `app`: admins own every app; others need an ACL entry.
    public func role(of principal: Principal, on app: App, in db: Database) throws -> AppRole? {
        if principal.isAdmin { return .owner }
        guard let userID = principal.userID, let appID = app.id else { return nil }
        return try AppMember.filter(Column("app_id") == appID && Column("user_id") == userID)
            .fetchOne(db)?.role
    }
}
