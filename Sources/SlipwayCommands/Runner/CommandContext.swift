import Foundation
import SlipwayCore

/// Where a command's bytes go: the process's stdout/stderr locally, the SSH
/// channel's streams remotely, a buffer in tests.
public protocol TextOutput: Sendable {
    func write(_ text: String)
    /// Writes raw bytes (a container's output may be binary); false once the
    /// reader is gone (the SSH client disconnected).
    func write(bytes: Data) -> Bool
}

extension TextOutput {
    public func write(bytes: Data) -> Bool {
        write(String(decoding: bytes, as: UTF8.self))
        return true
    }
}

/// Where a command reads its standard input from.
public protocol InputSource: Sendable {
    /// True when nothing was piped in (an interactive terminal): commands that
    /// need input explain how to give it instead of waiting forever.
    var isInteractive: Bool { get }
    /// Reads to end of input, or returns nil as soon as more than `limit` bytes arrive.
    func readAll(limit: Int) throws -> Data?
    /// Reads one line (without its newline), or nil as soon as more than `limit` bytes arrive.
    func readLine(limit: Int) throws -> Data?
    /// Reads what is available, up to `max` bytes, waiting for at least one; empty at end of input.
    func readChunk(max: Int) throws -> Data
}

/// Set when the caller went away (the SSH client disconnected): long-running
/// commands check it and stop what they started.
public final class Cancellation: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    public init() {}

    public func cancel() { lock.withLock { cancelled = true } }
    public var isCancelled: Bool { lock.withLock { cancelled } }
}

/// Everything a running command may use. One command runs on one thread, so the
/// one mutable field (`exitStatus`) is never shared.
public final class CommandContext: @unchecked Sendable {
    public let core: Core
    public let principal: Principal
    public let stdout: TextOutput
    public let stderr: TextOutput
    public let stdin: InputSource
    /// The command name as typed, for audit records.
    public let commandName: String
    public let cancellation: Cancellation
    /// The caller's terminal when the SSH client asked for one (`ssh -t`).
    public let terminal: Terminal?
    /// What the client set in its environment (the SSH front accepts `GIT_PROTOCOL` only).
    public let environment: [String: String]
    /// What git's pre-receive hook runs (this binary's `hook:pre-receive`); nil: a push
    /// is stored without building.
    public let gitHook: [String]?
    /// `--quiet`: no headers (dropped from stdout by `CommandRunner`) and no hints.
    public let quiet: Bool
    /// The global `--force`: answers every confirmation (`confirmDestruction`).
    public let force: Bool

    public init(core: Core, principal: Principal, stdout: TextOutput, stderr: TextOutput,
                stdin: InputSource, commandName: String, cancellation: Cancellation = Cancellation(),
                terminal: Terminal? = nil, environment: [String: String] = [:], gitHook: [String]? = nil,
                quiet: Bool = false, force: Bool = false) {
        self.quiet = quiet
        self.force = force
        self.cancellation = cancellation
        self.terminal = terminal
        self.environment = environment
        self.gitHook = gitHook
        self.core = core
        self.principal = principal
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self.commandName = commandName
    }

    /// The status a successful command exits with; `run` passes its container's on.
    public var exitStatus: Int32 = 0

    /// The caller, for service calls that audit.
    public var caller: Caller { Caller(principal: principal, command: commandName) }

    /// True for the local CLI (root on the host), which may read host files.
    public var isLocal: Bool { principal.channel == "local" }

    /// Prints one line (a newline is added) to stdout.
    public func print(_ line: String = "") { stdout.write(line + "\n") }

    /// Prints a notice line to stderr (progress and hints, never data). `--quiet`
    /// keeps only warnings (` !     ...`).
    public func note(_ line: String) {
        if quiet && !line.hasPrefix(" !") { return }
        stderr.write(line + "\n")
    }

    /// Prints a value as key-sorted JSON on one line (`--format json` everywhere:
    /// scripts read it a line at a time, as Dokku's).
    public func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Reads standard input as UTF-8 text of at most `limit` bytes.
    /// `what` names the input in errors ("the public key").
    public func readInput(_ what: String, limit: Int, hint: String) throws -> String {
        if stdin.isInteractive {
            throw UserFacingError.invalid("\(what) is read from standard input, and none was piped in; \(hint)")
        }
        guard let data = try stdin.readAll(limit: limit) else {
            throw UserFacingError.invalid("\(what) is larger than \(limit) bytes; \(hint)")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw UserFacingError.invalid("\(what) is not valid UTF-8 text; \(hint)")
        }
        return text
    }
}

/// Formats for text tables and dates shared by the commands.
enum Text {
    /// Left-aligned columns separated by two spaces, Dokku style.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// `2026-11-27T16:01:02Z`.
    static func date(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// Dokku's section heading: `=====> web env vars`.
    static func heading(_ title: String) -> String { "=====> \(title)" }
}
