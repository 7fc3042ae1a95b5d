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
        case .all(let parts):
            for part in parts { try check(part, for: principal, in: db) }
        }
    }

    /// The principal's role on `app`: admins own every app; others need an ACL entry.
    public func role(of principal: Principal, on app: App, in db: Database) throws -> AppRole? {
        if principal.isAdmin { return .owner }
        guard let userID = principal.userID, let appID = app.id else { return nil }
        return try AppMember.filter(Column("app_id") == appID && Column("user_id") == userID)
            .fetchOne(db)?.role
    }
}
