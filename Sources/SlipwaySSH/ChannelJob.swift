import CLibSSH
import Foundation
import SlipwayCommands
import SlipwayCore

/// What runs behind one SSH channel: a child process (git) or an in-process
/// command on a worker thread. Either way the connection thread sees the same
/// thing: three pipe ends to pump and one fd that turns readable when it ends,
/// so it can poll them all next to the session's socket.
final class ChannelJob {
    private enum Kind {
        case process(pid: pid_t)
        case worker(Cancellation)
    }

    private let kind: Kind
    /// Our ends, non-blocking; -1 once closed.
    private(set) var stdinFD: Int32
    private(set) var stdoutFD: Int32
    private(set) var stderrFD: Int32
    /// Readable when the job has ended: a pidfd for a process, a pipe for a worker.
    private(set) var completionFD: Int32
    private(set) var exitStatus: Int32?

    private init(kind: Kind, stdin: Int32, stdout: Int32, stderr: Int32, completion: Int32) {
        self.kind = kind
        stdinFD = stdin
        stdoutFD = stdout
        stderrFD = stderr
        completionFD = completion
    }

    deinit {
        for fd in [stdinFD, stdoutFD, stderrFD, completionFD] where fd >= 0 { close(fd) }
    }

    // MARK: Starting

    /// Spawns `argv` (absolute path first) with `environment`, in a new process
    /// group, with only fds 0-2 inherited and every signal back to its default.
    static func spawn(_ argv: [String], environment: [String: String]) throws -> ChannelJob {
        let (inRead, inWrite) = try pipe()
        let (outRead, outWrite) = try pipe()
        let (errRead, errWrite) = try pipe()
        defer { close(inRead); close(outWrite); close(errWrite) }
        // 1 MiB instead of 64 KiB: a push's pack goes to git in fewer, larger writes and
        // wake-ups, and a clone's comes out the same way. Refused (EPERM past the user's
        // pipe quota) it stays at the default, which only costs speed.
        for fd in [inWrite, outRead] { _ = fcntl(fd, Self.setPipeSize, Int32(1 << 20)) }

        let pid = try PosixSpawn.start(argv[0], Array(argv.dropFirst()), environment: environment, stdin: .descriptor(inRead),
                                       stdout: .descriptor(outWrite), stderr: .descriptor(errWrite), newProcessGroup: true)
        let pidfd = slipway_pidfd_open(pid)
        guard pidfd >= 0 else {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            throw SpawnFailure(program: argv[0], errno: errno)
        }
        return ChannelJob(kind: .process(pid: pid), stdin: inWrite, stdout: outRead, stderr: errRead, completion: pidfd)
    }

    /// Runs `body` on its own thread (never Swift's cooperative pool) with pipe-backed
    /// stdin/stdout/stderr; its return value is the exit status.
    static func worker(_ body: @escaping @Sendable (InputSource, TextOutput, TextOutput, Cancellation) -> Int32) throws -> ChannelJob {
        let cancellation = Cancellation()
        let (inRead, inWrite) = try pipe()
        let (outRead, outWrite) = try pipe()
        let (errRead, errWrite) = try pipe()
        let (doneRead, doneWrite) = try pipe()
        for fd in [inRead, outWrite, errWrite, doneWrite] { setBlocking(fd) }
        Thread.detachNewThread {
            let status = body(PipeInput(fd: inRead), PipeOutput(fd: outWrite), PipeOutput(fd: errWrite), cancellation)
            // Output first, then the status: the connection sees every byte before the end.
            close(outWrite)
            close(errWrite)
            close(inRead)
            var value = status
            _ = withUnsafeBytes(of: &value) { write(doneWrite, $0.baseAddress, 4) }
            close(doneWrite)
        }
        return ChannelJob(kind: .worker(cancellation), stdin: inWrite, stdout: outRead, stderr: errRead, completion: doneRead)
    }

    // MARK: Running

    /// Checks (without blocking) whether the job has ended; sets `exitStatus`.
    func reap() {
        guard exitStatus == nil else { return }
        switch kind {
        case .process(let pid):
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { return }
            exitStatus = Self.decode(status)
        case .worker:
            var value: Int32 = 0
            let n = withUnsafeMutableBytes(of: &value) { read(completionFD, $0.baseAddress, 4) }
            if n == 4 { exitStatus = value } else if n == 0 { exitStatus = 1 }  // thread died without a status
        }
        if exitStatus != nil, completionFD >= 0 {
            close(completionFD)
            completionFD = -1
        }
    }

    func closeStdin() {
        if stdinFD >= 0 { close(stdinFD); stdinFD = -1 }
    }

    func closeOutput(stderr: Bool) {
        if stderr { if stderrFD >= 0 { close(stderrFD); stderrFD = -1 } }
        else if stdoutFD >= 0 { close(stdoutFD); stdoutFD = -1 }
    }

    /// The client went away: stop the job. A process group gets SIGTERM, then SIGKILL
    /// after `grace`; a worker sees its pipes close and ends on its own.
    func terminate(grace: TimeInterval = 2) {
        closeStdin()
        closeOutput(stderr: false)
        closeOutput(stderr: true)
        if case .worker(let cancellation) = kind { cancellation.cancel() }
        guard case .process(let pid) = kind, exitStatus == nil else { return }
        killpg(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        var status: Int32 = 0
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { exitStatus = Self.decode(status); return }
            usleep(20_000)
        }
        killpg(pid, SIGKILL)
        waitpid(pid, &status, 0)
        exitStatus = Self.decode(status)
    }

    private static func decode(_ status: Int32) -> Int32 { PosixSpawn.exitCode(ofWaitStatus: status) }

    /// F_SETPIPE_SZ (Linux; Swift's Glibc module hides it without _GNU_SOURCE).
    private static let setPipeSize: Int32 = 1031

    private static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard slipway_pipe_cloexec(&fds, 1) == 0 else { throw SpawnFailure(program: "pipe", errno: errno) }
        return (fds[0], fds[1])
    }

    private static func setBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    }
}

/// A worker's stdout/stderr: blocking writes into the pipe the connection pumps.
/// Writes after the client left fail with EPIPE and are dropped.
struct PipeOutput: TextOutput {
    let fd: Int32
    func write(_ text: String) { _ = write(bytes: Data(text.utf8)) }

    func write(bytes data: Data) -> Bool {
        var bytes = data[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return false }
            bytes = bytes.dropFirst(n)
        }
        return true
    }
}

/// A worker's stdin: the channel's data as the connection writes it into the pipe.
struct PipeInput: InputSource {
    let fd: Int32
    var isInteractive: Bool { false }

    func readAll(limit: Int) throws -> Data? {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
            if data.count > limit { return nil }
        }
        return data
    }

    func readChunk(max: Int) throws -> Data {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = read(fd, &buffer, max)
            if n >= 0 { return Data(buffer[0..<n]) }
            if errno != EINTR { return Data() }
        }
    }

    func readLine(limit: Int) throws -> Data? {
        var line = Data()
        var byte: UInt8 = 0
        while true {
            let n = read(fd, &byte, 1)
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 || byte == UInt8(ascii: "\n") { break }
            line.append(byte)
            if line.count > limit { return nil }
        }
        return line
    }
}
