import ArgumentParser
import Foundation
import SlipwayCore

/// The stored output of builds, deploys and detached runs (`OutputService`):
/// `builds:output`, `releases:output`, `run:logs`. Read access on the app.
enum Outputs {
    /// `-t` and `--format json`, shared by the three.
    struct Options: ParsableArguments {
        @Flag(name: [.customShort("t"), .customLong("tail")], help: "Follow the output until it ends (or you disconnect).") var follow = false
        @OptionGroup var output: FormatOption

        func check() throws {
            if follow && output.isJSON { throw UserFacingError.invalid("-t and --format json do not go together; drop one") }
        }
    }

    /// A record (with its text when one was asked for) as `--format json` prints it.
    struct View: Codable {
        let app: String
        let kind: String
        let ref: String
        let status: String
        let startedAt: Date
        let finishedAt: Date?
        let bytes: Int64
        let text: String?

        init(_ app: String, _ record: OutputRecord, text: String?) {
            (self.app, kind, ref, status) = (app, record.kind.rawValue, record.ref, record.status.rawValue)
            (startedAt, finishedAt, bytes, self.text) = (record.startedAt, record.finishedAt, record.bytes, text)
        }
    }

    /// Prints the record's text (streaming with -t). With `--format json`: one object
    /// with the text for a given ref, else the list of stored records without text.
    static func show(_ app: String, kind: OutputKind, ref: String?, options: Options, requirement: Requirement,
                     in context: CommandContext) throws {
        try options.check()
        let name = try AppName(app)
        let cancellation = context.cancellation, watch = AccessWatch(context, requirement: requirement)
        var collected = ""
        let records = try context.core.outputs.show(name, kind: kind, ref: ref, listing: options.output.isJSON, follow: options.follow,
                                                    isCancelled: { cancellation.isCancelled || !watch.isAllowed }) { text in
            if options.output.isJSON { collected += text } else { context.stdout.write(text) }
        }
        try watch.throwIfEnded("following the output of \(app)")
        if options.output.isJSON {
            if ref == nil { return try context.printJSON(records.map { View(app, $0, text: nil) }) }
            try context.printJSON(View(app, records[0], text: collected))
        } else if let record = records.first, !options.follow && record.status == .running {
            context.note("-----> \(record.ref) is still running; -t follows it")
        }
    }

    struct Build: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "builds:output", abstract: "Show the stored output of a build (default: the latest).")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @Argument(help: "The build's id, as builds:list shows it.") var id: String?
        @OptionGroup var options: Options
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            if let id, Int64(id).map({ $0 > 0 }) != true {
                throw UserFacingError.invalid("invalid build id \(quoted(id)): use a number builds:list \(app) shows")
            }
            try Outputs.show(app, kind: .build, ref: id.flatMap { Int64($0) }.map(String.init), options: options, requirement: requirement, in: context)
        }
    }

    struct Release: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "releases:output", abstract: "Show the stored output of a deploy (default: the latest).")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @Argument(help: "The release, v3 (or 3), as releases lists it.") var version: String?
        @OptionGroup var options: Options
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            var ref: String?
            if let version {
                let digits = version.hasPrefix("v") ? String(version.dropFirst()) : version
                guard let number = Int(digits), number > 0, digits.allSatisfy(\.isNumber) else {
                    throw UserFacingError.invalid("invalid release \(quoted(version)): write it as releases \(app) lists it, e.g. v3")
                }
                ref = "v\(number)"
            }
            try Outputs.show(app, kind: .deploy, ref: ref, options: options, requirement: requirement, in: context)
        }
    }

    struct RunLogs: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "run:logs", abstract: "Show the stored output of a detached run (default: the latest).")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @Argument(help: "The run's name, as run:detached printed it (default: the latest).") var name: String?
        @OptionGroup var options: Options
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            if let name, name.isEmpty || name.utf8.count > 200 {
                throw UserFacingError.invalid("invalid run name \(quoted(name)): use the name run:detached printed, e.g. \(app).detached.1a2b3c4d")
            }
            try Outputs.show(app, kind: .run, ref: name, options: options, requirement: requirement, in: context)
        }
    }
}
