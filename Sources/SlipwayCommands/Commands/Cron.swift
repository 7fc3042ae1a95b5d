import ArgumentParser
import Foundation
import SlipwayCore

/// `cron:*`: the scheduled tasks of an app's current release (app.json `cron`).
enum Cron {
    /// `cron:list APP [--format json]`.
    struct List: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "cron:list", abstract: "List an app's cron entries with their next and last runs.",
            discussion: "Entries come from app.json cron of the release that is live. Times are in the server's cron_timezone.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            let entries = try context.core.cron.list(try AppName(app))
            if output.isJSON { return try context.printJSON(entries) }
            guard !entries.isEmpty else {
                context.note("\(app) has no cron entries (app.json cron of the live release)")
                return
            }
            let zone = entries[0].timezone
            func show(_ date: Date?) -> String {
                guard let date else { return "-" }
                let formatter = DateFormatter()
                formatter.locale = Locale(identifier: "en_US_POSIX")
                formatter.timeZone = TimeZone(identifier: zone)
                formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
                return formatter.string(from: date)
            }
            context.print(Text.table(["ID", "SCHEDULE", "NEXT RUN (\(zone))", "LAST RUN", "LAST STATUS", "COMMAND"], entries.map {
                [$0.id, $0.schedule, $0.suspended ? "suspended" : show($0.nextRun), show($0.lastRun), $0.lastStatus ?? "-", $0.command]
            }))
        }
    }

    /// `cron:run APP ID [--detach]`.
    struct RunNow: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "cron:run", abstract: "Run one of an app's cron entries now, as run would.",
            discussion: "The run is recorded with the entry's (cron:list, cron:logs). Without --detach its output streams to you and its exit status is returned.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        @Argument(help: "The entry's id, as cron:list shows it.") var id: String
        @Flag(help: "Start it in the background and return at once.") var detach = false
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            let watch = AccessWatch(context, requirement: requirement)
            let io = RunService.IO.attached(to: context, watch: watch, interactive: false)
            let run = try context.core.cron.runNow(try AppName(app), id: id, detach: detach, by: context.caller, io: io)
            if detach {
                context.note("-----> Started cron run \(run.id ?? 0) of \(id)\(run.container.map { " (\($0))" } ?? ""); cron:logs \(app) \(id) -t follows it")
                return
            }
            if run.status != .succeeded && run.status != .failed { context.note("-----> cron run \(run.status.rawValue)\(run.detail.map { ": \($0)" } ?? "")") }
            context.exitStatus = run.exitCode ?? 1
            try watch.throwIfEnded("running a cron entry of \(app)")
        }
    }

    /// `cron:suspend APP [ID]`.
    struct Suspend: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "cron:suspend", abstract: "Stop scheduling an app's cron entries (or one of them) until cron:resume.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        @Argument(help: "One entry's id; without it, every entry.") var id: String?
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.cron.suspend(try AppName(app), id: id, by: context.caller)
            context.note("-----> Suspended \(id.map { "cron entry \($0) of \(app)" } ?? "every cron entry of \(app)")")
        }
    }

    /// `cron:resume APP [ID]`.
    struct Resume: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "cron:resume", abstract: "Schedule suspended cron entries again (runs missed meanwhile are not made up).")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        @Argument(help: "One entry's id; without it, every suspension of the app ends.") var id: String?
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.cron.resume(try AppName(app), id: id, by: context.caller)
            context.note("-----> Resumed \(id.map { "cron entry \($0) of \(app)" } ?? "the cron entries of \(app)")")
        }
    }

    /// `cron:logs APP ID [-n N] [-t]`.
    struct Logs: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "cron:logs", abstract: "Show the stored output of an entry's latest cron run.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @Argument(help: "The entry's id, as cron:list shows it.") var id: String
        @OptionGroup var tail: TailOptions
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            let cancellation = context.cancellation, watch = AccessWatch(context, requirement: requirement)
            try context.core.cron.logs(try AppName(app), id: id, lines: try tail.checkedLines(), follow: tail.follow, output: context.progress,
                                       isCancelled: { cancellation.isCancelled || !watch.isAllowed })
            try watch.throwIfEnded("following the cron output of \(app)")
        }
    }
}
