import Foundation

/// Runs a short helper program (git plumbing) to completion from an argv array,
/// never through a shell. Long-running, streamed children live in the SSH front.
public enum ProcessRunner {
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs a program that leaves a daemon behind (nginx): its output goes to
    /// `logFile`, not to pipes a daemon would hold open forever. Returns the status
    /// and what it wrote.
    public static func runDaemonizing(_ executable: String, _ arguments: [String], logFile: String) throws -> Result {
        FileManager.default.createFile(atPath: logFile, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logFile) else { throw UserFacingError.invalid("cannot write \(logFile)") }
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        exited.wait()
        let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        return Result(status: process.terminationStatus, stdout: "", stderr: text)
    }

    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           currentDirectory: String? = nil) throws -> Result {
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
        try process.run()
        // Drain stderr on the side so neither pipe can fill and stall the child.
        let errData = LockedData()
        let errDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            errData.set(err.fileHandleForReading.readDataToEndOfFile())
            errDone.signal()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        exited.wait()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData.get(), as: UTF8.self))
    }
}

private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ d: Data) { lock.withLock { data = d } }
    func get() -> Data { lock.withLock { data } }
}
