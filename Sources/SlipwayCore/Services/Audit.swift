import Foundation
import GRDB

/// Who asked, and under which command: what every mutating service call needs
/// to write its audit event inside its own transaction.
public struct Caller: Sendable {
    public let principal: Principal
    /// The command as typed on the wire, e.g. `config:set`.
    public let command: String

    public init(principal: Principal, command: String) {
        self.principal = principal
        self.command = command
    }
}

extension Database {
    /// Appends one event. Called by services inside the transaction that made the change,
    /// so the change and its record land together or not at all.
    func audit(_ caller: Caller, app: String?, outcome: String = "ok", detail: String) throws {
        // The app as it is inside this transaction: after a rename its new name finds
        // it; after its deletion (apps:destroy) nothing does.
        let appID = try app.flatMap { try AppService.find(AppName(uncheckedRawValue: $0), self)?.id }
        var event = Event(at: Date(), actor: caller.principal.name, via: caller.principal.via,
                          command: caller.command, app: app, appId: appID, outcome: outcome, detail: detail)
        try event.insert(self)
    }
}

/// Reads and appends to the audit log.
public struct EventLog: Sendable {
    let store: Store

    /// Records a successful action that changed nothing in the store (a container started or stopped).
    public func record(_ caller: Caller, app: String?, detail: String) throws {
        try store.write { db in try db.audit(caller, app: app, detail: detail) }
    }

    /// Records a failed command (successes are recorded by the service that made the change).
    public func recordFailure(_ caller: Caller, app: String?, message: String) throws {
        try store.write { db in try db.audit(caller, app: app, outcome: "failed", detail: message) }
    }

    /// The newest `limit` events the principal may see, oldest first: admins see all;
    /// users see events of the apps they can read (by identity: not those of a destroyed
    /// app whose name was taken again) and their own actions.
    public func recent(for principal: Principal, limit: Int) throws -> [Event] {
        try store.read { db in
            var request = Event.order(Column("id").desc).limit(limit)
            if !principal.isAdmin {
                let apps = try Int64.fetchAll(db, sql: "SELECT app_id FROM app_members WHERE user_id = ?", arguments: [principal.userID])
                request = request.filter(apps.contains(Column("app_id")) || Column("actor") == principal.name)
            }
            return try request.fetchAll(db).reversed()
        }
    }
}
