import ArgumentParser
import Foundation
import SlipwayCore

/// `users:*`: admins manage users; the first admin comes from the host.
enum Users {
    struct Add: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "users:add", abstract: "Add a user (--admin for a server admin).")
        static let rule = AccessRule.admin
        @Argument(help: "The user's name: a lowercase letter, then lowercase letters, digits or '-'.") var name: String
        @Flag(help: "Make the user a server admin.") var admin = false
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            let user = try context.core.users.add(try UserName(name), admin: admin, by: context.caller)
            context.print("added user \(user.name)\(user.isAdmin ? " (admin)" : ""); add a key with: ssh-keys:add \(user.name) <key-name> < key.pub")
        }
    }

    struct Remove: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "users:remove", abstract: "Remove a user with their keys and app access.")
        static let rule = AccessRule.admin
        @Argument var name: String
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            let user = try UserName(name)
            let ended = try context.core.access.removeUser(user, by: context.caller)
            context.print("removed user \(user), their keys and app access")
            printEndedRuns(ended, context)
        }
    }

    struct SetAdmin: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "users:set-admin", abstract: "Grant or revoke server admin rights.")
        static let rule = AccessRule.admin
        @Argument var name: String
        @Argument(help: "true or false.") var admin: Bool
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            let user = try UserName(name)
            try context.core.users.setAdmin(user, admin, by: context.caller)
            context.print("\(user) is \(admin ? "now" : "no longer") a server admin")
        }
    }

    struct List: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "users:list", abstract: "List users.")
        static let rule = AccessRule.admin
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            let users = try context.core.users.list()
            if output.isJSON { return try context.printJSON(users.map(UserView.init)) }
            context.print(Text.table(["NAME", "ADMIN", "KEYS", "CREATED"], users.map {
                [$0.user.name.rawValue, $0.user.isAdmin ? "yes" : "no", "\($0.keys.count)", Text.date($0.user.createdAt)]
            }))
        }
    }

    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "users:report", abstract: "Show one user and their keys.")
        static let rule = AccessRule.admin
        @Argument var name: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            let view = UserView(try context.core.users.report(try UserName(name)))
            if output.isJSON { return try context.printJSON(view) }
            context.print(Text.heading("\(view.name) user information"))
            context.print("Admin:    \(view.admin ? "yes" : "no")")
            context.print("Created:  \(Text.date(view.createdAt))")
            context.print("Keys:     \(view.keys.isEmpty ? "none" : "")")
            for key in view.keys { context.print("  \(key.name)  \(key.type)  \(key.fingerprint)") }
        }
    }
}

/// A user as `users:list` / `users:report --format json` show it.
struct UserView: Codable {
    let name: String
    let admin: Bool
    let createdAt: Date
    let keys: [KeyView]

    init(_ summary: UserService.Summary) {
        name = summary.user.name.rawValue
        admin = summary.user.isAdmin
        createdAt = summary.user.createdAt
        keys = summary.keys.map { KeyView(user: summary.user.name, key: $0) }
    }
}

/// A key as `ssh-keys:list --format json` shows it.
struct KeyView: Codable {
    let user: String
    let name: String
    let type: String
    let bits: Int
    let fingerprint: String
    let comment: String?
    let addedAt: Date

    init(user: UserName, key: SSHKeyRecord) {
        self.user = user.rawValue
        name = key.name.rawValue
        type = key.type
        bits = key.bits
        fingerprint = key.fingerprint
        comment = key.comment
        addedAt = key.createdAt
    }
}
