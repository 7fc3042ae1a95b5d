import ArgumentParser
import Foundation
import SlipwayCore

/// `resource:*`: memory, CPU and pids limits of an app's containers, in Dokku's grammar
/// (`resource:limit [--process-type T] [--memory X] [--cpu N] <app>`), plus `--pids`.
enum Resource {
    /// `--process-type`, shared by every resource command.
    struct Scope: ParsableArguments {
        @Option(name: .customLong("process-type"), help: "Only this process type (web, worker, ..., run for one-off runs, build for builds); default: the whole app.")
        var processType: String?
        @Argument var app: String
    }

    /// A flag's value: `clear` (Dokku's word) makes the field inherit again.
    static func change(_ text: String?, _ parse: (String) throws -> Int64) throws -> ResourceService.Change? {
        guard let text else { return nil }
        return text == "clear" ? .clear : .set(try parse(text))
    }

    static func printChanges(_ heading: String, _ lines: [(String, String?)], app: AppName, processType: String?, _ context: CommandContext) {
        context.print(Text.heading("\(heading) for \(app)\(processType.map { " (\($0))" } ?? "")"))
        for case let (name, value?) in lines { context.print("       \(name): \(value)") }
        context.print("       takes effect at the next deploy or ps:restart \(app); run and builds use it from now on")
    }

    /// `resource:limit-clear` / `resource:reserve-clear`.
    static func clear(_ kind: ResourceService.Kind, _ scope: Scope, _ context: CommandContext) throws {
        let app = try AppName(scope.app)
        try context.core.resources.clear(kind, app: app, processType: scope.processType, by: context.caller)
        context.print("-----> Clearing resource \(kind == .limit ? "limits" : "reservation") for \(app)\(scope.processType.map { " (\($0))" } ?? "")")
        context.print("       takes effect at the next deploy or ps:restart \(app); run and builds use it from now on")
    }

    /// `resource:limit` / `resource:reserve` without values: the scope's values and where they come from.
    static func printScope(_ kind: ResourceService.Kind, app: AppName, processType: String?, _ context: CommandContext) throws {
        let report = try context.core.resources.report(app, including: processType)
        let type = processType ?? ResourceService.appWide
        context.print(Text.heading("resource \(kind == .limit ? "limits" : "reservation") \(app) information\(processType.map { " (\($0))" } ?? " [defaults]")"))
        let fields: [(String, KeyPath<ResourceLimits, Int64?>, (Int64) -> String)] = kind == .limit
            ? [("cpu", \.nanoCPUs, ResourceQuantity.formatCPUs), ("memory", \.memoryBytes, ResourceQuantity.formatMemory), ("pids", \.pids, String.init)]
            : [("memory", \.memoryReservationBytes, ResourceQuantity.formatMemory)]
        for (name, field, format) in fields {
            context.print("       \(name): \(Report.cell(report, type, field, format))")
        }
    }

    struct Limit: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "resource:limit",
            abstract: "Limit the memory, CPUs and processes of an app's containers (or of one process type).",
            discussion: "Memory takes b, k, m or g (a bare number is MiB, as Dokku); --cpu takes CPUs such as 0.5; 'clear' as a value inherits again. Values above the server's max_* are refused. Without values, shows the current ones. Applies at the next deploy or ps:restart; run and builds use it at once.")
        static let rule = AccessRule.app(.write)
        @Option(help: "Hard memory limit, e.g. 256m or 1g.") var memory: String?
        @Option(help: "CPUs, e.g. 1 or 0.5.") var cpu: String?
        @Option(help: "Most processes and threads at once, e.g. 256.") var pids: String?
        @OptionGroup var scope: Scope
        var requirement: Requirement { .app(scope.app, .write) }

        func execute(in context: CommandContext) throws {
            let app = try AppName(scope.app)
            let changes = ResourceService.Changes(
                memory: try Resource.change(memory) { try ResourceQuantity.parseMemory($0, option: "--memory") },
                nanoCPUs: try Resource.change(cpu) { try ResourceQuantity.parseCPUs($0, option: "--cpu") },
                pids: try Resource.change(pids) { try ResourceQuantity.parsePids($0, option: "--pids") })
            if changes.isEmpty { return try Resource.printScope(.limit, app: app, processType: scope.processType, context) }
            try context.core.resources.set(changes, app: app, processType: scope.processType, by: context.caller)
            Resource.printChanges("Setting resource limits", [("cpu", cpu), ("memory", memory), ("pids", pids)], app: app,
                                  processType: scope.processType, context)
        }
    }

    struct Reserve: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "resource:reserve",
            abstract: "Reserve memory for an app's containers (a soft limit the kernel reclaims down to under pressure).",
            discussion: "Memory takes b, k, m or g (a bare number is MiB); 'clear' inherits again. At most the container's memory limit. Without values, shows the current one.")
        static let rule = AccessRule.app(.write)
        @Option(help: "Reserved memory, e.g. 128m.") var memory: String?
        @OptionGroup var scope: Scope
        var requirement: Requirement { .app(scope.app, .write) }

        func execute(in context: CommandContext) throws {
            let app = try AppName(scope.app)
            let changes = ResourceService.Changes(
                memoryReservation: try Resource.change(memory) { try ResourceQuantity.parseMemory($0, option: "--memory") })
            if changes.isEmpty { return try Resource.printScope(.reserve, app: app, processType: scope.processType, context) }
            try context.core.resources.set(changes, app: app, processType: scope.processType, by: context.caller)
            Resource.printChanges("Setting resource reservation", [("memory", memory)], app: app, processType: scope.processType, context)
        }
    }

    struct LimitClear: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "resource:limit-clear",
            abstract: "Clear an app's resource limits (of one process type, or of the app and all its types): the server's defaults apply again.")
        static let rule = AccessRule.app(.write)
        @OptionGroup var scope: Scope
        var requirement: Requirement { .app(scope.app, .write) }

        func execute(in context: CommandContext) throws { try Resource.clear(.limit, scope, context) }
    }

    struct ReserveClear: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "resource:reserve-clear",
            abstract: "Clear an app's memory reservation (of one process type, or of the app and all its types).")
        static let rule = AccessRule.app(.write)
        @OptionGroup var scope: Scope
        var requirement: Requirement { .app(scope.app, .write) }

        func execute(in context: CommandContext) throws { try Resource.clear(.reserve, scope, context) }
    }

    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "resource:report",
            abstract: "Show the limits each process type of an app (or of every app you can use) runs with, and where they come from.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String?
        @OptionGroup var output: FormatOption
        var requirement: Requirement { app.map { .app($0, .read) } ?? .user }

        /// Values as JSON: memory in bytes, CPUs as a number.
        struct Values: Codable {
            let memory: Int64?
            let memoryReservation: Int64?
            let cpus: Double?
            let pids: Int64?

            init(_ limits: ResourceLimits) {
                memory = limits.memoryBytes
                memoryReservation = limits.memoryReservationBytes
                cpus = limits.nanoCPUs.map { Double($0) / 1_000_000_000 }
                pids = limits.pids
            }
        }

        struct View: Codable {
            let app: String
            let defaults: Values
            let max: Values
            /// What resource:limit and resource:reserve set, by process type (`_default_`: the whole app).
            let set: [String: Values]
            /// What containers of each type get.
            let effective: [String: Values]
        }

        /// `256m (app)`: the value and where it comes from; `-` when there is none.
        static func cell(_ report: ResourceService.Report, _ type: String, _ field: KeyPath<ResourceLimits, Int64?>,
                         _ format: (Int64) -> String) -> String {
            guard let value = report.effective[type]?[keyPath: field] else { return "-" }
            return "\(format(value)) (\(report.source(type, field)))"
        }

        func execute(in context: CommandContext) throws {
            let reports = try context.core.resources.reports(try app.map { try AppName($0) }, for: context.principal)
            if output.isJSON {
                let views = reports.map {
                    View(app: $0.app.rawValue, defaults: Values($0.defaults), max: Values($0.caps),
                         set: $0.set.mapValues(Values.init), effective: $0.effective.mapValues(Values.init))
                }
                return try context.printJSON(app == nil ? AnyEncodable(views) : AnyEncodable(views[0]))
            }
            for report in reports {
                context.print(Text.heading("\(report.app) resource information"))
                let d = report.defaults, m = report.caps
                context.print("       Server defaults:  memory \(d.memoryBytes.map(ResourceQuantity.formatMemory) ?? "-"), cpu \(d.nanoCPUs.map(ResourceQuantity.formatCPUs) ?? "-"), pids \(d.pids.map(String.init) ?? "-")")
                context.print("       Server maximum:   memory \(m.memoryBytes.map(ResourceQuantity.formatMemory) ?? "-"), cpu \(m.nanoCPUs.map(ResourceQuantity.formatCPUs) ?? "-"), pids \(m.pids.map(String.init) ?? "-")")
                let rows = report.effective.keys.sorted().map { type in
                    [type, Self.cell(report, type, \.memoryBytes, ResourceQuantity.formatMemory), Self.cell(report, type, \.nanoCPUs, ResourceQuantity.formatCPUs),
                     Self.cell(report, type, \.pids, String.init), Self.cell(report, type, \.memoryReservationBytes, ResourceQuantity.formatMemory)]
                }
                context.print(Text.table(["TYPE", "MEMORY", "CPU", "PIDS", "RESERVED"], rows))
            }
        }
    }
}
