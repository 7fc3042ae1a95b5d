import ArgumentParser
import Foundation
import SlipwayCore

/// `domains:*`: which names reach an app (Dokku's grammar).
enum Domains {
    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "domains:report", abstract: "Show an app's domains and URLs.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            let report = try context.core.routing.report(try AppName(app))
            if output.isJSON { return try context.printJSON(report) }
            context.print(Text.heading("\(app) domains information"))
            context.print("       Default domain:  \(report.defaultDomain)")
            context.print("       Custom domains:  \(report.customDomains.isEmpty ? "-" : report.customDomains.joined(separator: " "))")
            context.print("       Global domain:   \(report.globalDomain)")
            context.print("       URLs:            \(report.urls.joined(separator: " "))")
        }
    }

    /// domains:add / domains:set / domains:remove share their arguments.
    struct Names: ParsableArguments {
        @Argument var app: String
        @Argument(help: "Domain names, such as www.example.com.") var domains: [String] = []
    }

    struct Add: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "domains:add", abstract: "Serve an app at more domains (each belongs to one app only).",
            discussion: "Point the domain's DNS at this server; certs:add then serves it over HTTPS.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var names: Names
        var requirement: Requirement { .app(names.app, .write) }

        func execute(in context: CommandContext) throws {
            let app = try AppName(names.app)
            // With letsencrypt on, a certificate covering the new names is requested too.
            let change = try context.core.acme.addDomains(app, names.domains, by: context.caller)
            context.print(change.added.isEmpty ? "-----> \(app) has those domains already" : "-----> Added \(change.added.joined(separator: " ")) to \(app)")
            if let outcome = change.certificate { LetsEncrypt.show(outcome, in: context) }
        }
    }

    struct Set: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "domains:set", abstract: "Replace an app's custom domains with these.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var names: Names
        var requirement: Requirement { .app(names.app, .write) }

        func execute(in context: CommandContext) throws {
            let app = try AppName(names.app)
            // With letsencrypt on, a certificate covering the names it adds is requested too.
            let change = try context.core.acme.setDomains(app, names.domains, by: context.caller)
            context.print("-----> Set the domains of \(app) to \(names.domains.map { $0.lowercased() }.joined(separator: " "))")
            if let outcome = change.certificate { LetsEncrypt.show(outcome, in: context) }
        }
    }

    struct Remove: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "domains:remove", abstract: "Stop serving an app at these custom domains.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var names: Names
        var requirement: Requirement { .app(names.app, .write) }

        func execute(in context: CommandContext) throws {
            let app = try AppName(names.app)
            try context.core.routing.remove(app, names.domains, by: context.caller)
            context.print("-----> Removed \(names.domains.map { $0.lowercased() }.joined(separator: " ")) from \(app)")
        }
    }

    struct Clear: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "domains:clear", abstract: "Remove all of an app's custom domains (its default one stays).")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.routing.clear(try AppName(app), by: context.caller)
            context.print("-----> Cleared the custom domains of \(app)")
        }
    }

    struct SetGlobal: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "domains:set-global", abstract: "Set the global domain: every app answers at <app>.<global domain>.")
        static let rule = AccessRule.admin
        @Argument(help: "A domain whose subdomains (a wildcard DNS record) point at this server.") var domain: String
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            try context.core.routing.setGlobal(domain, by: context.caller)
            context.print("-----> Set the global domain to \(domain.lowercased()); apps answer at <app>.\(domain.lowercased())")
        }
    }
}

/// `certs:*`: an app's TLS certificate.
enum Certs {
    struct Add: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "certs:add", abstract: "Serve an app over HTTPS with a certificate and key read from stdin (PEM).",
            discussion: "Example: cat cert.pem key.pem | ssh host certs:add web. The key must match the certificate, which must cover the app's custom domains (or, without any, its default one). HTTP is then redirected to HTTPS.")
        static let rule = AccessRule.app(.owner)
        @Argument var app: String
        var requirement: Requirement { .app(app, .owner) }

        func execute(in context: CommandContext) throws {
            let pem = try context.readInput("the certificate and key", limit: 1 << 20, hint: "cat cert.pem key.pem | ssh host certs:add \(app)")
            let report = try context.core.certificates.add(try AppName(app), pem: pem, by: context.caller)
            context.print("-----> Added a certificate for \(report.names.joined(separator: " ")) to \(app), valid until \(Text.date(report.notAfter ?? Date()))")
            context.print("       HTTPS: \(report.httpsDomains.joined(separator: " "))")
        }
    }

    struct Remove: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "certs:remove", abstract: "Remove an app's certificate; it is served over plain HTTP again.")
        static let rule = AccessRule.app(.owner)
        @Argument var app: String
        var requirement: Requirement { .app(app, .owner) }

        func execute(in context: CommandContext) throws {
            try context.core.certificates.remove(try AppName(app), by: context.caller)
            context.print("-----> Removed the certificate of \(app)")
        }
    }

    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "certs:report", abstract: "Show an app's certificate: names, issuer, expiry.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            let report = try context.core.certificates.report(try AppName(app))
            if output.isJSON { return try context.printJSON(report) }
            context.print(Text.heading("\(app) ssl information"))
            guard report.enabled else {
                context.print("       Enabled:      no (certs:add \(app) adds one)")
                return
            }
            context.print("       Enabled:      yes")
            context.print("       Names:        \(report.names.joined(separator: " "))")
            context.print("       Subject:      \(report.subject ?? "-")")
            context.print("       Issuer:       \(report.issuer ?? "-")")
            context.print("       Valid from:   \(report.notBefore.map(Text.date) ?? "-")")
            let state = report.expired ? " (EXPIRED: clients refuse it)" : report.expiresSoon ? " (expires soon: renew it)" : ""
            context.print("       Expires:      \(report.notAfter.map(Text.date) ?? "-")\(state)")
            context.print("       Renewal:      \(report.acme ? "automatic (letsencrypt:list \(app) shows the last attempt)" : "by hand (certs:add), or letsencrypt:enable \(app)")")
            context.print("       Fingerprint:  SHA256 \(report.fingerprint ?? "-")")
            context.print("       HTTPS:        \(report.httpsDomains.isEmpty ? "-" : report.httpsDomains.joined(separator: " "))")
            context.print("       HTTP only:    \(report.httpDomains.isEmpty ? "-" : report.httpDomains.joined(separator: " "))")
        }
    }
}

/// `proxy:report`: how the proxy serves an app.
struct ProxyReport: QueryCommand {
    static let configuration = CommandConfiguration(commandName: "proxy:report", abstract: "Show how nginx serves an app: domains, upstreams, TLS, config file.")
    static let rule = AccessRule.app(.read)
    @Argument var app: String
    @OptionGroup var output: FormatOption
    var requirement: Requirement { .app(app, .read) }

    func execute(in context: CommandContext) throws {
        let report = try context.core.routing.proxyReport(try AppName(app))
        if output.isJSON { return try context.printJSON(report) }
        context.print(Text.heading("\(app) proxy information"))
        context.print("       Proxy:        nginx (\(report.mode)), HTTP port \(report.httpPort), HTTPS port \(report.httpsPort)")
        context.print("       Domains:      \(report.domains.joined(separator: " "))")
        context.print("       URLs:         \(report.urls.joined(separator: " "))")
        context.print("       Upstreams:    \(report.upstreams.isEmpty ? "- (no running web process: answers 503)" : report.upstreams.joined(separator: " "))")
        context.print("       TLS:          \(report.tlsDomains.isEmpty ? "off" : "on for \(report.tlsDomains.joined(separator: " ")); HTTP redirects to HTTPS")")
        context.print("       Config file:  \(report.configPath)\(report.configPresent ? "" : " (not written yet)")")
    }
}

/// `proxy:logs <app> [-t] [-n N]`: the requests nginx served for an app (Dokku's `nginx:access-logs`).
struct ProxyLogs: QueryCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy:logs", abstract: "Show the requests nginx served for an app (its access log).",
        discussion: "One line per request in nginx's combined format. With -t, new requests follow (within a second) until you disconnect.")
    static let rule = AccessRule.app(.read)
    @Argument var app: String
    @OptionGroup var tail: TailOptions
    var requirement: Requirement { .app(app, .read) }

    func execute(in context: CommandContext) throws {
        let cancellation = context.cancellation, watch = AccessWatch(context, requirement: requirement)
        try context.core.routing.accessLog(try AppName(app), lines: try tail.checkedLines(), follow: tail.follow, output: context.progress,
                                           isCancelled: { cancellation.isCancelled || !watch.isAllowed },
                                           isAllowed: { watch.isAllowed })
        try watch.throwIfEnded("following the access log of \(app)")
    }
}
