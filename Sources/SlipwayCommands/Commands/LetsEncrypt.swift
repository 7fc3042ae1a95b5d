import ArgumentParser
import Foundation
import SlipwayCore

/// `letsencrypt:*`: automatic certificates over ACME (Dokku's letsencrypt plugin's names).
enum LetsEncrypt {
    /// Prints what an attempt did; a failed one is an error line and exit status 1
    /// (its failure is already in `events`, written with the attempt).
    static func show(_ outcome: ACMEService.Outcome, in context: CommandContext) {
        if !outcome.names.isEmpty {
            context.print("-----> Issued a certificate for \(outcome.names.joined(separator: " ")) to \(outcome.app)\(outcome.expires.map { ", valid until \(Text.date($0))" } ?? "")")
        }
        for (name, reason) in outcome.uncovered.sorted(by: { $0.key < $1.key }) {
            context.note(" !     \(name) was left out (still served over HTTP): \(reason)")
        }
        if let error = outcome.error {
            context.stderr.write("error: letsencrypt: no certificate for \(outcome.app): \(error)\n")
            context.exitStatus = 1
        }
    }

    struct Enable: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "letsencrypt:enable", abstract: "Obtain a certificate for an app's domains over ACME, and renew it automatically.",
            discussion: "The domains must point at this server: the CA checks each over HTTP (port 80 in production). A domain that fails is left out and reported; if the attempt fails the server tries again later (letsencrypt:list shows when).")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            LetsEncrypt.show(try context.core.acme.enable(try AppName(app), by: context.caller), in: context)
            if context.exitStatus != 0 { context.note("       ACME stays on for \(app): letsencrypt:renew \(app) tries again now, letsencrypt:disable \(app) turns it off") }
        }
    }

    struct Disable: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "letsencrypt:disable", abstract: "Stop renewing an app's certificate over ACME and remove the certificate it issued.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            let removed = try context.core.acme.disable(try AppName(app), by: context.caller)
            context.print("-----> Disabled automatic certificates for \(app)" + (removed ? "; its certificate was removed, it is served over HTTP" : ""))
        }
    }

    struct Set: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "letsencrypt:set", abstract: "Set the ACME account email, the CA's directory (server) or the roots trusted for it (ca-bundle).",
            discussion: "Only --global (admin). server: production (default), staging, or an https directory URL. ca-bundle: a PEM file on the server. Without a value the key goes back to its default.")
        static let rule = AccessRule.admin
        @Flag(help: "Server-wide (the only scope).") var global = false
        @Argument(help: "email, server or ca-bundle.") var key: String
        @Argument var value: String?
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            guard global else {
                throw UserFacingError(.usage, "letsencrypt settings are server-wide: letsencrypt:set --global \(key) \(value ?? "VALUE")")
            }
            guard let name = ACMEService.GlobalKey(rawValue: key) else {
                throw UserFacingError(.usage, "unknown key \(quoted(key)); use email, server or ca-bundle")
            }
            let globals = try context.core.acme.setGlobal(name, value, by: context.caller)
            let shown: String? = switch name {
            case .email: globals.email
            case .server: globals.server
            case .caBundle: globals.caBundle
            }
            context.print("-----> letsencrypt \(name.rawValue): \(shown ?? "(none)")")
        }
    }

    struct List: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "letsencrypt:list", abstract: "List the apps with automatic certificates: names, expiry, last attempt and its error.")
        static let rule = AccessRule.user
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .user }

        func execute(in context: CommandContext) throws {
            let entries = try context.core.acme.list(for: context.principal)
            if output.isJSON { return try context.printJSON(entries) }
            guard !entries.isEmpty else { return context.note("no app you can read has automatic certificates; letsencrypt:enable APP") }
            func show(_ date: Date?) -> String { date.map(Text.date) ?? "-" }
            context.print(Text.table(["APP", "NAMES", "EXPIRES", "LAST ATTEMPT", "NEXT", "RESULT"], entries.map { entry in
                var result = entry.lastError.map { "failed: \($0)" } ?? (entry.lastAttempt == nil ? "-" : "ok")
                if !entry.uncovered.isEmpty { result += "; left out: " + entry.uncovered.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", ") }
                return [entry.app, entry.names.isEmpty ? "-" : entry.names.joined(separator: ","), show(entry.expires), show(entry.lastAttempt),
                        show(entry.nextAttempt), result]
            }))
        }
    }

    struct Renew: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "letsencrypt:renew", abstract: "Obtain a new certificate now for an app (or every app you may write) with ACME on.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String?
        var requirement: Requirement { app.map { .app($0, .write) } ?? .user }

        func execute(in context: CommandContext) throws {
            let outcomes = try context.core.acme.renew(try app.map { try AppName($0) }, by: context.caller)
            if outcomes.isEmpty { context.note("no app you may write has automatic certificates; letsencrypt:enable APP") }
            // One failure makes the status 1; every outcome is shown.
            for outcome in outcomes { LetsEncrypt.show(outcome, in: context) }
        }
    }
}
