import Foundation
import SlipwayCore

/// A running `slipway serve` on 127.0.0.1 with a port it picked, plus the
/// OpenSSH client and git configured to reach it as a user would.
final class TestServer: @unchecked Sendable {
    let slipway: Slipway
    let process: ChildProcess
    let port: Int
    let knownHosts: String
    private let stderrLog: ReadAll

    /// Starts the server and waits for its `listening on` line (no sleeps).
    init(slipway: Slipway? = nil, config: String? = nil) throws {
        self.slipway = try slipway ?? Slipway()
        let started = try StartedChild(Slipway.binary, ["--data-dir", self.slipway.dataDir, "--config", config ?? self.slipway.configPath,
                                                       "serve", "--listen", "127.0.0.1:0"])
        process = started.process
        self.slipway.register(server: process)
        stderrLog = started.stderr
        // The first line, as it comes (stdout is drained whole by `started.stdout`).
        let line = started.stdout.firstLine()
        guard let line else { throw HarnessError("serve exited before listening: \(stderrLog.text())") }
        let text = line
        guard text.hasPrefix("listening on 127.0.0.1:"), let port = Int(text.split(separator: ":").last ?? "") else {
            throw HarnessError("unexpected first line: \(text)")
        }
        self.port = port
        let hostKey = try self.slipway("host-key").out.split(separator: "\n")[0]
        knownHosts = try temporaryDirectory("slipway-kh") + "/known_hosts"
        try "[127.0.0.1]:\(port) \(hostKey)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
    }

    deinit {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }

    /// SIGTERM, then the exit status.
    func stop() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The server's log so far (only complete after `stop()`).
    var log: String { stderrLog.text() }

    var isRunning: Bool { process.isRunning }

    /// OpenSSH client options that trust exactly this server's host key.
    func sshOptions(key: String) -> [String] {
        ["-F", "/dev/null", "-o", "UserKnownHostsFile=\(knownHosts)", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
         "-i", key, "-p", "\(port)"]
    }

    /// `ssh -p PORT 127.0.0.1 <command>` with `key`.
    @discardableResult
    func ssh(_ key: String, _ command: [String], stdin: String? = nil, options: [String] = []) throws -> Slipway.Result {
        // OpenSSH reads options after the host too: `host --force apps:destroy x` would be
        // its own (unknown) option. A "--" ends its options, as a user must type it.
        let command = command.first.map { $0.hasPrefix("-") && $0 != "--" } == true ? ["--"] + command : command
        return try run("/usr/bin/ssh", sshOptions(key: key) + options + ["127.0.0.1"] + command, stdin: stdin.map { Data($0.utf8) })
    }

    @discardableResult
    func ssh(_ key: String, _ command: String..., stdin: String? = nil) throws -> Slipway.Result {
        try ssh(key, command, stdin: stdin)
    }

    /// The environment for `git` to reach this server with `key`.
    func gitEnvironment(key: String) -> [String: String] {
        ["GIT_SSH_COMMAND": (["ssh"] + sshOptions(key: key).dropLast(2)).map { "'\($0)'" }.joined(separator: " "),
         "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"]
    }

    /// `git <args>` in `directory` against this server.
    @discardableResult
    func git(_ key: String, _ args: [String], in directory: String? = nil) throws -> Slipway.Result {
        try run("/usr/bin/git", (directory.map { ["-C", $0] } ?? []) + args, environment: gitEnvironment(key: key))
    }

    func url(_ app: String) -> String { "ssh://127.0.0.1:\(port)/\(app)" }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A registered user of a test server: name and private key path.
struct TestUser {
    let name: String
    let key: String

    /// Registers `name` (admin or not) with a fresh key, through the local CLI.
    static func register(_ name: String, admin: Bool = false, type: String = "ed25519", bits: Int? = nil, on slipway: Slipway) throws -> TestUser {
        let key = try generateKey(type, bits: bits, comment: "\(name)@test")
        let add = try slipway(["users:add", name] + (admin ? ["--admin"] : []))
        precondition(add.status == 0 || add.err.contains("already exists"), add.err)
        let result = try slipway(["ssh-keys:add", name], stdin: Data(key.publicLine.utf8))
        precondition(result.status == 0, result.err)
        return TestUser(name: name, key: key.privatePath)
    }
}

/// A git work tree with one commit of the given files.
func makeRepository(_ files: [String: Data], branch: String = "main") throws -> String {
    let dir = try temporaryDirectory("slipway-repo")
    let env = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"]
    let initialized = try run("/usr/bin/git", ["-C", dir, "init", "-q", "-b", branch])
    guard initialized.status == 0 else { throw HarnessError("git init: \(initialized.err)") }
    for (name, data) in files {
        let path = dir + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }
    let added = try run("/usr/bin/git", ["-C", dir, "add", "."])
    // A line of its own in each message keeps revisions (and so image tags) unique
    // across tests: equal files committed in the same second would share them.
    let committed = try run("/usr/bin/git", ["-C", dir, "commit", "-q", "-m", "initial", "-m", "test \(UUID().uuidString)"], environment: env)
    guard added.status == 0, committed.status == 0 else { throw HarnessError("git commit: \(added.err)\(committed.err)") }
    return dir
}

func randomData(_ count: Int) -> Data {
    var generator = SystemRandomNumberGenerator()
    var data = Data(count: count)
    data.withUnsafeMutableBytes { buffer in
        let words = buffer.bindMemory(to: UInt64.self)
        for i in words.indices { words[i] = generator.next() }
    }
    return data
}

extension TestServer {
    /// A git command left running, its output watched as it arrives.
    func gitProcess(_ key: String, _ args: [String], in directory: String) throws -> RunningCommand {
        try RunningCommand("/usr/bin/git", ["-C", directory] + args, environment: gitEnvironment(key: key))
    }
}

/// A child process whose combined output can be waited on line by line.
final class RunningCommand: @unchecked Sendable {
    let process: ChildProcess
    private let lock = NSLock()
    private var collected = Data()

    init(_ path: String, _ args: [String], environment: [String: String]) throws {
        let (read, write) = try PosixSpawn.pipe()
        do {
            defer { close(write) }
            process = try ChildProcess(path, args, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                       stdout: .descriptor(write), stderr: .descriptor(write))
        } catch {
            close(read)
            throw error
        }
        let output = FileHandle(fileDescriptor: read, closeOnDealloc: true)
        Thread.detachNewThread { [self] in
            while true {
                let chunk = output.availableData
                if chunk.isEmpty { break }
                lock.withLock { collected.append(chunk) }
            }
        }
    }

    var output: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }

    /// True once `text` has appeared in the output, false after `seconds` without it.
    func waitFor(_ text: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if output.contains(text) { return true }
            usleep(50_000)
        }
        return false
    }

    func wait() { process.waitUntilExit() }
}

/// Runs `body(0..<count)` at the same time on as many threads; returns the results in order.
func inParallel<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
    let results = ParallelResults<T>()
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            let result = Result { try body(index) }
            results.lock.withLock { results.items[index] = result }
        }
    }
    group.wait()
    return try (0..<count).map { index in try results.lock.withLock { results.items[index]! }.get() }
}

private final class ParallelResults<T>: @unchecked Sendable {
    let lock = NSLock()
    var items: [Int: Result<T, Error>] = [:]
}
