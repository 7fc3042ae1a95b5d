import Foundation
import GRDB

extension DataPaths {
    /// A service's managed backups: `services/<id>/backups/<backup id>.<dump|rdb>`.
    public func serviceBackups(_ id: Int64) -> String { "\(servicesRoot)/\(id)/backups" }
}

/// One complete backup of a service, as `backups` lists it.
public struct DatastoreBackup: Sendable, Codable, Equatable {
    /// The UTC time it was started, `yyyyMMdd-HHmmss`: its name and its order.
    public let id: String
    public let createdAt: Date
    public let bytes: Int64
}

/// A service's backup schedule (`backup-schedule`), one per service.
public struct DatastoreBackupSchedule: SlipwayRecord, Equatable {
    public static let databaseTableName = "service_backup_schedules"
    public var serviceId: Int64
    /// Five cron fields or a shorthand (`CronSchedule`), read in `cron_timezone`.
    public var schedule: String
    /// After each backup, the oldest beyond this many are removed.
    public var keep: Int
    public var createdAt: Date
}

/// Backups of backing services (`<kind>:backup`, `backups`, `restore`, `backup-schedule`).
///
/// - A backup is the service's own dump (Postgres: pg_dump's custom format; Redis: an
///   RDB snapshot the server forks for, as BGSAVE does) streamed out of the running
///   container through the engine's exec API into `<data-dir>/services/<id>/backups`.
///   It is written to `.<id>.partial` and renamed to `<id>.dump`/`<id>.rdb` only once
///   the dump ended with status 0, so a listed backup is always whole; a server killed
///   mid-backup leaves the temp file, which the next start removes
///   (`removePartialBackups`).
/// - Restore keeps linked apps running: Postgres restores in one transaction (the
///   apps' writes to the restored tables wait on its locks, then go on); Redis is
///   stopped, its append-only files replaced by the backup, and started again (clients
///   reconnect after a few seconds).
/// - Scheduled backups are started by the server's cron minute loop (`dueBackups`).
extension DatastoreService {
    /// The caller scheduled backups are audited under.
    public static let backupScheduler = Caller(principal: Principal(identity: .localAdmin, channel: "cron"), command: "backup-schedule")

    static let backupIDPattern = #"^[0-9]{8}-[0-9]{6}$"#

    static func fileExtension(_ kind: DatastoreKind) -> String {
        switch kind {
        case .postgres: "dump"
        case .redis: "rdb"
        }
    }

    /// `yyyyMMdd-HHmmss` in UTC: a backup's id and the time it was started.
    private static func backupIDFormatter() -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter
    }

    static func backupID(for date: Date) -> String { backupIDFormatter().string(from: date) }

    static func date(ofBackup id: String) -> Date? { backupIDFormatter().date(from: id) }

    /// The dump command run in the service's container; its stdout is the backup.
    /// Both reach the server over the container's own local connection, and Redis's
    /// password goes in the exec's environment (REDISCLI_AUTH), never a command line.
    static func backupCommand(_ service: Datastore) -> (command: [String], environment: [String: String]) {
        switch service.kind {
        case .postgres:
            return sessionCommand(.export, service, tty: false)
        case .redis:
            let script = #"f=$(mktemp) && trap 'rm -f "$f"' EXIT && redis-cli --no-auth-warning --rdb "$f" >&2 && cat "$f""#
            return (["sh", "-c", script], ["REDISCLI_AUTH": service.password])
        }
    }

    // MARK: Listing

    /// The service's complete backups, oldest first (temp files are never listed).
    public func backups(_ kind: DatastoreKind, _ name: DatastoreName) throws -> (backups: [DatastoreBackup], schedule: DatastoreBackupSchedule?) {
        let (service, schedule) = try store.read { db in
            let service = try Self.existing(kind, name, db)
            return (service, try DatastoreBackupSchedule.fetchOne(db, key: ["service_id": service.id]))
        }
        return (try completeBackups(of: service), schedule)
    }

    func completeBackups(of service: Datastore) throws -> [DatastoreBackup] {
        let directory = paths.serviceBackups(service.id!), suffix = "." + Self.fileExtension(service.kind)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { file -> DatastoreBackup? in
            guard file.hasSuffix(suffix) else { return nil }
            let id = String(file.dropLast(suffix.count))
            guard id.range(of: Self.backupIDPattern, options: .regularExpression) != nil, let date = Self.date(ofBackup: id) else { return nil }
            let size = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + file)[.size] as? Int64) ?? 0
            return DatastoreBackup(id: id, createdAt: date, bytes: size)
        }.sorted { $0.id < $1.id }
    }

    // MARK: Backing up

    /// Makes a backup now; returns it. After it, backups beyond the schedule's `keep`
    /// are removed, oldest first. Audited with its id and size.
    @discardableResult
    public func backup(_ kind: DatastoreKind, _ name: DatastoreName, by caller: Caller, now: Date = Date()) throws -> DatastoreBackup {
        let service = try store.read { db in try Self.existing(kind, name, db) }
        let containerID = try containerID(kind, name)
        let directory = paths.serviceBackups(service.id!)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let id = Self.backupID(for: now)
        let final = "\(directory)/\(id).\(Self.fileExtension(kind))", partial = "\(directory)/.\(id).partial"
        guard !FileManager.default.fileExists(atPath: final), FileManager.default.createFile(atPath: partial, contents: nil, attributes: [.posixPermissions: 0o600]),
              let file = FileHandle(forWritingAtPath: partial) else {
            throw UserFacingError.conflict("a backup of \(kind.namespace) service \(name) is already being made this second; try again in a moment")
        }
        do {
            let (command, environment) = Self.backupCommand(service)
            let (status, errors) = try execInService(containerID, command, environment: environment, input: nil, output: file)
            try file.synchronize()
            try file.close()
            guard status == 0 else {
                throw UserFacingError(.unavailable, "the backup of \(kind.namespace) service \(name) failed (status \(status)): \(errors.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            // Whole or not there: only a finished dump gets its listed name.
            guard rename(partial, final) == 0 else { throw UserFacingError(.unavailable, "cannot name the backup \(final) (errno \(errno))") }
        } catch {
            try? file.close()
            try? FileManager.default.removeItem(atPath: partial)
            _ = try? store.write { db in try db.audit(caller, app: nil, outcome: "failed", detail: "backup of \(kind.namespace) service \(name) failed: \(error)") }
            throw error
        }
        let removed = try pruneBackups(service)
        let made = try completeBackups(of: service).first { $0.id == id } ?? DatastoreBackup(id: id, createdAt: now, bytes: 0)
        try store.write { db in
            try db.audit(caller, app: nil, detail: "backed up \(kind.namespace) service \(name) as \(id) (\(made.bytes) bytes)"
                + (removed.isEmpty ? "" : "; removed \(removed.joined(separator: ", ")) (keep)"))
        }
        return made
    }

    /// Removes the oldest backups beyond the schedule's `keep`; returns their ids.
    private func pruneBackups(_ service: Datastore) throws -> [String] {
        guard let keep = try store.read({ db in try DatastoreBackupSchedule.fetchOne(db, key: ["service_id": service.id])?.keep }) else { return [] }
        let all = try completeBackups(of: service)
        let old = all.dropLast(keep)
        for backup in old {
            try FileManager.default.removeItem(atPath: "\(paths.serviceBackups(service.id!))/\(backup.id).\(Self.fileExtension(service.kind))")
        }
        return old.map(\.id)
    }

    // MARK: Restoring

    /// Replaces the service's data with backup `id` (see the type's notes for what
    /// linked apps see meanwhile). Audited.
    public func restore(_ kind: DatastoreKind, _ name: DatastoreName, backup id: String, by caller: Caller) throws {
        let service = try store.read { db in try Self.existing(kind, name, db) }
        guard id.range(of: Self.backupIDPattern, options: .regularExpression) != nil,
              try completeBackups(of: service).contains(where: { $0.id == id }) else {
            throw UserFacingError.notFound("\(kind.namespace) service \(name) has no backup \(quoted(id)); \(kind.namespace):backups \(name) lists them")
        }
        let file = "\(paths.serviceBackups(service.id!))/\(id).\(Self.fileExtension(kind))"
        switch kind {
        case .postgres:
            let containerID = try containerID(kind, name)
            guard let input = FileHandle(forReadingAtPath: file) else { throw UserFacingError(.unavailable, "cannot read the backup \(file)") }
            defer { try? input.close() }
            // As import: one transaction, so a restore that fails changes nothing; --clean
            // drops and remakes only what the backup has, so tables made since it stay.
            let command = Self.sessionCommand(.import, service, tty: false).command
            let (status, errors) = try execInService(containerID, command, environment: [:], input: input, output: nil)
            guard status == 0 else {
                let detail = errors.trimmingCharacters(in: .whitespacesAndNewlines)
                _ = try? store.write { db in try db.audit(caller, app: nil, outcome: "failed", detail: "restore of \(kind.namespace) service \(name) from \(id) failed: \(detail)") }
                throw UserFacingError(.unavailable, "restoring \(kind.namespace) service \(name) from \(id) failed (status \(status); nothing changed): \(detail)")
            }
        case .redis:
            try restoreRedis(service, from: file)
        }
        try store.write { db in try db.audit(caller, app: nil, detail: "restored \(kind.namespace) service \(name) from backup \(id)") }
    }

    /// Redis loads its append-only files at start and nothing else while they are on, so
    /// the backup becomes the base of a new set (`appendonly.aof.1.base.rdb` and a
    /// manifest naming only it) while the container is stopped. The old set is kept
    /// until the service answers again, and put back if it does not start.
    func restoreRedis(_ service: Datastore, from file: String) throws {
        let data = paths.serviceData(service.id!)
        let current = data + "/appendonlydir", previous = data + "/appendonlydir.before-restore"
        var owner = stat()
        guard stat(data, &owner) == 0 else { throw UserFacingError(.unavailable, "cannot read \(data) (errno \(errno))") }
        try removeContainer(service)
        let fm = FileManager.default
        try? fm.removeItem(atPath: previous)
        if fm.fileExists(atPath: current) { try fm.moveItem(atPath: current, toPath: previous) }
        do {
            try fm.createDirectory(atPath: current, withIntermediateDirectories: false)
            try fm.copyItem(atPath: file, toPath: current + "/appendonly.aof.1.base.rdb")
            try "file appendonly.aof.1.base.rdb seq 1 type b\n".write(toFile: current + "/appendonly.aof.manifest", atomically: true, encoding: .utf8)
            // Owned as the data directory is (the service's redis user, in its own range).
            for path in [current, current + "/appendonly.aof.1.base.rdb", current + "/appendonly.aof.manifest"] {
                _ = chown(path, owner.st_uid, owner.st_gid)
            }
            try start(service)
        } catch {
            try? fm.removeItem(atPath: current)
            try? fm.moveItem(atPath: previous, toPath: current)
            try? start(service)
            throw error
        }
        try? fm.removeItem(atPath: previous)
    }

    // MARK: Schedules

    /// Sets (or replaces) the service's schedule; `keep` is checked here (1...1000).
    public func setBackupSchedule(_ kind: DatastoreKind, _ name: DatastoreName, schedule text: String, keep: Int, by caller: Caller) throws {
        let schedule: CronSchedule
        do { schedule = try CronSchedule(text) } catch { throw UserFacingError.invalid("invalid cron schedule \(quoted(text)): \(error)") }
        guard (1...1000).contains(keep) else { throw UserFacingError.invalid("invalid --keep \(keep): keep 1 to 1000 backups") }
        try store.write { db in
            let service = try Self.existing(kind, name, db)
            var row = DatastoreBackupSchedule(serviceId: service.id!, schedule: schedule.text, keep: keep, createdAt: Date())
            try row.save(db)
            try db.audit(caller, app: nil, detail: "scheduled backups of \(kind.namespace) service \(name) at \(quoted(schedule.text)), keeping \(keep)")
        }
    }

    /// Removes the service's schedule; its backups stay.
    public func removeBackupSchedule(_ kind: DatastoreKind, _ name: DatastoreName, by caller: Caller) throws {
        try store.write { db in
            let service = try Self.existing(kind, name, db)
            guard try DatastoreBackupSchedule.deleteOne(db, key: ["service_id": service.id]) else {
                throw UserFacingError.conflict("\(kind.namespace) service \(name) has no backup schedule")
            }
            try db.audit(caller, app: nil, detail: "removed the backup schedule of \(kind.namespace) service \(name); its backups stay")
        }
    }

    /// The services whose schedule is due at `minute` (a whole minute, in `cron_timezone`).
    public func dueBackups(at minute: Date) throws -> [(kind: DatastoreKind, name: DatastoreName)] {
        let zone = TimeZone(identifier: settings.cronTimezone) ?? TimeZone(secondsFromGMT: 0)!
        let rows = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT s.kind, s.name, b.schedule FROM service_backup_schedules b JOIN services s ON s.id = b.service_id ORDER BY s.id")
        }
        return rows.compactMap { row in
            guard let kind = DatastoreKind(rawValue: row["kind"]), let schedule = try? CronSchedule(row["schedule"] as String),
                  schedule.next(after: minute.addingTimeInterval(-60), in: zone) == minute else { return nil }
            return (kind, DatastoreName(uncheckedRawValue: row["name"]))
        }
    }

    /// A scheduled backup; a failure is audited (by `backup`) and returned, never thrown.
    /// It is audited as the service's owner via cron, so the owner's `events` show it.
    public func scheduledBackup(_ kind: DatastoreKind, _ name: DatastoreName) -> Error? {
        do {
            let owner = try store.read { db in try Self.existing(kind, name, db).ownerId.flatMap { try User.fetchOne(db, key: $0) } }
            let caller = owner.map { Caller(principal: Principal(identity: .user($0), channel: "cron"), command: "\(kind.namespace):backup-schedule") }
            try backup(kind, name, by: caller ?? Self.backupScheduler)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Recovery

    /// At server start: removes the temp files of backups a killed server left
    /// half-written; returns what it removed, for the log.
    public func removePartialBackups() -> [String] {
        let fm = FileManager.default
        var removed: [String] = []
        for service in (try? fm.contentsOfDirectory(atPath: paths.servicesRoot)) ?? [] {
            let directory = "\(paths.servicesRoot)/\(service)/backups"
            for file in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] where file.hasPrefix(".") && file.hasSuffix(".partial") {
                if (try? fm.removeItem(atPath: "\(directory)/\(file)")) != nil { removed.append("removed the half-written backup \(directory)/\(file)") }
            }
        }
        return removed
    }

    // MARK: Exec

    /// Runs `command` in the running container `containerID` through the engine's exec
    /// API: stdin from `input` (none: empty), stdout into `output` (none: dropped).
    /// Returns the exit status and the end of its stderr.
    func execInService(_ containerID: String, _ command: [String], environment: [String: String],
                       input: FileHandle?, output: FileHandle?) throws -> (status: Int32, stderr: String) {
        let exec = ExecSpec(command: command, environment: environment)
        let execID = try containers.call { engine in try await engine.createExec(in: containerID, exec) }
        let attachment = try containers.engine.startExec(execID, tty: false)
        let errors = ErrorTail()
        let writeFailed = ErrorTail()
        let io = RunService.IO(
            readStdin: { count in (try input?.read(upToCount: count)) ?? Data() },
            stdout: { data in
                do { try output?.write(contentsOf: data); return true } catch { writeFailed.append(Data("\(error)".utf8)); return false }
            },
            stderr: { data in errors.append(data); return true },
            notice: { _ in }, isCancelled: { false })
        let end = try RunService.pump(attachment, tty: false, io: io)
        guard end == .ended else { throw UserFacingError(.unavailable, "writing the backup failed: \(writeFailed.text)") }
        return (try exitStatus(ofExec: execID, "\(command.first ?? "") in the service's container"), errors.text)
    }

    /// The exit status of an exec whose output has ended (the engine can write it a
    /// moment after).
    func exitStatus(ofExec execID: String, _ what: String) throws -> Int32 {
        try containers.call("the exit status of \(what)", timeout: .seconds(30)) { engine in
            while true {
                let state = try await engine.inspectExec(execID)
                if !state.running, let code = state.exitCode { return code }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// The last 4 KB written to it, for error messages.
    final class ErrorTail: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ more: Data) { lock.withLock { data.append(more); if data.count > 4096 { data = data.suffix(4096) } } }
        var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    }
}
