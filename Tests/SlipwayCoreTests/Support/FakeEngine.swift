import Foundation
@testable import SlipwayCore

/// A container engine that keeps containers in memory and plays their processes
/// by their command, for rollout tests without podman: `crash` exits 1 at start
/// (shown, as podman 4.3 does, first as exited with status 0, then with the real
/// status), anything else runs. Names are unique, as the engine's are.
final class FakeEngine: ContainerEngine, @unchecked Sendable {
    struct Box {
        var id: String
        var name: String
        var labels: [String: String]
        var command: String
        var running = false
        var status = "created"
        var exitCode: Int32 = 0
        var inspections = 0
        var hostPort: Int?
        var restartPolicy: RestartPolicy = .never
        var startedAt: Date?
    }

    let endpoint = "fake-engine"
    private let lock = NSLock()
    private var boxes: [String: Box] = [:]
    private var next = 0
    private var log: [String] = []
    private var failingRemovals: [String: Int] = [:]
    /// Exec ids to their container's id; paths execs wrote, by container id.
    private var execs: [String: String] = [:]
    private var written: [String: [String]] = [:]
    /// Output every container prints (stdout), then `errorOutput` (stderr).
    var output = "boom\n"
    var errorOutput = ""
    /// A follow stream never ends by itself (until cancelled).
    var followStaysOpen = false
    /// Follow streams, one each, end after this many lines, the rest unsent (podman 4.3
    /// in ci37); later ones send everything.
    var followEndsAfterLines: [Int] = []

    var calls: [String] { lock.withLock { log } }
    /// The containers now, by name.
    var names: [String] { lock.withLock { boxes.values.map(\.name).sorted() } }
    func container(named name: String) -> Box? { lock.withLock { boxes.values.first { $0.name == name } } }
    /// The next `times` removals of the container fail (podman: "container state improper").
    func failRemoval(of id: String, times: Int) { lock.withLock { failingRemovals[id] = times } }

    private func record(_ call: String) { lock.withLock { log.append(call) } }

    func ping() async throws {}
    func version() async throws -> EngineVersion { EngineVersion(version: "0", apiVersion: "1.41", kind: "fake") }
    func importImage(fromTarFile path: String, reference: String, changes: [String]) async throws {}
    /// Images `danglingImages` answers, by label value (what failed builds left).
    var dangling: [String: [DanglingImage]] = [:]
    func danglingImages(label: String, value: String) async throws -> [DanglingImage] {
        lock.withLock { dangling[value] ?? [] }
    }
    func inspectImage(_ reference: String) async throws -> ImageInfo? {
        lock.withLock { missingImages.contains(reference) ? nil : ImageInfo(id: reference, created: nil, size: 0, user: "", labels: imageLabels) }
    }
    /// Labels every image has (the builder's languages); images the engine does not have.
    var imageLabels: [String: String] = [:]
    var missingImages: Set<String> = []
    /// Every container spec and build request, as asked.
    var specs: [ContainerSpec] { lock.withLock { createdSpecs } }
    var builds: [BuildRequest] { lock.withLock { buildRequests } }
    private var createdSpecs: [ContainerSpec] = []
    private var buildRequests: [BuildRequest] = []
    var contexts: [String] { lock.withLock { buildContexts } }
    private var buildContexts: [String] = []
    /// The next builds fail with these messages, one each; then builds succeed.
    var buildFailures: [String] {
        get { lock.withLock { scriptedBuildFailures } }
        set { lock.withLock { scriptedBuildFailures = newValue } }
    }
    private var scriptedBuildFailures: [String] = []
    func buildImage(_ request: BuildRequest, output: @escaping @Sendable (String) -> Void) async throws {
        record("build \(request.tag)")
        try lock.withLock {
            buildRequests.append(request)
            // What the engine was sent (the Dockerfile and every file), as text.
            buildContexts.append(String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: request.contextTarFile))) ?? Data(), as: UTF8.self))
            missingImages.remove(request.tag)
            if !scriptedBuildFailures.isEmpty { throw UserFacingError(.conflict, "the build failed: " + scriptedBuildFailures.removeFirst()) }
        }
    }
    /// Runs at each container's creation, before it starts: a test's stand-in for what the
    /// container's command does to its binds (e.g. an install writing files).
    var onCreate: (@Sendable (ContainerSpec) -> Void)?
    func createContainer(_ spec: ContainerSpec) async throws -> String {
        onCreate?(spec)
        return try lock.withLock {
            let name = spec.name ?? "auto-\(next)"
            guard !boxes.values.contains(where: { $0.name == name }) else { throw UserFacingError(.conflict, "name \(name) is already in use") }
            next += 1
            createdSpecs.append(spec)
            let id = "c\(next)"
            boxes[id] = Box(id: id, name: name, labels: spec.labels, command: spec.command?.joined(separator: " ") ?? "",
                            hostPort: spec.publishedPort.map { _ in 40000 + next }, restartPolicy: spec.restartPolicy)
            log.append("create \(name)")
            return id
        }
    }
    func attach(_ id: String) throws -> ContainerAttachment { throw UserFacingError(.unavailable, "the fake engine cannot attach") }
    func startContainer(_ id: String) async throws {
        // A command with "hang" starts only after a long while (a stuck engine).
        if lock.withLock({ boxes[id]?.command.contains("hang") == true }) { try await Task.sleep(for: .seconds(30)) }
        lock.withLock {
            guard var box = boxes[id] else { return }
            log.append("start \(box.name)")
            box.running = !box.command.contains("crash")
            box.status = box.running ? "running" : "exited"
            box.startedAt = Date()
            boxes[id] = box
        }
    }
    /// Containers run this long after their start before they exit (nil: they have
    /// exited as soon as anyone waits for them).
    var runsFor: TimeInterval?
    func waitContainer(_ id: String) async throws -> Int32 {
        if let runsFor, let started = lock.withLock({ boxes[id]?.startedAt }) {
            let left = started.addingTimeInterval(runsFor).timeIntervalSinceNow
            if left > 0 { try await Task.sleep(for: .seconds(left)) }
        }
        return try lock.withLock {
            guard var box = boxes[id] else { throw UserFacingError(.notFound, "no such container \(id)") }
            box.running = false
            box.status = "exited"
            boxes[id] = box
            return box.exitCode
        }
    }
    func streamLogs(_ id: String, follow: Bool, tail: Int?, _ sink: @escaping @Sendable (OutputChunk) -> Void) async throws {
        func lines(_ text: String, _ stream: OutputChunk.Stream) -> [OutputChunk] {
            text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { OutputChunk(stream: stream, data: Data(($0 + "\n").utf8)) }
        }
        var chunks = lines(output, .stdout) + lines(errorOutput, .stderr)
        try lock.withLock {
            guard boxes[id] != nil else { throw UserFacingError(.notFound, "no such container \(id)") }
            log.append("logs\(follow ? " follow" : "") \(id)")
            if follow, !followEndsAfterLines.isEmpty { chunks = Array(chunks.prefix(followEndsAfterLines.removeFirst())) }
        }
        for chunk in chunks { sink(chunk) }
        // podman 4.3 as seen in ci22: a follow stream that stays open after its container exited.
        if follow && followStaysOpen { try await Task.sleep(for: .seconds(3600)) }
    }
    func resizeContainer(_ id: String, columns: Int, rows: Int) async throws {}
    /// Execs run at once: each prints `execOutput` on stdout and exits with `execStatus`.
    var execOutput = "entered\n"
    var execStatus: Int32 = 0
    /// Paths each exec adds to its container's filesystem (`changes`).
    var execWrites: [String] = []
    func createExec(in containerID: String, _ spec: ExecSpec) async throws -> String {
        try lock.withLock {
            guard let box = boxes[containerID] else { throw UserFacingError.notFound("no such container: \(containerID)") }
            guard box.running else { throw UserFacingError(.conflict, "container \(box.name) is not running") }
            next += 1
            log.append("exec \(box.name) \(spec.command.joined(separator: " "))\(spec.tty ? " (tty)" : "")")
            execs["e\(next)"] = containerID
            return "e\(next)"
        }
    }
    func startExec(_ execID: String, tty: Bool) throws -> ContainerAttachment {
        lock.withLock {
            if let id = execs[execID] { written[id, default: []] += execWrites }
            // Without a tty the engine frames stdout: stream 1, then the length, big-endian.
            let text = Data(execOutput.utf8)
            var bytes = text
            if !tty {
                let n = UInt32(text.count)
                bytes = Data([1, 0, 0, 0, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]) + text
            }
            return CannedAttachment(bytes)
        }
    }
    func resizeExec(_ execID: String, columns: Int, rows: Int) async throws {}
    func inspectExec(_ execID: String) async throws -> ExecState { ExecState(running: false, exitCode: lock.withLock { execStatus }) }
    func stopContainer(_ id: String, timeoutSeconds: Int) async throws {
        lock.withLock {
            if let box = boxes[id] { log.append("stop \(box.name)") }
            boxes[id]?.running = false
            boxes[id]?.status = "exited"
        }
    }
    func inspectContainer(_ reference: String) async throws -> ContainerDetails? {
        lock.withLock {
            // As the real engine: an id or a name.
            let id = boxes[reference] != nil ? reference : boxes.values.first { $0.name == reference }?.id ?? reference
            guard var box = boxes[id] else { return nil }
            box.inspections += 1
            // A crashed process: its status shows 0 at first, the real one after.
            if box.command.contains("crash") && box.inspections > 1 { box.exitCode = 1 }
            boxes[id] = box
            return ContainerDetails(id: id, name: box.name, image: "", running: box.running, status: box.status, exitCode: box.exitCode,
                                    restartCount: 0, startedAt: nil, labels: box.labels, hostPorts: box.hostPort.map { [5000: $0] } ?? [:])
        }
    }
    func renameContainer(_ id: String, to name: String) async throws {
        try lock.withLock {
            if let holder = boxes.values.first(where: { $0.name == name && $0.id != id }) {
                throw UserFacingError(.conflict, "name \(name) is already in use by \(holder.id)")
            }
            boxes[id]?.name = name
            log.append("rename \(id) \(name)")
        }
    }
    func commitContainer(_ id: String, reference: String, changes: [String]) async throws {}
    func removeImage(_ reference: String) async throws {
        record("rmi \(reference)")
        lock.withLock { for (key, images) in dangling { dangling[key] = images.filter { $0.id != reference } } }
    }
    func tagImage(_ reference: String, as newReference: String) async throws { record("tag \(reference) \(newReference)") }
    /// A push fails with `pushError` when set (no registry runs in tests).
    func pushImage(_ reference: String, registryAuth: String?) async throws {
        record("push \(reference)")
        if let pushError { throw UserFacingError(.unavailable, pushError) }
    }
    var pushError: String?
    func changes(_ id: String) async throws -> [FileChange] { lock.withLock { (written[id] ?? []).map { FileChange(path: $0, kind: .added) } } }
    func removeContainer(_ id: String, force: Bool) async throws {
        // As over HTTP: a request of a cancelled task is never sent.
        try Task.checkCancellation()
        try lock.withLock {
            if let left = failingRemovals[id], left > 0 {
                failingRemovals[id] = left - 1
                throw UserFacingError(.unavailable, "container state improper")
            }
            if let box = boxes.removeValue(forKey: id) { log.append("remove \(box.name)") }
        }
    }
    func listContainers(labels: [String: String]) async throws -> [ContainerSummary] {
        lock.withLock {
            boxes.values.filter { box in labels.allSatisfy { box.labels[$0.key] == $0.value } }.sorted { $0.id < $1.id }
                .map { ContainerSummary(id: $0.id, names: ["/" + $0.name], state: $0.status, labels: $0.labels) }
        }
    }
    func ensureNetwork(of sandbox: TenantSandbox) async throws {}
    func removeNetwork(of sandbox: TenantSandbox) async throws {}
    func connectNetwork(of sandbox: TenantSandbox, container id: String, alias: String) async throws {}
    func disconnectNetwork(of sandbox: TenantSandbox, container id: String) async throws {}
    func userNamespaceBase(of sandbox: TenantSandbox) async throws -> UInt32 { sandbox.idRange.hostBase }
}

/// An attachment that gives fixed bytes, then the end; what is written to it is dropped.
final class CannedAttachment: ContainerAttachment, @unchecked Sendable {
    private let lock = NSLock()
    private var pending: Data?
    init(_ bytes: Data) { pending = bytes }
    func write(_ data: Data) throws {}
    func closeWrite() {}
    func read(timeoutMilliseconds: Int32) throws -> Data? {
        lock.withLock {
            defer { pending = Data() }
            return pending ?? Data()
        }
    }
}

/// Health checks against fake containers: every address answers `status`.
final class FakeProbe: HTTPProbe, @unchecked Sendable {
    private let lock = NSLock()
    private var answer = 200
    var status: Int {
        get { lock.withLock { answer } }
        set { lock.withLock { answer = newValue } }
    }

    /// When set, every GET fails with it (nothing listening).
    var refusal: String? {
        get { lock.withLock { refused } }
        set { lock.withLock { refused = newValue } }
    }
    private var refused: String?

    func get(_ url: String, timeout: TimeInterval) async throws -> (status: Int, body: String) {
        if let refusal { throw UserFacingError(.unavailable, refusal) }
        return (status, "")
    }
}
