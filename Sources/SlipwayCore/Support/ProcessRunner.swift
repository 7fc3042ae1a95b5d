import Foundation

/// Runs a short helper program (git plumbing) to completion from an argv array,
/// never through a shell. Long-running, streamed children live in the SSH front.
public enum ProcessRunner {
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs a program that leaves a daemon behind (nginx) and waits for the program
    /// itself (its exit is reaped, not read from a pipe the daemon would inherit). The
    /// output goes to `logFile`; the child gets no other descriptor of ours (the SSH
    /// listener above all: a daemon holding it would keep the port after we exit).
    /// It starts in `currentDirectory` when one is given (the daemon keeps it).
    public static func runDaemonizing(_ executable: String, _ arguments: [String], logFile: String,
                                      currentDirectory: String? = nil) throws -> Result {
        let log = open(logFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw UserFacingError.invalid("cannot start \(executable): cannot open \(logFile): \(String(cString: strerror(errno)))") }
        let child: ChildProcess
        do {
            defer { close(log) }
            child = try ChildProcess(executable, arguments, currentDirectory: currentDirectory,
                                     stdout: .descriptor(log), stderr: .descriptor(log))
        } catch let failure as SpawnFailure {
            throw UserFacingError.invalid(failure.description)
        }
        let status = child.wait()
        return Result(status: status, stdout: "", stderr: (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "")
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
    /// output to end: a grandchild may hold the pipes open (the reader threads end when
    /// it does; it is not killed).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           currentDirectory: String? = nil, timeout: TimeInterval? = nil) throws -> Result {
        let (outRead, outWrite) = try PosixSpawn.pipe()
        let (errRead, errWrite) = try PosixSpawn.pipe()
        let child: ChildProcess
        do {
            defer { close(outWrite); close(errWrite) }
            child = try ChildProcess(executable, arguments, environment: environment, currentDirectory: currentDirectory,
                                     stdout: .descriptor(outWrite), stderr: .descriptor(errWrite))
        } catch {
            close(outRead); close(errRead)
            throw error
        }
        // Both pipes drained on threads of their own, so neither can fill and stall the
        // child, and what was written is there even if the child must be stopped.
        let outData = LockedData(), errData = LockedData()
        let drained = DispatchGroup()
        for (fd, data) in [(outRead, outData), (errRead, errData)] {
            drained.enter()
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let n = read(fd, &buffer, buffer.count)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { break }
                    data.append(Data(buffer[0..<n]))
                }
                close(fd)
                drained.leave()
            }
        }
        guard let timeout else {
            let status = child.wait()
            drained.wait()
            return Result(status: status, stdout: outData.text, stderr: errData.text)
        }
        guard let status = child.wait(seconds: timeout) else {
            child.signal(SIGTERM)
            if child.wait(seconds: 2) == nil {
                child.signal(SIGKILL)
                _ = child.wait(seconds: 1)  // bounded: a child stuck in the kernel is not ours to wait for
            }
            _ = drained.wait(timeout: .now() + 1)
            throw TimedOut(seconds: timeout, stdout: outData.text, stderr: errData.text)
        }
        drained.wait()
        return Result(status: status, stdout: outData.text, stderr: errData.text)
    }
}

private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
