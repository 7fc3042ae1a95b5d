import Foundation

/// Starts programs with posix_spawn(3) directly. Why not Foundation's `Process`: on
/// Linux its `run()` scans /proc/self/fd to close descriptors and copies each entry's
/// name with a fixed 256-byte memcpy, reading past the end of the directory buffer;
/// when that buffer ends at an unmapped page the whole process gets SIGSEGV
/// (swift-corelibs-foundation #5472). A server with many open descriptors is the
/// likeliest victim, and the test harness died of it twice. Here the child closes
/// every descriptor above 2 itself (closefrom), and nothing of ours scans anything.
public enum PosixSpawn {
    /// Where one of the child's fds 0–2 comes from.
    public enum Source: Sendable {
        /// /dev/null.
        case null
        /// A descriptor of ours, duplicated onto the child's (ours stays open).
        case descriptor(Int32)
    }

    /// Starts `executable` (an absolute path) with `arguments`, with the given fds 0–2
    /// and no other descriptor of ours, every signal at its default and none blocked
    /// (the server ignores SIGPIPE; git and tar must not inherit that). `environment`
    /// nil inherits ours. With `newProcessGroup` the child leads a group of its own, so
    /// one signal reaches what it starts too. Returns its pid; the caller reaps it.
    public static func start(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                             currentDirectory: String? = nil, stdin: Source = .null, stdout: Source = .null,
                             stderr: Source = .null, newProcessGroup: Bool = false) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            switch source {
            case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
            }
        }
        if let currentDirectory { _ = addChdir(&actions, currentDirectory) }
        _ = addCloseFrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t(), mask = sigset_t()
        sigfillset(&defaults)
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { (argv + (envp ?? [])).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = envp.map { posix_spawn(&pid, executable, &actions, &attributes, argv, $0) }
            ?? posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw SpawnFailure(program: executable, errno: rc) }
        return pid
    }

    /// A close-on-exec pipe, so a child another thread starts meanwhile never holds
    /// one of its ends (its reader would then never see the end).
    public static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe2(&fds, O_CLOEXEC) == 0 else { throw SpawnFailure(program: "pipe", errno: errno) }
        return (fds[0], fds[1])
    }

    /// A wait status as a shell reports it: the exit code, or 128 + the signal.
    /// (Glibc's WIFEXITED / WEXITSTATUS macros are not imported.)
    public static func exitCode(ofWaitStatus status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// A program that could not be started, with the system's reason.
public struct SpawnFailure: LocalizedError, CustomStringConvertible {
    public let program: String
    public let errno: Int32
    public init(program: String, errno: Int32) {
        self.program = program
        self.errno = errno
    }
    public var description: String { "cannot start \(program): \(String(cString: strerror(errno)))" }
    public var errorDescription: String? { description }
}

/// A child started with `PosixSpawn`, reaped by a thread of its own as soon as it
/// exits, so its status is known exactly (not inferred from a descriptor that its own
/// children may inherit and keep) and any thread may wait for it.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private let condition = NSCondition()
    private var status: Int32?

    /// Starts the program (see `PosixSpawn.start`).
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                currentDirectory: String? = nil, stdin: PosixSpawn.Source = .null, stdout: PosixSpawn.Source = .null,
                stderr: PosixSpawn.Source = .null, newProcessGroup: Bool = false) throws {
        pid = try PosixSpawn.start(executable, arguments, environment: environment, currentDirectory: currentDirectory,
                                   stdin: stdin, stdout: stdout, stderr: stderr, newProcessGroup: newProcessGroup)
        let pid = pid
        Thread.detachNewThread { [self] in
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            condition.withLock {
                status = PosixSpawn.exitCode(ofWaitStatus: raw)
                condition.broadcast()
            }
        }
    }

    public var isRunning: Bool { condition.withLock { status == nil } }

    /// Its exit code (128 + the signal when a signal ended it), once it has exited.
    @discardableResult
    public func wait() -> Int32 {
        condition.withLock {
            while status == nil { condition.wait() }
            return status!
        }
    }

    /// Its exit code, or nil if it is still running after `seconds`.
    public func wait(seconds: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        return condition.withLock {
            while status == nil, condition.wait(until: deadline) {}
            return status
        }
    }

    /// Sends `signal` (SIGTERM by default) unless it has already been reaped, when its
    /// pid may belong to another process by now.
    public func signal(_ signal: Int32 = SIGTERM) {
        condition.withLock { if status == nil { _ = kill(pid, signal) } }
    }
}

/// glibc's posix_spawn_file_actions_addchdir_np (2.29+), which the Glibc module does not import.
@_silgen_name("posix_spawn_file_actions_addchdir_np")
private func addChdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: UnsafePointer<CChar>) -> Int32

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+), which the Glibc module does not import.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32

/// glibc's pipe2 (a _GNU_SOURCE declaration, which the Glibc module does not import).
@_silgen_name("pipe2")
private func pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
