import Foundation

/// The container engine as the core sees it: the operations Slipway needs, in
/// Docker Engine API terms. `SlipwayEngine.DockerEngine` speaks it over a unix
/// socket to podman or Docker; unit tests can record calls instead.
public protocol ContainerEngine: Sendable {
    /// Where the engine is reached, for messages (`/run/podman/podman.sock`).
    var endpoint: String { get }
    func ping() async throws
    func version() async throws -> EngineVersion
    /// Imports a root filesystem tarball as `reference` (`name:tag`), its config set
    /// by Dockerfile instructions (`changes`: `WORKDIR /app`, `LABEL a=b`, ...).
    func importImage(fromTarFile path: String, reference: String, changes: [String]) async throws
    /// nil when the image does not exist.
    func inspectImage(_ reference: String) async throws -> ImageInfo?
    /// Images with no tag and no child image carrying `label` = `value`: what the builds
    /// of the app that label names leave unused (a failed build's last step, a
    /// multi-stage build's earlier stages).
    func danglingImages(label: String, value: String) async throws -> [DanglingImage]
    /// Builds `tag` from a tar build context, passing each line of the engine's
    /// progress to `output` as it arrives. Throws (with the build's error) when the
    /// build fails; intermediate containers are always removed.
    func buildImage(_ request: BuildRequest, output: @escaping @Sendable (String) -> Void) async throws
    func createContainer(_ spec: ContainerSpec) async throws -> String
    /// Attaches to a created (not yet started) container's stdin and output streams.
    /// Blocking: call from the command's own thread.
    func attach(_ id: String) throws -> ContainerAttachment
    func startContainer(_ id: String) async throws
    /// Waits for the container to stop; returns its exit code.
    func waitContainer(_ id: String) async throws -> Int32
    /// Streams the container's output (stdout and stderr demultiplexed) until it ends,
    /// or only its last `tail` lines first when `tail` is set.
    func streamLogs(_ id: String, follow: Bool, tail: Int?, _ sink: @escaping @Sendable (OutputChunk) -> Void) async throws
    /// Sets the size of a running container's tty.
    func resizeContainer(_ id: String, columns: Int, rows: Int) async throws
    /// Makes an exec instance: `spec.command` to run inside the running container
    /// `containerID`, in its namespaces and as its configured user. Returns the exec's id.
    func createExec(in containerID: String, _ spec: ExecSpec) async throws -> String
    /// Starts the exec attached to its stdin and output (frames, or the tty's bytes
    /// as they are when `tty`). Blocking: call from the command's own thread.
    func startExec(_ execID: String, tty: Bool) throws -> ContainerAttachment
    /// Sets the size of a started exec's tty.
    func resizeExec(_ execID: String, columns: Int, rows: Int) async throws
    /// Whether the exec still runs, and its exit code once it ended.
    func inspectExec(_ execID: String) async throws -> ExecState
    /// Asks the container to stop (SIGTERM), killing it after `timeoutSeconds`. Stopped already is fine.
    func stopContainer(_ id: String, timeoutSeconds: Int) async throws
    /// nil when the container does not exist.
    func inspectContainer(_ id: String) async throws -> ContainerDetails?
    func renameContainer(_ id: String, to name: String) async throws
    /// Makes image `reference` of a container's filesystem, its config changed by
    /// Dockerfile instructions (`changes`).
    func commitContainer(_ id: String, reference: String, changes: [String]) async throws
    /// Removes an image; one that is gone or still used by a container is left as is.
    func removeImage(_ reference: String) async throws
    /// Gives an image another name (`slipway/<app>:<rev>`); its other names stay (apps:rename).
    func tagImage(_ reference: String, as newReference: String) async throws
    /// Pushes `reference` (`registry.example.com/team/web:3`) to its registry with
    /// `registryAuth` (the `X-Registry-Auth` value: base64url of the credentials' JSON).
    func pushImage(_ reference: String, registryAuth: String?) async throws
    /// Paths the container changed in its own filesystem (`/containers/{id}/changes`).
    func changes(_ id: String) async throws -> [FileChange]
    func removeContainer(_ id: String, force: Bool) async throws
    /// Containers (running or not) carrying every one of `labels`.
    func listContainers(labels: [String: String]) async throws -> [ContainerSummary]
    /// Makes sure the app's network exists (an isolated bridge: reaches the outside
    /// world, not other such networks nor the host's loopback).
    func ensureNetwork(of sandbox: TenantSandbox) async throws
    /// Removes the app's network; gone already is fine.
    func removeNetwork(of sandbox: TenantSandbox) async throws
    /// Puts a running container on another sandbox's network as well, reachable there
    /// by `alias` (a backing service on the network of an app linked to it). On it already is fine.
    func connectNetwork(of sandbox: TenantSandbox, container id: String, alias: String) async throws
    /// Takes the container off that network; not on it (or gone) is fine.
    func disconnectNetwork(of sandbox: TenantSandbox, container id: String) async throws
    /// The host uid that id 0 of the sandbox's containers runs as, for owning storage:
    /// the sandbox's own range on podman, the daemon's `userns-remap` range on Docker.
    /// Throws when the engine would run the sandbox's containers as host root.
    func userNamespaceBase(of sandbox: TenantSandbox) async throws -> UInt32
}

public struct EngineVersion: Sendable, Codable, Equatable {
    public let version: String
    public let apiVersion: String
    /// "podman" or "docker".
    public let kind: String

    public init(version: String, apiVersion: String, kind: String) {
        self.version = version
        self.apiVersion = apiVersion
        self.kind = kind
    }
}

/// An image nothing names or builds on (`ContainerEngine.danglingImages`).
public struct DanglingImage: Sendable, Equatable {
    public let id: String
    public let created: Date

    public init(id: String, created: Date) {
        self.id = id
        self.created = created
    }
}

public struct ImageInfo: Sendable, Codable, Equatable {
    public let id: String
    public let created: String?
    public let size: Int64
    /// The image's configured user (`USER`), empty for root.
    public let user: String
    /// The image's configured working directory (`WORKDIR`), empty when unset.
    public let workingDirectory: String
    /// Whether the image says what to run (`CMD` or `ENTRYPOINT`).
    public let hasCommand: Bool
    public let labels: [String: String]
    /// The names the image goes by (`localhost/slipway/web:abc`).
    public var tags: [String] = []
    /// Instructions the image runs when another build starts FROM it (`ONBUILD`).
    public var onBuild: [String] = []

    public init(id: String, created: String?, size: Int64, user: String, workingDirectory: String = "", hasCommand: Bool = true,
                labels: [String: String]) {
        self.id = id
        self.created = created
        self.size = size
        self.user = user
        self.workingDirectory = workingDirectory
        self.hasCommand = hasCommand
        self.labels = labels
    }
}

/// A container's attached streams: stdin in, multiplexed output frames out.
public protocol ContainerAttachment: AnyObject, Sendable {
    func write(_ data: Data) throws
    /// Ends the container's stdin.
    func closeWrite()
    /// Output bytes (frames, see `FrameDecoder`); nil on timeout, empty at the end.
    func read(timeoutMilliseconds: Int32) throws -> Data?
}

/// One image build.
public struct BuildRequest: Sendable, Equatable {
    public var contextTarFile: String
    public var tag: String
    /// The Dockerfile's path inside the context.
    public var dockerfile = "Dockerfile"
    public var buildArgs: [String: String] = [:]
    /// The app's sandbox: build steps sit on its network (never the host's).
    public var sandbox: TenantSandbox?
    /// Memory and CPU caps of the build's steps (the engine's /build takes no pids limit).
    public var limits = ResourceLimits()
    /// Set on the image, and by podman on each step's image too.
    public var labels: [String: String] = [:]

    public init(contextTarFile: String, tag: String) {
        self.contextTarFile = contextTarFile
        self.tag = tag
    }
}

/// What a new container gets. Built by Slipway from validated state only: no
/// tenant ever passes raw engine options.
public struct ContainerSpec: Sendable, Equatable {
    public var name: String?
    public var image: String
    public var command: [String]?
    public var environment: [String: String] = [:]
    public var labels: [String: String] = [:]
    /// `host:container[:ro]`, from managed storage or admin host paths.
    public var binds: [String] = []
    public var workingDirectory: String?
    public var user: String?
    public var openStdin = false
    public var tty = false
    /// A PID 1 that forwards signals and reaps zombies.
    public var initProcess = true
    /// Memory, CPU and pids caps (nil fields: none). Every tenant container gets them.
    public var limits = ResourceLimits()
    /// The app's network and user namespace; nil only for Slipway's own containers
    /// (made from images no tenant wrote).
    public var sandbox: TenantSandbox?
    /// No network at all (helpers); else the sandbox's network.
    public var networkDisabled = false
    /// What the engine does when the main process exits.
    public var restartPolicy: RestartPolicy = .never
    /// Removed by the engine as soon as it stops (detached runs).
    public var autoRemove = false
    /// A container port published on a free loopback port of the host.
    public var publishedPort: Int?

    public init(image: String, command: [String]? = nil) {
        self.image = image
        self.command = command
    }
}

/// A process to run inside a running container (`enter`). Built by Slipway only:
/// never privileged, never another user than the container's own.
public struct ExecSpec: Sendable, Equatable {
    public var command: [String]
    /// Added to the container's environment (`TERM` under a tty).
    public var environment: [String: String] = [:]
    public var tty = false

    public init(command: [String], environment: [String: String] = [:], tty: Bool = false) {
        self.command = command
        self.environment = environment
        self.tty = tty
    }
}

/// An exec instance as the engine reports it.
public struct ExecState: Sendable, Equatable {
    public let running: Bool
    /// Meaningful once `running` is false.
    public let exitCode: Int32?

    public init(running: Bool, exitCode: Int32?) {
        self.running = running
        self.exitCode = exitCode
    }
}

/// The labels Slipway reads on containers. Each is set on every container it
/// creates (empty when it does not apply), so none is inherited from an image a
/// tenant built: a spoofed `org.slipway.app` would make a container pass for
/// another app's.
public enum ContainerLabel {
    public static let app = "org.slipway.app"
    public static let kind = "org.slipway.kind"
    public static let by = "org.slipway.by"
    public static let origin = "org.slipway.origin"
    public static let instance = "org.slipway.instance"
    public static let release = "org.slipway.release"
    public static let type = "org.slipway.type"
    public static let index = "org.slipway.index"
    /// The managed storage a `run` container binds, as `,3,7,` (ids): `storage:destroy`
    /// refuses while one still runs, though its app has unmounted the storage since.
    public static let storage = "org.slipway.storage"
    public static let all = [app, kind, by, origin, instance, release, type, index, storage]

    /// The `storage` label's value for these storage ids.
    public static func storageValue(_ ids: [Int64]) -> String {
        ids.isEmpty ? "" : "," + ids.map(String.init).joined(separator: ",") + ","
    }

    /// `labels` with every key of `all` present.
    public static func complete(_ labels: [String: String]) -> [String: String] {
        labels.merging(all.map { ($0, "") }) { mine, _ in mine }
    }
}

/// What a container of Slipway's is for (its `org.slipway.kind` label).
public enum ContainerKind: String, Sendable, CaseIterable {
    /// A process of a release (`web.1`, `worker.2`).
    case process
    /// A backing service's one container (`postgres:create`).
    case service
    /// A predeploy or postdeploy task.
    case task
    /// `run`, attached to the caller.
    case run
    /// `run:detached`.
    case detached
    /// A cron run (scheduled, or `cron:run`): `run`'s container on a clock.
    case cron
    /// Slipway's own short-lived container (the image-user lookup, the app base).
    case helper
}

/// The labels of one container, typed. `labels` writes every key (empty when it
/// does not apply); reading takes what the engine reports.
public struct ContainerLabels: Sendable, Equatable {
    public var app = ""
    public var kind: ContainerKind?
    /// Who started a run (`org.slipway.by`).
    public var by = ""
    /// The channel a run came from: "ssh" or "local".
    public var origin = ""
    /// The server that made it.
    public var instance = ""
    /// The release version of a process or task.
    public var release = ""
    /// A process's type and index.
    public var type = ""
    public var index = ""
    /// See `ContainerLabel.storage`.
    public var storage = ""

    public init(app: String = "", kind: ContainerKind?, instance: String) {
        self.app = app
        self.kind = kind
        self.instance = instance
    }

    /// Reads Slipway's labels from what the engine reports.
    public init(_ labels: [String: String]) {
        app = labels[ContainerLabel.app] ?? ""
        kind = labels[ContainerLabel.kind].flatMap(ContainerKind.init(rawValue:))
        by = labels[ContainerLabel.by] ?? ""
        origin = labels[ContainerLabel.origin] ?? ""
        instance = labels[ContainerLabel.instance] ?? ""
        release = labels[ContainerLabel.release] ?? ""
        type = labels[ContainerLabel.type] ?? ""
        index = labels[ContainerLabel.index] ?? ""
        storage = labels[ContainerLabel.storage] ?? ""
    }

    /// Every label of `ContainerLabel.all`, as a container is created with them.
    public var labels: [String: String] {
        [ContainerLabel.app: app, ContainerLabel.kind: kind?.rawValue ?? "", ContainerLabel.by: by,
         ContainerLabel.origin: origin, ContainerLabel.instance: instance, ContainerLabel.release: release,
         ContainerLabel.type: type, ContainerLabel.index: index, ContainerLabel.storage: storage]
    }

    /// A process's `type.index` (`web.1`), as logs prefix its lines.
    public var process: String { "\(type.isEmpty ? "?" : type).\(index.isEmpty ? "?" : index)" }
}

extension ContainerSummary {
    /// Slipway's labels on it.
    public var slipway: ContainerLabels { ContainerLabels(labels) }
}

extension ContainerDetails {
    /// Slipway's labels on it.
    public var slipway: ContainerLabels { ContainerLabels(labels) }
}

/// Caps on one container (or one build): nil means no cap from Slipway.
public struct ResourceLimits: Sendable, Equatable, Codable {
    /// Hard memory limit; the kernel's OOM killer ends the container past it.
    public var memoryBytes: Int64?
    /// Memory the container is guaranteed (soft limit, `MemoryReservation`).
    public var memoryReservationBytes: Int64?
    /// CPU time, in billionths of a CPU (`NanoCpus`: 1.5 CPUs = 1_500_000_000).
    public var nanoCPUs: Int64?
    /// The most processes and threads at once (fork bombs stop here).
    public var pids: Int64?

    public init(memoryBytes: Int64? = nil, memoryReservationBytes: Int64? = nil, nanoCPUs: Int64? = nil, pids: Int64? = nil) {
        self.memoryBytes = memoryBytes
        self.memoryReservationBytes = memoryReservationBytes
        self.nanoCPUs = nanoCPUs
        self.pids = pids
    }
}

/// The engine's restart policy for a container, as Docker names it (and Dokku's
/// `ps:set APP restart-policy` spells it: `no`, `always`, `unless-stopped`,
/// `on-failure`, `on-failure:N`).
public enum RestartPolicy: Sendable, Equatable, CustomStringConvertible {
    case never
    case always
    case unlessStopped
    /// Restarted after a non-zero exit, at most `maxRetries` times (nil: without end).
    case onFailure(maxRetries: Int?)

    /// Dokku's default for app processes: `on-failure:10`.
    public static let processDefault = RestartPolicy.onFailure(maxRetries: 10)
    /// The largest N `on-failure:N` takes.
    public static let maxRetriesBound = 1000

    /// Docker's `HostConfig.RestartPolicy.Name`.
    public var engineName: String {
        switch self {
        case .never: "no"
        case .always: "always"
        case .unlessStopped: "unless-stopped"
        case .onFailure: "on-failure"
        }
    }

    /// Docker's `HostConfig.RestartPolicy.MaximumRetryCount` (0: no bound, or not on-failure).
    public var maximumRetryCount: Int {
        if case .onFailure(let count?) = self { return count }
        return 0
    }

    /// As `ps:set` takes it and `ps:report` shows it: `on-failure:10`.
    public var description: String {
        if case .onFailure(let count?) = self { return "on-failure:\(count)" }
        return engineName
    }

    /// Parses Dokku's spelling; nil for anything else (a bad count included).
    public init?(_ text: String) {
        switch text {
        case "no": self = .never
        case "always": self = .always
        case "unless-stopped": self = .unlessStopped
        case "on-failure": self = .onFailure(maxRetries: nil)
        default:
            let prefix = "on-failure:"
            guard text.hasPrefix(prefix) else { return nil }
            let digits = text.dropFirst(prefix.count)
            guard (1...4).contains(digits.count), digits.allSatisfy({ ("0"..."9").contains($0) }),
                  let count = Int(digits), (1...Self.maxRetriesBound).contains(count) else { return nil }
            self = .onFailure(maxRetries: count)
        }
    }
}

/// One container as `inspect` sees it.
public struct ContainerDetails: Sendable, Equatable {
    public let id: String
    public let name: String
    public let image: String
    public let running: Bool
    /// "created", "running", "exited", ...
    public let status: String
    public let exitCode: Int32
    public let restartCount: Int
    public let startedAt: Date?
    public let labels: [String: String]
    /// Host ports by container port (`5000/tcp` -> 127.0.0.1:41234).
    public let hostPorts: [Int: Int]
    /// The engine says the kernel's OOM killer ended it (podman 4.3 on cgroups v1 never does).
    public let oomKilled: Bool
    /// Its hard memory limit, nil when it has none.
    public let memoryLimit: Int64?

    public init(id: String, name: String, image: String, running: Bool, status: String, exitCode: Int32,
                restartCount: Int, startedAt: Date?, labels: [String: String], hostPorts: [Int: Int],
                oomKilled: Bool = false, memoryLimit: Int64? = nil) {
        self.oomKilled = oomKilled
        self.memoryLimit = memoryLimit
        self.id = id
        self.name = name
        self.image = image
        self.running = running
        self.status = status
        self.exitCode = exitCode
        self.restartCount = restartCount
        self.startedAt = startedAt
        self.labels = labels
        self.hostPorts = hostPorts
    }
}

/// One piece of a container's output.
public struct OutputChunk: Sendable, Equatable {
    public enum Stream: Sendable { case stdout, stderr }
    public let stream: Stream
    public let data: Data

    public init(stream: Stream, data: Data) {
        self.stream = stream
        self.data = data
    }
}

public struct FileChange: Sendable, Equatable, Codable {
    public enum Kind: Int, Sendable, Codable { case modified = 0, added = 1, deleted = 2 }
    public let path: String
    public let kind: Kind

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }
}

public struct ContainerSummary: Sendable, Equatable {
    public let id: String
    public let names: [String]
    public let state: String
    public let labels: [String: String]
    public let image: String
    public let command: String
    public let created: Date

    public init(id: String, names: [String], state: String, labels: [String: String],
                image: String = "", command: String = "", created: Date = Date(timeIntervalSince1970: 0)) {
        self.id = id
        self.names = names
        self.state = state
        self.labels = labels
        self.image = image
        self.command = command
        self.created = created
    }

    /// The name without the leading slash Docker puts there.
    public var name: String { names.first.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } ?? String(id.prefix(12)) }
}

extension ContainerEngine {
    /// The exit code of a container whose output has ended. Measured on podman 4.3:
    /// its `/wait` answers 180-480 ms late even for a container that exited already,
    /// while `inspect` shows the exit within ~30 ms. So inspect first, briefly, and
    /// only then wait.
    public func exitCode(ofEnded id: String) async throws -> Int32 {
        for _ in 0..<50 {
            guard let details = try await inspectContainer(id) else { break }
            if !details.running && details.status != "created" { return details.exitCode }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try await waitContainer(id)
    }
}

/// Runs async engine work from a plain thread (a CLI command or an SSH worker,
/// never the cooperative pool) and waits for it: for ever, or until `timeout`,
/// when the work is cancelled and `timedOut` (what did not finish) is thrown as
/// an `unavailable` error. Any error but a `UserFacingError` (a connection the
/// engine broke off mid-answer) becomes an `unavailable` one naming `timedOut` too,
/// so no transport error reaches a user raw.
public func waitFor<T: Sendable>(timeout: Duration? = nil, timedOut: @autoclosure () -> String = "the container engine",
                                 _ operation: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    // Not on the cooperative pool: a caller blocked here may itself hold one of the
    // pool's few threads (a sync test), and the pool would have none left for this.
    let task = Task(executorPreference: BlockingBridgeExecutor.shared) {
        do { box.set(.success(try await operation())) } catch { box.set(.failure(error)) }
        done.signal()
    }
    let result: Result<T, Error>
    if let timeout {
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(min(seconds, Int64(Int.max / 1_000_000_000 - 1))) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        guard done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success, let finished = box.get() else {
            task.cancel()
            throw UserFacingError(.unavailable, "\(timedOut()) did not finish within \(describe(timeout)); try again, and if it persists an admin can check the container engine")
        }
        result = finished
    } else {
        done.wait()
        result = box.get()!
    }
    do {
        return try result.get()
    } catch let error as UserFacingError {
        throw error
    } catch {
        throw UserFacingError(.unavailable, "\(timedOut()) broke off (\(error)); try again, and if it persists an admin can check the container engine")
    }
}

/// `90 s`, `250 ms`: a bound as messages give it.
func describe(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    return seconds >= 1 || attoseconds == 0 ? "\(seconds) s" : "\(attoseconds / 1_000_000_000_000_000) ms"
}

/// Runs `waitFor`'s tasks (and other engine work that must not wait for the
/// cooperative pool) off that pool, on threads dispatch adds as needed.
final class BlockingBridgeExecutor: TaskExecutor {
    static let shared = BlockingBridgeExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // A serial queue per job: dispatch gives a serial queue a thread even when every
        // thread of its shared pool is blocked; a concurrent queue's jobs then wait
        // (measured with a small program: all global threads blocked, the concurrent
        // queue's job never ran, the serial queue's ran at once).
        DispatchQueue(label: "slipway.wait-for").async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// The result handed from the task back to the waiting thread (which may have
/// stopped waiting: a bound ran out).
private final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, Error>?
    func set(_ value: Result<T, Error>) { lock.withLock { result = value } }
    func get() -> Result<T, Error>? { lock.withLock { result } }
}
