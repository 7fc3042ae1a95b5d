import ArgumentParser
import Foundation
import Logging
import SlipwayCore

/// Runs one argv for one principal: the single path every command takes, from
/// the local CLI and (later) from SSH. Parse, gate, execute, report.
public struct CommandRunner: Sendable {
    let core: Core
    let logger: Logger

    public init(core: Core, logger: Logger) {
        self.core = core
        self.logger = logger
    }

    /// Runs `argv` (without the program name) and returns the exit status.
    /// `--as <user>` may lead the argv when the principal is an admin.
    public func run(_ argv: [String], as principal: Principal,
                    stdout: TextOutput, stderr: TextOutput, stdin: InputSource,
                    cancellation: Cancellation = Cancellation(), terminal: Terminal? = nil) -> Int32 {
        var argv = argv
        var principal = principal
        var commandName = argv.first ?? "help"
        var mutating = false
        var appName: String?
        do {
            principal = try impersonation(&argv, principal)
            commandName = argv.first ?? "help"
            if argv.isEmpty || ["--help", "-h"].contains(argv[0]) { argv = ["help"] }
            let type = try CommandTree.visibleCommand(argv[0], for: principal)
            mutating = type is any MutatingCommand.Type
            if argv.dropFirst().contains(where: { $0 == "--help" || $0 == "-h" }) {
                stdout.write(try CommandTree.usage(of: type))
                return 0
            }
            let command = try parse(argv, type)
            appName = command.requirement.appName
            let context = CommandContext(core: core, principal: principal, stdout: stdout, stderr: stderr,
                                         stdin: stdin, commandName: commandName, cancellation: cancellation,
                                         terminal: terminal)
            try core.authorizer.require(command.requirement, for: principal)
            try command.execute(in: context)
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

    /// `--as <user>` / `--as=<user>`: an admin runs the command with that user's rights.
    private func impersonation(_ argv: inout [String], _ principal: Principal) throws -> Principal {
        guard let first = argv.first, first == "--as" || first.hasPrefix("--as=") else { return principal }
        let name: String
        if first == "--as" {
            guard argv.count >= 2 else { throw UserFacingError(.usage, "--as needs a user name: --as <user> <command>") }
            name = argv[1]
            argv.removeFirst(2)
        } else {
            name = String(first.dropFirst("--as=".count))
            argv.removeFirst()
        }
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
