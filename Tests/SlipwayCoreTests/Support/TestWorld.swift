import Foundation
import Logging
import SlipwayCommands
import GRDB
import SlipwayCore
import SlipwayHost

/// Collects what a command prints.
final class Buffer: TextOutput, @unchecked Sendable {
    private let lock = NSLock()
    private var storage = ""
    func write(_ text: String) { lock.withLock { storage += text } }
    var text: String { lock.withLock { storage } }
}

/// Standard input from a fixed string (or "a terminal", when nil).
struct FixedInput: InputSource {
    let data: Data?
    var isInteractive: Bool { data == nil }
    func readAll(limit: Int) throws -> Data? {
        guard let data else { return Data() }
        return data.count > limit ? nil : data
    }
    func readChunk(max: Int) throws -> Data { Data() }
    func readLine(limit: Int) throws -> Data? {
        guard let data else { return Data() }
        let line = data.prefix { $0 != UInt8(ascii: "\n") }
        return line.count > limit ? nil : Data(line)
    }
}

/// One command's result.
struct Outcome {
    let status: Int32
    let out: String
    let err: String
}

/// A fresh path (not created) under one folder per test process, which goes when
/// the process exits.
func scratchPath(_ prefix: String) -> String { scratchRoot + "/\(prefix)-\(UUID().uuidString)" }

private let scratchRoot: String = {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("slipway-core-run.\(getpid())").path
    try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
    return root
}()

/// A fresh Slipway state (temp data dir, real SQLite) driven through the real
/// command runner, as the local CLI and SSH drive it.
struct TestWorld {
    let core: Core
    let runner: CommandRunner
    let proxy: RecordingProxy

    init(acme: any ACMEClient = NoACMEClient(), settings: (inout Settings) -> Void = { _ in }) throws {
        var s = Settings()
        s.dataDir = scratchPath("slipway-test")
        settings(&s)
        proxy = RecordingProxy(directory: s.dataDir + "/proxy")
        core = try Core(settings: s, engine: RecordingEngine(), probe: RefusingProbe(), proxy: proxy, processes: LocalProcesses(), acme: acme)
        runner = CommandRunner(core: core, logger: Logger(label: "test"))
    }

    /// Runs `argv` as `principal` (default: the local admin).
    @discardableResult
    func run(_ argv: [String], as principal: Principal = .localAdmin, stdin: String? = "") -> Outcome {
        let out = Buffer(), err = Buffer()
        let status = runner.run(argv, as: principal, stdout: out, stderr: err, stdin: FixedInput(data: stdin.map { Data($0.utf8) }))
        return Outcome(status: status, out: out.text, err: err.text)
    }

    /// Runs as the named user, as `--as` does.
    @discardableResult
    func run(_ argv: [String], asUser name: String, stdin: String? = "") throws -> Outcome {
        run(argv, as: try principal(name), stdin: stdin)
    }

    func principal(_ name: String) throws -> Principal {
        guard let user = try core.users.find(UserName(name)) else { throw UserFacingError.notFound(name) }
        return Principal(identity: .user(user), channel: "ssh")
    }

    /// Every row of every table, as text: equal dumps mean nothing changed.
    func dump() throws -> String {
        try core.store.read { db in
            let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            return try tables.map { table in
                "\(table): " + (try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\" ORDER BY rowid")).map(\.description).joined(separator: "; ")
            }.joined(separator: "\n")
        }
    }
}

/// Runs a program and returns its stdout (tests use ssh-keygen as the reference).
func runTool(_ path: String, _ args: [String]) throws -> (status: Int32, out: String) {
    let result = try ProcessRunner.run(path, args)
    return (result.status, result.stdout)
}

/// Makes a key pair with ssh-keygen in a temp dir; returns the public key line.
func makeKey(_ type: String, bits: Int? = nil, comment: String = "test@host") throws -> (line: String, path: String) {
    let dir = URL(fileURLWithPath: scratchPath("slipway-keys"))
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent("id").path
    var args = ["-q", "-t", type, "-N", "", "-C", comment, "-f", path]
    if let bits { args += ["-b", "\(bits)"] }
    let result = try runTool("/usr/bin/ssh-keygen", args)
    precondition(result.status == 0, "ssh-keygen failed")
    return (try String(contentsOfFile: path + ".pub", encoding: .utf8), path + ".pub")
}

/// A container engine that records what it is asked and answers from fixed state,
/// for core tests without sockets.
final class RecordingEngine: ContainerEngine, @unchecked Sendable {
    let endpoint = "recording-engine"
    private let lock = NSLock()
    private(set) var calls: [String] = []
    var images: [String: ImageInfo] = [:]

    private func record(_ call: String) { lock.withLock { calls.append(call) } }

    func ping() async throws { record("ping") }
    func version() async throws -> EngineVersion { record("version"); return EngineVersion(version: "0", apiVersion: "1.41", kind: "recording") }
    func importImage(fromTarFile path: String, reference: String, changes: [String]) async throws { record("import \(reference)") }
    func inspectImage(_ reference: String) async throws -> ImageInfo? { record("inspect \(reference)"); return lock.withLock { images[reference] } }
    func danglingImages(label: String, value: String) async throws -> [DanglingImage] { record("dangling \(label)=\(value)"); return [] }
    func buildImage(_ request: BuildRequest, output: @escaping @Sendable (String) -> Void) async throws { record("build \(request.tag)") }
    /// Every container spec asked for, in order.
    private(set) var specs: [ContainerSpec] = []
    func createContainer(_ spec: ContainerSpec) async throws -> String {
        record("create \(spec.image)")
        lock.withLock { specs.append(spec) }
        return "c1"
    }
    func startContainer(_ id: String) async throws { record("start \(id)") }
    func attach(_ id: String) throws -> ContainerAttachment { throw UserFacingError(.unavailable, "the recording engine cannot attach") }
    func waitContainer(_ id: String) async throws -> Int32 { record("wait \(id)"); return 0 }
    func streamLogs(_ id: String, follow: Bool, tail: Int?, _ sink: @escaping @Sendable (OutputChunk) -> Void) async throws { record("logs \(id)") }
    func resizeContainer(_ id: String, columns: Int, rows: Int) async throws { record("resize \(id)") }
    func createExec(in containerID: String, _ spec: ExecSpec) async throws -> String { record("exec \(containerID)"); return "e1" }
    /// An exec's output ends at once, and its status is 0 (`inspectExec`): a service's readiness probe passes.
    func startExec(_ execID: String, tty: Bool) throws -> ContainerAttachment { record("start exec \(execID)"); return EndedAttachment() }
    func resizeExec(_ execID: String, columns: Int, rows: Int) async throws { record("resize exec \(execID)") }
    func inspectExec(_ execID: String) async throws -> ExecState { ExecState(running: false, exitCode: 0) }
    func stopContainer(_ id: String, timeoutSeconds: Int) async throws { record("stop \(id)") }
    func inspectContainer(_ id: String) async throws -> ContainerDetails? { record("inspect container \(id)"); return nil }
    func removeImage(_ reference: String) async throws { record("remove image \(reference)") }
    func tagImage(_ reference: String, as newReference: String) async throws { record("tag image \(reference) \(newReference)") }
    func pushImage(_ reference: String, registryAuth: String?) async throws { record("push image \(reference)") }
    func commitContainer(_ id: String, reference: String, changes: [String]) async throws { record("commit \(id) \(reference)") }
    func renameContainer(_ id: String, to name: String) async throws { record("rename \(id) \(name)") }
    func changes(_ id: String) async throws -> [FileChange] { record("changes \(id)"); return [] }
    func removeContainer(_ id: String, force: Bool) async throws { record("remove \(id)") }
    func listContainers(labels: [String: String]) async throws -> [ContainerSummary] { record("list"); return [] }
    func ensureNetwork(of sandbox: TenantSandbox) async throws { record("network \(sandbox.network)") }
    func removeNetwork(of sandbox: TenantSandbox) async throws { record("remove network \(sandbox.network)") }
    func connectNetwork(of sandbox: TenantSandbox, container id: String, alias: String) async throws { record("connect \(id) \(sandbox.network) as \(alias)") }
    func disconnectNetwork(of sandbox: TenantSandbox, container id: String) async throws { record("disconnect \(id) \(sandbox.network)") }
    func userNamespaceBase(of sandbox: TenantSandbox) async throws -> UInt32 { sandbox.idRange.hostBase }
}

/// Unit tests start no app: every health check finds nothing listening.
struct RefusingProbe: HTTPProbe {
    func get(_ url: String, timeout: TimeInterval) async throws -> (status: Int, body: String) {
        throw UserFacingError(.unavailable, "nothing listens at \(url) in unit tests")
    }
}

/// An attachment whose output has ended and whose input is ignored.
final class EndedAttachment: ContainerAttachment {
    func write(_ data: Data) throws {}
    func closeWrite() {}
    func read(timeoutMilliseconds: Int32) throws -> Data? { Data() }
}
