import Foundation

/// `<kind>:connect`, `export` and `import`: the service's own client in its running
/// container, through the engine's exec API (the path `enter` takes), the caller's
/// stdin and stdout passed through byte for byte.
///
/// | kind | connect | export | import |
/// |---|---|---|---|
/// | postgres | psql | pg_dump, custom format | pg_restore in one transaction |
/// | redis | redis-cli | an RDB snapshot (as `backup`) | the RDB replaces the data (as `restore`) |
///
/// Every client reaches its server inside the container (Postgres's local socket,
/// trusted there as in the official image; Redis with the password in the exec's
/// environment, `REDISCLI_AUTH`), so no password is on any command line.
extension DatastoreService {
    /// What `connect`, `export` and `import` run in the service's container.
    public enum Session: String, Sendable {
        /// The kind's client: interactive under a tty, else a script read from stdin
        /// (psql stops at its first error).
        case connect
        /// A dump on stdout: pg_dump's custom format, or an RDB snapshot.
        case export
        /// A dump from stdin replaces the data; one that fails changes nothing.
        case `import`
    }

    /// The client command of `session` for `service` and the exec's environment.
    /// `pagerOff`: psql's pager would wait for a key no one can press (a terminal of
    /// no size: `ssh -tt` from a script), so it is off there.
    static func sessionCommand(_ session: Session, _ service: Datastore, tty: Bool, pagerOff: Bool = false) -> (command: [String], environment: [String: String]) {
        switch (service.kind, session) {
        case (.postgres, .connect):
            let database = databaseName(service)
            let options = tty ? (pagerOff ? ["-P", "pager=off"] : []) : ["-v", "ON_ERROR_STOP=1"]
            return (["psql", "-X", "-U", "postgres", "-d", database] + options, [:])
        case (.postgres, .export):
            return (["pg_dump", "-U", "postgres", "-d", databaseName(service), "--format=custom", "--no-owner"], [:])
        case (.postgres, .import):
            return (["pg_restore", "-U", "postgres", "-d", databaseName(service), "--no-owner", "--no-acl", "--clean", "--if-exists",
                     "--single-transaction", "--exit-on-error"], [:])
        case (.redis, .connect):
            return (["redis-cli", "--no-auth-warning", "-p", "\(service.kind.port)"], ["REDISCLI_AUTH": service.password])
        case (.redis, .export):
            return backupCommand(service)
        case (.redis, .import):
            // Never exec'd: a Redis import is a restore from a file (`importRedis`).
            return (["false"], [:])
        }
    }

    /// Runs `session` for the service. Audited when it starts (a Redis import when it
    /// ends, as a restore is); returns the client's exit status.
    public func session(_ kind: DatastoreKind, _ name: DatastoreName, _ session: Session, by caller: Caller, io: RunService.IO) throws -> Int32 {
        let service = try store.read { db in try Self.existing(kind, name, db) }
        if kind == .redis && session == .import { return try importRedis(service, by: caller, io: io) }
        let containerID = try containerID(kind, name)
        let terminal = session == .connect ? io.terminal : nil
        let sized = terminal.map { $0.size.columns > 0 && $0.size.rows > 0 } ?? false
        let (command, environment) = Self.sessionCommand(session, service, tty: terminal != nil, pagerOff: !sized)
        var exec = ExecSpec(command: command, environment: environment)
        if let terminal {
            exec.tty = true
            exec.environment["TERM"] = terminal.type
        }
        let execID = try containers.call { [exec] engine in try await engine.createExec(in: containerID, exec) }
        let verb = switch session { case .connect: "connected to"; case .export: "exported"; case .import: "imported a dump into" }
        try store.write { db in try db.audit(caller, app: nil, detail: "\(verb) \(kind.namespace) service \(name)") }
        let engine = containers.engine
        let attachment = try engine.startExec(execID, tty: exec.tty)
        if let terminal {
            terminal.onResize { columns, rows in
                guard columns > 0, rows > 0 else { return }
                Task { try? await engine.resizeExec(execID, columns: columns, rows: rows) }
            }
            let (columns, rows) = terminal.size
            if columns > 0 && rows > 0 { _ = try? containers.call { engine in try await engine.resizeExec(execID, columns: columns, rows: rows) } }
        }
        defer { terminal?.onResize(nil) }
        guard try RunService.pump(attachment, tty: exec.tty, io: io) == .ended, !io.isCancelled() else { return 130 }
        return try exitStatus(ofExec: execID, "\(session.rawValue) in \(Self.containerName(service))")
    }

    /// The largest RDB `redis:import` takes (4 GiB): stdin is kept in a file first.
    static let maxImportBytes: Int64 = 4 << 30

    /// `redis:import`: stdin (an RDB) is written to a file beside the backups, checked
    /// for the RDB magic, then replaces the data as `restore` does (the service stops,
    /// starts on it, and is put back as it was if it does not answer). Returns 0;
    /// anything wrong is a `UserFacingError` with nothing changed.
    private func importRedis(_ service: Datastore, by caller: Caller, io: RunService.IO) throws -> Int32 {
        let name = service.name, ns = service.kind.namespace
        _ = try containerID(service.kind, name)
        let directory = paths.serviceBackups(service.id!)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // A `.partial` name: a server killed meanwhile leaves it for the start-up sweep.
        let file = "\(directory)/.import-\(UUID().uuidString).partial"
        guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: file) else {
            throw UserFacingError(.unavailable, "cannot write the import's temp file in \(directory)")
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        var total: Int64 = 0, head = Data()
        do {
            defer { try? handle.close() }
            while true {
                if io.isCancelled() { return 130 }
                let chunk = try io.readStdin(64 * 1024)
                if chunk.isEmpty { break }
                total += Int64(chunk.count)
                guard total <= Self.maxImportBytes else {
                    throw UserFacingError.invalid("the RDB on stdin is larger than \(Self.maxImportBytes >> 30) GiB; nothing changed")
                }
                if head.count < 5 { head.append(chunk.prefix(5 - head.count)) }
                try handle.write(contentsOf: chunk)
            }
            try handle.synchronize()
        }
        guard head == Data("REDIS".utf8) else {
            throw UserFacingError.invalid("stdin is not a Redis RDB file (it does not start with REDIS); \(ns):export \(name) > file.rdb makes one. Nothing changed")
        }
        do {
            try restoreRedis(service, from: file)
        } catch {
            _ = try? store.write { db in try db.audit(caller, app: nil, outcome: "failed", detail: "import into \(ns) service \(name) failed: \(error)") }
            throw error
        }
        try store.write { db in try db.audit(caller, app: nil, detail: "imported an RDB (\(total) bytes) into \(ns) service \(name)") }
        return 0
    }
}
