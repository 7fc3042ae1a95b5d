import ArgumentParser
import Foundation
import SlipwayCore

/// `builder:*`: the image Procfile apps are built on.
enum Builder {
    struct Bootstrap: MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "builder:bootstrap",
            abstract: "Build the builder image locally with debootstrap (Debian bookworm + python3), for hosts without a registry.")
        static let rule = AccessRule.admin
        var requirement: Requirement { .admin }

        func execute(in context: CommandContext) throws {
            let report = try context.core.builder.bootstrap(by: context.caller) { line in context.print(line) }
            context.print("       id: \(report.id ?? "-")")
        }
    }

    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "builder:report", abstract: "Show the configured builder image and whether the engine has it.")
        static let rule = AccessRule.user
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .user }

        func execute(in context: CommandContext) throws {
            let report = try context.core.builder.report()
            if output.isJSON { return try context.printJSON(report) }
            context.print(Text.heading("builder information"))
            context.print("       Builder image:    \(report.image)")
            context.print("       Present:          \(report.present ? "yes" : "no; an admin can run builder:bootstrap")")
            if let id = report.id { context.print("       Image id:         \(id)") }
            if let size = report.sizeBytes { context.print("       Size:             \(size / 1_000_000) MB") }
            if report.present {
                let languages = report.languages.keys.sorted().map { "\($0) \(report.languages[$0]!)" }.joined(separator: ", ")
                context.print("       Languages:        \(languages.isEmpty ? "none (made before dependency installs; an admin can run builder:bootstrap again)" : languages)")
            }
            context.print("       Engine:           \(report.engine)")
        }
    }
}
