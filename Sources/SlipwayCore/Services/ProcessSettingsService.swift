import Foundation
import GRDB

/// How an app's process containers are run and replaced, as Dokku's `ps:set`
/// and `checks:*` set it: the engine's restart policy, whether a deploy checks
/// each process type (`checks:skip`) and keeps the old containers up until the
/// new ones serve (`checks:disable` turns that off), and how long the old ones
/// keep running after the switch (`checks:set APP wait-to-retire N`).
///
/// Read live at each rollout, not frozen in a release: like resource limits they
/// are how the server runs the app, not the app's code, and Dokku applies a
/// change at the next deploy or restart.
public struct ProcessSettingsService: Sendable {
    let store: Store
    let settings: Settings

    /// The "process type" that stands for every type (Dokku's word).
    public static let allTypes = "_all_"
    /// The largest `wait-to-retire` (seconds) an app may set.
    public static let maxWaitToRetire = 3600

    public init(store: Store, settings: Settings) {
        self.store = store
        self.settings = settings
    }

    /// What `checks:disable` and `checks:skip` set for a process type.
    public enum CheckMode: String, Sendable, Codable {
        /// No checks, and no zero downtime: the old containers stop before the new start.
        case disabled
        /// No checks; the old containers still serve until the new ones are up.
        case skipped
    }

    /// One app's values: its own (nil: unset) and what a rollout uses.
    public struct Values: Sendable, Equatable {
        public var app: AppName
        /// `ps:set APP restart-policy`; nil: the default.
        public var restartPolicy: RestartPolicy?
        /// `checks:set APP wait-to-retire`; nil: the server's `wait_to_retire`.
        public var waitToRetire: Int?
        /// Process type (or `_all_`) -> mode; a type's own entry wins over `_all_`.
        public var checkModes: [String: CheckMode] = [:]
        /// The server's `wait_to_retire`, which an unset app value falls back to.
        public var globalWaitToRetire: Int

        /// The policy the app's process containers are created with.
        public var computedRestartPolicy: RestartPolicy { restartPolicy ?? .processDefault }
        /// Seconds the old processes keep running after the switch.
        public var computedWaitToRetire: Int { waitToRetire ?? globalWaitToRetire }

        /// How a deploy treats `type`: nil means checked, with zero downtime.
        public func checkMode(of type: String) -> CheckMode? {
            checkModes[type] ?? checkModes[ProcessSettingsService.allTypes]
        }

        /// Dokku's `Checks disabled list`: `none`, `_all_`, or `web,worker`.
        public var disabledList: String { list(.disabled) }
        /// Dokku's `Checks skipped list`.
        public var skippedList: String { list(.skipped) }

        private func list(_ mode: CheckMode) -> String {
            let types = checkModes.filter { $0.value == mode }.keys.sorted()
            if types.contains(ProcessSettingsService.allTypes) { return ProcessSettingsService.allTypes }
            return types.isEmpty ? "none" : types.joined(separator: ",")
        }
    }

    // MARK: Reading

    /// The app's values (it must exist).
    public func values(of app: AppName) throws -> Values {
        try store.read { db in try values(of: try AppService.existing(app, db), db) }
    }

    /// `ps:report` / `checks:report`: the app named (already authorized), or every app the principal can read.
    public func reports(_ app: AppName?, for principal: Principal) throws -> [Values] {
        let names = try app.map { [$0] } ?? store.read { db in
            try AppService.visible(to: principal, authorizer: Authorizer(store: store), db).map { $0.app.name }
        }
        return try names.map { try values(of: $0) }
    }

    func values(of record: App, _ db: Database) throws -> Values {
        var values = Values(app: record.name, globalWaitToRetire: settings.waitToRetire)
        if let row = try Row.fetchOne(db, sql: "SELECT restart_policy, wait_to_retire FROM process_settings WHERE app_id = ?", arguments: [record.id]) {
            values.restartPolicy = (row["restart_policy"] as String?).flatMap(RestartPolicy.init)
            values.waitToRetire = row["wait_to_retire"]
        }
        for row in try Row.fetchAll(db, sql: "SELECT process_type, mode FROM check_modes WHERE app_id = ?", arguments: [record.id]) {
            if let mode = CheckMode(rawValue: row["mode"]) { values.checkModes[row["process_type"]] = mode }
        }
        return values
    }

    // MARK: Changes

    /// `ps:set APP restart-policy VALUE`: `no`, `always`, `unless-stopped`,
    /// `on-failure` or `on-failure:N` (N from 1 to 1000); an empty value restores
    /// the default (`on-failure:10`). Applies at the next deploy or ps:restart.
    public func setRestartPolicy(_ value: String, app: AppName, by caller: Caller) throws {
        var policy: RestartPolicy?
        if !value.isEmpty {
            guard let parsed = RestartPolicy(value) else {
                throw UserFacingError.invalid("\(quoted(value)) is not a restart policy; use no, always, unless-stopped, on-failure or on-failure:N with N from 1 to \(RestartPolicy.maxRetriesBound) (e.g. ps:set \(app) restart-policy on-failure:10), or nothing for the default")
            }
            policy = parsed
        }
        try store.write { db in
            let appID = try AppService.id(of: app, db)
            try db.execute(sql: """
                INSERT INTO process_settings (app_id, restart_policy) VALUES (?, ?)
                    ON CONFLICT(app_id) DO UPDATE SET restart_policy = excluded.restart_policy
                """, arguments: [appID, policy?.description])
            try db.audit(caller, app: app.rawValue, detail: "restart-policy \(policy?.description ?? "unset (default \(RestartPolicy.processDefault))")")
        }
    }

    /// `checks:set APP wait-to-retire N` (0 to 3600 seconds); an empty value falls back to the server's.
    public func setWaitToRetire(_ value: String, app: AppName, by caller: Caller) throws {
        var seconds: Int?
        if !value.isEmpty {
            guard value.count <= 5, value.allSatisfy({ ("0"..."9").contains($0) }), let n = Int(value), n <= Self.maxWaitToRetire else {
                throw UserFacingError.invalid("wait-to-retire takes whole seconds from 0 to \(Self.maxWaitToRetire), not \(quoted(value)); e.g. checks:set \(app) wait-to-retire 30, or nothing for the server's default")
            }
            seconds = n
        }
        try store.write { db in
            let appID = try AppService.id(of: app, db)
            try db.execute(sql: """
                INSERT INTO process_settings (app_id, wait_to_retire) VALUES (?, ?)
                    ON CONFLICT(app_id) DO UPDATE SET wait_to_retire = excluded.wait_to_retire
                """, arguments: [appID, seconds])
            try db.audit(caller, app: app.rawValue, detail: "wait-to-retire \(seconds.map { "\($0) s" } ?? "unset (server default)")")
        }
    }

    /// `checks:disable` (mode .disabled), `checks:skip` (.skipped), `checks:enable`
    /// (nil) for `types` (process type names; empty or `_all_`: every type). On a
    /// deployed app a type its release does not run is refused. Returns the types
    /// as the command's headline names them (`web,worker`, or `_all_`).
    @discardableResult
    public func setChecks(_ mode: CheckMode?, types: [String], app: AppName, by caller: Caller) throws -> [String] {
        let named = try Self.parseTypes(types)
        return try store.write { db in
            let record = try AppService.existing(app, db)
            let appID = record.id!
            let known = try Self.processTypes(of: record, db)
            if let known {
                if let unknown = named.first(where: { $0 != Self.allTypes && !known.contains($0) }) {
                    throw UserFacingError.invalid("\(app) has no process type \(quoted(unknown)); its types are \(known.sorted().joined(separator: ", "))")
                }
            }
            let everything = named.isEmpty || named.contains(Self.allTypes)
            if everything {
                try db.execute(sql: "DELETE FROM check_modes WHERE app_id = ?", arguments: [appID])
                if let mode {
                    try db.execute(sql: "INSERT INTO check_modes (app_id, process_type, mode) VALUES (?, ?, ?)", arguments: [appID, Self.allTypes, mode.rawValue])
                }
            } else if let mode {
                for type in named {
                    try db.execute(sql: """
                        INSERT INTO check_modes (app_id, process_type, mode) VALUES (?, ?, ?)
                            ON CONFLICT(app_id, process_type) DO UPDATE SET mode = excluded.mode
                        """, arguments: [appID, type, mode.rawValue])
                }
            } else {
                // Enabling some types while every type is disabled or skipped: the
                // `_all_` entry becomes one entry per other type, which needs the types.
                if let all = try String.fetchOne(db, sql: "SELECT mode FROM check_modes WHERE app_id = ? AND process_type = ?", arguments: [appID, Self.allTypes]) {
                    guard let known else {
                        throw UserFacingError.conflict("checks are \(all) for every process type of \(app), which has not been deployed yet; checks:enable \(app) (without types) enables them all")
                    }
                    try db.execute(sql: "DELETE FROM check_modes WHERE app_id = ? AND process_type = ?", arguments: [appID, Self.allTypes])
                    for type in known.subtracting(named) {
                        try db.execute(sql: "INSERT OR IGNORE INTO check_modes (app_id, process_type, mode) VALUES (?, ?, ?)", arguments: [appID, type, all])
                    }
                }
                for type in named {
                    try db.execute(sql: "DELETE FROM check_modes WHERE app_id = ? AND process_type = ?", arguments: [appID, type])
                }
            }
            let label = everything ? Self.allTypes : named.joined(separator: ",")
            try db.audit(caller, app: app.rawValue, detail: "checks \(mode?.rawValue ?? "enabled") for \(label)")
            return everything ? [Self.allTypes] : named
        }
    }

    // MARK: Internals

    /// Process type names from `web,worker` arguments (Dokku takes one comma list;
    /// several arguments are joined), each checked, without duplicates.
    static func parseTypes(_ arguments: [String]) throws -> [String] {
        var types: [String] = []
        for argument in arguments {
            for part in argument.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
                guard part == allTypes || ProcessType.isValid(part) else {
                    throw UserFacingError.invalid("\(quoted(part)) is not a process type: give a comma-separated list such as web,worker (lowercase letters, digits and dashes), or nothing for every type")
                }
                if !types.contains(part) { types.append(part) }
            }
        }
        return types
    }

    /// The process types of the app's current release; nil before its first deploy.
    static func processTypes(of record: App, _ db: Database) throws -> Set<String>? {
        guard let current = record.currentReleaseId,
              let snapshot = try String.fetchOne(db, sql: "SELECT snapshot FROM releases WHERE id = ?", arguments: [current]) else { return nil }
        return Set(try DeployService.decode(snapshot).plan.processes.keys)
    }
}

extension Core {
    /// `ps:set`, `checks:*`, and what every rollout reads of them.
    public var processSettings: ProcessSettingsService { ProcessSettingsService(store: store, settings: settings) }
}

extension DeployService {
    var processSettings: ProcessSettingsService { ProcessSettingsService(store: store, settings: settings) }
}
