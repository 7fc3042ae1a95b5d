import ArgumentParser
import Foundation
import SlipwayCore

/// `enter <app> [TYPE[.N]] [cmd...]`: a shell or a command inside a running process
/// container of the app (Dokku's `enter`).
struct Enter: MutatingCommand {
    static let configuration = CommandConfiguration(
        commandName: "enter",
        abstract: "Run a shell or a command inside a running process container of an app.",
        discussion: "TYPE picks its first container, TYPE.N that one; without it, web.1 (or the only type's first). Pass -- for the default when a command follows. The command runs as the container's user and its exit status is returned; with ssh -t it gets a terminal. What it writes outside storage stays only in that container until its next deploy or restart.")
    static let rule = AccessRule.app(.write)
    static let wantsTerminal = true
    @Argument var app: String
    @Argument(parsing: .captureForPassthrough, help: "TYPE or TYPE.N (or --), then the command and its arguments (default: a shell).")
    var rest: [String] = []
    var requirement: Requirement { .app(app, .write) }

    func execute(in context: CommandContext) throws {
        let watch = AccessWatch(context, requirement: requirement)
        let io = RunService.IO.attached(to: context, watch: watch)
        context.exitStatus = try context.core.runs.enter(try AppName(app), process: rest.first, command: Array(rest.dropFirst()),
                                                         by: context.caller, io: io)
        try watch.throwIfEnded("entering \(app)")
    }
}
