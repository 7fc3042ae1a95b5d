import ArgumentParser
import Foundation
import SlipwayCore

/// Deploy progress goes to the caller's stdout, a line at a time, as it happens.
extension CommandContext {
    var progress: DeployService.Output {
        let stdout = self.stdout
        return { stdout.write($0 + "\n") }
    }
}

/// `ps:*`: the app's processes.
enum Ps {
    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "ps:report", abstract: "Show an app's release, scale, restart policy and process containers.",
            discussion: "With --ps-restart-policy, --ps-computed-restart-policy or --ps-can-scale, print only that value.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        @Flag(help: "Print only this value.") var info: InfoFlag?
        var requirement: Requirement { .app(app, .read) }

        /// Dokku's info flags of ps:report that Slipway has (no global restart policy: it is per app).
        enum InfoFlag: String, EnumerableFlag, CaseIterable {
            case psRestartPolicy, psComputedRestartPolicy, psCanScale
        }

        struct View: Codable {
            struct Process: Codable { let name: String; let type: String; let release: String; let state: String }
            let release: String?
            let formation: [String: Int]
            let stopped: Bool
            let processes: [Process]
            let endpoints: [String]
            let url: String
            /// The app's own `ps:set` value ("" when unset) and the one its containers get, under Dokku's keys.
            let restartPolicy: String
            let computedRestartPolicy: String
            /// Dokku's "true"/"false": false while the current release's app.json formation sets the scale.
            let canScale: String
            /// Where the scale comes from: "app.json" (its formation) or "ps:scale" (with its defaults).
            let scaleSource: String

            enum CodingKeys: String, CodingKey {
                case release, formation, stopped, processes, endpoints, url
                case restartPolicy = "restart-policy", computedRestartPolicy = "computed-restart-policy"
                case canScale = "can-scale", scaleSource = "scale-source"
            }
        }

        func execute(in context: CommandContext) throws {
            let report = try context.core.deploys.report(try AppName(app)), settings = report.settings
            let view = View(release: report.current?.label, formation: report.formation, stopped: report.stopped,
                            processes: report.processes.map { .init(name: $0.name, type: $0.type, release: $0.release, state: $0.state) },
                            endpoints: report.endpoints, url: report.url,
                            restartPolicy: settings.restartPolicy?.description ?? "", computedRestartPolicy: settings.computedRestartPolicy.description,
                            canScale: report.scaleFromAppJSON ? "false" : "true", scaleSource: report.scaleFromAppJSON ? "app.json" : "ps:scale")
            switch info {
            case .psRestartPolicy?: return context.print(view.restartPolicy)
            case .psComputedRestartPolicy?: return context.print(view.computedRestartPolicy)
            case .psCanScale?: return context.print(view.canScale)
            case nil: break
            }
            if output.isJSON { return try context.printJSON(view) }
            context.print(Text.heading("\(app) process information"))
            context.print("       Release:         \(view.release ?? "(not deployed yet)")\(view.stopped ? " (stopped: ps:start \(app))" : "")")
            context.print("       Scale:           \(view.formation.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
            context.print("       Scale from:      \(report.scaleFromAppJSON ? "app.json formation of \(view.release ?? "?") (ps:scale is off; change app.json and push)" : "ps:scale")")
            context.print("       URL:             \(view.url)")
            context.print("       Web:             \(view.endpoints.isEmpty ? "-" : view.endpoints.joined(separator: " "))")
            context.print("       Restart policy:  \(view.computedRestartPolicy)\(view.restartPolicy.isEmpty ? " (default)" : "")")
            if !view.processes.isEmpty {
                context.print()
                context.print(Text.table(["NAME", "TYPE", "RELEASE", "STATE"], view.processes.map { [$0.name, $0.type, $0.release, $0.state] }))
            }
        }
    }

    struct Set: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "ps:set", abstract: "Set (or, without a value, reset) a ps property: restart-policy no|always|unless-stopped|on-failure[:N].",
            discussion: "The default restart policy is on-failure:10. A change applies at the next deploy or ps:restart.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        @Argument(help: "restart-policy") var key: String
        @Argument(help: "no, always, unless-stopped, on-failure or on-failure:N (N from 1 to 1000); none: the default.") var value: String = ""
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            guard key == "restart-policy" else {
                throw UserFacingError.invalid("\(quoted(key)) is not a ps property Slipway sets; the one there is: restart-policy (e.g. ps:set \(app) restart-policy on-failure:20)")
            }
            try context.core.processSettings.setRestartPolicy(value, app: try AppName(app), by: context.caller)
            context.print(value.isEmpty ? "-----> Reset restart-policy of \(app) to the default, \(RestartPolicy.processDefault)" : "-----> Set restart-policy of \(app) to \(value)")
            context.note("it applies at the next deploy or ps:restart \(app)")
        }
    }

    struct Scale: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "ps:scale", abstract: "Set how many containers each process type runs: ps:scale <app> web=2 worker=1.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        @Argument(help: "TYPE=COUNT pairs.") var pairs: [String] = []
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            guard !pairs.isEmpty else { throw UserFacingError(.usage, "give TYPE=COUNT pairs, e.g. ps:scale \(app) web=2 worker=1") }
            var quantities: [String: Int] = [:]
            for pair in pairs {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, ProcessType.isValid(parts[0]), let count = Int(parts[1]), (0...ProcessType.maximumScale).contains(count) else {
                    throw UserFacingError.invalid("\(quoted(pair)) is not TYPE=COUNT with a count from 0 to \(ProcessType.maximumScale); e.g. ps:scale \(app) web=2")
                }
                quantities[parts[0]] = count
            }
            try context.core.deploys.scale(try AppName(app), quantities, by: context.caller, output: context.progress)
        }
    }

    /// ps:restart / ps:start / ps:stop share their arguments.
    struct Target: ParsableArguments {
        @Argument var app: String
        @Argument(help: "Only this process type.") var type: String?
    }

    struct Restart: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "ps:restart", abstract: "Replace an app's processes with fresh ones of the same release, without downtime.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var target: Target
        var requirement: Requirement { .app(target.app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.deploys.restart(try AppName(target.app), type: target.type, by: context.caller, output: context.progress)
        }
    }

    struct Start: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "ps:start", abstract: "Start an app's processes again after ps:stop.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var target: Target
        var requirement: Requirement { .app(target.app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.deploys.start(try AppName(target.app), type: target.type, by: context.caller, output: context.progress)
        }
    }

    struct Stop: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "ps:stop", abstract: "Stop an app's processes (they stay stopped until ps:start).")
        static let rule = AccessRule.app(.write)
        @OptionGroup var target: Target
        var requirement: Requirement { .app(target.app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.deploys.stop(try AppName(target.app), type: target.type, by: context.caller, output: context.progress)
        }
    }

    struct Rebuild: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "ps:rebuild", abstract: "Build the deployed revision again and deploy it.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            try context.core.deploys.deploy(try AppName(app), trigger: .rebuild, by: context.caller, output: context.progress)
        }
    }
}

/// `releases`, `releases:rollback`.
enum Releases {
    struct List: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "releases", abstract: "List an app's releases, newest first, with failed attempts.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        struct View: Codable {
            let version: Int
            let current: Bool
            let status: String
            let reason: String
            let revision: String
            let image: String
            let by: String
            let startedAt: Date
            let finishedAt: Date?
            let error: String?
        }

        func execute(in context: CommandContext) throws {
            let (releases, currentID) = try context.core.deploys.releases(try AppName(app))
            let views = releases.map {
                View(version: $0.version, current: $0.id == currentID, status: $0.status.rawValue, reason: $0.reason, revision: $0.revision,
                     image: $0.image, by: $0.startedBy, startedAt: $0.startedAt, finishedAt: $0.finishedAt, error: $0.error)
            }
            if output.isJSON { return try context.printJSON(views) }
            guard !views.isEmpty else {
                context.note("\(app) has no releases yet; git push it to deploy")
                return
            }
            context.print(Text.heading("\(app) releases"))
            context.print(Text.table(["VERSION", "STATUS", "BY", "WHEN", "REVISION", "WHAT"], views.map {
                ["v\($0.version)\($0.current ? " *" : "")", $0.status, $0.by, Text.date($0.startedAt), String($0.revision.prefix(12)),
                 $0.reason + ($0.error.map { ": \($0.prefix(100))" } ?? "")]
            }))
        }
    }

    struct Rollback: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "releases:rollback", abstract: "Deploy an earlier release's image and config again (default: the one before the current), without a build.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        @Argument(help: "The release, e.g. v3.") var version: String?
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            var number: Int?
            if let version {
                guard let n = Int(version.hasPrefix("v") ? String(version.dropFirst()) : version), n > 0 else {
                    throw UserFacingError.invalid("\(quoted(version)) is not a release such as v3; releases \(app) lists them")
                }
                number = n
            }
            try context.core.deploys.deploy(try AppName(app), trigger: .rollback(version: number), by: context.caller, output: context.progress)
        }
    }
}

/// `-t` and `-n N`, as every command that shows a log takes them.
struct TailOptions: ParsableArguments {
    @Flag(name: [.customShort("t"), .customLong("tail")], help: "Follow new lines until you disconnect.") var follow = false
    @Option(name: [.customShort("n"), .customLong("num")], help: "Lines to show first (default 100; logs: per container).") var lines = 100

    /// `lines`, refused outside 0...10000.
    func checkedLines() throws -> Int {
        guard (0...10_000).contains(lines) else { throw UserFacingError.invalid("-n takes 0 to 10000 lines") }
        return lines
    }
}

/// `logs <app> [-t] [-n N] [-p type]`.
struct Logs: QueryCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show an app's process output, prefixed app[type.n].")
    static let rule = AccessRule.app(.read)
    @Argument var app: String
    @OptionGroup var tail: TailOptions
    @Option(name: [.customShort("p"), .customLong("ps")], help: "Only this process type.") var type: String?
    var requirement: Requirement { .app(app, .read) }

    func execute(in context: CommandContext) throws {
        let cancellation = context.cancellation, watch = AccessWatch(context, requirement: requirement)
        try context.core.deploys.logs(try AppName(app), type: type, tail: try tail.checkedLines(), follow: tail.follow, output: context.progress,
                                      isCancelled: { cancellation.isCancelled || !watch.isAllowed })
        try watch.throwIfEnded("following the logs of \(app)")
    }
}

/// `deploy:lock-status`, `deploy:unlock`.
enum DeployLockCommands {
    struct Status: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "deploy:lock-status", abstract: "Show whether a deploy of the app is running, and whose.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            guard let (lock, stale) = try context.core.deploys.locks.status(try AppName(app)) else {
                context.print("\(app) is not being deployed")
                return
            }
            context.print("\(app) is \(stale ? "locked by a deploy that is gone (stale; deploy:unlock \(app) removes it)" : "being deployed") by \(lock.holder) since \(Text.date(lock.acquiredAt))\(lock.releaseVersion.map { " (release v\($0))" } ?? "")")
        }
    }

    struct Unlock: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "deploy:unlock", abstract: "Remove a stale deploy lock (one whose deploy is gone).")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            let removed = try context.core.deploys.locks.unlock(try AppName(app), by: context.caller)
            context.print(removed ? "-----> Removed the stale deploy lock of \(app)" : "\(app) has no deploy lock")
        }
    }
}
