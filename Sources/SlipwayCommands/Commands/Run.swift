import ArgumentParser
import Foundation
import SlipwayCore

/// `run <app> <cmd...>`: an ephemeral container from the app's latest image.
struct Run: MutatingCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command in a fresh container of an app; it is removed when the command ends.",
        discussion: "The container gets the app's config and its run-phase storage; stdin is forwarded and the command's exit status is returned. Anything written outside storage is discarded, and you are told which paths.")
    static let rule = AccessRule.app(.write)
    @Argument var app: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (default: the image's command).")
    var command: [String] = []
    var requirement: Requirement { .app(app, .write) }

    func execute(in context: CommandContext) throws {
        let stdin = context.stdin, stdout = context.stdout, stderr = context.stderr, cancellation = context.cancellation
        let io = RunService.IO(
            readStdin: { try stdin.readChunk(max: $0) },
            stdout: { stdout.write(bytes: $0) },
            stderr: { stderr.write(bytes: $0) },
            notice: { stderr.write($0 + "\n") },
            isCancelled: { cancellation.isCancelled })
        context.exitStatus = try context.core.runs.run(try AppName(app), command: command, by: context.caller, io: io)
    }
}
