import ArgumentParser
import Foundation
import SlipwayCore

/// `postgres:*`: Postgres services that apps link to as DATABASE_URL (Dokku's
/// dokku-postgres grammar); the shared commands are in `DatastoreCommands`.
enum Postgres: DatastoreNamespace {
    static let kind = DatastoreKind.postgres
    typealias Create = DatastoreCommands.Create<Postgres>
    typealias List = DatastoreCommands.List<Postgres>
    typealias Info = DatastoreCommands.Info<Postgres>
    typealias Link = DatastoreCommands.Link<Postgres>
    typealias Unlink = DatastoreCommands.Unlink<Postgres>
    typealias Restart = DatastoreCommands.Restart<Postgres>
    typealias Logs = DatastoreCommands.Logs<Postgres>
    typealias Destroy = DatastoreCommands.Destroy<Postgres>
    typealias Backup = DatastoreCommands.Backup<Postgres>
    typealias Backups = DatastoreCommands.Backups<Postgres>
    typealias Restore = DatastoreCommands.Restore<Postgres>
    typealias BackupSchedule = DatastoreCommands.BackupSchedule<Postgres>
    typealias BackupUnschedule = DatastoreCommands.BackupUnschedule<Postgres>
    typealias Connect = DatastoreCommands.Connect<Postgres>
    typealias Export = DatastoreCommands.Export<Postgres>
    typealias Import = DatastoreCommands.Import<Postgres>
    typealias Upgrade = DatastoreCommands.Upgrade<Postgres>
}

/// `services:bootstrap`: builds Slipway's own service images ahead of the first create.
struct ServicesBootstrap: MutatingCommand {
    static let configuration = CommandConfiguration(
        commandName: "services:bootstrap", abstract: "Build Slipway's service image (postgres or redis) from Debian's packages on the builder.")
    static let rule = AccessRule.admin
    @Argument(help: "postgres (the default) or redis.") var kind: String = "postgres"
    var requirement: Requirement { .admin }

    func execute(in context: CommandContext) throws {
        guard let kind = DatastoreKind(rawValue: kind) else {
            throw UserFacingError.invalid("unknown service kind \(quoted(kind)); Slipway builds postgres or redis")
        }
        try context.core.datastores.bootstrap(kind, by: context.caller, progress: context.progress)
    }
}
