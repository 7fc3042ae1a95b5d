import Foundation

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

    init() throws {
        dataDir = try temporaryDirectory("slipway-e2e")
    }

    struct Result {
        let status: Int32
        let out: String
        let err: String
    }

    /// `slipway --data-dir <dir> <args>`.
    @discardableResult
    func callAsFunction(_ args: [String], stdin: Data? = nil, environment: [String: String] = [:]) throws -> Result {
        try run(Self.binary, ["--data-dir", dataDir] + args, stdin: stdin, environment: environment)
    }

    @discardableResult
    func callAsFunction(_ args: String..., stdin: String? = nil) throws -> Result {
        try self(args, stdin: stdin.map { Data($0.utf8) })
    }
}

/// Runs a program to completion.
func run(_ path: String, _ args: [String], stdin: Data? = nil, environment: [String: String] = [:]) throws -> Slipway.Result {
    _ = Slipway.binary  // ignores SIGPIPE
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = args
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    // The parent's copies of the child's ends must go, or EOF never comes.
    try? out.fileHandleForWriting.close()
    try? err.fileHandleForWriting.close()
    try? input.fileHandleForReading.close()
    // Read both pipes concurrently so a chatty child never blocks on a full pipe.
    let outData = ReadAll(out.fileHandleForReading), errData = ReadAll(err.fileHandleForReading)
    if let stdin { try? input.fileHandleForWriting.write(contentsOf: stdin) }
    try? input.fileHandleForWriting.close()
    process.waitUntilExit()
    return .init(status: process.terminationStatus, out: outData.text(), err: errData.text())
}

/// Drains a pipe on a background thread; `text()` waits for EOF (once) and may be called again.
final class ReadAll: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchGroup()

    init(_ handle: FileHandle) {
        done.enter()
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.leave()
        }
    }

    func text() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}

func temporaryDirectory(_ prefix: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

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
