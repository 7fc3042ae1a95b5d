import Foundation

/// Slipway's containers on the engine, as every service makes and finds them:
/// typed labels (every label set, see `ContainerLabel`), create → start with the
/// container removed when a step fails, a bound on every engine wait, and the
/// blocking bridge from a command's thread to the async engine. Deploys, runs,
/// the image-user helper and the builder's app base all go through here.
public struct Containers: Sendable {
    public let engine: ContainerEngine
    /// This server's instance id: its containers carry it, and only those are touched.
    public let instance: String

    /// An engine call that is not a container's own run (inspect, create, list, remove).
    public static let callTimeout: Duration = .seconds(120)
    /// A deploy task, from start to exit.
    public static let taskTimeout: Duration = .seconds(3600)

    public init(engine: ContainerEngine, instance: String) {
        self.engine = engine
        self.instance = instance
    }

    /// Labels for a new container of this server.
    public func labels(app: AppName?, kind: ContainerKind) -> ContainerLabels {
        ContainerLabels(app: app?.rawValue ?? "", kind: kind, instance: instance)
    }

    /// Runs engine work from a command's thread, bounded by `timeout`.
    public func call<T: Sendable>(_ what: @autoclosure () -> String = "the container engine", timeout: Duration = Self.callTimeout,
                                  _ operation: @escaping @Sendable (ContainerEngine) async throws -> T) throws -> T {
        let engine = self.engine
        return try waitFor(timeout: timeout, timedOut: what()) { try await operation(engine) }
    }

    /// How long a container's follow stream may stay open after the container ended.
    static let followGrace: Duration = .seconds(2)

    /// Follows a (non-TTY) container's output to its end, every byte of it, once. Why not
    /// the stream alone: podman 4.3's follow stream once stayed open after its container
    /// had exited (ci22: a deploy task waited the hour of its timeout), and once closed
    /// with the last lines unsent (ci37: npm's error cut after its first two lines). So:
    /// - the exit is awaited beside the stream, and a stream still open `followGrace`
    ///   after it is cancelled;
    /// - a stream that ends (or fails) while the container still runs is opened again;
    /// - once the container has ended, its stored log is read once more.
    /// Each read starts at the log's beginning and passes on only the bytes, per stream,
    /// that no earlier read delivered (`LogReads`). That assumes the engine keeps the
    /// whole log (podman's default; a size-capped or rotated log could lose a missed tail).
    /// Throws when the container went away meanwhile (removed: nothing more to read).
    static func follow(_ id: String, on engine: ContainerEngine, _ sink: @escaping @Sendable (OutputChunk) -> Void) async throws {
        let reads = LogReads()
        while true {
            reads.startRead()
            let exited = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    do {
                        try await engine.streamLogs(id, follow: true, tail: nil) { chunk in reads.pass(chunk).map(sink) }
                    } catch where !(error is CancellationError) && !Task.isCancelled {
                        // A dropped connection ends the stream as a close would: what it
                        // missed comes from the next read.
                    }
                    return false
                }
                group.addTask {
                    _ = try await engine.waitContainer(id)
                    try await Task.sleep(for: followGrace)
                    return true
                }
                let first = try await group.next()!
                group.cancelAll()
                return first
            }
            if exited { break }
            // The stream ended first: opened again while the container runs (not at once:
            // a stream that keeps ending must not spin), else on to the last read (which
            // throws for a container removed meanwhile).
            guard let details = try await engine.inspectContainer(id), details.running || details.status == "created" else { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        _ = try await engine.waitContainer(id)
        reads.startRead()
        try await engine.streamLogs(id, follow: false, tail: nil) { chunk in reads.pass(chunk).map(sink) }
    }

    /// Creates and starts a container with `labels` (every one set); a container
    /// that did not start is removed. Returns its id.
    public func start(_ spec: ContainerSpec, labels: ContainerLabels, timeout: Duration = Self.callTimeout) throws -> String {
        let spec = Self.labelled(spec, labels)
        return try call("starting \(spec.name ?? "a container")", timeout: timeout) { engine in try await Self.start(spec, on: engine) }
    }

    /// The same, inside async engine work (the builder's commit of a created container).
    static func start(_ spec: ContainerSpec, on engine: ContainerEngine, start: Bool = true) async throws -> String {
        let id = try await engine.createContainer(spec)
        guard start else { return id }
        do { try await engine.startContainer(id) } catch {
            await removeAnyway(id, on: engine)
            throw error
        }
        return id
    }

    /// Removes a container that failed along the way, in a task of its own: the work
    /// that made it may have been cancelled (a call past its timeout), and a request
    /// made from a cancelled task never reaches the engine, which left it behind. Off
    /// the cooperative pool, as `waitFor`'s work is: callers blocked on that pool's few
    /// threads (sync tests; seen in CI) kept the removal from ever running.
    static func removeAnyway(_ id: String, on engine: ContainerEngine) async {
        await Task.detached(executorPreference: BlockingBridgeExecutor.shared) { try? await engine.removeContainer(id, force: true) }.value
    }

    /// How a container that ran to its end ended.
    public struct Ended: Sendable {
        public let status: Int32
        public let changes: [FileChange]
        /// Inspected when it failed (OOM kills), else nil.
        public let details: ContainerDetails?
    }

    /// Runs a container to its end, passing its output to `sink` (with `logTail`: only
    /// its last lines, once it ended), within `timeout` (else `tooLong` is thrown); it
    /// is removed on every path.
    public func runToEnd(_ spec: ContainerSpec, labels: ContainerLabels, timeout: Duration = Self.taskTimeout,
                         tooLong: UserFacingError? = nil, logTail: Int? = nil,
                         sink: @escaping @Sendable (OutputChunk) -> Void) throws -> Ended {
        let spec = Self.labelled(spec, labels)
        let name = spec.name ?? "a container"
        return try call("\(name)", timeout: timeout + .seconds(30)) { engine in
            let id = try await Self.start(spec, on: engine)
            do {
                let ended = try await withThrowingTaskGroup(of: Ended?.self) { group in
                    group.addTask {
                        if logTail == nil {
                            try await Self.follow(id, on: engine, sink)
                        } else {
                            // Only the last lines matter (a helper's answer): wait for the end, then read them.
                            while let details = try await engine.inspectContainer(id), details.running || details.status == "created" {
                                try await Task.sleep(for: .milliseconds(20))
                            }
                            try await engine.streamLogs(id, follow: false, tail: logTail, sink)
                        }
                        let status = try await engine.exitCode(ofEnded: id)
                        let changes = logTail == nil ? try await engine.changes(id) : []
                        let details = status == 0 ? nil : try await engine.inspectContainer(id)
                        return Ended(status: status, changes: changes, details: details)
                    }
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        return nil
                    }
                    let first = try await group.next()!
                    group.cancelAll()
                    return first
                }
                try await engine.removeContainer(id, force: true)
                guard let ended else { throw tooLong ?? UserFacingError(.conflict, "\(name) did not end within \(describe(timeout))") }
                return ended
            } catch {
                await Self.removeAnyway(id, on: engine)
                throw error
            }
        }
    }

    /// This server's containers with these labels set (nil: any value).
    public func list(app: AppName?, kind: ContainerKind?, by user: String? = nil, origin: String? = nil) throws -> [ContainerSummary] {
        var filter = [ContainerLabel.instance: instance]
        if let app { filter[ContainerLabel.app] = app.rawValue }
        if let kind { filter[ContainerLabel.kind] = kind.rawValue }
        if let user { filter[ContainerLabel.by] = user }
        if let origin { filter[ContainerLabel.origin] = origin }
        return try call { [filter] engine in try await engine.listContainers(labels: filter) }
    }

    public func inspect(_ id: String) throws -> ContainerDetails? {
        try call { engine in try await engine.inspectContainer(id) }
    }

    public func inspectImage(_ reference: String) throws -> ImageInfo? {
        try call { engine in try await engine.inspectImage(reference) }
    }

    /// Removes the containers (force); ones gone already are fine.
    public func remove(_ ids: [String]) throws {
        try call { engine in for id in ids { try await engine.removeContainer(id, force: true) } }
    }

    /// Stops (SIGTERM, then SIGKILL after `grace` seconds) and, if `remove`, removes them.
    public func stop(_ ids: [String], grace: Int = 10, remove: Bool) throws {
        try call(timeout: .seconds(Int64(grace * max(ids.count, 1) + 120))) { engine in
            for id in ids {
                try await engine.stopContainer(id, timeoutSeconds: grace)
                if remove { try await engine.removeContainer(id, force: true) }
            }
        }
    }

    /// The container's last `count` output lines.
    public func lastLines(_ id: String, count: Int) -> [String] {
        let text = TextCollector()
        _ = try? call { engine in try await engine.streamLogs(id, follow: false, tail: count) { text.append($0.data) } }
        return text.value.split(separator: "\n").suffix(count).map(String.init)
    }

    /// A running container's real exit status, for a check that found it not running
    /// or restarted. podman 4.3 (measured) shows exit code 0 while a process it
    /// restarted runs again, and for a moment after an exit before the status is
    /// written; an `on-failure` container is only restarted after a non-zero exit.
    /// So look, for up to 2 s, for a non-zero exit between restarts. nil: it is gone.
    public func exitStatus(_ id: String, _ seen: ContainerDetails?) -> ExitStatus? {
        guard var details = seen ?? (try? inspect(id)) ?? nil else { return nil }
        let deadline = ContinuousClock.now + .seconds(2)
        while details.exitCode == 0 && (details.restartCount > 0 || !details.running) && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.005)
            guard let now = try? inspect(id) else { break }
            if now.exitCode != 0 && !now.running { return ExitStatus(details: now, restarted: now.restartCount > 0) }
            details = now
        }
        return ExitStatus(details: details, restarted: details.restartCount > 0)
    }

    /// How a process ended, as a check reports it.
    public struct ExitStatus: Sendable {
        public let details: ContainerDetails
        /// The engine restarted it (it exited non-zero at least once).
        public let restarted: Bool

        /// "exited with status 1"; a restarted process whose status was not caught
        /// exited non-zero (the engine restarts only those), which is what it says then.
        public var description: String {
            if details.exitCode == 0 && restarted { return "exited with a non-zero status (the engine restarted it \(details.restartCount) time\(details.restartCount == 1 ? "" : "s"))" }
            return "exited with status \(details.exitCode)"
        }
    }

    /// `spec` with every label set, the given ones from `labels`.
    static func labelled(_ spec: ContainerSpec, _ labels: ContainerLabels) -> ContainerSpec {
        var spec = spec
        spec.labels = labels.labels
        return spec
    }
}

/// Reads of one container's log, each from its start (`Containers.follow`): what each
/// passes on is what no earlier read delivered, counted per stream. One read at a time.
final class LogReads: @unchecked Sendable {
    private let lock = NSLock()
    private var delivered: [OutputChunk.Stream: Int] = [:]
    private var position: [OutputChunk.Stream: Int] = [:]

    /// A new read from the log's start.
    func startRead() { lock.withLock { position = [:] } }

    /// The part of `chunk`, the next of the current read, that no read delivered yet.
    func pass(_ chunk: OutputChunk) -> OutputChunk? {
        lock.withLock {
            let at = position[chunk.stream, default: 0], count = chunk.data.count
            position[chunk.stream] = at + count
            let skip = max(0, delivered[chunk.stream, default: 0] - at)
            guard skip < count else { return nil }
            delivered[chunk.stream] = at + count
            return skip == 0 ? chunk : OutputChunk(stream: chunk.stream, data: Data(chunk.data.dropFirst(skip)))
        }
    }
}
