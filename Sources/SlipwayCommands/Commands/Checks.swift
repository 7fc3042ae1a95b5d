import ArgumentParser
import Foundation
import SlipwayCore

/// `checks:*`: how a deploy checks each process type and retires the old containers, in Dokku's grammar.
enum Checks {
    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "checks:report", abstract: "Show which process types skip or disable their deploy checks, and wait-to-retire.",
            discussion: "With one of the --checks-* flags, print only that value. --format json prints one object "
                + "(one per app without an app name), keyed as Dokku's.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String?
        @OptionGroup var output: FormatOption
        @Flag(help: "Print only this value.") var info: InfoFlag?
        var requirement: Requirement { app.map { .app($0, .read) } ?? .user }

        /// Dokku's info flags of checks:report.
        enum InfoFlag: String, EnumerableFlag, CaseIterable {
            case checksDisabledList, checksSkippedList, checksComputedWaitToRetire, checksGlobalWaitToRetire, checksWaitToRetire

            /// `--checks-disabled-list`.
            var flag: String { "--" + Apps.Report.InfoFlag.kebab(rawValue) }

            func value(_ v: ProcessSettingsService.Values) -> String {
                switch self {
                case .checksDisabledList: v.disabledList
                case .checksSkippedList: v.skippedList
                case .checksComputedWaitToRetire: String(v.computedWaitToRetire)
                case .checksGlobalWaitToRetire: String(v.globalWaitToRetire)
                case .checksWaitToRetire: v.waitToRetire.map(String.init) ?? ""
                }
            }
        }

        func execute(in context: CommandContext) throws {
            let reports = try context.core.processSettings.reports(try app.map { try AppName($0) }, for: context.principal)
            if let info {
                for report in reports { context.print(info.value(report)) }
                return
            }
            if output.isJSON {
                let objects = reports.map(Self.json)
                return try context.printJSON(app == nil ? AnyEncodable(objects) : AnyEncodable(objects[0]))
            }
            let width = InfoFlag.allCases.map { $0.flag.count }.max()! + 1
            for report in reports {
                context.print(Text.heading("\(report.app) checks information"))
                for flag in InfoFlag.allCases {
                    let key = flag.flag.dropFirst(2).replacingOccurrences(of: "-", with: " ")
                    let label = (key.prefix(1).uppercased() + key.dropFirst() + ":").padding(toLength: width, withPad: " ", startingAt: 0)
                    context.print("       \(label)\(flag.value(report))")
                }
            }
        }

        /// Dokku 0.38's JSON keys: each flag without `--checks-`, plus the app's name.
        static func json(_ report: ProcessSettingsService.Values) -> [String: String] {
            var object = ["name": report.app.rawValue]
            for flag in InfoFlag.allCases { object[String(flag.flag.dropFirst("--checks-".count))] = flag.value(report) }
            return object
        }
    }

    /// checks:disable / enable / skip share their arguments.
    struct Target: ParsableArguments {
        @Argument var app: String
        @Argument(help: "Process types, comma-separated (web,worker); none: every type.") var types: [String] = []
    }

    struct Disable: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "checks:disable",
            abstract: "Deploy these process types (default: all) without checks and without zero downtime: old containers stop first.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var target: Target
        var requirement: Requirement { .app(target.app, .write) }

        func execute(in context: CommandContext) throws {
            let types = try context.core.processSettings.setChecks(.disabled, types: target.types, app: try AppName(target.app), by: context.caller)
            context.print("-----> Checks disabled for \(Checks.describe(types)) of \(target.app): at the next deploy the old containers stop before the new ones start (downtime)")
        }
    }

    struct Enable: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "checks:enable", abstract: "Check these process types (default: all) again at deploys, with zero downtime.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var target: Target
        var requirement: Requirement { .app(target.app, .write) }

        func execute(in context: CommandContext) throws {
            let types = try context.core.processSettings.setChecks(nil, types: target.types, app: try AppName(target.app), by: context.caller)
            context.print("-----> Checks enabled for \(Checks.describe(types)) of \(target.app)")
        }
    }

    struct Skip: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "checks:skip", abstract: "Deploy these process types (default: all) without checks, still with zero downtime.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var target: Target
        var requirement: Requirement { .app(target.app, .write) }

        func execute(in context: CommandContext) throws {
            let types = try context.core.processSettings.setChecks(.skipped, types: target.types, app: try AppName(target.app), by: context.caller)
            context.print("-----> Checks skipped for \(Checks.describe(types)) of \(target.app): new containers take traffic as soon as they start")
        }
    }

    struct Set: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "checks:set", abstract: "Set (or, without a value, clear) a checks property: wait-to-retire SECONDS.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        @Argument(help: "wait-to-retire") var key: String
        @Argument(help: "Seconds, 0 to 3600; none: the server's default.") var value: String = ""
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            guard key == "wait-to-retire" else {
                throw UserFacingError.invalid("\(quoted(key)) is not a checks property Slipway sets; the one there is: wait-to-retire (e.g. checks:set \(app) wait-to-retire 30)")
            }
            try context.core.processSettings.setWaitToRetire(value, app: try AppName(app), by: context.caller)
            context.print(value.isEmpty ? "-----> Unset wait-to-retire of \(app) (the server's default applies)" : "-----> Set wait-to-retire of \(app) to \(value) s")
        }
    }

    /// `every process type` or `web, worker`.
    static func describe(_ types: [String]) -> String {
        types == [ProcessSettingsService.allTypes] ? "every process type" : types.joined(separator: ", ")
    }
}
