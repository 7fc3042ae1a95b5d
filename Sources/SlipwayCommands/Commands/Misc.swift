import ArgumentParser
import Foundation
import SlipwayCore

/// `events`: the audit log.
struct Events: QueryCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Show the audit log (admins: everything; users: their apps and actions).")
    static let rule = AccessRule.user
    @Option(name: .short, help: "How many of the newest events.") var n: Int = 50
    @OptionGroup var output: FormatOption
    var requirement: Requirement { .user }

    struct View: Codable {
        let id: Int64
        let at: Date
        let actor: String
        let via: String
        let command: String
        let app: String?
        let outcome: String
        let detail: String
    }

    func execute(in context: CommandContext) throws {
        guard (1...100_000).contains(n) else { throw UserFacingError.invalid("-n must be between 1 and 100000") }
        let events = try context.core.events.recent(for: context.principal, limit: n).map {
            View(id: $0.id ?? 0, at: $0.at, actor: $0.actor, via: $0.via, command: $0.command, app: $0.app, outcome: $0.outcome, detail: $0.detail)
        }
        if output.isJSON { return try context.printJSON(events) }
        for e in events {
            context.print("\(Text.date(e.at))  \(e.actor)  \(e.command)  \(e.app ?? "-")  \(e.outcome)  \(e.detail)")
        }
    }
}

/// `version`.
struct Version: QueryCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print slipway's version.")
    static let rule = AccessRule.user
    var requirement: Requirement { .user }

    func execute(in context: CommandContext) throws {
        context.print("slipway \(SlipwayVersion.current)")
    }
}

/// `help [command]`: only what the caller may run. Rendered by `CommandRunner`,
/// which knows the whole tree; this type exists so `help` parses and is gated.
struct Help: QueryCommand {
    static let configuration = CommandConfiguration(commandName: "help", abstract: "List the commands you may run, or show one command's usage.")
    static let rule = AccessRule.user
    @Argument var command: String?
    var requirement: Requirement { .user }

    func execute(in context: CommandContext) throws {
        context.stdout.write(try CommandTree.help(for: command, principal: context.principal))
    }
}
