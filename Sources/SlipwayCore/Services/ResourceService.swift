import Foundation
import GRDB

/// Memory, CPU and pids limits of an app's containers (`resource:*`), resolved
/// per process type: the type's own value wins over the app's, which wins over
/// the server's default; the server's caps (`max_*` in slipway.toml) bind
/// everyone, admins included, and are applied again when a container is made.
///
/// Limits are read live when a container is created, not recorded in a release:
/// they are the host's policy more than the app's code, so a rollback must not
/// bring back a limit an admin has since capped, and (as Dokku) a change applies
/// at the next deploy or ps:restart, and to every run and build from now on.
public struct ResourceService: Sendable {
    let store: Store
    let settings: Settings

    /// The row that holds an app's own values (all process types), as Dokku names it.
    public static let appWide = "_default_"
    /// The "process type" of one-off `run` and `run:detached` containers.
    public static let runType = "run"
    /// The "process type" of the app's image builds.
    public static let buildType = "build"

    public init(store: Store, settings: Settings) {
        self.store = store
        self.settings = settings
    }

    /// One field of `resource:limit` / `resource:reserve`: a new value, or `clear` (Dokku's word) to inherit again.
    public enum Change: Sendable, Equatable {
        case set(Int64)
        case clear
    }

    /// What one `resource:limit` or `resource:reserve` changes; nil fields stay as they are.
    public struct Changes: Sendable, Equatable {
        public var memory: Change?
        public var nanoCPUs: Change?
        public var pids: Change?
        public var memoryReservation: Change?

        public init(memory: Change? = nil, nanoCPUs: Change? = nil, pids: Change? = nil, memoryReservation: Change? = nil) {
            self.memory = memory
            self.nanoCPUs = nanoCPUs
            self.pids = pids
            self.memoryReservation = memoryReservation
        }

        public var isEmpty: Bool { memory == nil && nanoCPUs == nil && pids == nil && memoryReservation == nil }
    }

    public enum Kind: String, Sendable { case limit, reserve }

    // MARK: Changes

    /// Sets (or clears) values of the app or of one process type, within the server's
    /// caps, in one transaction with its audit event. Nothing changes when any value is refused.
    public func set(_ changes: Changes, app: AppName, processType: String?, by caller: Caller) throws {
        let type = try Self.scope(processType)
        try checkCaps(changes, admin: caller.principal.isAdmin)
        try store.write { db in
            let appID = try AppService.id(of: app, db)
            var row = try Self.row(appID, type, db) ?? ResourceRow(appId: appID, processType: type)
            row.apply(changes)
            // A reservation above the limit it would run under is refused by the engine at start.
            if let reservation = row.memoryReservation {
                var merged = try Self.stored(appID, type == Self.appWide ? nil : type, db)
                merged.memoryBytes = row.memory ?? merged.memoryBytes
                let limit = min(merged.memoryBytes ?? settings.defaultLimits.memoryBytes ?? .max, settings.maxLimits.memoryBytes ?? .max)
                if reservation > limit {
                    throw UserFacingError.invalid("a memory reservation of \(ResourceQuantity.formatMemory(reservation)) is more than the \(ResourceQuantity.formatMemory(limit)) memory limit \(Self.label(app, type)) runs under; lower it, or raise the limit first with resource:limit --memory")
                }
            }
            if row.isEmpty {
                try db.execute(sql: "DELETE FROM resource_settings WHERE app_id = ? AND process_type = ?", arguments: [appID, type])
            } else {
                try row.save(db)
            }
            try db.audit(caller, app: app.rawValue, detail: "\(caller.command) \(Self.label(app, type)): \(Self.describe(changes))")
        }
    }

    /// `resource:limit-clear` / `resource:reserve-clear`: the limits (or the reservation) of
    /// one process type, or, without one, of the app and every one of its types, inherit again.
    public func clear(_ kind: Kind, app: AppName, processType: String?, by caller: Caller) throws {
        let type = try processType.map { try Self.scope($0) }
        try store.write { db in
            let appID = try AppService.id(of: app, db)
            let columns = kind == .limit ? "memory = NULL, nano_cpus = NULL, pids = NULL" : "memory_reservation = NULL"
            try db.execute(sql: "UPDATE resource_settings SET \(columns) WHERE app_id = ? AND (? IS NULL OR process_type = ?)",
                           arguments: [appID, type, type])
            try db.execute(sql: """
                DELETE FROM resource_settings WHERE app_id = ? AND memory IS NULL AND memory_reservation IS NULL
                AND nano_cpus IS NULL AND pids IS NULL
                """, arguments: [appID])
            try db.audit(caller, app: app.rawValue, detail: "cleared the resource \(kind == .limit ? "limits" : "reservation") of \(type.map { Self.label(app, $0) } ?? "\(app) and all its process types")")
        }
    }

    // MARK: Resolution

    /// What a container of the app gets: `processType`'s values over the app's over the
    /// server's defaults, each within the server's caps (and the host's CPUs).
    /// nil: deploy tasks, which take the app's values.
    public func limits(for app: AppName, processType: String?) throws -> ResourceLimits {
        let stored = try store.read { db in try Self.stored(try AppService.id(of: app, db), processType, db) }
        return effective(stored, type: processType)
    }

    /// Stored values over defaults, clamped to the caps. Builds take no reservation (the engine's /build has none).
    func effective(_ stored: ResourceLimits, type: String?) -> ResourceLimits {
        let defaults = settings.defaultLimits, caps = settings.maxLimits
        func capped(_ value: Int64?, _ cap: Int64?) -> Int64? {
            guard let value else { return nil }
            return cap.map { min(value, $0) } ?? value
        }
        var limits = ResourceLimits()
        limits.memoryBytes = capped(stored.memoryBytes ?? defaults.memoryBytes, caps.memoryBytes)
        // The engine refuses more CPUs than the host has.
        let hostCPUs = Int64(ProcessInfo.processInfo.activeProcessorCount) * 1_000_000_000
        limits.nanoCPUs = capped(capped(stored.nanoCPUs ?? defaults.nanoCPUs, caps.nanoCPUs), hostCPUs)
        limits.pids = capped(stored.pids ?? defaults.pids, caps.pids)
        limits.memoryReservation = type == Self.buildType ? nil
            : capped(capped(stored.memoryReservationBytes ?? defaults.memoryReservationBytes, caps.memoryBytes), limits.memoryBytes)
        return limits
    }

    // MARK: Report

    /// One app's values as `resource:report` shows them.
    public struct Report: Sendable {
        public let app: AppName
        /// Values set on the app (`_default_`) and per process type, as stored.
        public let set: [String: ResourceLimits]
        /// What containers get: the app's process types (current release and any with
        /// values), `run`, `build`, and `_default_` (what deploy tasks get).
        public let effective: [String: ResourceLimits]
        public let defaults: ResourceLimits
        public let caps: ResourceLimits

        /// Where a type's value comes from: the type itself, `app`, or `server` (its default).
        public func source(_ type: String, _ field: KeyPath<ResourceLimits, Int64?>) -> String {
            if type != ResourceService.appWide, set[type]?[keyPath: field] != nil { return type }
            if set[ResourceService.appWide]?[keyPath: field] != nil { return "app" }
            return "server"
        }
    }

    /// `including`: one more process type to resolve (the one `resource:limit` without values asks about).
    public func report(_ app: AppName, including extra: String? = nil) throws -> Report {
        let extraType = try extra.map { try Self.scope($0) }
        let (set, effective) = try store.read { db -> ([String: ResourceLimits], [String: ResourceLimits]) in
            let record = try AppService.existing(app, db)
            let appID = record.id!
            let rows = try ResourceRow.filter(Column("app_id") == appID).fetchAll(db)
            let set = Dictionary(uniqueKeysWithValues: rows.map { ($0.processType, $0.limits) })
            var types = Set(rows.map(\.processType) + [Self.appWide, Self.runType, Self.buildType] + (extraType.map { [$0] } ?? []))
            if let current = record.currentReleaseId,
               let snapshot = try String.fetchOne(db, sql: "SELECT snapshot FROM releases WHERE id = ?", arguments: [current]) {
                types.formUnion(try DeployService.decode(snapshot).plan.processes.keys)
            }
            var effective: [String: ResourceLimits] = [:]
            for type in types {
                effective[type] = self.effective(try Self.stored(appID, type == Self.appWide ? nil : type, db), type: type)
            }
            return (set, effective)
        }
        return Report(app: app, set: set, effective: effective, defaults: settings.defaultLimits, caps: settings.maxLimits)
    }

    /// `resource:report`: the app named (already authorized), or every app the principal can read.
    public func reports(_ app: AppName?, for principal: Principal) throws -> [Report] {
        let names = try app.map { [$0] } ?? store.read { db in
            try AppService.visible(to: principal, authorizer: Authorizer(store: store), db).map { $0.app.name }
        }
        return try names.map { try report($0) }
    }

    // MARK: Internals

    /// The stored values for a type, the app's filling in what the type leaves unset.
    static func stored(_ appID: Int64, _ processType: String?, _ db: Database) throws -> ResourceLimits {
        var limits = try row(appID, appWide, db)?.limits ?? ResourceLimits()
        if let processType, processType != appWide, let own = try row(appID, processType, db)?.limits {
            limits.memoryBytes = own.memoryBytes ?? limits.memoryBytes
            limits.memoryReservationBytes = own.memoryReservationBytes ?? limits.memoryReservationBytes
            limits.nanoCPUs = own.nanoCPUs ?? limits.nanoCPUs
            limits.pids = own.pids ?? limits.pids
        }
        return limits
    }

    static func row(_ appID: Int64, _ type: String, _ db: Database) throws -> ResourceRow? {
        try ResourceRow.filter(Column("app_id") == appID && Column("process_type") == type).fetchOne(db)
    }

    /// `--process-type`: a process type name (`run` and `build` included), or nil for the whole app.
    static func scope(_ processType: String?) throws -> String {
        guard let processType else { return appWide }
        guard ProcessType.isValid(processType) else {
            throw UserFacingError.invalid("--process-type \(quoted(processType)) is not a process type (lowercase letters, digits and dashes, such as web, worker, run or build); leave it out for the whole app")
        }
        return processType
    }

    static func label(_ app: AppName, _ type: String) -> String {
        type == appWide ? "\(app)" : "\(app) (\(type))"
    }

    static func describe(_ changes: Changes) -> String {
        func text(_ name: String, _ change: Change?, _ format: (Int64) -> String) -> String? {
            switch change {
            case .none: nil
            case .clear: "\(name) cleared"
            case .set(let value): "\(name) \(format(value))"
            }
        }
        return [text("memory", changes.memory, ResourceQuantity.formatMemory), text("cpu", changes.nanoCPUs, ResourceQuantity.formatCPUs),
                text("pids", changes.pids, String.init), text("memory reservation", changes.memoryReservation, ResourceQuantity.formatMemory)]
            .compactMap { $0 }.joined(separator: ", ")
    }

    /// Values above the server's caps are refused, for admins too: the caps are the host's.
    /// (Denied, not invalid: such attempts are audited.)
    func checkCaps(_ changes: Changes, admin: Bool) throws {
        let caps = settings.maxLimits
        func check(_ change: Change?, _ cap: Int64?, option: String, key: String, _ format: (Int64) -> String) throws {
            guard case .set(let value)? = change, let cap, value > cap else { return }
            let fix = admin ? "raise \(key) in the server's slipway.toml" : "ask an admin"
            throw UserFacingError.denied("\(option) \(format(value)) is more than this server allows (the server allows at most \(format(cap)); \(fix))")
        }
        try check(changes.memory, caps.memoryBytes, option: "--memory", key: "max_memory", ResourceQuantity.formatMemory)
        try check(changes.memoryReservation, caps.memoryBytes, option: "--memory", key: "max_memory", ResourceQuantity.formatMemory)
        try check(changes.nanoCPUs, caps.nanoCPUs, option: "--cpu", key: "max_cpus", ResourceQuantity.formatCPUs)
        try check(changes.pids, caps.pids, option: "--pids", key: "max_pids", String.init)
    }
}

extension ResourceLimits {
    /// `memoryReservationBytes`, under a shorter name for the resolution code.
    var memoryReservation: Int64? {
        get { memoryReservationBytes }
        set { memoryReservationBytes = newValue }
    }
}

/// One row of `resource_settings`: an app's (`_default_`) or one process type's own values.
struct ResourceRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "resource_settings"
    var appId: Int64
    var processType: String
    var memory: Int64?
    var memoryReservation: Int64?
    var nanoCpus: Int64?
    var pids: Int64?

    enum CodingKeys: String, CodingKey {
        case appId = "app_id", processType = "process_type", memory, memoryReservation = "memory_reservation", nanoCpus = "nano_cpus", pids
    }

    init(appId: Int64, processType: String) {
        self.appId = appId
        self.processType = processType
    }

    var limits: ResourceLimits {
        ResourceLimits(memoryBytes: memory, memoryReservationBytes: memoryReservation, nanoCPUs: nanoCpus, pids: pids)
    }

    var isEmpty: Bool { memory == nil && memoryReservation == nil && nanoCpus == nil && pids == nil }

    mutating func apply(_ changes: ResourceService.Changes) {
        func value(_ change: ResourceService.Change?, _ old: Int64?) -> Int64? {
            switch change {
            case .none: old
            case .clear: nil
            case .set(let new): new
            }
        }
        memory = value(changes.memory, memory)
        memoryReservation = value(changes.memoryReservation, memoryReservation)
        nanoCpus = value(changes.nanoCPUs, nanoCpus)
        pids = value(changes.pids, pids)
    }
}

/// Memory sizes, CPU counts and pids as users and slipway.toml write them.
public enum ResourceQuantity {
    /// Docker's smallest memory limit.
    public static let minimumMemory: Int64 = 6 << 20

    /// `512m`, `1g`, `65536k`, `104857600b` (case-insensitive, `mb` as `m`); a bare number
    /// is MiB, as Dokku reads it. nil for anything else, or a size past 2^63 bytes.
    public static func memory(_ text: String) -> Int64? {
        var digits = Substring(text.lowercased())
        if digits.count > 2, ["kb", "mb", "gb"].contains(String(digits.suffix(2))) { digits = digits.dropLast() }
        var multiplier: Int64 = 1 << 20
        if let unit = digits.last, let shift = ["b": 0, "k": 10, "m": 20, "g": 30][unit] {
            multiplier = 1 << Int64(shift)
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int64(digits) else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// A memory value for `--memory` and the config: refused below Docker's minimum.
    public static func parseMemory(_ text: String, option: String) throws -> Int64 {
        guard let bytes = memory(text), bytes > 0 else {
            throw UserFacingError.invalid("\(option) \(quoted(text)) is not a memory size; write a whole number with b, k, m or g, such as 256m or 1g (a bare number is MiB)")
        }
        guard bytes >= minimumMemory else {
            throw UserFacingError.invalid("\(option) \(quoted(text)) is less than the smallest limit the engine takes (6m)")
        }
        return bytes
    }

    /// `1`, `0.5`, `1.25` CPUs (at most two decimals) as billionths of a CPU.
    public static func parseCPUs(_ text: String, option: String) throws -> Int64 {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0], fraction = parts.count > 1 ? parts[1] : ""
        guard !whole.isEmpty, whole.count <= 4, fraction.count <= 2, (parts.count == 1 || !fraction.isEmpty),
              (whole + fraction).allSatisfy({ $0.isASCII && $0.isNumber }),
              let units = Int64(whole), let hundredths = Int64(fraction.padding(toLength: 2, withPad: "0", startingAt: 0)) else {
            throw UserFacingError.invalid("\(option) \(quoted(text)) is not a number of CPUs; write e.g. 1, 0.5 or 1.25")
        }
        let nano = units * 1_000_000_000 + hundredths * 10_000_000
        guard nano > 0 else { throw UserFacingError.invalid("\(option) must be more than 0 CPUs; the smallest is 0.01") }
        return nano
    }

    /// A whole number of processes, at least 1 (the engine reads 0 and -1 as "no limit").
    public static func parsePids(_ text: String, option: String) throws -> Int64 {
        guard text.count <= 9, text.allSatisfy({ $0.isASCII && $0.isNumber }), let pids = Int64(text), pids >= 1 else {
            throw UserFacingError.invalid("\(option) \(quoted(text)) is not a number of processes; write a whole number of at least 1, such as 256")
        }
        return pids
    }

    /// `512m`, `1g`, `1536m`, `300k`: the largest unit that divides exactly.
    public static func formatMemory(_ bytes: Int64) -> String {
        for (unit, shift) in [("g", 30), ("m", 20), ("k", 10)] where bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)b"
    }

    /// `512 MiB`, `1 GiB`, for sentences.
    public static func describeMemory(_ bytes: Int64) -> String {
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes % (1 << shift) == 0 {
            return "\(bytes >> shift) \(unit)"
        }
        return "\(bytes) bytes"
    }

    /// `1`, `0.5`, `1.25`.
    public static func formatCPUs(_ nano: Int64) -> String {
        let hundredths = nano / 10_000_000
        let fraction = hundredths % 100
        return fraction == 0 ? "\(hundredths / 100)" : String(format: "%lld.%02lld", hundredths / 100, fraction).replacingOccurrences(of: #"0$"#, with: "", options: .regularExpression)
    }
}

extension Settings {
    /// Reads one of the `default_*` / `max_*` resource keys.
    mutating func setResource(_ key: String, _ value: String?, source: String) throws {
        let option = "config file \(source): \(key)"
        guard let value else { throw UserFacingError.invalid("\(option) must be a value such as \(key.hasSuffix("memory") ? "\"512m\"" : key.hasSuffix("cpus") ? "\"1\"" : "512")") }
        switch key {
        case "default_memory": defaultLimits.memoryBytes = try ResourceQuantity.parseMemory(value, option: option)
        case "max_memory": maxLimits.memoryBytes = try ResourceQuantity.parseMemory(value, option: option)
        case "default_cpus": defaultLimits.nanoCPUs = try ResourceQuantity.parseCPUs(value, option: option)
        case "max_cpus": maxLimits.nanoCPUs = try ResourceQuantity.parseCPUs(value, option: option)
        case "default_pids": defaultLimits.pids = try ResourceQuantity.parsePids(value, option: option)
        default: maxLimits.pids = try ResourceQuantity.parsePids(value, option: option)
        }
    }

    /// Defaults above the caps are a mistake in the file, not something to clamp quietly.
    func validateResources(source: String) throws {
        let pairs: [(String, Int64?, Int64?, (Int64) -> String)] = [
            ("memory", defaultLimits.memoryBytes, maxLimits.memoryBytes, ResourceQuantity.formatMemory),
            ("cpus", defaultLimits.nanoCPUs, maxLimits.nanoCPUs, ResourceQuantity.formatCPUs),
            ("pids", defaultLimits.pids, maxLimits.pids, String.init),
        ]
        for (name, value, cap, format) in pairs {
            if let value, let cap, value > cap {
                throw UserFacingError.invalid("config file \(source): default_\(name) (\(format(value))) is more than max_\(name) (\(format(cap))); lower it or raise max_\(name)")
            }
        }
    }
}

/// Turns "the kernel killed it" into a message naming the memory limit and the fix.
public enum OutOfMemory {
    /// Why a container ended, when memory is the likely cause: the engine says it was
    /// OOM-killed, or it died of SIGKILL (status 137) under a memory limit. (podman 4.3
    /// on cgroups v1 never sets OOMKilled, measured: only the status tells.) Reads
    /// "was killed: it used more than its 64 MiB memory limit; raise it with ...".
    public static func reason(exitCode: Int32, oomKilled: Bool, memoryLimit: Int64?, app: AppName, processType: String?,
                              settings: Settings) -> String? {
        guard oomKilled || (exitCode == 137 && memoryLimit != nil) else { return nil }
        guard let limit = memoryLimit else { return "was killed: it ran out of memory" }
        let verdict = oomKilled ? "was killed: it used more than its" : "was killed (status 137): most likely it used more than its"
        return "\(verdict) \(ResourceQuantity.describeMemory(limit)) memory limit; \(fix(limit, app: app, processType: processType, settings: settings))"
    }

    /// The same from an inspected container, its app and type read from Slipway's labels.
    public static func reason(_ details: ContainerDetails, settings: Settings) -> String? {
        let labels = details.slipway
        guard let app = try? AppName(labels.app) else { return nil }
        let type: String? = switch labels.kind {
        case .process: labels.type
        case .run, .detached: ResourceService.runType
        default: nil
        }
        return reason(exitCode: details.exitCode, oomKilled: details.oomKilled, memoryLimit: details.memoryLimit,
                      app: app, processType: type, settings: settings)
    }

    /// A failed build's message, when a step died of SIGKILL under a memory limit
    /// (podman: "building at STEP \"RUN ...\": while running runtime: exit status 137";
    /// Docker: "... returned a non-zero code: 137").
    public static func buildMessage(_ message: String, memoryLimit: Int64?, app: AppName, settings: Settings) -> String? {
        guard let limit = memoryLimit, message.contains("exit status 137") || message.contains("non-zero code: 137") else { return nil }
        var step = ""
        if let start = message.range(of: "STEP \""), let end = message.range(of: "\": ", range: start.upperBound..<message.endIndex) {
            step = " at STEP " + quoted(String(message[start.upperBound..<end.lowerBound]), limit: 120)
        }
        return "the build was killed\(step): it used more than its \(ResourceQuantity.describeMemory(limit)) memory limit; \(fix(limit, app: app, processType: ResourceService.buildType, settings: settings))"
    }

    /// "raise it with resource:limit --memory 128m --process-type run web", or, at the cap, whom to ask.
    static func fix(_ limit: Int64, app: AppName, processType: String?, settings: Settings) -> String {
        let cap = settings.maxLimits.memoryBytes ?? .max
        guard limit < cap else { return "that is the most this server allows (max_memory); ask an admin" }
        let next = min(limit.multipliedReportingOverflow(by: 2).overflow ? cap : limit * 2, cap)
        return "raise it with resource:limit --memory \(ResourceQuantity.formatMemory(next))\(processType.map { " --process-type \($0)" } ?? "") \(app)"
    }
}

extension Core {
    /// `resource:*` and the limits every container creation point applies.
    public var resources: ResourceService { ResourceService(store: store, settings: settings) }
}

extension DeployService {
    var resources: ResourceService { ResourceService(store: store, settings: settings) }
}

extension RunService {
    var resources: ResourceService { ResourceService(store: config.store, settings: settings) }
}

extension BuildService {
    var resources: ResourceService { ResourceService(store: store, settings: settings) }
}
