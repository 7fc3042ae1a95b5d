import ArgumentParser
import Foundation
import SlipwayCore

/// `apps:*`: create, inspect, rename, lock and destroy apps.
enum Apps {
    struct Create: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "apps:create", abstract: "Create an app; you become its owner.")
        static let rule = AccessRule.user
        @Argument(help: "The app's name: lowercase letters, digits and '-'.") var app: String
        var requirement: Requirement { .user }
        static var takesApp: Bool { true }

        func execute(in context: CommandContext) throws {
            let app = try context.core.apps.create(try AppName(app), by: context.caller)
            context.print("-----> Creating \(app.name)...")
            context.print("app \(app.name) created; push to it with: git remote add slipway ssh://<host>:2222/\(app.name)")
        }
    }

    struct Exists: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "apps:exists", abstract: "Exit 0 if an app you can use exists, 1 if not.",
            discussion: "An app you cannot read answers as a missing one.")
        static let rule = AccessRule.user
        @Argument var app: String
        var requirement: Requirement { .user }
        static var takesApp: Bool { true }

        func execute(in context: CommandContext) throws {
            let name = try AppName(app)
            guard try context.core.apps.exists(name, for: context.principal) else {
                throw UserFacingError(.negative, " !     App \(name) does not exist")
            }
        }
    }

    struct List: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "apps:list", abstract: "List the apps you can use.",
            discussion: "--format json prints a JSON array of their names; apps:report --format json has the details.")
        static let rule = AccessRule.user
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .user }

        func execute(in context: CommandContext) throws {
            let names = try context.core.apps.list(for: context.principal).map(\.app.name.rawValue)
            if output.isJSON { return try context.printJSON(names) }
            context.print(Text.heading("My Apps"))
            if names.isEmpty { context.note(" !     You haven't deployed any applications yet") }
            for name in names { context.print(name) }
        }
    }

    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "apps:report", abstract: "Show an app (or every app you can use).",
            discussion: "With one of the --app-* flags, print only that value. --format json prints one object per app, "
                + "keyed as Dokku's (the flag without --app-, and with it).")
        static let rule = AccessRule.app(.read)
        @Argument var app: String?
        @OptionGroup var output: FormatOption
        @Flag(help: "Print only this value.") var info: InfoFlag?
        var requirement: Requirement { app.map { .app($0, .read) } ?? .user }

        /// Dokku's info flags for apps:report, and Slipway's own next to them.
        /// `--app-dir` is left out: it would show a host path.
        enum InfoFlag: String, EnumerableFlag, CaseIterable {
            case appCollaborators, appCreatedAt, appCreatedBy, appDeployBranch, appDeploySource, appDeploySourceMetadata,
                 appLocked, appYourAccess

            /// `--app-created-at`.
            var flag: String { "--" + Self.kebab(rawValue) }

            static func kebab(_ name: String) -> String {
                name.reduce(into: "") { out, c in out += c.isUppercase ? "-" + c.lowercased() : String(c) }
            }

            func value(_ s: AppService.Summary) -> String {
                switch self {
                case .appCollaborators: s.members.map { "\($0.user) (\($0.role.rawValue))" }.joined(separator: ", ")
                case .appCreatedAt: String(Int(s.app.createdAt.timeIntervalSince1970))
                case .appCreatedBy: s.app.createdBy ?? ""
                case .appDeployBranch: s.app.deployBranch ?? ""
                case .appDeploySource: s.app.deployedRevision == nil ? "" : "git"
                case .appDeploySourceMetadata: s.app.deployedRevision ?? ""
                case .appLocked: String(s.app.locked)
                case .appYourAccess: s.role.rawValue
                }
            }
        }

        func execute(in context: CommandContext) throws {
            let summaries = try context.core.apps.reports(try app.map { try AppName($0) }, for: context.principal)
            if let info {
                for summary in summaries { context.print(info.value(summary)) }
                return
            }
            if output.isJSON {
                let objects = summaries.map(Self.json)
                return try context.printJSON(app == nil ? AnyEncodable(objects) : AnyEncodable(objects[0]))
            }
            let width = max(31, InfoFlag.allCases.map { $0.flag.count }.max() ?? 0)
            for summary in summaries {
                context.print(Text.heading("\(summary.app.name) app information"))
                for flag in InfoFlag.allCases {
                    let key = flag.flag.dropFirst(2).replacingOccurrences(of: "-", with: " ")
                    let label = (key.prefix(1).uppercased() + key.dropFirst() + ":").padding(toLength: width, withPad: " ", startingAt: 0)
                    context.print("       \(label)\(flag.value(summary))")
                }
            }
        }

        /// Dokku's JSON report: every flag without `--app-` and, as Dokku 0.38 still
        /// emits them, with `app-`; plus the app's name.
        static func json(_ summary: AppService.Summary) -> [String: String] {
            var object = ["name": summary.app.name.rawValue]
            for flag in InfoFlag.allCases {
                let key = String(flag.flag.dropFirst(2))
                object[key] = flag.value(summary)
                object[String(key.dropFirst("app-".count))] = flag.value(summary)
            }
            return object
        }
    }

    struct Destroy: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "apps:destroy",
            abstract: "Destroy an app: type its name again on stdin, or pass --force.",
            discussion: "Storage is kept unless --purge-storage, which removes storage no other app mounts.")
        static let rule = AccessRule.app(.owner)
        @Argument var app: String
        @Flag(help: "Do not ask for the name again.") var force = false
        @Flag(help: "Also delete managed storage that only this app mounts.") var purgeStorage = false
        var requirement: Requirement { .app(app, .owner) }

        func execute(in context: CommandContext) throws {
            let name = try AppName(app)
            try context.confirmDestruction(of: name.rawValue, "app \(name)\(purgeStorage ? " and the storage only it mounts" : " (storage is kept)")",
                                           forced: force)
            let purged = try context.core.deploys.destroy(name, purgeStorage: purgeStorage, by: context.caller)
            context.print("-----> Destroying \(name) (including all add-ons)")
            if !purged.isEmpty { context.print("       purged storage: \(purged.map(\.rawValue).joined(separator: ", "))") }
        }
    }

    struct Rename: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "apps:rename", abstract: "Rename an app, deployed or not (its repo, config, access, domains and releases move with it).",
            discussion: "A running app's processes are started again under the new name; its old default domain is no longer routed.")
        static let rule = AccessRule.app(.owner)
        @Argument var old: String
        @Argument var new: String
        var requirement: Requirement { .app(old, .owner) }

        func execute(in context: CommandContext) throws {
            let newName = try AppName(new)
            try context.core.deploys.rename(try AppName(old), to: newName, by: context.caller, output: context.progress)
            context.print("-----> Renaming \(old) to \(newName)... done")
            context.note("update your git remote: git remote set-url <remote> ssh://<host>:2222/\(newName)")
        }
    }

    struct Clone: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "apps:clone", abstract: "Make a new app, which you own, from an app you can read: its repo, config, mounts and limits.",
            discussion: "Then it deploys the app's deployed revision unless --skip-deploy. Custom domains, certificates and collaborators "
                + "are not copied; mounts are copied only where you could make them with storage:mount.")
        static let rule = AccessRule.app(.read)
        @Flag(help: "Copy only; do not build and deploy the new app (ps:rebuild deploys it later).") var skipDeploy = false
        @Flag(help: "Exit 0, with a warning, if the new name is taken.") var ignoreExisting = false
        @Argument var old: String
        @Argument var new: String
        // Read access to the source is all it takes: a reader already sees its config
        // (config:show) and fetches its repo; the clone's own rules (apps:create's, and
        // storage:mount's for each mount) are checked as it is made.
        var requirement: Requirement { .app(old, .read) }

        func execute(in context: CommandContext) throws {
            let (source, name) = (try AppName(old), try AppName(new))
            let result = try context.core.deploys.clone(source, to: name, deploy: !skipDeploy, ignoreExisting: ignoreExisting,
                                                        by: context.caller, output: context.progress)
            if result.nameTaken { return context.note(" !     Name is already taken") }
            for mount in result.skippedMounts { context.note(" !     not copied: the mount \(mount)") }
            for link in result.skippedLinks { context.note(" !     not copied: the service link \(link)") }
            context.print("app \(name) created as a clone of \(source); push to it with: git remote add slipway ssh://<host>:2222/\(name)")
        }
    }

    struct Lock: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "apps:lock", abstract: "Refuse deploys of an app until apps:unlock.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.apps.setLocked(try AppName(app), true, by: context.caller)
            context.print("-----> Deploy lock created for \(app)")
        }
    }

    struct Unlock: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "apps:unlock", abstract: "Allow deploys of a locked app again.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.apps.setLocked(try AppName(app), false, by: context.caller)
            context.print("-----> Deploy lock removed for \(app)")
        }
    }

    struct Locked: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "apps:locked", abstract: "Exit 0 if the app is locked, 1 if not.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            let summary = try context.core.apps.report(try AppName(app), for: context.principal)
            guard summary.app.locked else { throw UserFacingError(.negative, "Deploy lock does not exist") }
            context.print("Deploy lock exists")
        }
    }
}

/// A collaborator as `acl:list --format json` shows it.
struct CollaboratorView: Codable {
    let user: String
    let role: String
}

/// Lets one `printJSON` call print either a list or a single object.
struct AnyEncodable: Encodable {
    private let encodeValue: (Encoder) throws -> Void
    init<T: Encodable>(_ value: T) { encodeValue = value.encode }
    func encode(to encoder: Encoder) throws { try encodeValue(encoder) }
}

/// `acl:*`: per-app collaborators (read < write < owner).
enum ACL {
    struct Add: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "acl:add", abstract: "Give a user read, write (default) or owner access to an app.")
        static let rule = AccessRule.app(.owner)
        @Argument var app: String
        @Argument var user: String
        @Argument(help: "read, write or owner.") var role: AppRole = .write
        var requirement: Requirement { .app(app, .owner) }

        func execute(in context: CommandContext) throws {
            let userName = try UserName(user)
            let appName = try AppName(app)
            let ended = try context.core.access.grant(role, on: appName, to: userName, by: context.caller)
            context.print("\(userName) now has \(role.rawValue) access to \(app)")
            if let ended { printEndedRuns(ended, context) }
        }
    }

    struct Remove: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "acl:remove", abstract: "Take a user's access to an app away.")
        static let rule = AccessRule.app(.owner)
        @Argument var app: String
        @Argument var user: String
        var requirement: Requirement { .app(app, .owner) }

        func execute(in context: CommandContext) throws {
            let userName = try UserName(user)
            let appName = try AppName(app)
            let ended = try context.core.access.revoke(on: appName, from: userName, by: context.caller)
            context.print("\(userName) no longer has access to \(app)")
            printEndedRuns(ended, context)
        }
    }

    struct List: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "acl:list", abstract: "List who has access to an app.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            let members = try context.core.apps.members(of: try AppName(app))
            if output.isJSON {
                return try context.printJSON(members.map { CollaboratorView(user: $0.user.rawValue, role: $0.role.rawValue) })
            }
            context.print(Text.table(["USER", "ACCESS"], members.map { [$0.user.rawValue, $0.role.rawValue] }))
        }
    }
}

extension AppRole: ExpressibleByArgument {}

/// The runs a user lost with their access (`AccessService`): each one stopped, or
/// why they could not be stopped.
func printEndedRuns(_ ended: AccessService.EndedRuns, _ context: CommandContext) {
    for name in ended.stopped { context.print("-----> Stopped \(name), started by \(ended.user)") }
    if let failure = ended.failure {
        context.note(" !     could not stop the runs \(ended.user) started (\(failure)); run:list shows them, run:stop ends one")
    }
}
