import Foundation
import SlipwayCore

/// For a command that keeps running (a follower such as `logs -t` or `proxy:logs -t`,
/// an interactive `run`): asks the state again, at most once per `interval`, whether
/// its caller may still do what it started with. The user must still exist, the key
/// the SSH session signed in with must still be theirs, and the command's requirement
/// must still hold (acl:remove, users:remove, ssh-keys:remove, an app destroyed and
/// its name taken). Once access ends it stays ended.
final class AccessWatch: @unchecked Sendable {
    /// A revoked follower stops within this, plus its own polling interval.
    static let interval: TimeInterval = 1
    private let core: Core
    private let principal: Principal
    private let requirement: Requirement
    private let lock = NSLock()
    private var checkedAt = Date()
    private var ended = false

    init(_ context: CommandContext, requirement: Requirement) {
        core = context.core
        principal = context.principal
        self.requirement = requirement
    }

    /// Whether access still holds.
    var isAllowed: Bool {
        lock.withLock {
            if !ended && Date().timeIntervalSince(checkedAt) >= Self.interval {
                checkedAt = Date()
                // Fails closed: a state that cannot be read ends the stream too.
                let current = (try? core.users.refreshed(principal)) ?? nil
                ended = current.map { (try? core.authorizer.require(requirement, for: $0)) == nil } ?? true
            }
            return !ended
        }
    }

    /// Throws when access ended while the command ran, so it exits non-zero saying why.
    func throwIfEnded(_ what: String) throws {
        if lock.withLock({ ended }) {
            throw UserFacingError.denied("your access ended while \(what); it was stopped")
        }
    }
}

extension RunService.IO {
    /// The caller's streams for a container command (`run`, `enter`, `cron:run`,
    /// `postgres:connect`...), byte for byte, cancelled when the caller leaves or loses
    /// the access `watch` checks. Without `interactive`, the command reads no stdin and
    /// gets no terminal (a recorded run such as `cron:run`).
    static func attached(to context: CommandContext, watch: AccessWatch, interactive: Bool = true) -> RunService.IO {
        let stdin = context.stdin, stdout = context.stdout, stderr = context.stderr, cancellation = context.cancellation
        let readStdin: @Sendable (Int) throws -> Data
        if interactive { readStdin = { try stdin.readChunk(max: $0) } } else { readStdin = { _ in Data() } }
        return RunService.IO(
            readStdin: readStdin,
            stdout: { stdout.write(bytes: $0) },
            stderr: { stderr.write(bytes: $0) },
            notice: { stderr.write($0 + "\n") },
            isCancelled: { cancellation.isCancelled || !watch.isAllowed },
            terminal: interactive ? context.terminal : nil)
    }
}
