import ArgumentParser
import Foundation
import SlipwayCore

/// `postgres:connect`, `postgres:export` and `postgres:import`: a client in the
/// service's container (`DatastoreService.session`), its stdin and stdout the caller's,
/// byte for byte. Its owner or an admin only: the client is the database's superuser
/// and reads or replaces everything in it.
extension Postgres {
    static func session(_ session: DatastoreService.Session, _ name: String, requirement: Requirement, in context: CommandContext) throws {
        let watch = AccessWatch(context, requirement: requirement)
        let io = RunService.IO.attached(to: context, watch: watch)
        context.exitStatus = try context.core.datastores.session(Postgres.kind, try DatastoreName(name), session, by: context.caller, io: io)
        try watch.throwIfEnded("postgres:\(session.rawValue) \(name)")
    }

    struct Connect: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres:connect", abstract: "Open psql in a Postgres service (ssh -t for a terminal; without one, SQL from stdin).",
            discussion: "Without a terminal psql reads SQL from stdin and stops at the first error with a non-zero status: echo 'select 1' | ssh HOST postgres:connect NAME. Its owner or an admin only.")
        static let rule = AccessRule.user
        static let wantsTerminal = true
        @Argument var name: String
        var requirement: Requirement { .datastore(Postgres.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            try Postgres.session(.connect, name, requirement: requirement, in: context)
        }
    }

    struct Export: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres:export", abstract: "Write a dump of a Postgres service to stdout (pg_dump's custom format).",
            discussion: "ssh HOST postgres:export NAME > db.dump; postgres:import reads it back. Its owner or an admin only.")
        static let rule = AccessRule.user
        @Argument var name: String
        var requirement: Requirement { .datastore(Postgres.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            try Postgres.session(.export, name, requirement: requirement, in: context)
        }
    }

    struct Import: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres:import", abstract: "Restore a dump (pg_dump's custom format) from stdin into a Postgres service.",
            discussion: "ssh HOST postgres:import NAME < db.dump. Tables in the dump replace those of the same name; one transaction, so a dump that fails changes nothing. Its owner or an admin only.")
        static let rule = AccessRule.user
        @Argument var name: String
        var requirement: Requirement { .datastore(Postgres.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            try Postgres.session(.import, name, requirement: requirement, in: context)
        }
    }
}
