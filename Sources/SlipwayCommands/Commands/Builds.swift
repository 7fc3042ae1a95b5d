import ArgumentParser
import Foundation
import SlipwayCore

/// `builds:*`: the images built from an app's pushes.
enum Builds {
    struct List: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "builds:list", abstract: "List an app's builds, newest first.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        func execute(in context: CommandContext) throws {
            let builds = try context.core.builds.builds(of: try AppName(app)).map(BuildView.init)
            if output.isJSON { return try context.printJSON(builds) }
            context.print(Text.table(["ID", "REVISION", "KIND", "STATUS", "BY", "STARTED", "IMAGE"], builds.map {
                ["\($0.id)", String($0.revision.prefix(12)), $0.kind, $0.status, $0.startedBy, Text.date($0.startedAt), $0.image]
            }))
        }
    }

    struct Report: QueryCommand {
        static let configuration = CommandConfiguration(commandName: "builds:report", abstract: "Show an app's last successful build and its latest attempt.")
        static let rule = AccessRule.app(.read)
        @Argument var app: String
        @OptionGroup var output: FormatOption
        var requirement: Requirement { .app(app, .read) }

        struct View: Codable {
            let latestSuccessful: BuildView?
            let latestAttempt: BuildView?
            /// Bytes of the app's dependency installs and download cache (repo:purge-cache empties it).
            let cacheBytes: Int64
        }

        func execute(in context: CommandContext) throws {
            let name = try AppName(app)
            let report = try context.core.builds.report(of: name)
            let view = View(latestSuccessful: report.latestSuccessful.map(BuildView.init), latestAttempt: report.latestAttempt.map(BuildView.init),
                            cacheBytes: report.cacheBytes)
            if output.isJSON { return try context.printJSON(view) }
            context.print(Text.heading("\(name) build information"))
            context.print("       Latest image:      \(view.latestSuccessful?.image ?? "(no successful build yet; git push builds)")")
            context.print("       Built from:        \(view.latestSuccessful.map { "\($0.revision) (\($0.kind))" } ?? "-")")
            if let attempt = view.latestAttempt {
                context.print("       Latest attempt:    \(attempt.status) at \(Text.date(attempt.startedAt)) by \(attempt.startedBy)")
                if let error = attempt.error { context.print("       Latest error:      \(error)") }
            }
            context.print("       Build cache:       \(byteCount(view.cacheBytes)) (dependency installs and downloads; repo:purge-cache \(name) empties it)")
        }
    }
}

/// `repo:*`: Dokku's name for the app's build cache.
enum Repo {
    struct PurgeCache: MutatingCommand {
        static let configuration = CommandConfiguration(commandName: "repo:purge-cache", abstract: "Remove an app's dependency installs and download cache.")
        static let rule = AccessRule.app(.write)
        @Argument var app: String
        var requirement: Requirement { .app(app, .write) }

        func execute(in context: CommandContext) throws {
            let freed = try context.core.builds.purgeCache(of: try AppName(app), by: context.caller)
            context.print("-----> Build cache of \(app) purged (\(byteCount(freed)) freed); the next build installs dependencies again")
        }
    }
}

/// A build as `builds:list/report --format json` show it.
struct BuildView: Codable {
    let id: Int64
    let revision: String
    let image: String
    let kind: String
    let status: String
    let startedBy: String
    let startedAt: Date
    let finishedAt: Date?
    let error: String?

    init(_ build: Build) {
        id = build.id ?? 0
        revision = build.revision
        image = build.image
        kind = build.kind
        status = build.status.rawValue
        startedBy = build.startedBy
        startedAt = build.startedAt
        finishedAt = build.finishedAt
        error = build.error
    }
}

/// "0 B", "734 kB", "41.2 MB": sizes of build caches.
private func byteCount(_ bytes: Int64) -> String {
    if bytes < 1000 { return "\(bytes) B" }
    if bytes < 1_000_000 { return "\(bytes / 1000) kB" }
    return String(format: "%.1f MB", Double(bytes) / 1_000_000)
}
