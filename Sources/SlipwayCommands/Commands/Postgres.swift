import ArgumentParser
import Foundation
import SlipwayCore

/// `postgres:*`: Postgres services that apps link to (Dokku's dokku-postgres grammar).
/// Who may do what is `DatastoreAccess`: the owner (and admins) manage a service,
/// writers of an app linked to it may use it, everyone else is told it does not exist.
enum Postgres {
    static let kind = DatastoreKind.postgres

    struct Create: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres:create",
            abstract: "Create a Postgres service that you own and start it.",
            discussion: "Without --image Slipway builds slipway/postgres:15 from Debian's postgresql-15 on the builder the first time (a minute or two). "
                + "--image names an image already on this server that keeps the official image's contract (POSTGRES_PASSWORD, POSTGRES_DB, /var/lib/postgresql/data).")
        static let rule = AccessRule.user
        @Argument(help: "Lowercase letters, digits and '-', starting with a letter.") var name: String
        @Option(help: "An image on this server (default slipway/postgres:15).") var image: String?
        var requirement: Requirement { .datastore(Postgres.kind, name, .manage, allowMissing: true) }

        func execute(in context: CommandContext) throws {
            let service = try context.core.datastores.create(Postgres.kind, try DatastoreName(name), image: image, by: context.caller, progress: context.progress)
            context.print("=====> Postgres container created: \(service.name)")
            context.print("       link it with: postgres:link \(service.name) <app>")
        }
    }

    struct List: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "postgres:list", abstract: "List the Postgres services you own or use (admins: all).")
        static let rule = AccessRule.user
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .user }

        func execute(in context: CommandContext) throws {
            let services = try context.core.datastores.list(Postgres.kind, for: context.principal)
            if output.isJSON { return try context.printJSON(services) }
            guard !services.isEmpty else { return context.print("=====> No Postgres services") }
            context.print(Text.table(["NAME", "OWNER", "STATE", "LINKS"], services.map {
                [$0.name, $0.owner, $0.state, $0.links.isEmpty ? "-" : $0.links.joined(separator: ", ")]
            }))
        }
    }

    struct Info: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres:info", abstract: "Show a Postgres service: version, state, links, where apps reach it.",
            discussion: "--show-password (its owner or an admin) adds the password; it is shown nowhere else.")
        static let rule = AccessRule.user
        @Argument var name: String
        @Flag(help: "Show the password too (owner or admin).") var showPassword = false
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .datastore(Postgres.kind, name, showPassword ? .manage : .use) }

        func execute(in context: CommandContext) throws {
            let info = try context.core.datastores.info(Postgres.kind, try DatastoreName(name), showPassword: showPassword)
            if output.isJSON { return try context.printJSON(info) }
            context.print("=====> Postgres service \(info.name) information")
            var rows: [(String, String)] = [
                ("Owner", info.owner), ("Image", info.image), ("Version", info.version), ("State", info.state),
                ("Created", Text.date(info.createdAt)), ("Host", "\(info.host):\(info.port) (on linked apps' networks only)"),
                ("Database", info.database), ("Links", info.links.isEmpty ? "-" : info.links.joined(separator: ", ")),
            ]
            if let password = info.password { rows.append(("Password", password)) }
            for (label, value) in rows { context.print("       " + (label + ":").padding(toLength: 12, withPad: " ", startingAt: 0) + value) }
        }
    }

    struct Link: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres:link", abstract: "Link a Postgres service to an app: DATABASE_URL (or --alias) in its config, and a redeploy.",
            discussion: "Needs ownership of the service and write access to the app. The service joins the app's network (and only the networks of apps linked to it).")
        static let rule = AccessRule.user
        @Argument var name: String
        @Argument var app: String
        @Option(help: "The config var to set (default DATABASE_URL).") var alias: String?
        @Flag(help: "Do not redeploy the app.") var noRestart = false
        var requirement: Requirement { .all([.datastore(Postgres.kind, name, .manage), .app(app, .write)]) }

        func execute(in context: CommandContext) throws {
            let name = try DatastoreName(name), app = try AppName(app), alias = try alias.map { try EnvKey($0) }
            try context.core.datastores.link(Postgres.kind, name, to: app, alias: alias, restart: !noRestart, by: context.caller, output: context.progress)
            context.print("-----> Linked \(name) to \(app) as \(alias ?? Postgres.kind.defaultAlias)")
        }
    }

    struct Unlink: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres:unlink", abstract: "Unlink a Postgres service from an app: its config var goes, and a redeploy.")
        static let rule = AccessRule.user
        @Argument var name: String
        @Argument var app: String
        @Flag(help: "Do not redeploy the app.") var noRestart = false
        var requirement: Requirement { .all([.datastore(Postgres.kind, name, .manage), .app(app, .write)]) }

        func execute(in context: CommandContext) throws {
            let name = try DatastoreName(name), app = try AppName(app)
            try context.core.datastores.unlink(Postgres.kind, name, from: app, restart: !noRestart, by: context.caller, output: context.progress)
            context.print("-----> Unlinked \(name) from \(app)")
        }
    }

    struct Restart: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "postgres:restart", abstract: "Restart a Postgres service's container (its data stays).")
        static let rule = AccessRule.user
        @Argument var name: String
        var requirement: Requirement { .datastore(Postgres.kind, name, .use) }

        func execute(in context: CommandContext) throws {
            try context.core.datastores.restart(Postgres.kind, try DatastoreName(name), by: context.caller)
            context.print("-----> Restarted \(name)")
        }
    }

    struct Logs: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "postgres:logs", abstract: "Show a Postgres service's output (-t follows).")
        static let rule = AccessRule.user
        @Argument var name: String
        @OptionGroup var tail: TailOptions
        var requirement: Requirement { .datastore(Postgres.kind, name, .use) }

        func execute(in context: CommandContext) throws {
            let cancellation = context.cancellation, watch = AccessWatch(context, requirement: requirement)
            try context.core.datastores.logs(Postgres.kind, try DatastoreName(name), tail: try tail.checkedLines(), follow: tail.follow,
                                             output: context.progress, isCancelled: { cancellation.isCancelled || !watch.isAllowed })
            try watch.throwIfEnded("following the logs of \(name)")
        }
    }

    struct Destroy: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres:destroy", abstract: "Destroy a Postgres service and its data (refused while linked; asks for the name, or --force).")
        static let rule = AccessRule.user
        @Argument var name: String
        @Flag(name: [.customShort("f"), .long], help: "Do not ask for the name.") var force = false
        var requirement: Requirement { .datastore(Postgres.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            let service = try DatastoreName(name)
            try context.core.datastores.destroy(Postgres.kind, service, by: context.caller) {
                try context.confirmDestruction(of: service.rawValue, "Postgres service \(service) and its data", forced: force)
            }
            context.print("=====> Postgres container deleted: \(service)")
        }
    }
}

/// `services:bootstrap`: builds Slipway's own service images ahead of the first create.
struct ServicesBootstrap: MutatingCommand {
    static let configuration = CommandConfiguration(
        commandName: "services:bootstrap", abstract: "Build Slipway's service image (postgres) from Debian's packages on the builder.")
    static let rule = AccessRule.admin
    @Argument(help: "postgres (the default).") var kind: String = "postgres"
    var requirement: Requirement { .admin }

    func execute(in context: CommandContext) throws {
        guard let kind = DatastoreKind(rawValue: kind), kind == .postgres else {
            throw UserFacingError.invalid("unknown service kind \(quoted(kind)); Slipway builds postgres")
        }
        try context.core.datastores.bootstrap(kind, by: context.caller, progress: context.progress)
    }
}
