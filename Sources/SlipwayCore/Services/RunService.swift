import Foundation

/// `run`: one command in a fresh container from the app's latest image, with the
/// app's config and its run-phase storage, removed when it ends (also when the
/// caller goes away). Whatever it wrote outside storage is gone, and the caller
/// is told which paths.
public struct RunService: Sendable {
    let settings: Settings
    let paths: DataPaths
    let engine: ContainerEngine
    let config: ConfigService
    let storage: StorageService
    let builds: BuildService
    let events: EventLog
    /// Where an app set to kubernetes runs its one-off commands (`RunService+Cluster.swift`).
    var deploys: DeployService? = nil

    /// How the container's streams meet the caller's.
    public struct IO: Sendable {
        /// Reads up to the given count of the caller's stdin; empty at its end.
        public var readStdin: @Sendable (Int) throws -> Data
        /// Deliver output; false once the caller is gone.
        public var stdout: @Sendable (Data) -> Bool
        public var stderr: @Sendable (Data) -> Bool
        /// A line for the caller's stderr (the discarded-paths notice).
        public var notice: @Sendable (String) -> Void
        public var isCancelled: @Sendable () -> Bool
        /// The caller's terminal (`ssh -t`): the container gets a tty of its size.
        public var terminal: Terminal?

        public init(readStdin: @escaping @Sendable (Int) throws -> Data, stdout: @escaping @Sendable (Data) -> Bool,
                    stderr: @escaping @Sendable (Data) -> Bool, notice: @escaping @Sendable (String) -> Void,
                    isCancelled: @escaping @Sendable () -> Bool, terminal: Terminal? = nil) {
            self.terminal = terminal
            self.readStdin = readStdin
            self.stdout = stdout
            self.stderr = stderr
            self.notice = notice
            self.isCancelled = isCancelled
        }
    }

    /// Runs `command` (the image's own command when empty); returns its exit status.
    public func run(_ app: AppName, command: [String], by caller: Caller, io: IO) throws -> Int32 {
        if let status = try clusterRun(app, command: command, io: io) { return status }
        return try run(app, command: command, by: caller, io: io, kind: .run)
    }

    /// `run`'s path for other kinds of one-off container (a cron run: `kind` `.cron`,
    /// the current release's `image`, `started` told the container's name once it exists).
    func run(_ app: AppName, command: [String], by caller: Caller, io: IO, kind: ContainerKind,
             image: (reference: String, appID: Int64)? = nil, started: (String) throws -> Void = { _ in }) throws -> Int32 {
        var (spec, labels, mounts) = try containerSpec(app, command: command, kind: kind, by: caller, image: image)
        try started(spec.name!)
        spec.openStdin = true
        if let terminal = io.terminal {
            spec.tty = true
            spec.environment["TERM"] = terminal.type
        }
        let engine = self.engine, containers = try self.containers
        // Attached before it starts: created here, started below.
        let id = try containers.call { [spec, labels] engine in try await Containers.start(Containers.labelled(spec, labels), on: engine, start: false) }
        // Whatever happens from here, the container goes.
        defer { _ = try? containers.remove([id]) }
        let attachment = try engine.attach(id)
        try containers.call { engine in try await engine.startContainer(id) }
        if let terminal = io.terminal {
            terminal.onResize { columns, rows in
                // A client without a local terminal (ssh -tt < file) reports 0x0: keep the engine's default.
                guard columns > 0, rows > 0 else { return }
                Task { try? await engine.resizeContainer(id, columns: columns, rows: rows) }
            }
            // The first size before any output is read. (podman 4.3 takes no size at
            // create and refuses a resize before start, so a command that asks at its
            // very first instant may still see 0x0; interactive programs get SIGWINCH.)
            let (columns, rows) = terminal.size
            if columns > 0 && rows > 0 { _ = try? containers.call { engine in try await engine.resizeContainer(id, columns: columns, rows: rows) } }
        }
        defer { io.terminal?.onResize(nil) }

        // A caller who left is cancelled too; the deferred removal stops the container.
        if try Self.pump(attachment, tty: spec.tty, io: io) == .cancelled { return 130 }
        if io.isCancelled() { return 130 }
        let (status, changes) = try containers.call { engine in (try await engine.exitCode(ofEnded: id), try await engine.changes(id)) }
        let oomKilled = status == 0 ? false : (try? containers.inspect(id))??.oomKilled ?? false
        if let why = OutOfMemory.reason(exitCode: status, oomKilled: oomKilled, memoryLimit: spec.limits.memoryBytes, app: app,
                                        processType: ResourceService.runType, settings: settings) {
            io.notice("error: the run of \(app) \(why)\(spec.tty ? "\r" : "")")
        }
        let lost = DiscardedPaths.discarded(changes, mountPoints: mounts.map(\.containerPath))
        if let notice = DiscardedPaths.notice(app: app, discarded: lost) {
            io.notice(spec.tty ? notice.replacingOccurrences(of: "\n", with: "\r\n") + "\r" : notice)
        }
        return status
    }

    /// `run:detached`: starts `command` in the background and returns the container's
    /// name. Its output is stored (`run:logs`) by a follower that removes the container
    /// once it ended (DetachedRunOutput.swift); `run:stop` ends it early.
    public func runDetached(_ app: AppName, command: [String], by caller: Caller) throws -> String {
        if let name = try clusterRunDetached(app, command: command, by: caller) { return name }
        var (spec, labels, _) = try containerSpec(app, command: command, kind: .detached, by: caller)
        // The local CLI exits at once, its follower with it: the engine removes the
        // container then, and the next `slipway serve` follows it if it still runs.
        spec.autoRemove = caller.principal.channel == "local"
        let recording = try? outputs.start(app: app, kind: .run, ref: spec.name!)
        let id: String
        do { id = try containers.start(spec, labels: labels) } catch { recording?.finish(.failed); throw error }
        try events.record(caller, app: app.rawValue, detail: "started \(spec.name!)")
        followDetached(id: id, name: spec.name!, into: recording)
        return spec.name!
    }

    /// The app's running `run` and `run:detached` containers, oldest first.
    public func list(_ app: AppName) throws -> [ContainerSummary] {
        try containers.list(app: app, kind: nil).filter { [.run, .detached].contains($0.slipway.kind) }.sorted { $0.created < $1.created }
    }

    /// `run:list`: the app's runs: its run Jobs on the cluster for an app set to
    /// kubernetes, and its run containers on this host (left from before, for such an app).
    public func listing(_ app: AppName) throws -> [RunListing] {
        let cluster = try clusterRuns(app) ?? []
        return try list(app).map {
            RunListing(name: $0.name, state: $0.state, started: $0.created, by: $0.labels["org.slipway.by"], command: $0.command)
        } + cluster
    }

    /// `run:stop`: stops (and removes) one of the app's runs, named as `run:list` shows it.
    public func stop(_ app: AppName, container name: String, by caller: Caller) throws {
        if try clusterStop(app, name: name, by: caller) == true { return }
        guard let target = try list(app).first(where: { $0.name == name || (name.count >= 6 && $0.id.hasPrefix(name)) }) else {
            throw UserFacingError.notFound("\(app) has no running container \(quoted(name)); run:list \(app) shows them")
        }
        try containers.stop([target.id], remove: true)
        try events.record(caller, app: app.rawValue, detail: "stopped \(target.name)")
    }

    /// Removes the `run` and `run:detached` containers `user` started, in `app` or (nil)
    /// in every app, once their access ended (acl:remove, a role below write,
    /// users:remove). Returns the names of the containers removed.
    public func stopRuns(startedBy user: String, in app: AppName?, by caller: Caller) throws -> [String] {
        let containers = try self.containers
        let stopped = try containers.list(app: app, kind: nil, by: user).filter { [.run, .detached].contains($0.slipway.kind) }
        try containers.remove(stopped.map(\.id))
        for run in stopped {
            try events.record(caller, app: run.slipway.app, detail: "stopped \(run.name) of \(user), whose access ended")
        }
        return stopped.map(\.name)
    }

    /// A run container for the app's latest build: its config, its run-phase storage,
    /// labels that let `run:list` and the orphan sweep find it.
    private func containerSpec(_ app: AppName, command: [String], kind: ContainerKind, by caller: Caller,
                               image chosen: (reference: String, appID: Int64)? = nil) throws -> (ContainerSpec, ContainerLabels, [StorageService.MountInfo]) {
        let build: (image: String, appId: Int64)
        if let chosen {
            build = (chosen.reference, chosen.appID)
        } else {
            guard let latest = try builds.latestSuccessful(of: app) else {
                throw UserFacingError.notFound("\(app) has no build yet; git push it first")
            }
            build = (latest.image, latest.appId)
        }
        let containers = try self.containers
        guard let image = try containers.inspectImage(build.image) else {
            throw UserFacingError.notFound("the image \(build.image) of \(app) is gone from the engine; push again to rebuild it")
        }
        let mounts = try storage.mounts(of: app).filter { $0.phases.contains(.run) }
        var spec = ContainerSpec(image: build.image, command: command.isEmpty ? nil : command)
        spec.name = "\(app).\(kind.rawValue).\(UUID().uuidString.prefix(8).lowercased())"
        spec.environment = try config.environmentVariables(of: app)
        // As in the app's processes, so a one-off command sees the same PORT.
        if spec.environment["PORT"] == nil { spec.environment["PORT"] = "5000" }
        var labels = containers.labels(app: app, kind: kind)
        labels.by = caller.principal.name
        labels.origin = caller.principal.channel
        labels.storage = ContainerLabel.storageValue(mounts.compactMap(\.storageID))
        spec.sandbox = try TenantSandbox(appID: build.appId, instance: containers.instance)
        spec.binds = try ImageUser.binds(mounts.map(\.snapshot), properties: try storage.properties(of: mounts.map(\.snapshot)), image: build.image, imageUser: image.user, sandbox: spec.sandbox!, containers: containers)
        spec.limits = try resources.limits(for: app, processType: ResourceService.runType)
        return (spec, labels, mounts)
    }

    /// Removes `run` containers started over SSH that no session owns any more (the
    /// server died while they ran). Called as `serve` starts, before any session
    /// exists; containers of local CLI runs, and of other servers sharing the
    /// engine, are left alone. Returns how many went.
    public func removeOrphans() throws -> Int {
        let containers = try self.containers
        let orphans = try containers.list(app: nil, kind: .run, origin: "ssh")
        try containers.remove(orphans.map(\.id))
        return orphans.count
    }

    /// The facade for this server's containers.
    var containers: Containers { get throws { Containers(engine: engine, instance: try paths.instanceID()) } }
}

/// The numeric owner of an image's configured user, for chowning managed storage.
enum ImageUser {
    /// Bind strings for the mounts (`run`, deploy tasks, processes alike); managed
    /// storage is created if needed and owned by the host uid its `chown` property
    /// names in the app's user namespace (by default the image's user, so a non-root
    /// app can write to it; `false`: left alone), with its `mode` applied. `properties`
    /// are the storages' current ones by id (`StorageService.properties(of:)`). Host
    /// paths are bound as they are.
    static func binds(_ mounts: [ReleaseSnapshot.MountSnapshot], properties: [Int64: StorageService.Properties] = [:],
                      image: String, imageUser: String, sandbox: TenantSandbox, containers: Containers) throws -> [String] {
        var imageOwner: (uid: uid_t, gid: gid_t)?
        var base: UInt32?
        // The host id of `inside` in the app's namespace (ids past the range are its last).
        func host(_ inside: (uid: uid_t, gid: gid_t)) throws -> (uid: uid_t, gid: gid_t) {
            if base == nil { base = try containers.call { engine in try await engine.userNamespaceBase(of: sandbox) } }
            let last = sandbox.idRange.size - 1
            return (base! + min(inside.uid, last), base! + min(inside.gid, last))
        }
        return try mounts.map { mount in
            if mount.managed {
                try FileManager.default.createDirectory(atPath: mount.hostDirectory, withIntermediateDirectories: true)
            }
            // A read-only mount reads what is there as it is: taking it over would take
            // it from the app that writes it (each app has its own uids).
            if mount.managed && !mount.readonly {
                let wanted = mount.storageId.flatMap { properties[$0] } ?? StorageService.Properties()
                switch wanted.chown {
                case .unchanged?:
                    break
                case .id(let id, _)?:
                    try own(mount.hostDirectory, by: try host((id, id)))
                case nil:
                    if imageOwner == nil {
                        imageOwner = try host(try resolve(imageUser, image: image, sandbox: sandbox, containers: containers))
                    }
                    try own(mount.hostDirectory, by: imageOwner!)
                }
                if let mode = wanted.mode { try apply(mode, to: mount.hostDirectory) }
            }
            return "\(mount.hostDirectory):\(mount.containerPath)\(mount.readonly ? ":ro" : "")"
        }
    }

    /// Sets the storage directory's own permission bits (not its contents', as Dokku's
    /// `--mode`); never through a symbolic link.
    static func apply(_ mode: DirectoryMode, to directory: String) throws {
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw UserFacingError(.unavailable, "storage directory \(directory) is missing or not a directory")
        }
        guard chmod(directory, mode_t(mode.bits)) == 0 else {
            throw UserFacingError(.unavailable, "cannot set mode \(mode.rawValue) on storage \(directory): \(String(cString: strerror(errno)))")
        }
    }

    /// Makes `directory` and, when it belonged to someone else (storage from before
    /// user namespaces, or an image whose user changed), everything in it, owned by
    /// `owner`. Never follows a symbolic link: the tree is the tenant's, and a link
    /// to /etc/shadow must not hand the host's file over.
    static func own(_ directory: String, by owner: (uid: uid_t, gid: gid_t)) throws {
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw UserFacingError(.unavailable, "storage directory \(directory) is missing or not a directory")
        }
        if info.st_uid == owner.uid && info.st_gid == owner.gid { return }
        let result = try ProcessRunner.run("/bin/chown", ["-R", "-P", "-h", "\(owner.uid):\(owner.gid)", "--", directory])
        guard result.status == 0 else {
            throw UserFacingError(.unavailable, "cannot give storage \(directory) to uid \(owner.uid): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// How long the helper that looks a user name up inside an image may take: the
    /// image is the tenant's, and its /bin/sh may never return.
    static let lookupTimeout: Duration = .seconds(10)

    /// "" is root, "1000" or "1000:1000" are numbers, a name is looked up inside the
    /// image: in a helper container in the app's sandbox, without network, capped,
    /// removed on every path.
    static func resolve(_ user: String, image: String, sandbox: TenantSandbox, containers: Containers) throws -> (uid: uid_t, gid: gid_t) {
        if user.isEmpty || user == "root" { return (0, 0) }
        let parts = user.split(separator: ":").map(String.init)
        if let uid = UInt32(parts[0]) { return (uid, parts.count > 1 ? UInt32(parts[1]) ?? uid : uid) }
        var spec = ContainerSpec(image: image, command: ["/bin/sh", "-c", "id -u \"$0\"; id -g \"$0\"", parts[0]])
        spec.user = "0"
        spec.sandbox = sandbox
        spec.networkDisabled = true
        spec.limits = ResourceLimits(memoryBytes: 64 << 20, nanoCPUs: 500_000_000, pids: 32)
        // The instance label lets a crashed server's successor (and its operator) find it.
        let text = TextCollector()
        _ = try containers.runToEnd(spec, labels: ContainerLabels(kind: .helper, instance: sandbox.instance), timeout: lookupTimeout,
                                    tooLong: .invalid("the image \(image) did not say within \(lookupTimeout) which uid its user \(quoted(user)) is; set USER to a number (USER 1000:1000) in the Dockerfile"),
                                    logTail: 2) { if $0.stream == .stdout { text.append($0.data) } }
        let numbers = text.value.split(separator: "\n").compactMap { UInt32($0) }
        guard numbers.count == 2 else {
            throw UserFacingError.invalid("the image \(image) runs as user \(quoted(user)), which does not exist inside it")
        }
        return (numbers[0], numbers[1])
    }
}

/// Collects text from concurrent callbacks.
final class TextCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ more: Data) { lock.withLock { data.append(more) } }
    var value: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
