import ArgumentParser
import Foundation
import SlipwayCore

/// `<kind>:connect`, `export` and `import` (psql / pg_dump / pg_restore, redis-cli /
/// an RDB out / an RDB in): a client in the service's container
/// (`DatastoreService.session`), its stdin and stdout the caller's, byte for byte.
/// Its owner or an admin only: the client is the database's superuser and reads or
/// replaces everything in it.
extension DatastoreCommands {
    static func session<N: DatastoreNamespace>(_: N.Type, _ session: DatastoreService.Session, _ name: String, requirement: Requirement,
                                               in context: CommandContext) throws {
        let watch = AccessWatch(context, requirement: requirement)
        let io = RunService.IO.attached(to: context, watch: watch)
        context.exitStatus = try context.core.datastores.session(N.kind, try DatastoreName(name), session, by: context.caller, io: io)
        try watch.throwIfEnded("\(N.kind.namespace):\(session.rawValue) \(name)")
    }

    struct Connect<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):connect",
                abstract: "Open \(N.kind.client) in a \(N.kind.title) service (ssh -t for a terminal; without one, commands from stdin).",
                discussion: "Without a terminal \(N.kind.client) reads commands from stdin: echo '\(N.kind.sampleCommand)' | ssh HOST \(N.kind.namespace):connect NAME. Its owner or an admin only.")
        }
        static var rule: AccessRule { .user }
        static var wantsTerminal: Bool { true }
        @Argument var name: String
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            try DatastoreCommands.session(N.self, .connect, name, requirement: requirement, in: context)
        }
    }

    struct Export<N: DatastoreNamespace>: QueryCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):export", abstract: "Write a dump of a \(N.kind.title) service to stdout (\(N.kind.dumpFormat)).",
                discussion: "ssh HOST \(N.kind.namespace):export NAME > \(N.kind.dumpFile); \(N.kind.namespace):import reads it back. Its owner or an admin only.")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            try DatastoreCommands.session(N.self, .export, name, requirement: requirement, in: context)
        }
    }

    struct Import<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):import", abstract: "Load a dump (\(N.kind.dumpFormat)) from stdin into a \(N.kind.title) service.",
                discussion: "ssh HOST \(N.kind.namespace):import NAME < \(N.kind.dumpFile). \(N.kind.importBehaviour) Its owner or an admin only.")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            try DatastoreCommands.session(N.self, .import, name, requirement: requirement, in: context)
        }
    }

    struct Upgrade<N: DatastoreNamespace>: MutatingCommand {
        static var configuration: CommandConfiguration {
            CommandConfiguration(
                commandName: "\(N.kind.namespace):upgrade",
                abstract: "Run a \(N.kind.title) service on another image, with a backup first; back on the old image if the new one does not answer.",
                discussion: "The image must be on this server (no registry is asked) and keep the official image's contract (\(N.kind.imageContract)). "
                    + "The data, password, name and links stay, so linked apps' URLs do not change; they reconnect once it answers again.")
        }
        static var rule: AccessRule { .user }
        @Argument var name: String
        @Option(help: "The image to run, on this server (e.g. \(DatastoreService.defaultImage(N.kind))).") var image: String
        var requirement: Requirement { .datastore(N.kind, name, .manage) }

        func execute(in context: CommandContext) throws {
            let done = try context.core.datastores.upgrade(N.kind, try DatastoreName(name), image: image, by: context.caller, progress: context.progress)
            context.print("=====> \(N.kind.title) service \(name) upgraded from \(done.from) to \(done.to) (version \(done.version)); backup \(done.backup.id) made first")
        }
    }
}
