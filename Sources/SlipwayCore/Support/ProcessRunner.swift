import Foundation

/// Runs a short helper program (git plumbing) to completion from an argv array,
/// never through a shell. Long-running, streamed children live in the SSH front.
public enum ProcessRunner {
    /// Held around Foundation's `Process.run()`, which is not safe to call from many
    /// threads at once on Linux: the test harness's process crashed in it (a bad
    /// memcpy) while a hundred threads spawned ssh clients, and the server's SSH
    /// threads spawn git and friends just as concurrently. Only the spawn is
    /// serialized; waiting for the child is not.
    public static let spawnLock = NSLock()

    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs a program that leaves a daemon behind (nginx) and waits for the program
    /// itself. posix_spawn, not Foundation's Process: Process learns of the exit
    /// through a descriptor the daemon inherits and keeps, so it never did. The
    /// output goes to `logFile`; the child gets no other descriptor of ours (the SSH
    /// listener above all: a daemon holding it would keep the port after we exit).
    /// It starts in `currentDirectory` when one is given (the daemon keeps it).
    public static func runDaemonizing(_ executable: String, _ arguments: [String], logFile: String,
                                      currentDirectory: String? = nil) throws -> Result {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let currentDirectory { _ = addChdir(&actions, currentDirectory) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        _ = addCloseFrom(&actions, 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw UserFacingError.invalid("cannot start \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS by hand: Glibc's macros are not imported.
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exitStatus, stdout: "", stderr: text)
    }

    /// A program `run` stopped at its timeout, with what it wrote until then.
    public struct TimedOut: Error, Sendable {
        public let seconds: TimeInterval
        public let stdout: String
        public let stderr: String
    }

    /// Runs the program to completion and returns its status and output. With a
    /// `timeout`, a program still running after it is stopped (SIGTERM, SIGKILL 2 s
    /// later) and `TimedOut` is thrown, without waiting more than a second more for its
    /// exit to be seen or its output to end: a grandchild may hold both open (the reader
    /// threads end when it does; it is not killed).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           currentDirectory: String? = nil, timeout: TimeInterval? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        // Not waitUntilExit(): on Linux it polls its run loop and returned ~50 ms late,
        // three times per push build (measured with strace). The handler fires at once.
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try spawnLock.withLock { try process.run() }
        // Both pipes drained on threads of their own, so neither can fill and stall the
        // child, and what was written is there even if the child must be stopped.
        let outData = LockedData(), errData = LockedData()
        let drained = DispatchGroup()
        for (pipe, data) in [(out, outData), (err, errData)] {
            drained.enter()
            Thread.detachNewThread {
                // read(2), not FileHandle.read(upToCount:), which waits for the whole count.
                let fd = pipe.fileHandleForReading.fileDescriptor
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = read(fd, &buffer, buffer.count)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { break }
                    data.append(Data(buffer[0..<n]))
                }
                drained.leave()
            }
        }
        if let timeout {
            if exited.wait(timeout: .now() + timeout) == .timedOut {
                process.terminate()
                if exited.wait(timeout: .now() + 2) == .timedOut {
                    kill(process.processIdentifier, SIGKILL)
                    // Foundation sees an exit as the end of a descriptor the child's own
                    // children inherit too: bounded, as the output is.
                    _ = exited.wait(timeout: .now() + 1)
                }
                _ = drained.wait(timeout: .now() + 1)
                throw TimedOut(seconds: timeout, stdout: outData.text, stderr: errData.text)
            }
        } else {
            exited.wait()
        }
        drained.wait()
        return Result(status: process.terminationStatus, stdout: outData.text, stderr: errData.text)
    }
}

private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
/// glibc's posix_spawn_file_actions_addchdir_np (2.29+), which the Glibc module does not import.
@_silgen_name("posix_spawn_file_actions_addchdir_np")
private func addChdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: UnsafePointer<CChar>) -> Int32

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+), which the Glibc module does not import.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32
