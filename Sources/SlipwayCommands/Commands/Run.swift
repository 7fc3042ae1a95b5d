import ArgumentParser
import Foundation
import SlipwayCore

/// What `run` and `run:detached` take: the app, then the command as typed.
struct RunTarget: ParsableArguments {
    @Argument var app: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (default: the image's command).")
    var command: [String] = []
}

/// `run <app> <cmd...>`: an ephemeral container from the app's latest image.
struct Run: MutatingCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command in a fresh container of an app; it is removed when the command ends.",
        discussion: "The container gets the app's config and its run-phase storage; stdin is forwarded and the command's exit status is returned. With ssh -t it gets a terminal. Anything written outside storage is discarded, and you are told which paths.")
    static let rule = AccessRule.app(.write)
    static let wantsTerminal = true
    @OptionGroup var target: RunTarget
    var requirement: Requirement { .app(target.app, .write) }

    func execute(in context: CommandContext) throws {
        let watch = AccessWatch(context, requirement: requirement)
        let io = RunService.IO.attached(to: context, watch: watch)
        context.exitStatus = try context.core.runs.run(try AppName(target.app), command: target.command, by: context.caller, io: io)
        try watch.throwIfEnded("running a command in \(target.app)")
    }
}

/// `run:detached <app> <cmd...>`: the same container in the background.
struct RunDetached: MutatingCommand {
    static let configuration = CommandConfiguration(
        commandName: "run:detached",
        abstract: "Start a command in a fresh container of an app in the background and print its name.",
        discussion: "The container is removed when the command ends; run:list shows the running ones and run:stop ends one early.")
    static let rule = AccessRule.app(.write)
    @OptionGroup var target: RunTarget
    var requirement: Requirement { .app(target.app, .write) }

    func execute(in context: CommandContext) throws {
        context.print(try context.core.runs.runDetached(try AppName(target.app), command: target.command, by: context.caller))
    }
}

/// `run:list <app> [--format json]`: the app's one-off runs.
struct RunList: QueryCommand {
    static let configuration = CommandConfiguration(
        commandName: "run:list",
        abstract: "List the running run and run:detached containers of an app (its run Jobs on the kubernetes scheduler).")
    static let rule = AccessRule.app(.write)
    @Argument var app: String
    @OptionGroup var output: FormatOption
    var requirement: Requirement { .app(app, .write) }

    func execute(in context: CommandContext) throws {
        let runs = try context.core.runs.listing(try AppName(app))
        if output.isJSON { return try context.printJSON(runs) }
        guard !runs.isEmpty else {
            context.note("\(app) has no running one-off containers")
            return
        }
        context.print(Text.table(["NAME", "STATE", "STARTED", "BY", "COMMAND"], runs.map {
            [$0.name, $0.state, $0.started.map(Text.date) ?? "-", $0.by ?? "-", $0.command]
        }))
    }
}

/// `run:stop <app> <name>`: ends one of them.
struct RunStop: MutatingCommand {
    static let configuration = CommandConfiguration(
        commandName: "run:stop",
        abstract: "Stop and remove one of an app's run containers (a name from run:list).")
    static let rule = AccessRule.app(.write)
    @Argument var app: String
    @Argument(help: "The container's name (or id) as run:list shows it.") var container: String
    var requirement: Requirement { .app(app, .write) }

    func execute(in context: CommandContext) throws {
        try context.core.runs.stop(try AppName(app), container: container, by: context.caller)
        context.note("-----> Stopped \(container)")
    }
}
