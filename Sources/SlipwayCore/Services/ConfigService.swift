import Foundation
import GRDB

/// Where config vars live: one app's environment, or the global defaults that
/// every app inherits (app values win).
public enum ConfigScope: Sendable, Equatable {
    case global
    case app(AppName)

    /// "web" or "--global", for messages.
    public var label: String {
        switch self {
        case .global: "--global"
        case .app(let name): name.rawValue
        }
    }
}

/// Environment variables of apps and the global defaults.
public struct ConfigService: Sendable {
    let store: Store

    /// Sets every pair in one transaction. Values may hold any text but NUL.
    public func set(_ pairs: [(EnvKey, String)], in scope: ConfigScope, by caller: Caller) throws {
        try store.write { db in
            let appID = try self.appID(scope, db)
            for (key, value) in pairs {
                try db.execute(sql: """
                    INSERT INTO config_vars (app_id, key, value) VALUES (?, ?, ?)
                    ON CONFLICT DO UPDATE SET value = excluded.value
                    """, arguments: [appID, key, value])
            }
            try db.audit(caller, app: scope.appName, detail: "set \(pairs.map(\.0.rawValue).joined(separator: ", "))")
        }
    }

    /// Removes the keys; keys that were not set are listed in the event, not an error (as Dokku).
    public func unset(_ keys: [EnvKey], in scope: ConfigScope, by caller: Caller) throws {
        try store.write { db in
            let appID = try self.appID(scope, db)
            for key in keys {
                try db.execute(sql: "DELETE FROM config_vars WHERE app_id IS ? AND key = ?", arguments: [appID, key])
            }
            try db.audit(caller, app: scope.appName, detail: "unset \(keys.map(\.rawValue).joined(separator: ", "))")
        }
    }

    public func clear(_ scope: ConfigScope, by caller: Caller) throws {
        try store.write { db in
            let appID = try self.appID(scope, db)
            try db.execute(sql: "DELETE FROM config_vars WHERE app_id IS ?", arguments: [appID])
            try db.audit(caller, app: scope.appName, detail: "cleared all config")
        }
    }

    /// The scope's own vars, sorted by key (globals are not merged in: these are
    /// what `config:show` prints and `config:export` round-trips).
    public func vars(_ scope: ConfigScope) throws -> [(key: EnvKey, value: String)] {
        try store.read { db in
            try Row.fetchAll(db, sql: "SELECT key, value FROM config_vars WHERE app_id IS ? ORDER BY key",
                             arguments: [try appID(scope, db)])
                .map { (EnvKey(uncheckedRawValue: $0["key"]), $0["value"]) }
        }
    }

    public func get(_ key: EnvKey, in scope: ConfigScope) throws -> String? {
        try store.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM config_vars WHERE app_id IS ? AND key = ?",
                                arguments: [try appID(scope, db), key])
        }
    }

    /// The environment a container of the app gets: globals, overridden by the app's own.
    /// The same, as the name -> value map a container's environment is made from.
    public func environmentVariables(of app: AppName) throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try environment(of: app).map { ($0.key.rawValue, $0.value) })
    }

    public func environment(of app: AppName) throws -> [(key: EnvKey, value: String)] {
        var merged: [String: String] = [:]
        for (key, value) in try vars(.global) { merged[key.rawValue] = value }
        for (key, value) in try vars(.app(app)) { merged[key.rawValue] = value }
        return merged.sorted { $0.key < $1.key }.map { (EnvKey(uncheckedRawValue: $0.key), $0.value) }
    }

    private func appID(_ scope: ConfigScope, _ db: Database) throws -> Int64? {
        guard case .app(let name) = scope else { return nil }
        return try AppService.id(of: name, db)
    }
}

extension ConfigScope {
    var appName: String? {
        if case .app(let name) = self { return name.rawValue }
        return nil
    }
}
