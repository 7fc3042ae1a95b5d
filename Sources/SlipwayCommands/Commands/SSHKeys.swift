import ArgumentParser
import Foundation
import SlipwayCore

/// `ssh-keys:*` and `whoami`: keys are identities; admins manage them over SSH.
enum SSHKeys {
    struct Add: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "ssh-keys:add",
            abstract: "Register a public key (read from stdin) for a user, creating the user if needed.",
            discussion: "Example: ssh-keys:add bob laptop < id_ed25519.pub. The local CLI also takes a key file path instead of a key name.")
        static let rule = AccessRule.admin
        @Argument(help: "The user; created as a non-admin if missing.") var user: String
        @Argument(help: "A name for the key (default: the key's comment), or, locally, a key file path.") var keyName: String?
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            let userName = try UserName(user)
            let hint = "pipe the key in, e.g. ssh-keys:add \(userName) laptop < ~/.ssh/id_ed25519.pub"
            var name: KeyName?
            let text: String
            if let keyName, keyName.contains("/") {
                guard context.isLocal else {
                    throw UserFacingError.invalid("over SSH a key comes on stdin only: the server never reads its own files, so \(quoted(keyName)) was not read; \(hint)")
                }
                text = try readKeyFile(keyName)
            } else {
                name = try keyName.map { try KeyName($0) }
                text = try context.readInput("the public key", limit: PublicKey.maximumLineBytes, hint: hint)
            }
            let key = try PublicKey(line: text)
            let added = try context.core.users.addKey(key, to: userName, named: name, by: context.caller)
            if added.createdUser { context.print("added user \(userName)") }
            context.print("added key \(added.key.name) for \(userName)")
            context.print(SSHKeys.keygenLine(added.key))
        }

        private func readKeyFile(_ path: String) throws -> String {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw UserFacingError.invalid("cannot read key file \(quoted(path))")
            }
            defer { try? handle.close() }
            let data = try handle.read(upToCount: PublicKey.maximumLineBytes + 1) ?? Data()
            guard data.count <= PublicKey.maximumLineBytes else {
                throw UserFacingError.invalid("key file \(quoted(path)) is larger than \(PublicKey.maximumLineBytes) bytes; is it a public key?")
            }
            guard let text = String(validating: data, as: UTF8.self) else {
                throw UserFacingError.invalid("key file \(quoted(path)) is not UTF-8 text")
            }
            return text
        }
    }

    struct Remove: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "ssh-keys:remove",
            abstract: "Remove a key: <user> <key-name>, <user> --fingerprint FP, or --fingerprint FP alone.")
        static let rule = AccessRule.admin
        @Argument(help: "Whose key (optional with --fingerprint).") var user: String?
        @Argument(help: "The key's name.") var keyName: String?
        @Option(help: "The key's SHA256 fingerprint instead of its name.") var fingerprint: String?
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            let userName = try user.map { try UserName($0) }
            let selector: UserService.KeySelector
            switch (userName, keyName, fingerprint) {
            case (_?, let name?, nil): selector = .name(try KeyName(name))
            case (_, nil, let fingerprint?):
                guard fingerprint.hasPrefix("SHA256:") else {
                    throw UserFacingError.invalid("invalid fingerprint \(quoted(fingerprint)): give it as ssh-keygen -lf prints it, SHA256:...")
                }
                selector = .fingerprint(fingerprint)
            default:
                let list = userName.map { "ssh-keys:list \($0)" } ?? "ssh-keys:list"
                throw UserFacingError(.usage, "name the key either as <user> <key-name> or by --fingerprint, not both or neither; \(list) shows them")
            }
            let owner = try context.core.users.removeKey(of: userName, selector, by: context.caller)
            context.print("removed the key from \(owner); it no longer logs in")
        }
    }

    struct List: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "ssh-keys:list", abstract: "List keys: your own, or (admins) anyone's.")
        static let rule = AccessRule.user
        @Argument(help: "Whose keys (admins: default all users; users: yourself).") var user: String?
        @OptionGroup var output: FormatOption
        var requirement: Requirement { user.map { .selfOrAdmin($0) } ?? .user }

        func execute(in context: CommandContext) throws {
            let principal = context.principal
            let whose: UserName? = try user.map { try UserName($0) } ?? (principal.isAdmin ? nil : UserName(principal.name))
            let keys = try context.core.users.keys(of: whose).map { KeyView(user: $0.user, key: $0.key) }
            if output.isJSON { return try context.printJSON(keys) }
            if user != nil {
                // One user's keys as Dokku prints them: a line per key, no header, for scripts.
                for key in keys { context.print("\(key.fingerprint) NAME=\"\(key.user)\" KEY_NAME=\"\(key.name)\"") }
                return
            }
            context.print(Text.table(["USER", "NAME", "TYPE", "FINGERPRINT", "ADDED"], keys.map {
                [$0.user, $0.name, $0.type, $0.fingerprint, Text.date($0.addedAt)]
            }))
        }
    }

    /// The line `ssh-keygen -lf` prints for a key: `256 SHA256:... comment (ED25519)`.
    static func keygenLine(_ key: SSHKeyRecord) -> String {
        let label = key.type == "ssh-ed25519" ? "ED25519" : key.type == "ssh-rsa" ? "RSA" : "ECDSA"
        return "\(key.bits) \(key.fingerprint) \(key.comment ?? "no comment") (\(label))"
    }
}

struct WhoAmI: QueryCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show who you are: name, admin flag, the key of this session.")
    static let rule = AccessRule.user
    @OptionGroup var output: FormatOption
    var requirement: Requirement { .user }

    struct View: Codable {
        let name: String
        let admin: Bool
        let via: String
        let fingerprint: String?
    }

    func execute(in context: CommandContext) throws {
        let p = context.principal
        let view = View(name: p.name, admin: p.isAdmin, via: p.via, fingerprint: p.keyFingerprint)
        if output.isJSON { return try context.printJSON(view) }
        context.print("\(view.name)\(view.admin ? " (admin)" : "")")
        context.print("via:  \(view.via)")
        if let fingerprint = view.fingerprint { context.print("key:  \(fingerprint)") }
    }
}
