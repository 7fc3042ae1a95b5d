import ArgumentParser
import Foundation
import SlipwayCore

/// A datastore's command namespace (`postgres:`, `redis:`): the commands in
/// `DatastoreCommands` are written once and made for each kind through this.
protocol DatastoreNamespace {
    static var kind: DatastoreKind { get }
}

/// The commands every kind of backing service has, in Dokku's datastore-plugin
/// grammar (`<kind>:create NAME`, `<kind>:link NAME APP`, ...). Who may do what is
/// `DatastoreAccess`: the owner (and admins) manage a service, writers of an app
/// linked to it may use it, everyone else is told it does not exist.
enum DatastoreCommands {
    struct Create<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):create",
                abstract: "Create a \(N.kind.title) service that you own and start it.",
                discussion: "Without --image Slipway builds \(DatastoreService.defaultImage(N.kind)) from Debian's \(N.kind.debianPackage) on the builder the first time (a minute or two). "
                    + "--image names an image already on this server that keeps the official image's contract (\(N.kind.imageContract)).")
        }
        static var rule: AccessRule { .user }
        @Argument(help: "Lowercase letters, digits and '-', starting with a letter.") var name: String
        @Option(help: "An image on this server (default \(DatastoreService.defaultImage(N.kind))).") var image: String?
        var requirement: Requirement { .datastore(N.kind, name, .manage, allowMissing: true) }

        func execute(in context: CommandContext) throws {
            let service = try context.core.datastores.create(N.kind, try DatastoreName(name), image: image, by: context.caller, progress: context.progress)
            context.print("=====> \(N.kind.title) container created: \(service.name)")
            context.print("       link it with: \(N.kind.namespace):link \(service.name) <app>")
        }
    }

    struct List<N: DatastoreNamespace>: QueryCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: "\(N.kind.namespace):list", abstract: "List the \(N.kind.title) services you own or use (admins: all).")
        }
        static var rule: AccessRule { .user }
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .user }

        func execute(in context: CommandContext) throws {
            let services = try context.core.datastores.list(N.kind, for: context.principal)
            if output.isJSON { return try context.printJSON(services) }
            guard !services.isEmpty else { return context.print("=====> No \(N.kind.title) services") }
            context.print(Text.table(["NAME", "OWNER", "STATE", "LINKS"], services.map {
                [$0.name, $0.owner, $0.state, $0.links.isEmpty ? "-" : $0.links.joined(separator: ", ")]
            }))
        }
    }

    struct Info<N: DatastoreNamespace>: QueryCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):info", abstract: "Show a \(N.kind.title) service: version, state, links, where apps reach it.",
                discussion: "--show-password (its owner or an admin) adds the password; it is shown nowhere else.")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        @Flag(help: "Show the password too (owner or admin).") var showPassword = false
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .datastore(N.kind, name, showPassword ? .manage : .use) }

        func execute(in context: CommandContext) throws {
            let info = try context.core.datastores.info(N.kind, try DatastoreName(name), showPassword: showPassword)
            if output.isJSON { return try context.printJSON(info) }
            context.print("=====> \(N.kind.title) service \(info.name) information")
            var rows: [(String, String)] = [
                ("Owner", info.owner), ("Image", info.image), ("Version", info.version), ("State", info.state),
                ("Created", Text.date(info.createdAt)), ("Host", "\(info.host):\(info.port) (on linked apps' networks only)"),
            ]
            if !info.database.isEmpty { rows.append(("Database", info.database)) }
            rows.append(("Links", info.links.isEmpty ? "-" : info.links.joined(separator: ", ")))
            if let password = info.password { rows.append(("Password", password)) }
            for (label, value) in rows { context.print("       " + (label + ":").padding(toLength: 12, withPad: " ", startingAt: 0) + value) }
        }
    }

    struct Link<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):link",
                abstract: "Link a \(N.kind.title) service to an app: \(N.kind.defaultAlias) (or --alias) in its config, and a redeploy.",
                discussion: "Needs ownership of the service and write access to the app. The service joins the app's network (and only the networks of apps linked to it).")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        @Argument var app: String
        @Option(help: "The config var to set (default \(N.kind.defaultAlias)).") var alias: String?
        @Flag(help: "Do not redeploy the app.") var noRestart = false
        var requirement: Requirement { .all([.datastore(N.kind, name, .manage), .app(app, .write)]) }

        func execute(in context: CommandContext) throws {
            let name = try DatastoreName(name), app = try AppName(app), alias = try alias.map { try EnvKey($0) }
            try context.core.datastores.link(N.kind, name, to: app, alias: alias, restart: !noRestart, by: context.caller, output: context.progress)
            context.print("-----> Linked \(name) to \(app) as \(alias ?? N.kind.defaultAlias)")
        }
    }

    struct Unlink<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: "\(N.kind.namespace):unlink", abstract: "Unlink a \(N.kind.title) service from an app: its config var goes, and a redeploy.")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        @Argument var app: String
        @Flag(help: "Do not redeploy the app.") var noRestart = false
        var requirement: Requirement { .all([.datastore(N.kind, name, .manage), .app(app, .write)]) }

        func execute(in context: CommandContext) throws {
            let name = try DatastoreName(name), app = try AppName(app)
            try context.core.datastores.unlink(N.kind, name, from: app, restart: !noRestart, by: context.caller, output: context.progress)
            context.print("-----> Unlinked \(name) from \(app)")
        }
    }

    struct Restart<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: "\(N.kind.namespace):restart", abstract: "Restart a \(N.kind.title) service's container (its data stays).")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        var requirement: Requirement { .datastore(N.kind, name, .use) }

        func execute(in context: CommandContext) throws {
            try context.core.datastores.restart(N.kind, try DatastoreName(name), by: context.caller)
            context.print("-----> Restarted \(name)")
        }
    }

    struct Logs<N: DatastoreNamespace>: QueryCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: "\(N.kind.namespace):logs", abstract: "Show a \(N.kind.title) service's output (-t follows).")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        @OptionGroup var tail: TailOptions
        var requirement: Requirement { .datastore(N.kind, name, .use) }

        func execute(in context: CommandContext) throws {
            let cancellation = context.cancellation, watch = AccessWatch(context, requirement: requirement)
            try context.core.datastores.logs(N.kind, try DatastoreName(name), tail: try tail.checkedLines(), follow: tail.follow,
                                             output: context.progress, isCancelled: { cancellation.isCancelled || !watch.isAllowed })
            try watch.throwIfEnded("following the logs of \(name)")
        }
    }

    struct Destroy<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):destroy",
                abstract: "Destroy a \(N.kind.title) service and its data (refused while linked; asks for the name, or --force).")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        @Flag(name: [.customShort("f"), .long], help: "Do not ask for the name.") var force = false
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            let service = try DatastoreName(name)
            try context.core.datastores.destroy(N.kind, service, by: context.caller) {
                try context.confirmDestruction(of: service.rawValue, "\(N.kind.title) service \(service) and its data", forced: force)
            }
            context.print("=====> \(N.kind.title) container deleted: \(service)")
        }
    }
}

extension DatastoreCommands {
    struct Backup<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):backup",
                abstract: "Back a \(N.kind.title) service up now, into its managed backup directory on the server.",
                discussion: "\(N.kind.backupFormat), named by the time (UTC) it started. Listed only once complete.")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            let backup = try context.core.datastores.backup(N.kind, try DatastoreName(name), by: context.caller)
            context.print("-----> Backed up \(name) as \(backup.id) (\(backup.bytes) bytes)")
        }
    }

    struct Backups<N: DatastoreNamespace>: QueryCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: "\(N.kind.namespace):backups", abstract: "List a \(N.kind.title) service's backups and its schedule.")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        struct Listing: Encodable {
            let schedule: String?
            let keep: Int?
            let backups: [DatastoreBackup]
        }

        func execute(in context: CommandContext) throws {
            let (backups, schedule) = try context.core.datastores.backups(N.kind, try DatastoreName(name))
            if output.isJSON { return try context.printJSON(Listing(schedule: schedule?.schedule, keep: schedule?.keep, backups: backups)) }
            context.print("=====> \(N.kind.title) service \(name) backups")
            context.print("       Schedule: " + (schedule.map { "\($0.schedule) (keeps \($0.keep))" } ?? "none"))
            guard !backups.isEmpty else { return context.print("       No backups; \(N.kind.namespace):backup \(name) makes one") }
            context.print(Text.table(["ID", "CREATED", "BYTES"], backups.map { [$0.id, Text.date($0.createdAt), "\($0.bytes)"] }))
        }
    }

    struct Restore<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):restore", abstract: "Replace a \(N.kind.title) service's data with one of its backups.",
                discussion: N.kind.restoreBehaviour)
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        @Argument(help: "A backup id, as \(N.kind.namespace):backups lists it.") var backupID: String
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            try context.core.datastores.restore(N.kind, try DatastoreName(name), backup: backupID, by: context.caller)
            context.print("-----> Restored \(name) from \(backupID)")
        }
    }

    struct BackupSchedule<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):backup-schedule",
                abstract: "Back a \(N.kind.title) service up on a cron schedule, keeping the last N backups.",
                discussion: "Five cron fields or a shorthand (@daily), in the server's cron_timezone, run by the same scheduler as app cron tasks. Replaces an earlier schedule.")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        /// One word or five: over ssh the client joins its arguments with spaces, so
        /// `backup-schedule db "0 3 * * *"` reaches the server as five words.
        @Argument(help: "e.g. 0 3 * * * (five fields, quoted or not) or @daily.") var schedule: [String] = []
        @Option(help: "How many backups to keep (1-1000, default 7); older ones are removed after each backup.") var keep = 7
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            let schedule = schedule.joined(separator: " ")
            try context.core.datastores.setBackupSchedule(N.kind, try DatastoreName(name), schedule: schedule, keep: keep, by: context.caller)
            context.print("-----> Backups of \(name) scheduled at \(schedule), keeping \(keep)")
        }
    }

    struct BackupUnschedule<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(commandName: "\(N.kind.namespace):backup-unschedule", abstract: "Stop a \(N.kind.title) service's scheduled backups (its backups stay).")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            try context.core.datastores.removeBackupSchedule(N.kind, try DatastoreName(name), by: context.caller)
            context.print("-----> Backups of \(name) no longer scheduled")
        }
    }
}

/// `redis:*`: Redis services that apps link to as REDIS_URL (Dokku's dokku-redis grammar).
enum Redis: DatastoreNamespace {
    static let kind = DatastoreKind.redis
    typealias Create = DatastoreCommands.Create<Redis>
    typealias List = DatastoreCommands.List<Redis>
    typealias Info = DatastoreCommands.Info<Redis>
    typealias Link = DatastoreCommands.Link<Redis>
    typealias Unlink = DatastoreCommands.Unlink<Redis>
    typealias Restart = DatastoreCommands.Restart<Redis>
    typealias Logs = DatastoreCommands.Logs<Redis>
    typealias Destroy = DatastoreCommands.Destroy<Redis>
    typealias Backup = DatastoreCommands.Backup<Redis>
    typealias Backups = DatastoreCommands.Backups<Redis>
    typealias Restore = DatastoreCommands.Restore<Redis>
    typealias BackupSchedule = DatastoreCommands.BackupSchedule<Redis>
    typealias BackupUnschedule = DatastoreCommands.BackupUnschedule<Redis>
    typealias Connect = DatastoreCommands.Connect<Redis>
    typealias Export = DatastoreCommands.Export<Redis>
    typealias Import = DatastoreCommands.Import<Redis>
    typealias Upgrade = DatastoreCommands.Upgrade<Redis>
}
