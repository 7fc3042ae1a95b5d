import ArgumentParser
import SlipwayCore

/// A Slipway command: parsed from argv, gated, then run against the core.
///
/// Both access members are requirements without defaults, so a command that
/// forgets its gate does not compile. `CommandTableTests` walks the whole tree
/// and checks each `rule` against the access table it keeps (the roles in
/// parentheses in man/slipway-commands.7).
public protocol GatedCommand: ParsableCommand {
    /// The documented rule: who sees this command in `help`.
    static var rule: AccessRule { get }
    /// What this invocation needs (the rule applied to its arguments, plus any
    /// escalation such as a host path needing admin).
    var requirement: Requirement { get }
    /// Runs the command: one call into the core, then printing.
    func execute(in context: CommandContext) throws
    /// Whether the command uses the client's terminal (`ssh -t`) itself; the others'
    /// output is written for it as lines.
    static var wantsTerminal: Bool { get }
    /// Whether the first argument is an app (where the global `--app` puts its value).
    static var takesApp: Bool { get }
}

/// A command whose work is a program run with the caller's stdin, stdout and stderr
/// (git's side of a push or fetch): `spawn` makes the one core call and returns the
/// program, which the front then runs.
public protocol HandOffCommand: GatedCommand {
    /// The command its audit events name ("git push").
    static var auditName: String { get }
    func spawn(in context: CommandContext) throws -> Spawn
}

extension HandOffCommand {
    /// Only a front that can hand its client to a program (SSH) runs these.
    public func execute(in context: CommandContext) throws {
        throw UserFacingError(.usage, "\(Self.name) is what git runs over SSH; push to or clone ssh://<host>:2222/<app> instead")
    }
}

/// A command that changes state: its failures are audited too (successes are
/// audited by the service, inside the change's own transaction).
public protocol MutatingCommand: GatedCommand {}

/// A command that only reads.
public protocol QueryCommand: GatedCommand {}

extension GatedCommand {
    /// The wire name, e.g. `apps:create`.
    public static var name: String { configuration.commandName ?? "\(Self.self)" }

    public static var wantsTerminal: Bool { false }

    /// Whether the command's first argument is an app, so that the global `--app APP`
    /// puts APP there (as Dokku does). Commands gated on an app take it first.
    public static var takesApp: Bool {
        if case .app = rule { return true }
        return false
    }

    /// ArgumentParser's own entry point is not used: `CommandRunner` calls `execute`.
    public func run() throws {
        throw UserFacingError(.usage, "\(Self.name) must be run through slipway's command runner")
    }
}

/// `--format text|json`, on every list and report command.
public struct FormatOption: ParsableArguments {
    public enum Format: String, ExpressibleByArgument, Sendable, CaseIterable { case text, json }

    @Option(name: .long, help: "Output format: text or json.")
    public var format: Format = .text

    public init() {}

    public var isJSON: Bool { format == .json }
}
