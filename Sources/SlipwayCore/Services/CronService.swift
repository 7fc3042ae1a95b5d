import Foundation
import GRDB

/// One run of a cron entry (scheduled or `cron:run`), a row of `cron_runs`.
public struct CronRun: SlipwayRecord, HasRowID, Equatable {
    public static let databaseTableName = "cron_runs"
    public var id: Int64?
    public var appId: Int64
    public var entryId: String
    public var command: String
    /// `schedule` or `manual` (cron:run).
    public var trigger: String
    /// The channel that started it: `cron` (the scheduler), `ssh` or `local`.
    public var origin: String
    public var status: Status
    public var exitCode: Int32?
    public var container: String?
    public var outputId: Int64?
    public var detail: String?
    /// The minute it was due (scheduled runs).
    public var scheduledFor: Date?
    public var startedAt: Date
    public var finishedAt: Date?

    public enum Status: String, Codable, Sendable, DatabaseValueConvertible {
        case running, succeeded, failed, skipped, stopped
        case timedOut = "timed out"
        /// The server stopped while it ran.
        case interrupted
    }
}

/// A suspension of one entry, or (`entryId` `*`) of all of an app's entries.
struct CronSuspension: SlipwayRecord, Equatable {
    static let databaseTableName = "cron_suspensions"
    var appId: Int64
    var entryId: String
    var suspendedBy: String
    var suspendedAt: Date
}

/// Scheduled tasks from app.json `cron`: the entries of each app's current release,
/// their runs (`run`'s ephemeral container, kind `.cron`, with stored output), and
/// suspensions. The scheduler (`CronScheduler`) calls `due(at:)` and `start` each minute.
public struct CronService: Sendable {
    let store: Store
    let settings: Settings
    let apps: AppService
    let deploys: DeployService
    let runs: RunService
    let outputs: OutputService
    let registry: CronRunRegistry

    /// What `cron:list` shows of one entry.
    public struct Listing: Sendable, Codable, Equatable {
        public var id: String
        public var schedule: String
        public var command: String
        public var concurrencyPolicy: String
        public var timeout: Int
        public var suspended: Bool
        /// The next run in `timezone` (nil while suspended).
        public var nextRun: Date?
        public var timezone: String
        public var lastRun: Date?
        public var lastStatus: String?
    }

    /// `cron_timezone` (its name was checked when the settings were read).
    var timeZone: TimeZone { TimeZone(identifier: settings.cronTimezone) ?? TimeZone(secondsFromGMT: 0)! }

    /// The cron entries of the app's current release (none before its first deploy).
    public func entries(of app: AppName) throws -> [CronEntry] {
        guard let record = try apps.find(app) else { throw UserFacingError.notFound("app \(app) does not exist") }
        return try deploys.currentRelease(of: record)?.snapshot.plan.cron ?? []
    }

    /// `cron:list`: each entry with its next and last run.
    public func list(_ app: AppName, now: Date = Date()) throws -> [Listing] {
        let entries = try entries(of: app)
        let zone = timeZone
        return try store.read { db in
            let appID = try AppService.id(of: app, db)
            let suspended = Set(try CronSuspension.filter(Column("app_id") == appID).fetchAll(db).map(\.entryId))
            return try entries.map { entry in
                let last = try CronRun.filter(Column("app_id") == appID && Column("entry_id") == entry.id)
                    .order(Column("id").desc).fetchOne(db)
                let isSuspended = suspended.contains("*") || suspended.contains(entry.id)
                return Listing(id: entry.id, schedule: entry.schedule, command: entry.command, concurrencyPolicy: entry.concurrencyPolicy.rawValue,
                               timeout: entry.timeout ?? settings.cronTimeout, suspended: isSuspended,
                               nextRun: isSuspended ? nil : (try? entry.parsedSchedule)?.next(after: now, in: zone),
                               timezone: settings.cronTimezone, lastRun: last?.startedAt, lastStatus: last?.status.rawValue)
            }
        }
    }

    /// The entry `id` of the app's current release, or a refusal naming `cron:list`.
    func entry(_ app: AppName, id: String) throws -> CronEntry {
        guard let entry = try entries(of: app).first(where: { $0.id == id }) else {
            throw UserFacingError.notFound("\(app) has no cron entry \(quoted(id)); cron:list \(app) shows them")
        }
        return entry
    }

    // MARK: Suspend and resume

    /// `cron:suspend APP [ID]`: no scheduled run starts until `resume` (cron:run still does).
    public func suspend(_ app: AppName, id: String?, by caller: Caller) throws {
        if let id { _ = try entry(app, id: id) }
        try store.write { db in
            let appID = try AppService.id(of: app, db)
            let key = id ?? "*"
            guard try CronSuspension.filter(Column("app_id") == appID && Column("entry_id") == key).fetchCount(db) == 0 else {
                throw UserFacingError.conflict(id.map { "the cron entry \($0) of \(app) is already suspended" } ?? "the cron entries of \(app) are already suspended")
            }
            var row = CronSuspension(appId: appID, entryId: key, suspendedBy: caller.principal.name, suspendedAt: Date())
            try row.insert(db)
            try db.audit(caller, app: app.rawValue, detail: id.map { "suspended cron entry \($0)" } ?? "suspended every cron entry")
        }
    }

    /// `cron:resume APP [ID]`: without an id, every suspension of the app ends.
    public func resume(_ app: AppName, id: String?, by caller: Caller) throws {
        try store.write { db in
            let appID = try AppService.id(of: app, db)
            let rows = CronSuspension.filter(Column("app_id") == appID)
            if let id {
                if try rows.filter(Column("entry_id") == "*").fetchCount(db) > 0 {
                    throw UserFacingError.conflict("every cron entry of \(app) is suspended; cron:resume \(app) resumes them all")
                }
                guard try rows.filter(Column("entry_id") == id).deleteAll(db) > 0 else {
                    throw UserFacingError.conflict("the cron entry \(id) of \(app) is not suspended; cron:list \(app) shows which are")
                }
            } else {
                guard try rows.deleteAll(db) > 0 else { throw UserFacingError.conflict("no cron entry of \(app) is suspended") }
            }
            try db.audit(caller, app: app.rawValue, detail: id.map { "resumed cron entry \($0)" } ?? "resumed every cron entry")
        }
    }

    // MARK: Runs

    /// A run's end, as `cron:run` reports it.
    public struct Outcome: Sendable {
        public var run: CronRun
    }

    /// `cron:run APP ID`: the entry now, attached to the caller like `run` (its output
    /// also stored); returns the run as it ended. `detach`: started in the background
    /// (see `runDetached`), returned as it started.
    public func runNow(_ app: AppName, id: String, detach: Bool = false, by caller: Caller, io: RunService.IO) throws -> CronRun {
        if detach {
            let runID = try runDetached(app, id: id, by: caller)
            return try store.read { db in try CronRun.fetchOne(db, key: runID) } ?? { throw UserFacingError.notFound("the cron run \(runID) is gone") }()
        }
        let entry = try entry(app, id: id)
        return try execute(app, entry: entry, trigger: "manual", scheduledFor: nil, by: caller, io: io)
    }

    /// `cron:run APP ID --detach`: the same run on a thread of this process, which must
    /// be the server (a local CLI would end it as it exits). Returns the run's row id.
    func runDetached(_ app: AppName, id: String, by caller: Caller) throws -> Int64 {
        guard caller.principal.channel != "local" else {
            throw UserFacingError.invalid("cron:run --detach needs the server: run it over ssh, or without --detach here")
        }
        let entry = try entry(app, id: id)
        let started = CronStartSignal()
        Thread.detachNewThread {
            do {
                _ = try execute(app, entry: entry, trigger: "manual", scheduledFor: nil, by: caller, io: nil, signal: started)
            } catch {
                started.failed(error)
            }
        }
        switch started.wait(seconds: 30) {
        case .success(let id)?: return id
        case .failure(let error)?: throw error
        case nil: throw UserFacingError(.unavailable, "the cron run of \(entry.id) did not start within 30 s; cron:list \(app) shows its status")
        }
    }

    /// The entries due at `minute` (a whole minute), with their apps: of every app's
    /// current release, not suspended, of apps on this host (the cluster's CronJobs run
    /// an app set to kubernetes). Only this minute counts: runs missed while the
    /// server was down are not replayed.
    public func due(at minute: Date) throws -> [(app: AppName, entry: CronEntry)] {
        let zone = timeZone
        let candidates = try store.read { db -> [(AppName, Int64, Int64)] in
            // An app set to kubernetes has its entries as CronJobs: the cluster runs them, never this host.
            try AppService.all(db).filter { try SchedulerService.scheduler(of: $0, db) == .local }
                .compactMap { app in app.currentReleaseId.map { (app.name, app.id!, $0) } }
        }
        var due: [(AppName, CronEntry)] = []
        for (app, appID, releaseID) in candidates {
            let loaded: (String, Set<String>)? = try store.read { db in
                guard let snapshot = try String.fetchOne(db, sql: "SELECT snapshot FROM releases WHERE id = ?", arguments: [releaseID]) else { return nil }
                let suspended = Set(try String.fetchAll(db, sql: "SELECT entry_id FROM cron_suspensions WHERE app_id = ?", arguments: [appID]))
                return (snapshot, suspended)
            }
            guard let (snapshot, suspended) = loaded, !suspended.contains("*"),
                  let entries = (try? DeployService.decode(snapshot))?.plan.cron else { continue }
            for entry in entries where !suspended.contains(entry.id) {
                guard let schedule = try? entry.parsedSchedule else { continue }
                if schedule.next(after: minute.addingTimeInterval(-60), in: zone) == minute { due.append((app, entry)) }
            }
        }
        return due
    }

    /// The caller the scheduler's runs are recorded under (actor root@host, via cron).
    public static let scheduler = Caller(principal: Principal(identity: .localAdmin, channel: "cron"), command: "cron")

    /// Starts one due entry on its own thread, after its concurrency policy: `forbid`
    /// records a skipped run while another runs, `replace` stops the running ones first.
    public func startScheduled(_ app: AppName, entry: CronEntry, minute: Date) {
        Thread.detachNewThread {
            _ = try? execute(app, entry: entry, trigger: "schedule", scheduledFor: minute, by: Self.scheduler, io: nil)
        }
    }

    /// One run through `run`'s path; `io` nil: nobody attached (scheduled, detached).
    func execute(_ app: AppName, entry: CronEntry, trigger: String, scheduledFor: Date?, by caller: Caller,
                 io attached: RunService.IO?, signal: CronStartSignal? = nil) throws -> CronRun {
        let appID = try store.read { db in try AppService.id(of: app, db) }
        // The policy and the new row in one transaction, so two starts never both see "none running".
        var running: [CronRun] = []
        var run = CronRun(appId: appID, entryId: entry.id, command: entry.command, trigger: trigger, origin: caller.principal.channel,
                          status: .running, scheduledFor: scheduledFor, startedAt: Date())
        try store.write { db in
            running = try CronRun.filter(Column("app_id") == appID && Column("entry_id") == entry.id && Column("status") == CronRun.Status.running.rawValue).fetchAll(db)
            if entry.concurrencyPolicy == .forbid, let busy = running.first {
                run.status = .skipped
                run.finishedAt = run.startedAt
                run.detail = "the run started \(ISO8601DateFormatter().string(from: busy.startedAt)) still runs (concurrency_policy forbid)"
                try run.insert(db)
                try Self.prune(appID: appID, entryID: entry.id, db)
                try db.audit(caller, app: app.rawValue, outcome: "skipped", detail: "cron \(entry.id) skipped: \(run.detail!)")
                return
            }
            if entry.concurrencyPolicy == .replace {
                for var old in running {
                    old.status = .stopped
                    old.detail = "replaced by a newer run (concurrency_policy replace)"
                    old.finishedAt = Date()
                    try old.update(db)
                }
            }
            try run.insert(db)
            try db.audit(caller, app: app.rawValue, detail: "cron \(entry.id) started (\(trigger)): \(entry.command)")
            try Self.prune(appID: appID, entryID: entry.id, db)
        }
        signal?.started(run.id!)
        if run.status == .skipped { return run }
        if entry.concurrencyPolicy == .replace { stop(running) }

        let recording = try? outputs.start(app: app, kind: .cron, ref: entry.id)
        let lines = LineSplitter { line in recording?.write(line) }
        let deadline = Date().addingTimeInterval(TimeInterval(entry.timeout ?? settings.cronTimeout))
        let token = registry.add(run.id!)
        defer { registry.remove(run.id!) }
        let noInput: @Sendable (Int) throws -> Data = { _ in Data() }
        let io = RunService.IO(
            readStdin: attached?.readStdin ?? noInput,
            stdout: { data in lines.feed(data); return attached?.stdout(data) ?? true },
            stderr: { data in lines.feed(data); return attached?.stderr(data) ?? true },
            notice: { text in lines.flush(); recording?.writeLines(text); attached?.notice(text) },
            isCancelled: { token.isCancelled || Date() > deadline || (attached?.isCancelled() ?? false) },
            terminal: nil)
        let status: CronRun.Status
        var exit: Int32?
        var detail: String?
        do {
            let release = try deploys.currentRelease(of: try apps.find(app) ?? { throw UserFacingError.notFound("app \(app) does not exist") }())
            guard let release else { throw UserFacingError.notFound("\(app) has no current release") }
            let started: (String) throws -> Void = { name in
                try store.write { db in try db.execute(sql: "UPDATE cron_runs SET container = ?, output_id = ? WHERE id = ?",
                                                       arguments: [name, recording?.record.id, run.id]) }
            }
            let code: Int32
            if let target = try deploys.clusterTarget(app) {
                // On the cluster: a Job of the entry's CronJob template; `container` records the Job's name.
                let stdout = io.stdout
                code = try target.cluster.runCron(target.state, entryID: entry.id, output: { _ = stdout(Data(($0 + "\n").utf8)) },
                                                  isCancelled: io.isCancelled, started: started)
            } else {
                code = try runs.run(app, command: entry.arguments, by: caller, io: io, kind: .cron,
                                    image: (release.release.image, appID), started: started)
            }
            lines.flush()
            if token.isCancelled {
                (status, detail) = (token.reason == .shutdown ? .interrupted : .stopped, token.reason == .shutdown ? "the server stopped" : "replaced by a newer run")
            } else if Date() > deadline {
                status = .timedOut
                detail = "stopped after \(entry.timeout ?? settings.cronTimeout) s (\(entry.timeout == nil ? "cron_timeout" : "the entry's timeout"))"
            } else if attached?.isCancelled() == true {
                (status, detail) = (.stopped, "the caller left")
            } else {
                exit = code
                status = code == 0 ? .succeeded : .failed
                detail = code == 0 ? nil : "exited with status \(code)"
            }
        } catch {
            lines.flush()
            status = .failed
            detail = (error as? UserFacingError)?.message ?? "\(error)"
            recording?.write("error: \(detail!)")
        }
        if let detail, status != .succeeded && status != .failed { recording?.write("-----> \(detail)") }
        recording?.finish(Self.outputStatus(status))
        run.status = status
        run.exitCode = exit
        run.detail = detail
        run.finishedAt = Date()
        try store.write { [run] db in
            // A run marked stopped (replaced) or interrupted meanwhile keeps that status.
            try db.execute(sql: "UPDATE cron_runs SET status = ?, exit_code = ?, detail = ?, finished_at = ? WHERE id = ? AND status = 'running'",
                           arguments: [run.status.rawValue, run.exitCode, run.detail, run.finishedAt, run.id])
            let outcome = status == .succeeded ? "ok" : status.rawValue
            try db.audit(caller, app: app.rawValue, outcome: outcome, detail: "cron \(entry.id) \(status.rawValue)\(detail.map { ": \($0)" } ?? "")")
        }
        return try store.read { db in try CronRun.fetchOne(db, key: run.id) } ?? run
    }

    /// Rows kept per entry: an every-minute entry would otherwise add 1440 a day.
    static let runsToKeep = 100

    /// Drops the entry's oldest finished runs past `runsToKeep` (their events stay in the audit log).
    static func prune(appID: Int64, entryID: String, _ db: Database) throws {
        try db.execute(sql: """
            DELETE FROM cron_runs WHERE app_id = ? AND entry_id = ? AND status != 'running' AND id NOT IN
              (SELECT id FROM cron_runs WHERE app_id = ? AND entry_id = ? ORDER BY id DESC LIMIT ?)
            """, arguments: [appID, entryID, appID, entryID, runsToKeep])
    }

    static func outputStatus(_ status: CronRun.Status) -> OutputStatus {
        switch status {
        case .running: .running
        case .succeeded: .succeeded
        case .failed, .timedOut: .failed
        case .skipped: .skipped
        case .stopped: .stopped
        case .interrupted: .interrupted
        }
    }

    /// Ends runs another started: this process's through their token, any other
    /// process's (a local `cron:run`) by removing its container.
    private func stop(_ old: [CronRun]) {
        for run in old {
            if registry.cancel(run.id!, reason: .replaced) { continue }
            guard let name = run.container, let containers = try? runs.containers,
                  let found = try? containers.list(app: nil, kind: .cron).first(where: { $0.name == name }) else { continue }
            try? containers.stop([found.id], remove: true)
        }
    }

    /// `cron:logs`: the stored output of the entry's latest run (or of the run given).
    public func latestOutput(_ app: AppName, id: String) throws -> OutputRecord {
        guard let record = try outputs.records(of: app, kind: .cron, ref: id).first else {
            let known = try entries(of: app).contains { $0.id == id }
            throw UserFacingError.notFound(known ? "the cron entry \(id) of \(app) has no stored output yet (cron:run \(app) \(id) runs it now)"
                                                 : "\(app) has no cron entry \(quoted(id)); cron:list \(app) shows them")
        }
        return record
    }

    /// The entry's runs, newest first (for cron:list's last run and tests).
    public func runs(of app: AppName, id: String) throws -> [CronRun] {
        try store.read { db in
            let appID = try AppService.id(of: app, db)
            return try CronRun.filter(Column("app_id") == appID && Column("entry_id") == id).order(Column("id").desc).fetchAll(db)
        }
    }

    // MARK: Server lifecycle

    /// As `slipway serve` starts: runs the previous server left `running` are marked
    /// interrupted and their containers (this instance's scheduled and ssh runs) go.
    /// Returns one line per repair.
    public func endInterruptedRuns() throws -> [String] {
        var repairs: [String] = []
        let marked = try store.write { db in
            let left = try CronRun.filter(Column("status") == CronRun.Status.running.rawValue && Column("origin") != "local").fetchAll(db)
            for var run in left {
                run.status = .interrupted
                run.detail = "the server stopped"
                run.finishedAt = Date()
                try run.update(db)
                // Its end is audited like every other run's (the app may be gone: then no event).
                if let app = try AppService.find(id: run.appId, db)?.name {
                    try db.audit(Self.scheduler, app: app.rawValue, outcome: "interrupted", detail: "cron \(run.entryId) interrupted: the server stopped during the run")
                }
            }
            return left.count
        }
        if marked > 0 { repairs.append("marked \(marked) cron run\(marked == 1 ? "" : "s") interrupted") }
        let containers = try runs.containers
        let left = try containers.list(app: nil, kind: .cron).filter { $0.slipway.origin != "local" }
        try containers.remove(left.map(\.id))
        if !left.isEmpty { repairs.append("removed \(left.count) cron container\(left.count == 1 ? "" : "s") of interrupted runs") }
        return repairs
    }

    /// As the server stops: this process's runs end (their containers go, they are
    /// marked interrupted); waits up to `grace` for them.
    public func interruptAll(grace: TimeInterval) {
        registry.cancelAll(reason: .shutdown)
        let until = Date().addingTimeInterval(grace)
        while !registry.isEmpty && Date() < until { Thread.sleep(forTimeInterval: 0.1) }
    }
}

/// This process's running cron runs, so `replace` and shutdown can end them through
/// `run`'s own cancellation (the container is removed by the run itself).
public final class CronRunRegistry: @unchecked Sendable {
    public enum Reason: Sendable { case replaced, shutdown }
    final class Token: @unchecked Sendable {
        private let lock = NSLock()
        private var why: Reason?
        var isCancelled: Bool { lock.withLock { why != nil } }
        var reason: Reason? { lock.withLock { why } }
        func cancel(_ reason: Reason) { lock.withLock { if why == nil { why = reason } } }
    }
    private let lock = NSLock()
    private var tokens: [Int64: Token] = [:]

    public init() {}

    func add(_ id: Int64) -> Token { lock.withLock { let token = Token(); tokens[id] = token; return token } }
    func remove(_ id: Int64) { lock.withLock { _ = tokens.removeValue(forKey: id) } }
    /// Whether the run is this process's (and is now cancelled).
    func cancel(_ id: Int64, reason: Reason) -> Bool { lock.withLock { tokens[id] }.map { $0.cancel(reason); return true } ?? false }
    func cancelAll(reason: Reason) { lock.withLock { tokens.values.forEach { $0.cancel(reason) } } }
    var isEmpty: Bool { lock.withLock { tokens.isEmpty } }
}

/// Hands a detached run's row id back to the command that started it.
final class CronStartSignal: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<Int64, Error>?
    func started(_ id: Int64) { condition.withLock { if result == nil { result = .success(id) }; condition.broadcast() } }
    func failed(_ error: Error) { condition.withLock { if result == nil { result = .failure(error) }; condition.broadcast() } }
    func wait(seconds: TimeInterval) -> Result<Int64, Error>? {
        condition.withLock {
            let until = Date().addingTimeInterval(seconds)
            while result == nil && condition.wait(until: until) {}
            return result
        }
    }
}

extension CronService {
    /// `cron:logs APP ID [-n N] [-t]`: the last `lines` lines of the entry's latest
    /// stored run; with `follow`, what it adds until it ends (or `isCancelled`).
    public func logs(_ app: AppName, id: String, lines: Int, follow: Bool, output: @escaping (String) -> Void,
                     isCancelled: @escaping @Sendable () -> Bool) throws {
        let record = try latestOutput(app, id: id)
        let text = try outputs.text(of: record)
        var shown = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if shown.last == "" { shown.removeLast() }
        for line in shown.suffix(lines) { output(line) }
        guard follow, record.status == .running else { return }
        // The rest: follow from the start and drop what was already shown.
        var skip = text.utf8.count
        try outputs.follow(record, isCancelled: isCancelled) { chunk in
            let bytes = Array(chunk.utf8)
            if skip >= bytes.count { skip -= bytes.count; return }
            let rest = String(decoding: bytes[skip...], as: UTF8.self)
            skip = 0
            for line in rest.split(separator: "\n", omittingEmptySubsequences: true) { output(String(line)) }
        }
    }
}
