import ArgumentParser
import Foundation
import SlipwayCore

/// What git sends as the exec command for `ssh://host:2222/web`, `.../web.git` and
/// `host:web` remotes: `git-receive-pack '/web.git'` and friends. Not in `help`:
/// nobody types them, but they pass the same gate as every command.
enum GitCommands {
    /// The repository path git sends, reduced to the app's name (validated by the gate).
    struct Repository: ParsableArguments {
        @Argument(help: "The repository: the app's name, as git sends it ('/web.git', '~/web', 'web').")
        var path: String

        var appName: String {
            var name = Substring(path)
            if name.hasPrefix("~/") { name = name.dropFirst(2) }
            if name.hasPrefix("/") { name = name.dropFirst() }
            if name.hasSuffix("/") { name = name.dropLast() }
            if name.hasSuffix(".git") { name = name.dropLast(4) }
            return String(name)
        }
    }

    /// `git-receive-pack <app>`: a push. A push to an app that does not exist creates
    /// it, with the pusher as owner, when the pusher may create apps.
    struct ReceivePack: HandOffCommand, MutatingCommand {
        static let configuration = CommandConfiguration(
            commandName: "git-receive-pack", abstract: "Receive a git push (run by git push).", shouldDisplay: false)
        static let rule = AccessRule.app(.write)
        static let auditName = "git push"
        @OptionGroup var repository: Repository
        var requirement: Requirement { .appOrMissing(repository.appName, .write) }

        func spawn(in context: CommandContext) throws -> Spawn {
            try context.core.pushes.receive(try AppName(repository.appName), by: context.caller, hookCommand: context.gitHook,
                                            gitProtocol: context.environment["GIT_PROTOCOL"])
        }
    }

    /// `git-upload-pack <app>`: a fetch or clone.
    struct UploadPack: HandOffCommand, QueryCommand {
        static let configuration = CommandConfiguration(
            commandName: "git-upload-pack", abstract: "Send an app's repository (run by git fetch and git clone).", shouldDisplay: false)
        static let rule = AccessRule.app(.read)
        static let auditName = "git fetch"
        @OptionGroup var repository: Repository
        var requirement: Requirement { .app(repository.appName, .read) }

        func spawn(in context: CommandContext) throws -> Spawn {
            try context.core.git.uploadPack(try AppName(repository.appName), gitProtocol: context.environment["GIT_PROTOCOL"])
        }
    }
}

/// `slipway hook:pre-receive`: run by git inside a push, never over SSH. It reads the
/// pusher from the environment `PushService.receive` gave git, and refuses to run
/// without it. Its output reaches the pusher as `remote:` lines; a non-zero exit
/// rejects the push.
public enum PreReceiveHook {
    /// The local command that runs it.
    public static let name = "hook:pre-receive"

    public static func run(core: Core, environment: [String: String], stdin: InputSource, stdout: TextOutput, stderr: TextOutput) -> Int32 {
        do {
            let pusher = try PushService.Pusher(environment: environment)
            // All of it or nothing: a deploy branch update left unread would be accepted unbuilt.
            guard let input = try stdin.readAll(limit: 16 << 20) else {
                throw UserFacingError.invalid("the push updates more refs than one push may (16 MB of ref updates); push fewer branches at once")
            }
            let updates = String(decoding: input, as: UTF8.self).split(separator: "\n").compactMap { PushService.RefUpdate(line: String($0)) }
            try core.pushes.preReceive(pusher, updates: updates) { line in
                stdout.write(line.hasSuffix("\n") ? line : line + "\n")
            }
            return 0
        } catch let error as UserFacingError {
            stderr.write("\(error)\n")
            return 1
        } catch {
            stderr.write("error: internal error during the push: \(error)\n")
            return 1
        }
    }
}
