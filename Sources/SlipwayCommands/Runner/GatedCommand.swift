import ArgumentParser
import SlipwayCore

/// A Slipway command: parsed from argv, gated, then run against the core.
///
/// Both access members are requirements without defaults, so a command that
/// forgets its gate does not compile. `CommandTableTests` walks the whole tree
/// and checks each `rule` against commands.md.
public protocol GatedCommand: ParsableCommand {
    /// The documented rule: who sees this command in `help`.
    static var rule: AccessRule { get }
    /// What this invocation needs (the rule applied to its arguments, plus any
    /// escalation such as a host path needing admin).
    var requirement: Requirement { get }
    /// Runs the command: one call into the core, then printing.
    func execute(in context: CommandContext) throws
}

/// A command that changes state: its failures are audited too (successes are
/// audited by the service, inside the change's own transaction).
public protocol MutatingCommand: GatedCommand {}

/// A command that only reads.
public protocol QueryCommand: GatedCommand {}

extension GatedCommand {
    /// The wire name, e.g. `apps:create`.
    public static var name: String { configuration.commandName ?? "\(Self.self)" }

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
