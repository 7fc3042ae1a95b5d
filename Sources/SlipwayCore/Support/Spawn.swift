/// A program a front runs in place of an in-process command, with the client's
/// stdin, stdout and stderr as its own (git's side of a push or a fetch).
public struct Spawn: Sendable {
    /// Absolute path of the program first.
    public let argv: [String]
    /// Its whole environment: nothing of the server's own is inherited.
    public let environment: [String: String]
    /// Called once when it is over: with its exit status, or nil when it was stopped
    /// because the client left. Errors are the front's to log; the client is gone or done.
    public let finished: (@Sendable (Int32?) throws -> Void)?

    public init(argv: [String], environment: [String: String], finished: (@Sendable (Int32?) throws -> Void)? = nil) {
        self.argv = argv
        self.environment = environment
        self.finished = finished
    }
}
