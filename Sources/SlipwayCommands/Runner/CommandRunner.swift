import ArgumentParser
import Foundation
import Logging
import SlipwayCore

/// Runs one argv for one principal: the single path every command takes, from
/// the local CLI and from SSH. Parse, gate, execute, report.
public struct CommandRunner: Sendable {
    let core: Core
    let logger: Logger
    /// What git's pre-receive hook runs; given to pushes.
    let gitHook: [String]?

    public init(core: Core, logger: Logger, gitHook: [String]? = nil) {
        self.core = core
        self.logger = logger
        self.gitHook = gitHook
    }

    /// What a front starts for one command line.
    public enum Job: Sendable {
        /// Runs in-process, on a thread the front provides, with the client's streams.
        /// `terminal` is the client's terminal; only a command that `wantsTerminal` gets it.
        case inProcess(wantsTerminal: Bool, run: @Sendable (_ stdin: InputSource, _ stdout: TextOutput, _ stderr: TextOutput,
                                                            _ cancellation: Cancellation, _ terminal: Terminal?) -> Int32)
        /// The front spawns this program with the client's streams instead.
        case spawn(Spawn)
    }

    /// What to start for `argv` from a remote front (SSH), with the client's
    /// `environment`. An empty argv (`ssh host`) greets the user and lists what they
    /// may run. A command that hands off to a program is gated and prepared here, on
    /// the caller's thread, so that the front knows what to spawn before it reads any
    /// client byte; a refusal becomes a job that prints it.
    public func job(for argv: [String], as principal: Principal, environment: [String: String]) -> Job {
        if argv.isEmpty {
            return .inProcess(wantsTerminal: false) { _, stdout, stderr, _, _ in
                stdout.write("Hi \(principal.name)! You are logged in to Slipway\(principal.isAdmin ? " as an admin" : "").\n\n")
                return run(["help"], as: principal, stdout: stdout, stderr: stderr, stdin: EmptyInput())
            }
        }
        let type = (try? Invocation(argv)).flatMap { CommandTree.byName[$0.words.first ?? ""] }
        guard type is any HandOffCommand.Type else {
            return .inProcess(wantsTerminal: type?.wantsTerminal ?? false) { stdin, stdout, stderr, cancellation, terminal in
                run(argv, as: principal, stdout: stdout, stderr: stderr, stdin: stdin, cancellation: cancellation,
                    terminal: terminal, environment: environment)
            }
        }
        let errors = CapturedOutput()
        var spawn: Spawn?
        let status = run(argv, as: principal, stdout: errors, stderr: errors, stdin: EmptyInput(), environment: environment) { spawn = $0 }
        if let spawn { return .spawn(spawn) }
        let text = errors.text
        return .inProcess(wantsTerminal: false) { _, _, stderr, _, _ in
            stderr.write(text)
            return status
        }
    }

    /// Runs `argv` (without the program name) and returns the exit status.
    /// `--as <user>` may lead the argv when the principal is an admin.
    public func run(_ argv: [String], as principal: Principal,
                    stdout: TextOutput, stderr: TextOutput, stdin: InputSource,
                    cancellation: Cancellation = Cancellation(), terminal: Terminal? = nil) -> Int32 {
        run(argv, as: principal, stdout: stdout, stderr: stderr, stdin: stdin, cancellation: cancellation, terminal: terminal,
            environment: [:], handOff: nil)
    }

    /// The one path: `handOff` receives a hand-off command's program; without it such
    /// a command explains that only git runs it.
    private func run(_ argv: [String], as principal: Principal,
                     stdout: TextOutput, stderr: TextOutput, stdin: InputSource,
                     cancellation: Cancellation = Cancellation(), terminal: Terminal? = nil,
                     environment: [String: String], handOff: ((Spawn) -> Void)? = nil) -> Int32 {
        guard (try? Invocation(argv))?.trace == true else {
            return execute(argv, as: principal, stdout: stdout, stderr: stderr, stdin: stdin, cancellation: cancellation,
                           terminal: terminal, environment: environment, handOff: handOff)
        }
        // --trace: the command, who ran it, its status and duration go to the server log;
        // not its arguments, which may be secrets (config:set values).
        let started = ContinuousClock.now
        let command = (try? Invocation(argv))?.words.first ?? "help"
        logger.info("trace: command started", metadata: ["command": "\(command)", "user": "\(principal.name)", "via": "\(principal.channel)"])
        let status = execute(argv, as: principal, stdout: stdout, stderr: stderr, stdin: stdin, cancellation: cancellation,
                             terminal: terminal, environment: environment, handOff: handOff)
        logger.info("trace: command ended", metadata: ["command": "\(command)", "user": "\(principal.name)", "status": "\(status)",
                                                       "duration": "\(ContinuousClock.now - started)"])
        return status
    }

    private func execute(_ argv: [String], as principal: Principal,
                         stdout: TextOutput, stderr: TextOutput, stdin: InputSource,
                         cancellation: Cancellation, terminal: Terminal?,
                         environment: [String: String], handOff: ((Spawn) -> Void)?) -> Int32 {
        var principal = principal
        var commandName = argv.first ?? "help"
        var mutating = false
        var appName: String?
        do {
            let invocation = try Invocation(argv)
            principal = try impersonation(invocation.asUser, principal)
            var argv = CommandTree.namespaceHelp(invocation.words)
            commandName = argv.first ?? "help"
            if argv.isEmpty || ["--help", "-h"].contains(argv[0]) { argv = ["help"] }
            let type = try CommandTree.visibleCommand(argv[0], for: principal)
            mutating = type is any MutatingCommand.Type
            if let handOffType = type as? any HandOffCommand.Type { commandName = handOffType.auditName }
            if argv.dropFirst().contains(where: { $0 == "--help" || $0 == "-h" }) {
                stdout.write(try CommandTree.usage(of: type))
                return 0
            }
            if let app = invocation.app {
                guard type.takesApp else {
                    throw UserFacingError(.usage, "\(type.name) takes no app; run it without --app")
                }
                argv.insert(app, at: 1)
            }
            let command = try parse(argv, type)
            appName = command.requirement.appName
            let context = CommandContext(core: core, principal: principal, stdout: invocation.quiet ? QuietOutput(stdout) : stdout,
                                         stderr: stderr, stdin: stdin, commandName: commandName, cancellation: cancellation,
                                         terminal: type.wantsTerminal ? terminal : nil, environment: environment, gitHook: gitHook,
                                         quiet: invocation.quiet, force: invocation.force)
            try core.authorizer.require(command.requirement, for: principal)
            if let handOff, let command = command as? any HandOffCommand {
                handOff(try command.spawn(in: context))
            } else {
                try command.execute(in: context)
            }
            return context.exitStatus
        } catch let error as UserFacingError {
            if error.kind == .negative {
                if !error.message.isEmpty { stderr.write(error.message + "\n") }
            } else {
                stderr.write("\(error)\n")
            }
            // Input that never named a valid object changes nothing, not even the log.
            if mutating && ![.invalidInput, .usage, .negative].contains(error.kind) {
                audit(principal, commandName, appName, error.message)
            }
            return error.exitCode
        } catch {
            let ref = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            logger.error("internal error", metadata: ["ref": "\(ref)", "command": "\(commandName)", "user": "\(principal.name)", "error": "\(String(reflecting: error))"])
            stderr.write("error: internal error (ref \(ref)); the server log has the details\n")
            if mutating { audit(principal, commandName, appName, "internal error (ref \(ref))") }
            return 1
        }
    }

    /// `--as <user>`: an admin runs the command with that user's rights.
    private func impersonation(_ name: String?, _ principal: Principal) throws -> Principal {
        guard let name else { return principal }
        guard principal.isAdmin else { throw UserFacingError.denied("only server admins may use --as") }
        let userName = try UserName(name)
        guard let user = try core.users.find(userName) else {
            throw UserFacingError.notFound("user \(quoted(name)) not found; users:list shows the users")
        }
        return Principal(identity: .user(user), channel: principal.channel, keyFingerprint: nil, impersonatedBy: principal.name)
    }

    private func parse(_ argv: [String], _ type: any GatedCommand.Type) throws -> any GatedCommand {
        let parsed: ParsableCommand
        do {
            parsed = try SlipwayRoot.parseAsRoot(argv)
        } catch {
            let message = SlipwayRoot.message(for: error)
                .split(separator: "\n").first.map(String.init) ?? "cannot parse the command"
            throw UserFacingError(.usage, "\(lowercasedFirst(message)); run \"\(type.name) --help\" for its arguments")
        }
        guard let command = parsed as? any GatedCommand else {
            throw UserFacingError(.usage, "unknown command; run help to see the commands you may run")
        }
        return command
    }

    private func lowercasedFirst(_ s: String) -> String {
        guard let first = s.first else { return s }
        return first.lowercased() + s.dropFirst()
    }

    private func audit(_ principal: Principal, _ command: String, _ app: String?, _ message: String) {
        do {
            try core.events.recordFailure(Caller(principal: principal, command: command), app: app, message: message)
        } catch {
            logger.error("could not record a failed command in the audit log", metadata: ["error": "\(error)"])
        }
    }
}

/// A command line as every path reads it: global flags, then `<command> [args...]`.
/// The global flags come in any order before the command, Dokku's and Slipway's:
/// `--as USER` (an admin acts as USER), `--app APP` (the app argument as a flag),
/// `--force` (answer confirmations), `--quiet` (no headers or hints), `--trace`
/// (the command is traced in the server log). A value may follow `=` (`--app=web`).
/// git's `git receive-pack <path>` form becomes `git-receive-pack <path>`.
struct Invocation {
    /// The user an admin acts as.
    private(set) var asUser: String?
    /// The app given as `--app`, placed as the command's first argument.
    private(set) var app: String?
    private(set) var force = false
    private(set) var quiet = false
    private(set) var trace = false
    /// The command and its arguments.
    let words: [String]

    init(_ argv: [String]) throws {
        var words = argv[...]
        while let first = words.first, first.hasPrefix("--") {
            let (flag, inline) = Self.split(first)
            switch flag {
            case "--as", "--app":
                let value: String
                if let inline {
                    value = inline
                    words = words.dropFirst()
                } else {
                    guard words.count >= 2 else {
                        throw UserFacingError(.usage, flag == "--as" ? "--as needs a user name: --as <user> <command>"
                                                                     : "--app needs an app name: --app <app> <command>")
                    }
                    value = words[words.startIndex + 1]
                    words = words.dropFirst(2)
                }
                guard (flag == "--as" ? asUser : app) == nil else {
                    throw UserFacingError(.usage, "\(flag) is given twice; give it once, before the command")
                }
                if flag == "--as" { asUser = value } else { app = value }
            case "--force", "--quiet", "--trace":
                guard inline == nil else { throw UserFacingError(.usage, "\(flag) takes no value; write it alone, before the command") }
                if flag == "--force" { force = true } else if flag == "--quiet" { quiet = true } else { trace = true }
                words = words.dropFirst()
            default:
                // `--help` and anything unknown are the command word's business.
                self.words = Self.gitForm(words)
                return
            }
        }
        self.words = Self.gitForm(words)
    }

    private static func split(_ word: String) -> (flag: String, value: String?) {
        guard let equals = word.firstIndex(of: "=") else { return (word, nil) }
        return (String(word[..<equals]), String(word[word.index(after: equals)...]))
    }

    private static func gitForm(_ words: ArraySlice<String>) -> [String] {
        if words.count == 3, words.first == "git", let verb = words.dropFirst().first, ["receive-pack", "upload-pack"].contains(verb) {
            return ["git-\(verb)"] + words.suffix(1)
        }
        return Array(words)
    }
}

/// `--quiet`: drops Dokku's `=====>` and `----->` header lines from what a command
/// prints; values and raw bytes (a container's output) pass unchanged.
private struct QuietOutput: TextOutput {
    let base: TextOutput
    init(_ base: TextOutput) { self.base = base }

    func write(_ text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var out = ""
        for (index, line) in lines.enumerated() where !(line.hasPrefix("=====>") || line.hasPrefix("----->")) {
            out += line
            // A dropped header takes its newline with it.
            if index < lines.count - 1 { out += "\n" }
        }
        if !out.isEmpty { base.write(out) }
    }

    func write(bytes: Data) -> Bool { base.write(bytes: bytes) }
}

/// Collects what a prepared command printed before the front started anything.
private final class CapturedOutput: TextOutput, @unchecked Sendable {
    private let lock = NSLock()
    private var storage = ""
    func write(_ text: String) { lock.withLock { storage += text } }
    var text: String { lock.withLock { storage } }
}

/// No standard input.
struct EmptyInput: InputSource {
    var isInteractive: Bool { false }
    func readAll(limit: Int) throws -> Data? { Data() }
    func readLine(limit: Int) throws -> Data? { Data() }
    func readChunk(max: Int) throws -> Data { Data() }
}
