import Foundation
import SlipwayCore

/// Drives the real `slipway` binary as a user would: argv, stdin, environment in;
/// stdout, stderr, exit status out.
struct Slipway {
    /// The binary built next to the test bundle (or `SLIPWAY_BIN`).
    static let binary: String = {
        // A child that exits before reading its stdin must not kill the test run.
        signal(SIGPIPE, SIG_IGN)
        if let path = ProcessInfo.processInfo.environment["SLIPWAY_BIN"] { return path }
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundleDir, bundleDir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("slipway").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        fatalError("slipway binary not found next to \(bundleDir.path); run swift build first or set SLIPWAY_BIN")
    }()

    let dataDir: String
    /// Every call and server of this instance reads this config: its own proxy port,
    /// and deploy timings short enough for tests.
    let configPath: String
    let proxyPort: Int
    let tlsPort: Int
    /// Shared by every copy: when the last one goes, so do this instance's nginx and containers.
    private let leftovers: Leftovers

    init(extraConfig: String = "", proxyPort: Int? = nil) throws {
        dataDir = try temporaryDirectory("slipway-e2e")
        configPath = dataDir + ".toml"
        self.proxyPort = try proxyPort ?? freePort()
        tlsPort = try freePort()
        try """
            proxy_port = \(self.proxyPort)
            tls_port = \(tlsPort)
            wait_to_retire = 1
            \(extraConfig)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        leftovers = Leftovers(dataDir: dataDir)
    }

    /// The URL of an app through this instance's nginx.
    func url(_ app: String) -> String { "http://\(app).localhost:\(proxyPort)/" }

    func cleanUp() { leftovers.cleanUp() }

    /// Called by `TestServer` for each server it starts on this instance.
    func register(server: ChildProcess) { leftovers.register(server: server) }

    struct Result {
        let status: Int32
        let out: String
        let err: String
    }

    /// `slipway --data-dir <dir> <args>`.
    @discardableResult
    func callAsFunction(_ args: [String], stdin: Data? = nil, environment: [String: String] = [:]) throws -> Result {
        try run(Self.binary, ["--data-dir", dataDir, "--config", configPath] + args, stdin: stdin, environment: environment)
    }

    @discardableResult
    func callAsFunction(_ args: String..., stdin: String? = nil) throws -> Result {
        try self(args, stdin: stdin.map { Data($0.utf8) })
    }
}

/// Runs a program to completion. Started with posix_spawn (`ChildProcess`), not
/// Foundation's `Process`, whose `run()` crashed the test process (ci19, ci25: a
/// memcpy past the end of its /proc/self/fd scan, swift-corelibs-foundation #5472).
func run(_ path: String, _ args: [String], stdin: Data? = nil, environment: [String: String] = [:]) throws -> Slipway.Result {
    _ = Slipway.binary  // ignores SIGPIPE
    let child = try StartedChild(path, args, environment: environment, stdin: true)
    if let stdin { try? child.stdin?.write(contentsOf: stdin) }
    try? child.stdin?.close()
    let status = child.process.wait()
    return .init(status: status, out: child.stdout.text(), err: child.stderr.text())
}

/// A program started with pipes on its stdin (optional), stdout and stderr (both
/// drained at once, so a chatty child never blocks on a full pipe); the pipes are
/// close-on-exec, so no other child inherits one and holds its end open.
struct StartedChild {
    let process: ChildProcess
    let stdin: FileHandle?
    let stdout: ReadAll
    let stderr: ReadAll

    init(_ path: String, _ args: [String], environment: [String: String] = [:], stdin wantsStdin: Bool = false) throws {
        let input = wantsStdin ? try PosixSpawn.pipe() : nil
        let (outRead, outWrite) = try PosixSpawn.pipe()
        let (errRead, errWrite) = try PosixSpawn.pipe()
        do {
            // The parent's copies of the child's ends go at once, or EOF never comes.
            defer { [input?.read, outWrite, errWrite].compactMap { $0 }.forEach { close($0) } }
            process = try ChildProcess(path, args, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                       stdin: input.map { .descriptor($0.read) } ?? .null,
                                       stdout: .descriptor(outWrite), stderr: .descriptor(errWrite))
        } catch {
            [input?.write, outRead, errRead].compactMap { $0 }.forEach { close($0) }
            throw error
        }
        stdin = input.map { FileHandle(fileDescriptor: $0.write, closeOnDealloc: true) }
        stdout = ReadAll(FileHandle(fileDescriptor: outRead, closeOnDealloc: true))
        stderr = ReadAll(FileHandle(fileDescriptor: errRead, closeOnDealloc: true))
    }
}

/// `Process`'s names for what the tests ask of a running child.
extension ChildProcess {
    var processIdentifier: pid_t { pid }
    func terminate() { signal(SIGTERM) }
    func waitUntilExit() { wait() }
    var terminationStatus: Int32 { wait() }
}

/// Drains a pipe on a background thread; `text()` waits for EOF (once) and may be
/// called again; `firstLine()` returns as soon as one whole line has come.
final class ReadAll: @unchecked Sendable {
    private var data = Data()
    private var ended = false
    private let condition = NSCondition()

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                condition.withLock {
                    if chunk.isEmpty { ended = true } else { data.append(chunk) }
                    condition.broadcast()
                }
                if chunk.isEmpty { break }
            }
        }
    }

    func text() -> String {
        condition.withLock {
            while !ended { condition.wait() }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// The first line without its newline, or nil when the pipe ended before one.
    func firstLine() -> String? {
        condition.withLock {
            while !ended, !data.contains(UInt8(ascii: "\n")) { condition.wait() }
            guard let end = data.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            return String(decoding: data[..<end], as: UTF8.self)
        }
    }
}

/// Stops an instance's servers and nginx and removes its containers, networks and the
/// images it built (they outlive servers by design).
final class Leftovers: @unchecked Sendable {
    let dataDir: String
    private let lock = NSLock()
    private var servers: [ChildProcess] = []
    init(dataDir: String) { self.dataDir = dataDir }
    deinit { cleanUp() }

    /// A server of this instance, stopped before its nginx: a server still running
    /// when its nginx is sent SIGQUIT restarts it, and that nginx outlived the test
    /// (and its data dir) in green CI runs.
    func register(server: ChildProcess) { lock.withLock { servers.append(server) } }

    func cleanUp() {
        for server in lock.withLock({ servers }) where server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        if let pid = try? String(contentsOfFile: dataDir + "/nginx/nginx.pid", encoding: .utf8), let number = Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(number, SIGQUIT)
        }
        guard let instance = try? String(contentsOfFile: dataDir + "/instance-id", encoding: .utf8) else { return }
        let filter = "{\"label\":[\"org.slipway.instance=\(instance.trimmingCharacters(in: .whitespacesAndNewlines))\"]}"
        _ = try? run("/bin/sh", ["-c", """
            for id in $(curl -s --unix-socket /run/podman/podman.sock -G 'http://d/v1.41/containers/json' --data-urlencode all=1 --data-urlencode "filters=$0" | python3 -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))'); do
              curl -s --unix-socket /run/podman/podman.sock -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null
            done
            for name in $(curl -s --unix-socket /run/podman/podman.sock -G 'http://d/v1.41/networks' --data-urlencode "filters=$0" | python3 -c 'import json,sys; print(" ".join(n["Name"] for n in json.load(sys.stdin)))'); do
              curl -s --unix-socket /run/podman/podman.sock -X DELETE "http://d/v1.41/networks/$name" >/dev/null
            done
            for image in $(sqlite3 "$1/slipway.db" 'SELECT DISTINCT image FROM builds' 2>/dev/null); do
              curl -s --unix-socket /run/podman/podman.sock -X DELETE "http://d/v1.41/images/$image" >/dev/null
            done
            for id in $(curl -s --unix-socket /run/podman/podman.sock -G 'http://d/v1.41/images/json' --data-urlencode 'filters={"dangling":["true"],"label":["org.slipway.build-of"]}' | python3 -c 'import json,sys; print(" ".join(i["Id"] for i in json.load(sys.stdin) if (i.get("Labels") or {}).get("org.slipway.build-of", "").startswith(sys.argv[1] + ":")))' "$2"); do
              curl -s --unix-socket /run/podman/podman.sock -X DELETE "http://d/v1.41/images/$id" >/dev/null
            done
            """, filter, dataDir, instance.trimmingCharacters(in: .whitespacesAndNewlines)])
    }
}

/// A TCP port nothing listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw HarnessError("cannot find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A raw TCP connection to 127.0.0.1, for conversations curl cannot hold (a WebSocket).
final class TCPConnection {
    private let fd: Int32

    init(port: Int, timeoutSeconds: Int = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { close(fd); throw HarnessError("cannot connect to 127.0.0.1:\(port)") }
    }

    deinit { close(fd) }

    func send(_ data: Data) {
        _ = data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Reads until `complete` says the bytes so far are enough, the peer closes, or the timeout.
    func receive(until complete: (Data) -> Bool) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !complete(data) {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            data.append(contentsOf: buffer[0..<count])
        }
        return data
    }
}

func temporaryDirectory(_ prefix: String) throws -> String {
    // Short: unix sockets live in some of these (ssh's ControlPath adds 17 characters
    // to its path, and the whole must fit in 108 bytes even under test.sh's TMPDIR).
    let path = scratchRoot + "/\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// One folder per test process holds every file the end-to-end tests make (data
/// dirs, repositories, keys); it goes when the process exits, failed tests included.
let scratchRoot: String = {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("e2e.\(getpid())").path
    try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
    return root
}()

/// A fresh key pair from ssh-keygen: (public key line, private key path).
func generateKey(_ type: String = "ed25519", bits: Int? = nil, comment: String = "e2e@test") throws -> (publicLine: String, privatePath: String) {
    let path = try temporaryDirectory("slipway-key") + "/id"
    var args = ["-q", "-t", type, "-N", "", "-C", comment, "-f", path]
    if let bits { args += ["-b", "\(bits)"] }
    let result = try run("/usr/bin/ssh-keygen", args)
    precondition(result.status == 0, "ssh-keygen: \(result.err)")
    return (try String(contentsOfFile: path + ".pub", encoding: .utf8), path)
}

/// Runs `body(0..<count)` at the same time on as many threads; returns the failures
/// (`body` returns a message, or throws) as "index: message".
func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) throws -> String?) -> [String] {
    final class Collected: @unchecked Sendable {
        let lock = NSLock()
        var items: [String] = []
    }
    let failures = Collected()
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            let failure: String?
            do { failure = try body(index) } catch { failure = "\(error)" }
            if let failure { failures.lock.withLock { failures.items.append("\(index): \(failure)") } }
        }
    }
    group.wait()
    return failures.lock.withLock { failures.items }
}
